//! The message policy: what the bytes of an email may be, whichever way they arrive.
//!
//! Every inbound path (SMTP DATA and BDAT, gRPC `IngestEmail`) streams the body
//! through one [`MessageFilter`], so the rules are decided once: line endings (ADR
//! 0004), NUL bytes, the `Received:` hop count, header limits and the size limit. The
//! filter looks at each byte once, in order, so its verdict and its output do not
//! depend on where the input was cut into chunks.

mod filter;
mod headers;

use thiserror::Error;

pub use filter::{Content, MessageFilter};

/// What to do with a bare LF (an LF not preceded by CR) in message data.
///
/// Bare CR is always refused: no receiver reads it as a line ending consistently, and
/// it is the raw material of SMTP smuggling. The app reads this from
/// `MAILFWD_BARE_LINE_ENDINGS` (`reject` or `normalize`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BareLineEndings {
    /// Refuse the message (SMTP `550 5.6.11`, gRPC `INVALID_ARGUMENT`): the default,
    /// as RFC 5321 section 2.3.8 and ADR 0004 ask.
    #[default]
    Reject,
    /// Store every bare LF as CRLF, so what is kept and forwarded is CRLF-only. For
    /// senders that cannot be fixed; bare CR is still refused.
    Normalize,
}

/// The rules for the bytes of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePolicy {
    /// Largest message in octets, as stored (after any normalisation).
    pub max_size: u64,
    /// Most `Received:` header fields before the message is taken for a mail loop.
    pub max_received_headers: usize,
    /// Largest header field in octets, with its continuation lines and line endings
    /// (Postfix `header_size_limit`).
    pub max_header_field_size: usize,
    /// Largest header section in octets, up to the empty line that ends it.
    pub max_header_section_size: usize,
    /// Longest line in octets, CRLF not counted (RFC 5322 section 2.1.1: 998). A longer
    /// line is refused at receipt rather than refused by a strict next hop after the
    /// `250`, or wrapped on the way out, which breaks DKIM (ADR 0019).
    pub max_line_length: usize,
    /// Bare LF refused or turned into CRLF.
    pub bare_line_endings: BareLineEndings,
}

impl Default for MessagePolicy {
    fn default() -> Self {
        MessagePolicy {
            max_size: 50 * 1024 * 1024,
            max_received_headers: 50,
            max_header_field_size: 102_400,
            max_header_section_size: 102_400,
            max_line_length: 998,
            bare_line_endings: BareLineEndings::Reject,
        }
    }
}

/// Why the bytes of a message were refused. Offsets count octets of the message as it
/// was given (before any normalisation), from 0.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// The message is larger than allowed.
    #[error("the message exceeds the size limit of {0} octets")]
    TooLarge(u64),
    /// More `Received:` header fields than allowed: the message is going round in circles.
    #[error("mail loop: the message has more than {0} Received headers")]
    MailLoop(usize),
    /// An LF not preceded by CR, under [`BareLineEndings::Reject`].
    #[error("the message contains a bare LF at byte {0}; lines must end with CRLF")]
    BareLf(u64),
    /// A CR not followed by LF.
    #[error("the message contains a bare CR at byte {0}; lines must end with CRLF")]
    BareCr(u64),
    /// A NUL octet, which no Internet message may contain (RFC 5322 section 2.1).
    #[error("the message contains a NUL byte at byte {0}")]
    Nul(u64),
    /// One header field, with its continuation lines, is larger than allowed.
    #[error("a header field exceeds the limit of {0} octets")]
    HeaderFieldTooLarge(usize),
    /// The header section is larger than allowed.
    #[error("the header section exceeds the limit of {0} octets")]
    HeaderSectionTooLarge(usize),
    /// A line is longer than allowed.
    #[error("line {line} of the message is longer than {limit} octets (RFC 5322 section 2.1.1)")]
    LineTooLong {
        /// The limit, CRLF not counted.
        limit: usize,
        /// Which line, from 1.
        line: u64,
    },
}

impl MessageError {
    /// Whether this is a bare CR or bare LF.
    #[must_use]
    pub fn is_bare_line_ending(&self) -> bool {
        matches!(self, MessageError::BareCr(_) | MessageError::BareLf(_))
    }
}

#[cfg(test)]
mod tests;
