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
    content: Content,
    max_line: usize,
    /// Octets of the current line so far, its CR and LF not counted.
    line_length: usize,
    /// The current line, from 1.
    line: u64,
}

/// What kind of octets a message holds, for telling the next hop (8BITMIME, SMTPUTF8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Content {
    /// Some octet is over 127.
    pub eight_bit: bool,
    /// Some octet of the header section is over 127.
    pub eight_bit_headers: bool,
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
            content: Content::default(),
            max_line: policy.max_line_length,
            line_length: 0,
            line: 1,
        }
    }

    /// What kind of octets the message held so far.
    #[must_use]
    pub fn content(&self) -> Content {
        self.content
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
        let mut index = 0;
        while let Some(&byte) = chunk.get(index) {
            let run = self.plain_run(&chunk[index..]);
            if run > 0 {
                if let Some(copy) = copy.as_mut() {
                    copy.extend_from_slice(&chunk[index..index + run]);
                }
                index += run;
                continue;
            }
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
            index += 1;
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

    /// Past the header section, the length of the run of octets at the start of
    /// `rest` that no rule looks at one by one (anything but CR, LF and NUL), counted
    /// against the size limit in one step. The verdict is the same as octet by octet:
    /// such a run can only break the size limit, and that error names no offset.
    fn plain_run(&mut self, rest: &[u8]) -> usize {
        if self.after_cr || !self.headers.done() {
            return 0;
        }
        let run = rest
            .iter()
            .position(|&byte| matches!(byte, b'\r' | b'\n' | 0))
            .unwrap_or(rest.len());
        // A run that would break a limit is left to `pass`, which reports it.
        if self.size + run as u64 > self.max_size || self.line_length + run > self.max_line {
            return 0;
        }
        self.size += run as u64;
        self.line_length += run;
        if !self.content.eight_bit && !rest[..run].is_ascii() {
            self.content.eight_bit = true;
        }
        run
    }

    /// Counts one stored octet against the size and header limits.
    fn pass(&mut self, byte: u8) -> Result<(), MessageError> {
        if !byte.is_ascii() {
            self.content.eight_bit = true;
            self.content.eight_bit_headers |= !self.headers.done();
        }
        self.size += 1;
        if self.size > self.max_size {
            return Err(MessageError::TooLarge(self.max_size));
        }
        match byte {
            b'\n' => {
                self.line += 1;
                self.line_length = 0;
            }
            b'\r' => {}
            _ => {
                self.line_length += 1;
                if self.line_length > self.max_line {
                    return Err(MessageError::LineTooLong {
                        limit: self.max_line,
                        line: self.line,
                    });
                }
            }
        }
        self.headers.scan(byte)
    }
}
