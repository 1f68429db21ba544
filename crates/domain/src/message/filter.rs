//! The policy applied to a stream of message bytes, chunk by chunk.

use std::borrow::Cow;

use super::headers::HeaderScanner;
use super::{BareLineEndings, MessageError, MessagePolicy};

/// Checks (and, under [`BareLineEndings::Normalize`], rewrites) a message as it
/// streams past. After an error the message is refused; the filter is not fed again.
#[derive(Debug)]
pub struct MessageFilter {
    normalize: bool,
    max_size: u64,
    /// Octets given so far (the offsets in errors).
    given: u64,
    /// Octets passed on so far: what is stored.
    size: u64,
    after_cr: bool,
    headers: HeaderScanner,
}

impl MessageFilter {
    /// A filter for one message under `policy`.
    #[must_use]
    pub fn new(policy: &MessagePolicy) -> Self {
        MessageFilter {
            normalize: policy.bare_line_endings == BareLineEndings::Normalize,
            max_size: policy.max_size,
            given: 0,
            size: 0,
            after_cr: false,
            headers: HeaderScanner::new(policy),
        }
    }

    /// Octets passed on so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Checks the next chunk and returns the bytes to store: the chunk itself, or a
    /// copy with bare LFs turned into CRLF.
    ///
    /// # Errors
    /// The first [`MessageError`] in the message, judged byte by byte in order.
    pub fn filter<'a>(&mut self, chunk: &'a [u8]) -> Result<Cow<'a, [u8]>, MessageError> {
        let mut copy: Option<Vec<u8>> = None;
        for (index, &byte) in chunk.iter().enumerate() {
            let at = self.given + index as u64;
            if self.after_cr && byte != b'\n' {
                return Err(MessageError::BareCr(at - 1));
            }
            if byte == 0 {
                return Err(MessageError::Nul(at));
            }
            if byte == b'\n' && !self.after_cr {
                if !self.normalize {
                    return Err(MessageError::BareLf(at));
                }
                let copy = copy.get_or_insert_with(|| {
                    let mut copy = Vec::with_capacity(chunk.len() + chunk.len() / 8 + 1);
                    copy.extend_from_slice(&chunk[..index]);
                    copy
                });
                copy.push(b'\r');
                self.pass(b'\r')?;
            }
            if let Some(copy) = copy.as_mut() {
                copy.push(byte);
            }
            self.pass(byte)?;
            self.after_cr = byte == b'\r';
        }
        self.given += chunk.len() as u64;
        Ok(copy.map_or(Cow::Borrowed(chunk), Cow::Owned))
    }

    /// Checks the end of the message.
    ///
    /// # Errors
    /// [`MessageError::BareCr`] if the message ended on a CR.
    pub fn finish(&self) -> Result<(), MessageError> {
        if self.after_cr {
            return Err(MessageError::BareCr(self.given.saturating_sub(1)));
        }
        Ok(())
    }

    /// The error for a bare CR that the adapter's framing consumed before the filter
    /// saw it (SMTP's CRLF "." CR CR LF, which is not an end of DATA): it is refused
    /// as if it were in the data, whatever the setting.
    #[must_use]
    pub fn bare_cr_in_framing(&self) -> MessageError {
        MessageError::BareCr(self.given)
    }

    /// Counts one stored octet against the size and header limits.
    fn pass(&mut self, byte: u8) -> Result<(), MessageError> {
        self.size += 1;
        if self.size > self.max_size {
            return Err(MessageError::TooLarge(self.max_size));
        }
        self.headers.scan(byte)
    }
}
