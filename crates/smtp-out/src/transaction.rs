//! One mail transaction on an open session: MAIL FROM, RCPT TO, the message, and what
//! the replies mean for the delivery.

use mailfwd_domain::delivery::{DeliveryOutcome, Outgoing};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::SmtpTimeouts;
use crate::connect::Session;
use crate::data::{send_bdat, send_data};
use crate::error::SessionError;
use crate::reply::Reply;

/// How a transaction ended, and whether its connection may carry another one.
#[derive(Debug)]
pub(crate) struct TransactionEnd {
    pub(crate) outcome: DeliveryOutcome,
    pub(crate) reusable: bool,
}

/// Runs one transaction for `message` on `session`.
pub(crate) async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session<S>,
    message: &mut Outgoing,
    timeouts: &SmtpTimeouts,
) -> TransactionEnd {
    if let Some(refusal) = refuse_locally(session, message) {
        return TransactionEnd {
            outcome: DeliveryOutcome::Permanent(refusal),
            reusable: true,
        };
    }
    match run(session, message, timeouts).await {
        Ok(reply) => TransactionEnd {
            outcome: reply.outcome(),
            reusable: reply.code != 421,
        },
        Err(error) => TransactionEnd {
            outcome: error.outcome(),
            reusable: error.connection_usable(),
        },
    }
}

/// Whether the message must be an SMTPUTF8 transaction: a local part is not ASCII
/// (domains are always in their ASCII form).
fn needs_smtputf8(message: &Outgoing) -> bool {
    let sender_ascii = message
        .sender
        .as_ref()
        .is_none_or(|sender| sender.local_part().is_ascii());
    !(sender_ascii && message.recipient.local_part().is_ascii())
}

/// What the server's EHLO already tells us it would refuse.
fn refuse_locally<S>(session: &Session<S>, message: &Outgoing) -> Option<String> {
    if needs_smtputf8(message) && !session.caps.smtputf8 {
        // RFC 6531 §3.4: without the extension the message cannot be sent as it is.
        return Some("destination does not support SMTPUTF8".to_owned());
    }
    match session.caps.size {
        Some(limit) if limit > 0 && message.size > limit => Some(format!(
            "message of {} octets exceeds the size limit of {limit} octets of {}",
            message.size, session.peer
        )),
        _ => None,
    }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session<S>,
    message: &mut Outgoing,
    timeouts: &SmtpTimeouts,
) -> Result<Reply, SessionError> {
    let sender = message
        .sender
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut mail = format!("MAIL FROM:<{sender}>");
    if session.caps.size.is_some() {
        mail.push_str(&format!(" SIZE={}", message.size));
    }
    if needs_smtputf8(message) {
        mail.push_str(" SMTPUTF8");
    }
    let reply = session
        .client
        .command(&mail, timeouts.mail, "MAIL FROM")
        .await?;
    if !reply.is_positive() {
        return Err(SessionError::Reply(reply));
    }
    let rcpt = format!("RCPT TO:<{}>", message.recipient);
    let reply = session
        .client
        .command(&rcpt, timeouts.rcpt, "RCPT TO")
        .await?;
    if !reply.is_positive() {
        return Err(SessionError::Reply(reply));
    }
    if session.caps.chunking {
        send_bdat(&mut session.client, message.body.as_mut(), timeouts).await
    } else {
        send_data(&mut session.client, message.body.as_mut(), timeouts).await
    }
}
