//! One mail transaction on an open session: MAIL FROM, a RCPT TO per recipient, the
//! message, what the replies mean for each recipient, and what state they leave the
//! connection in.

use mailfwd_domain::delivery::{DeliveryOutcome, Outgoing};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::SmtpTimeouts;
use crate::connect::Session;
use crate::data::{end_empty_data, send_bdat, send_data};
use crate::envelope::{Command, Expect, Replies, Verdict, exchange};
use crate::error::SessionError;
use crate::reply::Reply;

/// What a finished transaction leaves the connection fit for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// Ready for the next MAIL FROM: the transaction never started, or the server gave
    /// its final reply to the data, which ends it and resets its state (RFC 5321
    /// §4.1.1.4), so an RSET would only cost a round trip.
    Ready,
    /// The transaction stopped half-way (MAIL, RCPT, DATA or a BDAT chunk refused):
    /// RSET before the next one.
    Reset,
    /// Closed, broken, closing (421), or in an unknown state: drop it.
    Close,
}

/// How a transaction ended.
#[derive(Debug)]
pub(crate) struct TransactionEnd {
    /// The outcome of every recipient not in `refused`: what ended the transaction for
    /// all (the final reply, a refused MAIL FROM or DATA, a lost session). When every
    /// recipient was refused, the first refusal.
    pub(crate) outcome: DeliveryOutcome,
    /// The recipients whose RCPT TO was refused, by their place in the message's
    /// recipients, each with the outcome its own reply gave.
    pub(crate) refused: Vec<(usize, DeliveryOutcome)>,
    pub(crate) after: After,
    /// The session failed (closed, I/O error, or 421) before the server accepted MAIL
    /// FROM, so nothing of the message reached it. On a reused connection this is
    /// most likely a server that dropped the idle session just then: the message may
    /// go again at once over a new connection.
    pub(crate) retryable: bool,
}

impl TransactionEnd {
    /// Ended by `reply` to MAIL, RCPT, DATA or a BDAT chunk before the final one: a
    /// 4xx or 5xx refusal, or a reply that makes no sense there (see
    /// [`TransactionEnd::out_of_step`]).
    fn refused(reply: Reply, to_mail: bool, during: &'static str) -> Self {
        if !reply.is_refusal() {
            return TransactionEnd::out_of_step(during, &reply);
        }
        let closing = reply.code == 421;
        TransactionEnd {
            outcome: reply.outcome(),
            refused: Vec::new(),
            after: if closing { After::Close } else { After::Reset },
            retryable: closing && to_mail,
        }
    }

    /// Ended by a reply no server sends to the command it answers, such as `250` to
    /// DATA: most likely the answer to an earlier command (a stale reply on a reused
    /// connection moves every later one down a place, until the RCPT reply is read as
    /// the reply to DATA, or to the end of the data). Nothing on this connection can be
    /// trusted any more: it is a temporary protocol error, and the connection is closed.
    fn out_of_step(during: &'static str, reply: &Reply) -> Self {
        let error = SessionError::Unexpected {
            during,
            reply: reply.to_string(),
        };
        TransactionEnd {
            outcome: error.outcome(),
            refused: Vec::new(),
            after: After::Close,
            retryable: false,
        }
    }

    /// The final reply to the message (after the last `.` or the last BDAT): the only
    /// reply that can deliver it.
    fn end_of_data(reply: Reply, during: &'static str) -> Self {
        let after = match reply.code {
            421 => After::Close,
            200..=299 | 400..=599 => After::Ready,
            _ => return TransactionEnd::out_of_step(during, &reply),
        };
        TransactionEnd {
            outcome: reply.outcome(),
            refused: Vec::new(),
            after,
            retryable: false,
        }
    }

    /// Ended by `error`; `before_mail` if MAIL FROM had not been answered yet.
    fn failed(error: SessionError, before_mail: bool) -> Self {
        match error {
            SessionError::Reply(reply) => {
                TransactionEnd::refused(reply, before_mail, "the message data")
            }
            error => TransactionEnd {
                retryable: before_mail
                    && matches!(error, SessionError::Closed { .. } | SessionError::Io { .. }),
                outcome: error.outcome(),
                refused: Vec::new(),
                after: After::Close,
            },
        }
    }

    /// One outcome per recipient of a transaction for `recipients`, in their order.
    pub(crate) fn outcomes(self, recipients: usize) -> Vec<DeliveryOutcome> {
        let mut outcomes = vec![self.outcome; recipients];
        for (index, outcome) in self.refused {
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = outcome;
            }
        }
        outcomes
    }
}

