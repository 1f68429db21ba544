//! Email addresses as RFC 5321 mailboxes: parsed once, valid forever.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest local part in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain in octets, in its ASCII form (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest whole address in octets (the RFC 5321 path limit of 256 less the angle brackets).
pub const MAX_ADDRESS: usize = 254;
/// Longest DNS label in octets.
const MAX_LABEL: usize = 63;

/// Why a string is not an email address. Every variant says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// The input was empty.
    #[error("the address is empty")]
    Empty,
    /// No `@` separates a local part from a domain.
    #[error("the address has no '@' between a local part and a domain")]
    MissingAt,
    /// The local part before the `@` is empty.
    #[error("the local part (before '@') is empty")]
    EmptyLocalPart,
    /// The domain after the `@` is empty.
    #[error("the domain (after '@') is empty")]
    EmptyDomain,
    /// A control character (CR, LF, NUL, TAB, DEL, …) appears somewhere.
    #[error("the address contains a control character (U+{0:04X}) at position {1}")]
    ControlCharacter(u32, usize),
    /// A character that is not allowed unquoted in a local part.
    #[error("the local part contains '{0}', which is not allowed outside quotes")]
    InvalidLocalChar(char),
    /// Dots at the start or end of the local part, or two in a row.
    #[error("the local part has a dot at its start or end, or two dots in a row")]
    BadDot,
    /// A quoted local part that does not close or has text after its closing quote.
    #[error("the quoted local part is malformed: {0}")]
    BadQuoting(&'static str),
    /// The local part is longer than allowed.
    #[error("the local part is {0} octets long; the limit is {MAX_LOCAL_PART}")]
    LocalPartTooLong(usize),
    /// The domain is longer than allowed.
    #[error("the domain is {0} octets long; the limit is {MAX_DOMAIN}")]
    DomainTooLong(usize),
    /// The whole address is longer than allowed.
    #[error("the address is {0} octets long; the limit is {MAX_ADDRESS}")]
    TooLong(usize),
    /// The domain is not a valid host name (or could not be converted to ASCII).
    #[error("the domain '{0}' is not a valid host name: {1}")]
    InvalidDomain(String, &'static str),
    /// An address literal such as `[192.0.2.1]` that does not hold an IP address.
    #[error("the address literal '{0}' is not a valid IPv4 or IPv6 address")]
    InvalidAddressLiteral(String),
    /// A rule's address with an address literal for its domain: mailfwd receives mail
    /// for domain names only (ADR 0011), so no mail for it could ever arrive.
    #[error(
        "'{0}' is an address literal; mailfwd receives mail only for domain names, so a rule for it would never match: use the domain name"
    )]
    LiteralInRule(String),
}

/// The domain of an address: a lower-case ASCII host name (internationalized names in
/// their punycode form) or an address literal like `[192.0.2.1]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    /// Parses a domain: lower-cases it, converts an internationalized name to punycode
    /// and checks label syntax and lengths.
    ///
    /// # Errors
    /// Returns an [`AddressError`] that says what is wrong with the domain.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        if input.is_empty() {
            return Err(AddressError::EmptyDomain);
        }
        if let Some((index, c)) = input.char_indices().find(|(_, c)| c.is_control()) {
            return Err(AddressError::ControlCharacter(c as u32, index));
        }
        if input.starts_with('[') {
            return parse_address_literal(input).map(Domain);
        }
        let ascii = if input.is_ascii() {
            input.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii(input).map_err(|_| {
                AddressError::InvalidDomain(
                    input.to_owned(),
                    "it cannot be converted to punycode (IDNA)",
                )
            })?
        };
        let ascii = ascii.strip_suffix('.').unwrap_or(&ascii).to_owned();
        if ascii.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong(ascii.len()));
        }
        for label in ascii.split('.') {
            check_label(input, label)?;
        }
        Ok(Domain(ascii))
    }

    /// Whether this is an address literal (`[192.0.2.1]`) rather than a host name.
    #[must_use]
    pub fn is_address_literal(&self) -> bool {
        self.0.starts_with('[')
    }

    /// The domain in its ASCII form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_label(input: &str, label: &str) -> Result<(), AddressError> {
    let invalid = |why| Err(AddressError::InvalidDomain(input.to_owned(), why));
    if label.is_empty() {
        return invalid("it has an empty label (two dots in a row, or a leading dot)");
    }
    if label.len() > MAX_LABEL {
        return invalid("a label is longer than 63 octets");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return invalid("a label holds a character other than letters, digits and '-'");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return invalid("a label starts or ends with '-'");
    }
    Ok(())
}

fn parse_address_literal(input: &str) -> Result<String, AddressError> {
    let bad = || AddressError::InvalidAddressLiteral(input.to_owned());
    let inner = input
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(bad)?;
    let ip: IpAddr = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => {
            IpAddr::V6(inner[5..].parse::<Ipv6Addr>().map_err(|_| bad())?)
        }
        _ => IpAddr::V4(inner.parse().map_err(|_| bad())?),
    };
    Ok(match ip {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    })
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Domain {
    type Error = AddressError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Domain::parse(&value)
    }
}

