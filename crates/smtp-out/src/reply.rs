//! SMTP replies as mailfwd keeps them, what they mean for a delivery, and the EHLO
//! capabilities the session cares about.

use std::fmt;

use mailfwd_domain::delivery::DeliveryOutcome;
use smtp_proto::Response;

/// One reply of the remote server: code, enhanced status code (if it sent one), text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    esc: Option<[u8; 3]>,
    /// The text; the lines of a multi-line reply are separated by `\n`.
    text: String,
}

impl Reply {
    pub(crate) fn from_response(response: Response<String>) -> Self {
        let esc = (response.esc != [0, 0, 0]).then_some(response.esc);
        Reply {
            code: response.code,
            esc,
            text: response.message,
        }
    }

    /// The name a greeting or a reply to EHLO/HELO starts with (RFC 5321 §4.2: the
    /// server's domain comes first).
    pub(crate) fn server_name(&self) -> Option<&str> {
        self.text.split_ascii_whitespace().next()
    }

    pub(crate) fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
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

    fn reply(code: u16, esc: [u8; 3], message: &str) -> Reply {
        Reply::from_response(Response {
            code,
            esc,
            message: message.to_owned(),
        })
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