/// Runs one transaction for `message`, to all its recipients, on `session`.
pub(crate) async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session<S>,
    message: &mut Outgoing,
    timeouts: &SmtpTimeouts,
) -> TransactionEnd {
    if let Some(refusal) = refuse_locally(session, message) {
        return TransactionEnd {
            outcome: DeliveryOutcome::Permanent(refusal),
            refused: Vec::new(),
            after: After::Ready,
            retryable: false,
        };
    }
    let commands = commands(session, message, timeouts);
    let refused = match envelope(session, &commands, timeouts).await {
        Ok(refused) => refused,
        Err(end) => return end,
    };
    let client = &mut session.client;
    let body = message.body.as_mut();
    let (sent, during) = if session.caps.chunking {
        (
            send_bdat(client, body, timeouts).await,
            "the last BDAT chunk",
        )
    } else {
        (
            send_data(client, body, timeouts).await,
            "the end of the data",
        )
    };
    let out_of_step = match &sent {
        Ok(reply) => !(reply.is_positive() || reply.is_refusal()),
        Err(SessionError::Reply(reply)) => !reply.is_refusal(),
        Err(_) => false,
    };
    let mut end = match sent {
        Ok(reply) => TransactionEnd::end_of_data(reply, during),
        Err(error) => TransactionEnd::failed(error, false),
    };
    // More than the final reply came: something is out of step, and a reused
    // connection would read it as the answer to the next MAIL FROM.
    let extra = end.after == After::Ready && client.has_unread();
    if out_of_step || extra {
        client.out_of_step();
        end.after = After::Close;
    }
    end.refused = refused;
    end
}

/// Whether the message can only go as an SMTPUTF8 transaction (RFC 6531 §3.4): a
/// local part of the sender or of any recipient is not ASCII (domains are always in
/// their ASCII form), or it was received as SMTPUTF8 with UTF-8 in its header fields.
fn needs_smtputf8(message: &Outgoing) -> bool {
    let sender_ascii = message
        .sender
        .as_ref()
        .is_none_or(|sender| sender.local_part().is_ascii());
    let recipients_ascii = message
        .recipients
        .iter()
        .all(|recipient| recipient.local_part().is_ascii());
    let utf8_headers = message.encoding.smtputf8 && message.encoding.utf8_headers;
    !(sender_ascii && recipients_ascii) || utf8_headers
}

/// What the server's EHLO already tells us it would refuse.
fn refuse_locally<S>(session: &Session<S>, message: &Outgoing) -> Option<String> {
    if needs_smtputf8(message) && !session.caps.smtputf8 {
        // RFC 6531 §3.4: without the extension the message cannot be sent as it is, and
        // downgrading it is not ours to do (RFC 6530 §7.1).
        return Some(format!(
            "5.6.7 {} does not support SMTPUTF8, which this message needs",
            session.peer
        ));
    }
    match session.caps.size {
        Some(limit) if limit > 0 && message.size > limit => Some(format!(
            "message of {} octets exceeds the size limit of {limit} octets of {}",
            message.size, session.peer
        )),
        _ => None,
    }
}