impl From<Domain> for String {
    fn from(value: Domain) -> Self {
        value.0
    }
}

/// A valid RFC 5321 mailbox (`local@domain`), with SMTPUTF8 local parts allowed.
///
/// The local part keeps its case (the remote system owns its meaning); the domain is
/// lower-case ASCII. A quoted local part whose content is a plain dot-atom is stored
/// unquoted, as RFC 5321 §4.1.2 says the two forms are the same mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress {
    /// The local part as it is written in a path: quoted and escaped when it needs to be.
    local: String,
    domain: Domain,
}

impl EmailAddress {
    /// Parses a mailbox. Surrounding angle brackets and whitespace are not accepted:
    /// callers strip their own protocol syntax first.
    ///
    /// # Errors
    /// Returns an [`AddressError`] that says what is wrong.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        Self::parse_with_local_limit(input, MAX_LOCAL_PART)
    }

    /// Parses an address that mailfwd rewrote itself (an SRS address), whose local part
    /// may pass the 64-octet limit: `SRS0=HHHH=TT=` and the sender's domain come before
    /// the sender's own local part. RFC 5321 §4.5.3.1 asks implementations to impose no
    /// length limits where they can, and the MTAs that SRS addresses travel through
    /// accept these; everything else, and the 254-octet limit on the whole, still holds.
    /// Adapters use it for addresses that may be SRS addresses (a bounce's `RCPT TO`).
    ///
    /// # Errors
    /// Returns an [`AddressError`] that says what is wrong.
    pub fn parse_rewritten(input: &str) -> Result<Self, AddressError> {
        Self::parse_with_local_limit(input, MAX_ADDRESS)
    }

    fn parse_with_local_limit(input: &str, max_local: usize) -> Result<Self, AddressError> {
        if input.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some((index, c)) = input.char_indices().find(|(_, c)| c.is_control()) {
            return Err(AddressError::ControlCharacter(c as u32, index));
        }
        let at = input.rfind('@').ok_or(AddressError::MissingAt)?;
        let (raw_local, raw_domain) = (&input[..at], &input[at + 1..]);
        if raw_local.is_empty() {
            return Err(AddressError::EmptyLocalPart);
        }
        let local = parse_local_part(raw_local)?;
        let domain = Domain::parse(raw_domain)?;
        if local.len() > max_local {
            return Err(AddressError::LocalPartTooLong(local.len()));
        }
        let total = local.len() + 1 + domain.0.len();
        if total > MAX_ADDRESS {
            return Err(AddressError::TooLong(total));
        }
        Ok(EmailAddress { local, domain })
    }

    /// The local part as written in a path (quoted if it needs quotes).
    #[must_use]
    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The domain.
    #[must_use]
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The key used to match this address against rules: the local part lower-cased
    /// (see ADR 0003: nearly every mailbox provider treats it case-insensitively, and a
    /// forward lost to a capital letter is worse than the rare system that does not).
    #[must_use]
    pub fn match_key(&self) -> String {
        format!("{}@{}", self.local.to_lowercase(), self.domain)
    }

    /// The address without a `+tag` subaddress, if it has one: `user+tag@d` → `user@d`.
    #[must_use]
    pub fn without_subaddress(&self) -> Option<EmailAddress> {
        if self.local.starts_with('"') {
            return None;
        }
        let (base, _tag) = self.local.split_once('+')?;
        if base.is_empty() {
            return None;
        }
        Some(EmailAddress {
            local: base.to_owned(),
            domain: self.domain.clone(),
        })
    }
}

/// Characters RFC 5322 `atext` allows besides letters and digits.
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c) || !c.is_ascii()
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

fn parse_local_part(raw: &str) -> Result<String, AddressError> {
    if raw.starts_with('"') {
        return parse_quoted_local_part(raw);
    }
    if let Some(c) = raw.chars().find(|&c| c != '.' && !is_atext(c)) {
        return Err(AddressError::InvalidLocalChar(c));
    }
    if !is_dot_atom(raw) {
        return Err(AddressError::BadDot);
    }
    Ok(raw.to_owned())
}

fn parse_quoted_local_part(raw: &str) -> Result<String, AddressError> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|_| raw.len() >= 2)
        .ok_or(AddressError::BadQuoting(
            "it does not end with a closing quote",
        ))?;
    let mut content = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => content.push(escaped),
                None => return Err(AddressError::BadQuoting("it ends with a lone backslash")),
            },
            '"' => {
                return Err(AddressError::BadQuoting(
                    "an unescaped quote appears inside it",
                ));
            }
            other => content.push(other),
        }
    }
    if is_dot_atom(&content) {
        return Ok(content);
    }
    let mut quoted = String::with_capacity(content.len() + 2);
    quoted.push('"');
    for c in content.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Ok(quoted)
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EmailAddress::parse(s)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = AddressError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        EmailAddress::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
#[path = "address_tests.rs"]
mod tests;
