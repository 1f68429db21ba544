//! Opening a session with one server: TCP, greeting, EHLO (HELO if refused), and
//! STARTTLS when offered, falling back to a fresh plaintext connection if the TLS
//! handshake fails.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::{debug, info, warn};

use crate::client::Client;
use crate::config::SmtpTimeouts;
use crate::error::SessionError;
use crate::reply::{Capabilities, Reply};
use crate::tls::{Stream, server_name};

/// The longest wait for the reply to QUIT on a session being given up.
const QUIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The server a session talks to: the name it was found under and the address used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) host: String,
    pub(crate) addr: SocketAddr,
}

impl fmt::Display for Peer {
    /// `mx.example.com[192.0.2.1]:25`, or `192.0.2.1:25` when the host is the address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let literal = self.host.trim_start_matches('[').trim_end_matches(']');
        if literal.parse::<std::net::IpAddr>().is_ok() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}[{}]:{}", self.host, self.addr.ip(), self.addr.port())
        }
    }
}

/// An open session, greeted and introduced, ready for a transaction.
pub(crate) struct Session<S> {
    pub(crate) client: Client<S>,
    pub(crate) caps: Capabilities,
    pub(crate) peer: Peer,
    pub(crate) tls: bool,
}

/// Opens sessions; shared by every delivery of one mailer.
pub(crate) struct Connector {
    pub(crate) hostname: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeouts: SmtpTimeouts,
    pub(crate) tls: TlsConnector,
}

impl Connector {
    /// Opens a session with `peer`, using TLS when the server offers it.
    ///
    /// # Errors
    /// A [`SessionError`] when the connection cannot be made, the greeting is not 2xx
    /// or the server refuses both EHLO and HELO.
    pub(crate) async fn open(&self, peer: &Peer) -> Result<Session<Stream>, SessionError> {
        match self.open_once(peer, true).await {
            Err(SessionError::Tls(error)) => {
                warn!(peer = %peer, %error, "TLS handshake failed; retrying without TLS");
                self.open_once(peer, false).await
            }
            other => other,
        }
    }

    async fn open_once(&self, peer: &Peer, try_tls: bool) -> Result<Session<Stream>, SessionError> {
        debug!(peer = %peer, "connecting");
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(peer.addr))
            .await
            .map_err(|_| SessionError::Connect {
                peer: peer.to_string(),
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(|source| SessionError::Connect {
                peer: peer.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let mut client = Client::new(Stream::Plain(tcp));
        let mut caps = match self.greeted(&mut client, peer).await {
            Ok(caps) => caps,
            Err(error) => return Err(self.give_up(client, error)),
        };
        let mut tls = false;
        if try_tls && caps.starttls {
            let reply = match client
                .command("STARTTLS", self.timeouts.ehlo, "STARTTLS")
                .await
            {
                Ok(reply) => reply,
                Err(error) => return Err(self.give_up(client, error)),
            };
            if reply.code == 220 {
                client = self.handshake(client, peer).await?;
                caps = match self.hello(&mut client, peer).await {
                    Ok(caps) => caps,
                    Err(error) => return Err(self.give_up(client, error)),
                };
                tls = true;
            } else {
                // RFC 3207 §4: the server may refuse; the session goes on in plaintext.
                warn!(peer = %peer, %reply, "STARTTLS refused; continuing without TLS");
            }
        }
        info!(peer = %peer, tls, "connected");
        Ok(Session {
            client,
            caps,
            peer: peer.clone(),
            tls,
        })
    }

    /// The greeting, which must be 2xx and not our own name, then EHLO (or HELO).
    async fn greeted<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut Client<S>,
        peer: &Peer,
    ) -> Result<Capabilities, SessionError> {
        let greeting = client
            .read_reply(self.timeouts.greeting, "the greeting")
            .await?;
        if !greeting.is_positive() {
            return Err(SessionError::Reply(greeting));
        }
        self.not_myself(peer, &greeting, "greets with my own name")?;
        self.hello(client, peer).await
    }

    /// Ends a session that failed while being opened (a refused greeting or EHLO, a
    /// malformed reply, a timeout) with QUIT, as RFC 5321 §3.1 and §3.8 ask, in the
    /// background: the delivery moves on to the next host meanwhile. Returns `error`.
    fn give_up(&self, client: Client<Stream>, error: SessionError) -> SessionError {
        let timeout = self.timeouts.ehlo.min(QUIT_TIMEOUT);
        tokio::spawn(client.quit(timeout));
        error
    }

    async fn handshake(
        &self,
        client: Client<Stream>,
        peer: &Peer,
    ) -> Result<Client<Stream>, SessionError> {
        let Stream::Plain(tcp) = client.into_stream() else {
            return Err(SessionError::Tls(std::io::Error::other(
                "STARTTLS on a connection that already uses TLS",
            )));
        };
        let name = server_name(&peer.host, peer.addr.ip());
        let tls = tokio::time::timeout(self.timeouts.greeting, self.tls.connect(name, tcp))
            .await
            .map_err(|_| SessionError::Tls(std::io::ErrorKind::TimedOut.into()))?
            .map_err(SessionError::Tls)?;
        let (_, connection) = tls.get_ref();
        debug!(
            peer = %peer,
            version = ?connection.protocol_version(),
            cipher = ?connection.negotiated_cipher_suite().map(|suite| suite.suite()),
            "TLS established"
        );
        Ok(Client::new(Stream::Tls(Box::new(tls))))
    }

    /// An error if `reply` (a greeting, or the reply to EHLO/HELO) names the server by
    /// our own hostname, as Postfix checks: the server is mailfwd itself, or another
    /// instance of it, and the message would come straight back.
    fn not_myself(
        &self,
        peer: &Peer,
        reply: &Reply,
        how: &'static str,
    ) -> Result<(), SessionError> {
        match reply.server_name() {
            Some(name)
                if name
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(&self.hostname) =>
            {
                Err(SessionError::LoopsBack {
                    peer: peer.to_string(),
                    how,
                })
            }
            _ => Ok(()),
        }
    }

    /// EHLO, or HELO when EHLO is refused with 5xx (RFC 5321 §3.2); HELO means no extensions.
    async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut Client<S>,
        peer: &Peer,
    ) -> Result<Capabilities, SessionError> {
        let ehlo = format!("EHLO {}", self.hostname);
        let reply = client.command(&ehlo, self.timeouts.ehlo, "EHLO").await?;
        if reply.is_positive() {
            self.not_myself(peer, &reply, "answers EHLO with my own name")?;
            return Ok(Capabilities::from_ehlo(&reply));
        }
        if reply.code < 500 {
            // 4xx (421 included): a temporary refusal, not a server that lacks EHLO.
            return Err(SessionError::Reply(reply));
        }
        let helo = format!("HELO {}", self.hostname);
        let reply = client.command(&helo, self.timeouts.ehlo, "HELO").await?;
        if reply.is_positive() {
            self.not_myself(peer, &reply, "answers HELO with my own name")?;
            Ok(Capabilities::default())
        } else {
            Err(SessionError::Reply(reply))
        }
    }
}
