//! The envelope of a transaction on the wire: MAIL FROM, one RCPT TO per recipient and,
//! when the message goes by DATA, the DATA command. With PIPELINING (RFC 2920) they are
//! written as one group and the replies read in order afterwards, one round trip
//! instead of one per command; without it, each command waits for its reply.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::client::Client;
use crate::error::SessionError;
use crate::reply::Reply;

/// One command of the envelope.
pub(crate) struct Command {
    /// The command line, without CRLF.
    pub(crate) line: String,
    pub(crate) timeout: Duration,
    pub(crate) during: &'static str,
    /// The reply that lets the transaction go on.
    pub(crate) expect: Expect,
}

/// The reply a command needs for the transaction to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// 2xx (MAIL FROM).
    Positive,
    /// 2xx (RCPT TO); a refusal concerns this recipient only, and the transaction goes
    /// on with the others.
    Recipient,
    /// 354 (DATA).
    StartData,
}

/// What one reply means for the command it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The reply the command needs.
    GoOn,
    /// 4xx or 5xx: the server refused the command.
    Refused,
    /// A reply no server sends to this command (`250` to DATA, `354` to RCPT TO): it
    /// answers something else, so the replies no longer line up with the commands.
    Unexpected,
}

impl Command {
    /// What `reply` means as the answer to this command.
    pub(crate) fn verdict(&self, reply: &Reply) -> Verdict {
        let wanted = match self.expect {
            Expect::Positive | Expect::Recipient => reply.is_positive(),
            Expect::StartData => reply.code == 354,
        };
        if wanted {
            Verdict::GoOn
        } else if reply.is_refusal() {
            Verdict::Refused
        } else {
            Verdict::Unexpected
        }
    }
}

/// What came back for a group of commands, in the order they were sent.
pub(crate) struct Replies {
    pub(crate) replies: Vec<Reply>,
    /// The error that stopped the exchange before every command had its reply.
    pub(crate) error: Option<SessionError>,
}

/// Sends `commands` and collects their replies.
///
/// Pipelined, every reply is read even after a refusal: the server answers each
/// command of the group, and an unread reply would be taken for the answer to the next
/// command. Reading stops early only at an error, at a 421, after which the server
/// closes the connection and sends nothing more, or at an unexpected reply, after
/// which no reply can be matched with its command. In lock-step, the first refusal of
/// anything but a RCPT TO ends it, and DATA is sent only once a RCPT TO was accepted:
/// the remaining commands are not sent.
pub(crate) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    commands: &[Command],
    pipelining: bool,
) -> Replies {
    let mut replies = Vec::with_capacity(commands.len());
    let mut recipient_accepted = false;
    if pipelining && let Err(error) = write_group(client, commands).await {
        return Replies {
            replies,
            error: Some(error),
        };
    }
    for command in commands {
        if !pipelining && command.expect == Expect::StartData && !recipient_accepted {
            break;
        }
        let reply = if pipelining {
            client.read_reply(command.timeout, command.during).await
        } else {
            client
                .command(&command.line, command.timeout, command.during)
                .await
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                return Replies {
                    replies,
                    error: Some(error),
                };
            }
        };
        let verdict = command.verdict(&reply);
        let recipient = command.expect == Expect::Recipient;
        recipient_accepted |= recipient && verdict == Verdict::GoOn;
        let stop = reply.code == 421
            || verdict == Verdict::Unexpected
            || (!pipelining && verdict != Verdict::GoOn && !recipient);
        replies.push(reply);
        if stop {
            break;
        }
    }
    Replies {
        replies,
        error: None,
    }
}

/// Writes every command of the group at once, so that they leave in one segment.
async fn write_group<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    commands: &[Command],
) -> Result<(), SessionError> {
    let Some(first) = commands.first() else {
        return Ok(());
    };
    let mut group = Vec::new();
    for command in commands {
        group.extend_from_slice(command.line.as_bytes());
        group.extend_from_slice(b"\r\n");
    }
    client.write(&group, first.timeout, first.during).await
}
