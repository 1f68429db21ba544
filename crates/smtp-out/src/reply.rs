//! SMTP replies as mailfwd keeps them, what they mean for a delivery, and the EHLO
//! capabilities the session cares about.

use std::fmt;

use mailfwd_domain::delivery::DeliveryOutcome;

/// Longest reply line accepted, CRLF excluded (RFC 5321 §4.5.3.1.5 allows 512).
pub(crate) const MAX_LINE: usize = 4096;
/// Most lines in one reply (an EHLO reply has one per extension).
pub(crate) const MAX_LINES: usize = 100;

/// One reply of the remote server: code, enhanced status code (if it sent one), text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    esc: Option<[u16; 3]>,
    /// The text; the lines of a multi-line reply are separated by `\n`.
    text: String,
}

/// How one line of a reply reads.
pub(crate) enum Line<'a> {
    /// `250-text`: more lines follow.
    More(&'a str),
    /// `250 text` or `250`: the reply's last line.
    Last(u16, &'a str),
}

impl<'a> Line<'a> {
    /// Reads one reply line (without its line ending): three digits, the first 2 to
    /// 5, then `-` (more lines follow), or a space or nothing (the last line). `None`
    /// for anything else, which is not an SMTP reply.
    pub(crate) fn parse(text: &'a str) -> Option<Line<'a>> {
        let (digits, rest) = (text.get(..3)?, text.get(3..)?);
        if !digits.bytes().all(|b| b.is_ascii_digit()) || !digits.starts_with(['2', '3', '4', '5'])
        {
            return None;
        }
        let code = digits.parse().ok()?;
        match rest.as_bytes().first() {
            None => Some(Line::Last(code, "")),
            Some(b' ') => Some(Line::Last(code, &rest[1..])),
            Some(b'-') => Some(Line::More(&rest[1..])),
            Some(_) => None,
        }
    }
}

impl Reply {
    /// The reply made of `lines` (each as [`Line::parse`] read it, the last one a
    /// [`Line::Last`]). The code is the last line's, as Postfix reads it: the lines of
    /// a well-formed reply all carry the same code, and where they do not
    /// (`250-ok`, `451 try later`), the last line is the server's verdict. The enhanced
    /// status code is taken off the start of each line's text; the last one found
    /// is kept.
    pub(crate) fn from_lines(code: u16, texts: &[&str]) -> Self {
        let mut esc = None;
        let mut text = String::new();
        for (index, line) in texts.iter().enumerate() {
            let line = match enhanced_code(line) {
                Some((found, rest)) => {
                    esc = Some(found);
                    rest
                }
                None => line,
            };
            if index > 0 {
                text.push('\n');
            }
            text.push_str(line);
        }
        Reply { code, esc, text }
    }

    /// The name a greeting or a reply to EHLO/HELO starts with (RFC 5321 §4.2: the
    /// server's domain comes first).
    pub(crate) fn server_name(&self) -> Option<&str> {
        self.text.split_ascii_whitespace().next()
    }

    pub(crate) fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 4xx or 5xx: the server refuses, for now or for good.
    pub(crate) fn is_refusal(&self) -> bool {
        (400..600).contains(&self.code)
    }

    /// What this reply means as the end of a delivery attempt: 2xx delivered, 5xx
    /// permanent, anything else (4xx, or a code that makes no sense here) transient.
    pub(crate) fn outcome(&self) -> DeliveryOutcome {
        match self.code {
            200..=299 => DeliveryOutcome::Delivered(self.to_string()),
            500..=599 => DeliveryOutcome::Permanent(self.to_string()),
            _ => DeliveryOutcome::Transient(self.to_string()),
        }
    }
}

/// `2.1.5 rest` → (\[2, 1, 5\], `rest`): an enhanced status code (RFC 3463) followed
/// by a space or nothing.
fn enhanced_code(text: &str) -> Option<([u16; 3], &str)> {
    let (word, rest) = match text.split_once(' ') {
        Some((word, rest)) => (word, rest),
        None => (text, ""),
    };
    let mut parts = word.split('.');
    let mut esc = [0u16; 3];
    for (index, slot) in esc.iter_mut().enumerate() {
        let part = parts.next()?;
        let max_len = if index == 0 { 1 } else { 3 };
        if part.is_empty() || part.len() > max_len || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    if parts.next().is_some() || !(2..=5).contains(&esc[0]) {
        return None;
    }
    Some((esc, rest))
}

impl fmt::Display for Reply {
    /// `550 5.1.1 no such user`, the form operators know from mail logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some([class, subject, detail]) = self.esc {
            write!(f, " {class}.{subject}.{detail}")?;
        }
        for (index, line) in self.text.lines().enumerate() {
            let line = line.trim_end();
            if index == 0 && line.is_empty() {
                continue;
            }
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// The EHLO keywords the session acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    pub(crate) starttls: bool,
    /// PIPELINING (RFC 2920): the envelope may go as one group of commands.
    pub(crate) pipelining: bool,
    pub(crate) chunking: bool,
    /// 8BITMIME (RFC 6152): `BODY=8BITMIME` may be declared.
    pub(crate) eight_bit_mime: bool,
    pub(crate) smtputf8: bool,
    /// `SIZE` was advertised; `Some(0)` means no fixed limit.
    pub(crate) size: Option<u64>,
}

impl Capabilities {
    /// Reads the keywords from the text of a 250 reply to EHLO. The first line is the
    /// server's name and greeting; each following line is `KEYWORD [params]`.
    pub(crate) fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Capabilities::default();
        for line in reply.text.lines().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "STARTTLS" => caps.starttls = true,
                "PIPELINING" => caps.pipelining = true,
                "CHUNKING" => caps.chunking = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SIZE" => {
                    let limit = words.next().and_then(|limit| limit.parse::<u64>().ok());
                    caps.size = Some(limit.unwrap_or(0));
                }
                _ => {}
            }
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, esc: [u16; 3], message: &str) -> Reply {
        let esc = (esc != [0, 0, 0]).then_some(esc);
        Reply {
            code,
            esc,
            text: message.to_owned(),
        }
    }

    /// Parses a whole reply the way the client reads it, line by line.
    fn parse(wire: &str) -> Option<Reply> {
        let mut texts = Vec::new();
        for line in wire.split("\r\n").filter(|line| !line.is_empty()) {
            match Line::parse(line)? {
                Line::More(text) => texts.push(text),
                Line::Last(code, text) => {
                    texts.push(text);
                    return Some(Reply::from_lines(code, &texts));
                }
            }
        }
        None
    }

    #[test]
    fn the_last_line_gives_the_code() {
        let r = parse("250-ok\r\n451 no\r\n").expect("a reply");
        assert_eq!((r.code, r.to_string()), (451, "451 ok no".to_owned()));
        let r = parse("250-2.0.0 first\r\n250 2.1.5 second\r\n").expect("a reply");
        assert_eq!(r.to_string(), "250 2.1.5 first second");
        let r = parse("221\r\n").expect("a reply");
        assert_eq!(r.to_string(), "221");
        let r = parse("550 5.1.10 no such user\r\n").expect("a reply");
        assert_eq!(r.to_string(), "550 5.1.10 no such user");
        let r = parse("250 2.0 not an enhanced code\r\n").expect("a reply");
        assert_eq!(r.to_string(), "250 2.0 not an enhanced code");
    }

    #[test]
    fn lines_that_are_not_replies() {
        for line in [
            "hello there",
            "25 short",
            "2500 four digits",
            "150 first digit 1",
            "650 first digit 6",
            "250x no separator",
            "",
        ] {
            assert!(Line::parse(line).is_none(), "{line}");
        }
    }

    #[test]
    fn display_keeps_code_enhanced_code_and_text() {
        assert_eq!(
            reply(550, [5, 1, 1], "no such user").to_string(),
            "550 5.1.1 no such user"
        );
        assert_eq!(reply(250, [0, 0, 0], "Ok").to_string(), "250 Ok");
        assert_eq!(reply(221, [0, 0, 0], "").to_string(), "221");
    }

    #[test]
    fn multi_line_text_is_joined() {
        let r = reply(451, [4, 3, 0], "try\nagain later");
        assert_eq!(r.to_string(), "451 4.3.0 try again later");
    }

    #[test]
    fn outcome_follows_the_code_class() {
        assert!(matches!(
            reply(250, [2, 0, 0], "Ok").outcome(),
            DeliveryOutcome::Delivered(text) if text == "250 2.0.0 Ok"
        ));
        assert!(matches!(
            reply(452, [4, 2, 2], "full").outcome(),
            DeliveryOutcome::Transient(_)
        ));
        assert!(matches!(
            reply(554, [5, 7, 1], "no").outcome(),
            DeliveryOutcome::Permanent(_)
        ));
        assert!(matches!(
            reply(354, [0, 0, 0], "go ahead").outcome(),
            DeliveryOutcome::Transient(_)
        ));
    }

    #[test]
    fn ehlo_keywords_are_read() {
        let r = reply(
            250,
            [0, 0, 0],
            "mx.example\nPIPELINING\nSIZE 10240000\nSTARTTLS\nCHUNKING\nSMTPUTF8\n8BITMIME",
        );
        let caps = Capabilities::from_ehlo(&r);
        assert_eq!(
            caps,
            Capabilities {
                starttls: true,
                pipelining: true,
                chunking: true,
                eight_bit_mime: true,
                smtputf8: true,
                size: Some(10_240_000),
            }
        );
    }

    #[test]
    fn size_without_limit_and_missing_keywords() {
        let caps = Capabilities::from_ehlo(&reply(250, [0, 0, 0], "mx.example\nSIZE\nHELP"));
        assert_eq!(caps.size, Some(0));
        assert!(!caps.starttls && !caps.pipelining && !caps.chunking && !caps.smtputf8);
        assert!(!caps.eight_bit_mime);
        let caps = Capabilities::from_ehlo(&reply(250, [0, 0, 0], "mx.example STARTTLS"));
        assert_eq!(caps, Capabilities::default());
    }
}
