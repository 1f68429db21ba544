//! Errors: the one a caller can see (building a mailer), and the ones a session meets on
//! the way, which always end up as a [`DeliveryOutcome`].

use mailfwd_domain::StoreError;
use mailfwd_domain::delivery::DeliveryOutcome;
use thiserror::Error;

use crate::reply::Reply;

/// Why an [`crate::SmtpMailer`] could not be built.
#[derive(Debug, Error)]
pub enum MailerError {
    /// The system's DNS configuration (`/etc/resolv.conf`) could not be read or used.
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// rustls refused the client configuration.
    #[error("cannot set up TLS for outbound SMTP: {0}")]
    Tls(#[source] rustls::Error),
    /// `relay` is not of the form `host` or `host:port`.
    #[error("the relay '{0}' is not of the form host:port")]
    InvalidRelay(String),
    /// A route's next hop is not of the form `host` or `host:port`.
    #[error("the route '{domain}={next_hop}' does not name a host or host:port")]
    InvalidRoute {
        /// The route's domain.
        domain: String,
        /// The next hop as given.
        next_hop: String,
    },
    /// The EHLO name is empty or holds spaces or control characters.
    #[error("the hostname '{0}' cannot be used in EHLO")]
    InvalidHostname(String),
}

/// Something that stopped a session or a transaction.
#[derive(Debug, Error)]
pub(crate) enum SessionError {
    /// No TCP connection could be made.
    #[error("connection to {peer} {}", connect_failure(.source))]
    Connect {
        peer: String,
        #[source]
        source: std::io::Error,
    },
    /// The server answered, but not with what the step needs.
    #[error("{0}")]
    Reply(Reply),
    /// Reading or writing failed.
    #[error("I/O error during {during}: {source}")]
    Io {
        during: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The server closed the connection.
    #[error("connection closed by the server during {during}")]
    Closed { during: &'static str },
    /// The server did not answer in time.
    #[error("timed out during {during}")]
    Timeout { during: &'static str },
    /// The server sent something that is not an SMTP reply; `text` is what it sent.
    #[error("malformed reply during {during}: '{text}'")]
    Protocol { during: &'static str, text: String },
    /// A well-formed reply that makes no sense for the command it answers (`250` to
    /// DATA, `354` to RCPT TO), or bytes no command asked for: the replies no longer
    /// line up with the commands, so no reply on this connection can be trusted.
    #[error("protocol error: unexpected reply to {during}: {reply}")]
    Unexpected { during: &'static str, reply: String },
    /// The TLS handshake after STARTTLS failed.
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    /// The server is mailfwd itself: it gave our own name, or its address is one we
    /// listen on. Sending would bring the message straight back.
    #[error("5.4.6 mail loops back to myself ({peer} {how})")]
    LoopsBack { peer: String, how: &'static str },
    /// Reading the stored body failed; the message was not completed.
    #[error("reading the stored message failed: {0}")]
    Body(#[source] StoreError),
}

/// `refused`, `timed out`, or `failed: <why>`.
fn connect_failure(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "refused".to_owned(),
        std::io::ErrorKind::TimedOut => "timed out".to_owned(),
        _ => format!("failed: {error}"),
    }
}

impl SessionError {
    /// The outcome of a delivery that stopped on this error: the remote reply's class
    /// decides, everything local is worth another try later.
    pub(crate) fn outcome(&self) -> DeliveryOutcome {
        match self {
            SessionError::Reply(reply) => reply.outcome(),
            // Postfix bounces such mail too: trying again later loops again.
            SessionError::LoopsBack { .. } => DeliveryOutcome::Permanent(self.to_string()),
            other => DeliveryOutcome::Transient(other.to_string()),
        }
    }
}
