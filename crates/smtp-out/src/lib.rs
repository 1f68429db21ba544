//! mailfwd's outbound SMTP: the [`Mailer`](mailfwd_domain::delivery::Mailer) port.
//!
//! [`SmtpMailer`] sends each message to a relay host, or to the recipient domain's mail
//! exchangers found in DNS (MX in preference order, implicit MX, null MX), upgrades to
//! TLS whenever the server offers STARTTLS (opportunistic TLS: certificates are not
//! verified, like Postfix's `may` level, and a failed handshake means plaintext),
//! streams the body from the store with BDAT when the server supports CHUNKING and with
//! dot-stuffed DATA otherwise, and keeps connections open per host for the next message.
//!
//! Round trips per message on a reused connection are kept to what the server allows:
//! with PIPELINING the envelope (MAIL, RCPT and DATA) goes as one group, a completed
//! transaction needs no RSET, and an idle connection is checked without a NOOP.
//!
//! The session is written here on tokio rather than on mail-send's client: mail-send's
//! `data`/`bdat` take the whole message as one slice, and mailfwd never holds a whole
//! message in memory. Replies are read line by line here too (`client.rs`): a
//! multi-line reply's code is its last line's, as Postfix reads it, and each reply is
//! matched with the command it answers; a reply that makes no sense for its command
//! (`250` to DATA) ends the transaction as a protocol error and the connection with it.
//!
//! Where mail may go is bounded: per-domain routes and the relay are the operator's
//! choice; addresses that come from the destination (MX, address records, address
//! literals) must be public unless allowed (`private.rs`, ADR 0015); and one attempt
//! tries at most `mx_address_limit` addresses in `mx_session_limit` sessions.
//!
//! Every attempt ends in a [`DeliveryOutcome`](mailfwd_domain::delivery::DeliveryOutcome)
//! that carries the remote reply (`250 2.0.0 Ok: queued as X`, `550 5.1.1 no such user`)
//! or the local error (`connection to mx.example[192.0.2.1]:25 refused`).

mod client;
mod config;
mod connect;
mod data;
mod dns;
mod envelope;
mod error;
mod mailer;
mod pool;
mod private;
mod reply;
mod resolve;
mod route;
mod spent;
mod tls;
mod transaction;

pub use config::{MailerConfig, SmtpTimeouts};
pub use error::MailerError;
pub use mailer::SmtpMailer;

/// Whether `next_hop` is a next hop the mailer takes as its relay or a route's
/// target: `host`, `host:port`, `192.0.2.1:587`, `[2001:db8::1]:25` or a bare IPv6
/// address.
#[must_use]
pub fn is_next_hop(next_hop: &str) -> bool {
    route::parse_relay(next_hop, 25).is_some()
}
