//! The header section, seen one stored octet at a time: the `Received:` hop count and
//! the header size limits.

use super::{MessageError, MessagePolicy};

const RECEIVED: &[u8] = b"received";
/// A field name longer than a line may be (RFC 5322 section 2.1.1) is not one: the
/// line is body text.
const MAX_NAME: usize = 998;

/// Where in a line of the header section the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The first octet of a line.
    LineStart,
    /// A CR at the start of a line: the empty line that ends the section.
    EmptyLine,
    /// The field name.
    Name,
    /// Whitespace between the name and the colon (the obsolete `Received :` form).
    BeforeColon,
    /// The field value, or a continuation line.
    Value,
    /// Past the header section: nothing more to look at.
    Body,
}

#[derive(Debug)]
pub(super) struct HeaderScanner {
    at: At,
    /// Whether a field has started (a continuation line needs one before it).
    in_field: bool,
    field: usize,
    section: usize,
    name: usize,
    /// Whether the name so far matches `received`.
    received_name: bool,
    received: usize,
    max_received: usize,
    max_field: usize,
    max_section: usize,
}

impl HeaderScanner {
    pub(super) fn new(policy: &MessagePolicy) -> Self {
        HeaderScanner {
            at: At::LineStart,
            in_field: false,
            field: 0,
            section: 0,
            name: 0,
            received_name: false,
            received: 0,
            max_received: policy.max_received_headers,
            max_field: policy.max_header_field_size,
            max_section: policy.max_header_section_size,
        }
    }

    /// Whether the header section is over: nothing more to count.
    pub(super) fn done(&self) -> bool {
        self.at == At::Body
    }

    /// Looks at the next stored octet. Line endings are CRLF here: the filter has
    /// refused or normalised anything else before it gets here.
    pub(super) fn scan(&mut self, byte: u8) -> Result<(), MessageError> {
        if self.at == At::Body {
            return Ok(());
        }
        self.at = match (self.at, byte) {
            (At::Body, _) => At::Body,
            (At::LineStart, b'\r') => At::EmptyLine,
            (At::EmptyLine, _) => At::Body,
            (At::LineStart, b' ' | b'\t') if self.in_field => At::Value,
            (At::LineStart, byte) if is_name_octet(byte) => {
                self.in_field = true;
                self.field = 0;
                self.name = 0;
                self.received_name = true;
                self.name_octet(byte)
            }
            (At::LineStart, _) => At::Body,
            (At::Name, b':') | (At::BeforeColon, b':') => self.colon()?,
            (At::Name, b' ' | b'\t') | (At::BeforeColon, b' ' | b'\t') => At::BeforeColon,
            (At::Name, byte) if is_name_octet(byte) => self.name_octet(byte),
            (At::Name | At::BeforeColon, _) => At::Body,
            (At::Value, b'\n') => At::LineStart,
            (At::Value, _) => At::Value,
        };
        if self.at == At::Body {
            return Ok(());
        }
        self.section += 1;
        if self.section > self.max_section {
            return Err(MessageError::HeaderSectionTooLarge(self.max_section));
        }
        if self.at != At::EmptyLine {
            self.field += 1;
            if self.field > self.max_field {
                return Err(MessageError::HeaderFieldTooLarge(self.max_field));
            }
        }
        Ok(())
    }

    fn name_octet(&mut self, byte: u8) -> At {
        self.received_name &= RECEIVED.get(self.name) == Some(&byte.to_ascii_lowercase());
        self.name += 1;
        if self.name > MAX_NAME {
            At::Body
        } else {
            At::Name
        }
    }

    fn colon(&mut self) -> Result<At, MessageError> {
        if self.received_name && self.name == RECEIVED.len() {
            self.received += 1;
            if self.received > self.max_received {
                return Err(MessageError::MailLoop(self.max_received));
            }
        }
        Ok(At::Value)
    }
}

/// A printable US-ASCII octet other than colon (RFC 5322 `ftext`).
fn is_name_octet(byte: u8) -> bool {
    (33..=126).contains(&byte) && byte != b':'
}
