//! The one table from the domain's refusals to SMTP replies.

use mailfwd_domain::email::retry_after_secs;
use mailfwd_domain::{IngestError, MessageError};

use super::Reply;

impl Reply {
    /// The answer to an [`IngestError`], at RCPT time or after the body: the one table
    /// from the domain's refusals to SMTP replies.
    pub(crate) fn for_ingest(error: &IngestError) -> Reply {
        match error {
            IngestError::UnknownRecipient(address) => {
                Reply::one(550, [5, 1, 1], format!("<{address}>: recipient not found"))
            }
            IngestError::BadSrsAddress(error) => Reply::one(550, [5, 1, 1], error.to_string()),
            IngestError::RelayDenied(_) => Reply::relaying_denied(),
            IngestError::TooManyRecipients(_) => Reply::one(452, [4, 5, 3], "Too many recipients"),
            IngestError::EmptyMessage => Reply::one(550, [5, 6, 0], "Message is empty"),
            IngestError::Message(refusal) => Reply::for_message(refusal),
            IngestError::Overloaded { retry_after } => Reply::one(
                451,
                [4, 7, 1],
                match retry_after_secs(*retry_after) {
                    1 => "Too much mail; try again in 1 second".to_owned(),
                    secs => format!("Too much mail; try again in {secs} seconds"),
                },
            ),
            IngestError::InsufficientStorage(_) => {
                Reply::one(452, [4, 3, 1], "Insufficient system storage")
            }
            IngestError::Unavailable(_) => Reply::one(451, [4, 3, 0], "Temporary storage failure"),
        }
    }

    /// The answer to a message that breaks the message policy.
    fn for_message(error: &MessageError) -> Reply {
        match error {
            MessageError::TooLarge(_) => Reply::too_large(),
            MessageError::MailLoop(_) => Reply::one(554, [5, 4, 6], "Too many hops (mail loop)"),
            MessageError::BareCr(_) | MessageError::BareLf(_) => Reply::bare_line_ending(),
            MessageError::Nul(_) => Reply::one(550, [5, 6, 0], "NUL character in message"),
            MessageError::HeaderFieldTooLarge(limit) => Reply::one(
                552,
                [5, 3, 4],
                format!("Message header field exceeds {limit} octets"),
            ),
            MessageError::HeaderSectionTooLarge(limit) => Reply::one(
                552,
                [5, 3, 4],
                format!("Message header exceeds {limit} octets"),
            ),
            MessageError::LineTooLong { limit, line } => Reply::one(
                550,
                [5, 6, 0],
                format!("Line {line} of the message is longer than {limit} octets"),
            ),
        }
    }
}
