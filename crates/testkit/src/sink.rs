//! The one SMTP sink: a real SMTP server on 127.0.0.x standing in for destinations. It
//! records each envelope and the exact message bytes it received (dot-stuffing undone),
//! with switches for CHUNKING, STARTTLS, SMTPUTF8, SIZE and scripted replies, and a
//! [`Mode`] a test can change while mail flows (accept, destination down, slow).
//!
//! It is also the kit of misbehaving destinations: every scripted reply is sent as
//! written, so it can be multi-line (`"250-2.0.0 queued\r\n451 4.3.0 no"`, lines
//! separated by CRLF) or not SMTP at all (`"hello"`); a refused greeting is a
//! `greeting` of `"554 5.7.1 go away"`; and [`Options`] has a destination that never greets, one
//! that answers DATA with something other than 354, and one that sends a stale reply
//! on a reused connection.
//!
//! A recipient whose local part starts with `reject` is always refused with
//! `550 5.1.1`, whatever the options: a destination that does not exist.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use crate::sink_conn::fnv;
use crate::sink_conn::{path, serve};

/// The receive buffer of the sink's sockets.
const RECV_BUFFER: u32 = 256 * 1024;

/// Bodies larger than this are kept as length and hash only.
pub const KEEP_BODY: usize = 2 << 20;

/// How the sink treats mail at the moment; [`Sink::set_mode`] changes it on the fly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Answer as the [`Options`] say.
    #[default]
    Accept,
    /// 451 to every RCPT: the destination is "down".
    TempFail,
    /// As the options say, but each message's final reply takes 200 ms: a slow
    /// destination keeps every delivery worker busy.
    Slow,
}

/// How long a message's final reply takes in [`Mode::Slow`].
pub const SLOW_REPLY: Duration = Duration::from_millis(200);

/// What the sink offers and answers.
#[derive(Debug, Clone)]
pub struct Options {
    /// The greeting line, with its code (`554 …` refuses the session).
    pub greeting: String,
    /// Never send the greeting, as a tarpit: the client's greeting timeout runs out.
    /// Commands are still read, recorded and answered.
    pub no_greeting: bool,
    /// Whether EHLO is understood (else 502, and the client falls back to HELO).
    pub ehlo: bool,
    /// Offer PIPELINING.
    pub pipelining: bool,
    /// Offer CHUNKING (BDAT).
    pub chunking: bool,
    /// Offer STARTTLS (with a self-signed certificate for `sink.test`).
    pub starttls: bool,
    /// Answer 220 to STARTTLS, then send garbage instead of a TLS handshake.
    pub broken_tls: bool,
    /// Offer SMTPUTF8.
    pub smtputf8: bool,
    /// Offer 8BITMIME (most servers do; on by default).
    pub eight_bit_mime: bool,
    /// Offer SIZE with this limit.
    pub size: Option<u64>,
    /// The reply to MAIL FROM.
    pub mail_reply: String,
    /// The reply to RCPT TO (unless the recipient or the mode says otherwise).
    pub rcpt_reply: String,
    /// The reply to DATA when it is not the usual 354: a server that answers `250`
    /// (the data is then not read, and nothing is recorded), or refuses.
    pub data_command_reply: Option<String>,
    /// The reply at the end of a message's data.
    pub data_reply: String,
    /// A reply no command asked for, sent just before the reply to the first MAIL
    /// FROM after a completed transaction: on a reused connection, every reply
    /// after it answers the command before the one it seems to.
    pub stale_reply: Option<String>,
    /// Answer DATA with 354 even without a valid recipient (RFC 2920 §3.1 says 554).
    pub data_without_rcpt: bool,
    /// Close the connection, unanswered, at a MAIL FROM after the first transaction.
    pub close_at_second_mail: bool,
    /// After a transaction, send a 421 notice once no command came for this long, as
    /// a server that times out idle sessions (the sink then goes on reading).
    pub idle_notice: Option<Duration>,
    /// The longest message kept whole (see [`Message::body`]); longer ones are kept
    /// as their length and hash only. [`KEEP_BODY`] unless a test needs more.
    pub keep_body: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            greeting: "220 sink.test ESMTP".into(),
            no_greeting: false,
            ehlo: true,
            pipelining: true,
            chunking: false,
            starttls: false,
            broken_tls: false,
            smtputf8: false,
            eight_bit_mime: true,
            size: None,
            mail_reply: "250 2.1.0 Ok".into(),
            rcpt_reply: "250 2.1.5 Ok".into(),
            data_command_reply: None,
            data_reply: "250 2.0.0 Ok: queued as SINK1".into(),
            stale_reply: None,
            data_without_rcpt: false,
            close_at_second_mail: false,
            idle_notice: None,
            keep_body: KEEP_BODY,
        }
    }
}

