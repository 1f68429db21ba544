//! The `Mailer` port: hands one message to the next hop.

use async_trait::async_trait;

use crate::address::EmailAddress;
use crate::email::BodyReader;

/// One message to send to one destination.
pub struct Outgoing {
    /// The envelope sender (`None`: the null reverse path).
    pub sender: Option<EmailAddress>,
    /// The envelope recipient.
    pub recipient: EmailAddress,
    /// The message: the stored body with mailfwd's `Received:` header in front.
    pub body: Box<dyn BodyReader>,
    /// Size of `body` in octets, for the SIZE parameter.
    pub size: u64,
    /// 8-bit data and SMTPUTF8, as received: `BODY=8BITMIME` and `SMTPUTF8` are passed
    /// on.
    pub encoding: crate::email::Encoding,
}

/// How an attempt ended, with the remote reply or the local error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// 2xx: the next hop took responsibility.
    Delivered(String),
    /// 4xx, a DNS problem, a connection lost half-way: try again later.
    Transient(String),
    /// No session could be had with any host of the destination (refused, timed out,
    /// no greeting or a refusing one): try again later. Unlike [`DeliveryOutcome::Transient`], no server
    /// answered, so this counts towards marking the destination dead (ADR 0016).
    Unreachable(String),
    /// 5xx, a null MX, an invalid destination: do not try again.
    Permanent(String),
}

/// Sends messages onward (SMTP to a relay host or the destination's MX).
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `message`; never fails outside the outcome.
    async fn send(&self, message: Outgoing) -> DeliveryOutcome;

    /// The destination mail for `recipient` goes to, as far as scheduling is concerned:
    /// deliveries to one destination share its concurrency limit and its memory of
    /// failures (ADR 0016). The recipient's domain unless the mailer knows better (a
    /// relay host that takes every domain is one destination).
    fn destination(&self, recipient: &EmailAddress) -> String {
        recipient.domain().as_str().to_owned()
    }
}