/// Sends the envelope's `commands`. `Ok` when the server accepted MAIL FROM, at least
/// one RCPT TO and DATA (with 354), with the recipients it refused; otherwise how the
/// transaction ended.
async fn envelope<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session<S>,
    commands: &[Command],
    timeouts: &SmtpTimeouts,
) -> Result<Vec<(usize, DeliveryOutcome)>, TransactionEnd> {
    let client = &mut session.client;
    let Replies { replies, error } = exchange(client, commands, session.caps.pipelining).await;
    let answered: Vec<(&Command, &Reply)> = commands.iter().zip(&replies).collect();
    if let Some((command, reply)) = answered
        .iter()
        .find(|(command, reply)| command.verdict(reply) == Verdict::Unexpected)
    {
        // The replies no longer line up with the commands: none of them, a refusal
        // included, can be taken as the answer to its own.
        client.out_of_step();
        return Err(TransactionEnd::out_of_step(command.during, reply));
    }
    let mut refused = Vec::new();
    let mut accepted = 0;
    let mut end = None;
    for (index, (command, reply)) in answered.iter().enumerate() {
        let recipient = command.expect == Expect::Recipient;
        if command.verdict(reply) == Verdict::GoOn {
            accepted += usize::from(recipient);
        } else if recipient && reply.code != 421 {
            // The first command is MAIL FROM: recipient `n` is command `n + 1`.
            refused.push((index - 1, reply.outcome()));
        } else if command.expect == Expect::StartData && accepted == 0 && reply.code != 421 {
            // "No valid recipients": it only follows from the refusals.
            break;
        } else {
            // MAIL FROM or DATA refused, or a 421: the end for every recipient not
            // refused yet. Replies after it only follow from it.
            end = Some(TransactionEnd::refused(
                (*reply).clone(),
                index == 0,
                command.during,
            ));
            if index == 0 {
                refused.clear();
            }
            break;
        }
    }
    // Lost, or closing: nothing more can go over this connection.
    let broken = error.is_some() || replies.iter().any(|reply| reply.code == 421);
    let mut end = match (end, error) {
        (Some(end), _) => end,
        (None, Some(error)) => TransactionEnd::failed(error, replies.is_empty()),
        (None, None) if accepted == 0 => match refused.first() {
            Some((_, first)) => TransactionEnd {
                outcome: first.clone(),
                refused: Vec::new(),
                after: After::Reset,
                retryable: false,
            },
            None => TransactionEnd {
                outcome: DeliveryOutcome::Permanent("the message has no recipient".into()),
                refused: Vec::new(),
                after: After::Reset,
                retryable: false,
            },
        },
        (None, None) if client.has_unread() => {
            // Every command has its reply, yet more came: the replies are out of
            // step, and the body must not follow on the strength of any of them.
            client.out_of_step();
            let last = commands.last().map_or("the envelope", |c| c.during);
            return Err(TransactionEnd {
                outcome: SessionError::Unexpected {
                    during: last,
                    reply: "more replies than commands".to_owned(),
                }
                .outcome(),
                refused: Vec::new(),
                after: After::Close,
                retryable: false,
            });
        }
        (None, None) => return Ok(refused),
    };
    end.refused = refused;
    if broken {
        end.after = After::Close;
    }
    let data_answered = replies.len() == commands.len()
        && commands
            .last()
            .is_some_and(|command| command.expect == Expect::StartData)
        && replies.last().is_some_and(|reply| reply.code == 354);
    if data_answered && end.after == After::Reset {
        // A pipelined DATA answered 354 although the envelope was refused: the server
        // now reads message data. End it empty (RFC 2920 §3.1), never send the body.
        if end_empty_data(client, timeouts).await.is_err() {
            end.after = After::Close;
        }
    }
    Err(end)
}

/// The envelope's commands for `message`: DATA is one of them unless the message goes
/// by BDAT (BDAT carries data, so it is sent when the envelope has been accepted).
fn commands<S>(session: &Session<S>, message: &Outgoing, timeouts: &SmtpTimeouts) -> Vec<Command> {
    let sender = message
        .sender
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut mail = format!("MAIL FROM:<{sender}>");
    if session.caps.size.is_some() {
        mail.push_str(&format!(" SIZE={}", message.size));
    }
    // An 8-bit message to a server without 8BITMIME goes as it is, undeclared (ADR
    // 0014): converting it would break its DKIM signatures.
    if message.encoding.eight_bit && session.caps.eight_bit_mime {
        mail.push_str(" BODY=8BITMIME");
    }
    // Passed on as received; `refuse_locally` has stopped a message that needs it and
    // cannot have it.
    if (message.encoding.smtputf8 || needs_smtputf8(message)) && session.caps.smtputf8 {
        mail.push_str(" SMTPUTF8");
    }
    let mut commands = vec![Command {
        line: mail,
        timeout: timeouts.mail,
        during: "MAIL FROM",
        expect: Expect::Positive,
    }];
    commands.extend(message.recipients.iter().map(|recipient| Command {
        line: format!("RCPT TO:<{recipient}>"),
        timeout: timeouts.rcpt,
        during: "RCPT TO",
        expect: Expect::Recipient,
    }));
    if !session.caps.chunking {
        commands.push(Command {
            line: "DATA".to_owned(),
            timeout: timeouts.data_init,
            during: "DATA",
            expect: Expect::StartData,
        });
    }
    commands
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "transaction_group_tests.rs"]
mod group_tests;

#[cfg(test)]
#[path = "transaction_step_tests.rs"]
mod step_tests;