impl Options {
    /// A destination as the end-to-end tests see one: the defaults, with a final reply
    /// that says where the message went (`250 2.0.0 queued by sink`).
    #[must_use]
    pub fn destination() -> Self {
        Options {
            data_reply: "250 2.0.0 queued by sink".into(),
            ..Options::default()
        }
    }
}

/// One message the sink accepted the data of (whatever it replied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The connection it came on, counted from 0.
    pub connection: usize,
    /// The MAIL command line as sent, e.g. `MAIL FROM:<a@b.test> SMTPUTF8`.
    pub mail_from: String,
    /// The accepted RCPT command lines as sent.
    pub rcpt_to: Vec<String>,
    /// The message, unless longer than [`Options::keep_body`].
    pub body: Vec<u8>,
    /// The message's length in octets.
    pub len: u64,
    /// The message's FNV-1a hash (see [`fnv`]).
    pub hash: u64,
    /// Whether it came over TLS.
    pub tls: bool,
    /// Whether it came by BDAT rather than DATA.
    pub bdat: bool,
}

/// A message as the destination's mailbox sees it: the envelope's addresses and the
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The reverse path, without angle brackets (empty for a bounce).
    pub sender: String,
    /// The accepted forward paths, without angle brackets.
    pub recipients: Vec<String>,
    /// The message (empty if longer than [`Options::keep_body`]).
    pub data: Vec<u8>,
}

impl From<&Message> for Received {
    fn from(message: &Message) -> Self {
        Received {
            sender: path(&message.mail_from),
            recipients: message.rcpt_to.iter().map(|line| path(line)).collect(),
            data: message.body.clone(),
        }
    }
}

/// Everything the sink saw.
#[derive(Debug, Default)]
pub struct Log {
    /// Connections accepted.
    pub connections: usize,
    /// (connection, command line) for every command outside message data.
    pub commands: Vec<(usize, String)>,
    /// The commands that arrived together with the next one (pipelined): more input
    /// was already there when the sink read them.
    pub batched: Vec<String>,
    /// Idle notices (421) sent.
    pub notices: usize,
    /// The messages, in the order their data ended.
    pub messages: Vec<Message>,
    /// Connections that ended (closed by the client or after QUIT).
    pub closed: usize,
}

/// A running sink; dropping it closes its port and every connection.
pub struct Sink {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Octets read from clients so far, on all connections.
    pub octets: Arc<AtomicU64>,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

/// What every connection of one sink shares.
pub(crate) struct Shared {
    pub(crate) options: Options,
    pub(crate) mode: Mutex<Mode>,
    pub(crate) log: Mutex<Log>,
    pub(crate) octets: Arc<AtomicU64>,
    pub(crate) tls: TlsAcceptor,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
        let octets = Arc::new(AtomicU64::new(0));
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let shared = Arc::new(Shared {
            options,
            mode: Mutex::new(Mode::default()),
            log: Mutex::new(Log::default()),
            octets: Arc::clone(&octets),
            tls: acceptor(),
        });
        let (accept_tasks, serving) = (Arc::clone(&tasks), Arc::clone(&shared));
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let id = {
                    let mut log = lock(&serving.log);
                    log.connections += 1;
                    log.connections - 1
                };
                let shared = Arc::clone(&serving);
                let task = tokio::spawn(async move {
                    let _ = serve(stream, id, &shared).await;
                    lock(&shared.log).closed += 1;
                });
                lock(&accept_tasks).push(task);
            }
        });
        Sink {
            addr,
            octets,
            shared,
            tasks,
            accept,
        }
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches how the sink treats the next commands, on every connection.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// Everything seen so far, locked: drop the guard before the sink must go on.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.shared.log)
    }

    /// The messages so far, as recorded.
    #[must_use]
    pub fn messages(&self) -> Vec<Message> {
        self.log().messages.clone()
    }

    /// The messages so far, as the destination's mailbox sees them.
    #[must_use]
    pub fn received(&self) -> Vec<Received> {
        self.log().messages.iter().map(Received::from).collect()
    }

    /// Waits until at least `count` messages arrived and returns them; panics after
    /// `timeout`, saying how many came.
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                started.elapsed() < timeout,
                "only {} of {count} messages arrived in {timeout:?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every command line, in order.
    #[must_use]
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
