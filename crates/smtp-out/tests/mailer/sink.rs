//! A real SMTP server for the tests: a small tokio sink on 127.0.0.x that records each
//! envelope and the exact message bytes it received (dot-stuffing undone), with
//! switches for CHUNKING, STARTTLS, SMTPUTF8, SIZE and scripted replies.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use crate::sink_conn::fnv;
use crate::sink_conn::serve;

/// The receive buffer of the sink's sockets.
const RECV_BUFFER: u32 = 256 * 1024;

/// Bodies larger than this are kept as length and hash only.
pub const KEEP_BODY: usize = 2 << 20;

/// What the sink offers and answers.
#[derive(Debug, Clone)]
pub struct Options {
    pub greeting: String,
    pub ehlo: bool,
    pub pipelining: bool,
    pub chunking: bool,
    pub starttls: bool,
    /// Answer 220 to STARTTLS, then send garbage instead of a TLS handshake.
    pub broken_tls: bool,
    pub smtputf8: bool,
    pub size: Option<u64>,
    pub mail_reply: String,
    pub rcpt_reply: String,
    pub data_reply: String,
    /// Answer DATA with 354 even without a valid recipient (RFC 2920 §3.1 says 554).
    pub data_without_rcpt: bool,
    /// Close the connection, unanswered, at a MAIL FROM after the first transaction.
    pub close_at_second_mail: bool,
    /// After a transaction, send a 421 notice once no command came for this long, as
    /// a server that times out idle sessions (the sink then goes on reading).
    pub idle_notice: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            greeting: "220 sink.test ESMTP".into(),
            ehlo: true,
            pipelining: true,
            chunking: false,
            starttls: false,
            broken_tls: false,
            smtputf8: false,
            size: None,
            mail_reply: "250 2.1.0 Ok".into(),
            rcpt_reply: "250 2.1.5 Ok".into(),
            data_reply: "250 2.0.0 Ok: queued as SINK1".into(),
            data_without_rcpt: false,
            close_at_second_mail: false,
            idle_notice: None,
        }
    }
}

/// One message the sink accepted the data of (whatever it replied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub connection: usize,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message, unless longer than [`KEEP_BODY`].
    pub body: Vec<u8>,
    pub len: u64,
    pub hash: u64,
    pub tls: bool,
    pub bdat: bool,
}

/// Everything the sink saw.
#[derive(Debug, Default)]
pub struct Log {
    pub connections: usize,
    /// (connection, command line) for every command outside message data.
    pub commands: Vec<(usize, String)>,
    /// The commands that arrived together with the next one (pipelined): more input
    /// was already there when the sink read them.
    pub batched: Vec<String>,
    /// Idle notices (421) sent.
    pub notices: usize,
    pub messages: Vec<Message>,
    /// Connections that ended (closed by the client or after QUIT).
    pub closed: usize,
}

pub struct Sink {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    /// Octets read from clients so far, on all connections.
    pub received: Arc<AtomicU64>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

/// What every connection of one sink shares.
pub struct Shared {
    pub options: Options,
    pub log: Arc<Mutex<Log>>,
    pub received: Arc<AtomicU64>,
    pub tls: TlsAcceptor,
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    /// A sink on 127.0.0.1, any free port.
    pub async fn start(options: Options) -> Sink {
        Sink::start_at(IpAddr::from([127, 0, 0, 1]), 0, options)
            .await
            .expect("bind a port")
    }

    /// A sink listening on `ip:port`, or `None` if that is taken.
    pub async fn start_at(ip: IpAddr, port: u16, options: Options) -> Option<Sink> {
        Some(Sink::serve(
            listen(SocketAddr::new(ip, port)).ok()?,
            options,
        ))
    }

    fn serve(listener: TcpListener, options: Options) -> Sink {
        let addr = listener.local_addr().expect("a bound address");
        let log = Arc::new(Mutex::new(Log::default()));
        let received = Arc::new(AtomicU64::new(0));
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let shared = Arc::new(Shared {
            options,
            log: Arc::clone(&log),
            received: Arc::clone(&received),
            tls: acceptor(),
        });
        let accept_tasks = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let id = {
                    let mut log = lock(&shared.log);
                    log.connections += 1;
                    log.connections - 1
                };
                let shared = Arc::clone(&shared);
                let task = tokio::spawn(async move {
                    let _ = serve(stream, id, &shared).await;
                    lock(&shared.log).closed += 1;
                });
                lock(&accept_tasks).push(task);
            }
        });
        Sink {
            addr,
            log,
            received,
            tasks,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }

    pub fn messages(&self) -> Vec<Message> {
        self.log().messages.clone()
    }

    pub fn commands(&self) -> Vec<String> {
        self.log().commands.iter().map(|(_, c)| c.clone()).collect()
    }

    /// The commands the sink saw on connection `id`.
    pub fn commands_on(&self, id: usize) -> Vec<String> {
        let log = self.log();
        let on = log.commands.iter().filter(|(c, _)| *c == id);
        on.map(|(_, command)| command.clone()).collect()
    }

    /// Closes every open connection from the server side, as a server that restarted.
    pub fn kill_connections(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    /// Waits (at most 5 s) until `done` holds for the log.
    pub async fn wait_for(&self, done: impl Fn(&Log) -> bool) -> bool {
        for _ in 0..500 {
            if done(&self.log()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.accept.abort();
        self.kill_connections();
    }
}

/// A listener whose connections have a fixed, small receive buffer: the kernel then
/// cannot hide a mailer that reads far ahead of the sink (see the large-message tests).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_recv_buffer_size(RECV_BUFFER)?;
    socket.bind(addr)?;
    socket.listen(128)
}

fn acceptor() -> TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["sink.test".to_owned()])
        .expect("a self-signed certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("a usable certificate");
    TlsAcceptor::from(Arc::new(config))
}
