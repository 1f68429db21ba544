//! The `Mailer` port: hands one message to the next hop, for one or more recipients
//! there.

use async_trait::async_trait;

use crate::address::EmailAddress;
use crate::email::BodyReader;

/// One message to send to one or more recipients at one destination (ADR 0017).
pub struct Outgoing {
    /// The envelope sender (`None`: the null reverse path).
    pub sender: Option<EmailAddress>,
    /// The envelope recipients, at least one, all at the same destination (see
    /// [`Mailer::destination`]): one transaction carries them all.
    pub recipients: Vec<EmailAddress>,
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
    /// Sends `message` in one transaction and returns one outcome per recipient, in the
    /// order of [`Outgoing::recipients`]; never fails outside the outcomes. What ends
    /// the whole transaction (no session, a refused MAIL FROM or DATA, the final reply
    /// to the data) is the outcome of every recipient the server had not refused; a
    /// refused RCPT TO is that recipient's own outcome.
    async fn send(&self, message: Outgoing) -> Vec<DeliveryOutcome>;

    /// The destination mail for `recipient` goes to, as far as scheduling is concerned:
    /// deliveries to one destination share its concurrency limit and its memory of
    /// failures (ADR 0016). The recipient's domain unless the mailer knows better (a
    /// relay host that takes every domain is one destination).
    fn destination(&self, recipient: &EmailAddress) -> String {
        recipient.domain().as_str().to_owned()
    }
}
