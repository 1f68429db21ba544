//! Every reply the server sends, in one table: SMTP code, enhanced status code, text.

mod refusals;

use std::borrow::Cow;
use std::fmt::Write as _;

use mailfwd_domain::EmailId;

/// One SMTP reply, possibly of several lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    code: u16,
    /// The RFC 3463 enhanced status code; `None` where RFC 2034 leaves it out
    /// (greeting, EHLO/HELO, 354).
    status: Option<[u8; 3]>,
    lines: Vec<Cow<'static, str>>,
}

impl Reply {
    /// A one-line reply with an enhanced status code.
    fn one(code: u16, status: [u8; 3], text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            status: Some(status),
            lines: vec![text.into()],
        }
    }

    /// A one-line reply without an enhanced status code.
    fn plain(code: u16, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            status: None,
            lines: vec![text.into()],
        }
    }

    /// The SMTP code.
    pub(crate) fn code(&self) -> u16 {
        self.code
    }

    /// Appends the wire form to `out`. Control characters in the text (which could
    /// only come from configuration or client input echoed back) become `?`, so a
    /// reply is always exactly its lines.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        let mut text = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (index, line) in self.lines.iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            let _ = write!(text, "{}{separator}", self.code);
            if let Some([class, subject, detail]) = self.status {
                let _ = write!(text, "{class}.{subject}.{detail} ");
            }
            text.extend(line.chars().map(|c| if c.is_control() { '?' } else { c }));
            text.push_str("\r\n");
        }
        out.extend_from_slice(text.as_bytes());
    }

    pub(crate) fn greeting(hostname: &str) -> Reply {
        Reply::plain(220, format!("{hostname} ESMTP mailfwd"))
    }

    pub(crate) fn helo(hostname: &str) -> Reply {
        Reply::plain(250, hostname.to_owned())
    }

    /// The EHLO reply: our name, then one extension per line.
    pub(crate) fn ehlo(hostname: &str, max_size: u64, starttls: bool) -> Reply {
        let mut lines: Vec<Cow<'static, str>> = vec![
            hostname.to_owned().into(),
            format!("SIZE {max_size}").into(),
            "PIPELINING".into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        if starttls {
            lines.push("STARTTLS".into());
        }
        Reply {
            code: 250,
            status: None,
            lines,
        }
    }

    pub(crate) fn help(starttls: bool) -> Reply {
        let commands = if starttls {
            "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS"
        } else {
            "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP"
        };
        Reply {
            code: 214,
            status: Some([2, 0, 0]),
            lines: vec![
                commands.into(),
                "mailfwd accepts mail only for addresses it forwards".into(),
            ],
        }
    }

    pub(crate) fn ok() -> Reply {
        Reply::one(250, [2, 0, 0], "Ok")
    }

    pub(crate) fn sender_ok() -> Reply {
        Reply::one(250, [2, 1, 0], "Sender ok")
    }

    pub(crate) fn recipient_ok() -> Reply {
        Reply::one(250, [2, 1, 5], "Recipient ok")
    }

    pub(crate) fn chunk_received(size: usize) -> Reply {
        Reply::one(250, [2, 0, 0], format!("{size} octets received"))
    }

    pub(crate) fn queued(id: &EmailId) -> Reply {
        Reply::one(250, [2, 0, 0], format!("Ok: queued as {id}"))
    }

    pub(crate) fn vrfy() -> Reply {
        Reply::one(252, [2, 5, 0], "Cannot VRFY user; send mail to find out")
    }

    pub(crate) fn start_data() -> Reply {
        Reply::plain(354, "End data with <CR><LF>.<CR><LF>")
    }

    pub(crate) fn start_tls() -> Reply {
        Reply::one(220, [2, 0, 0], "Ready to start TLS")
    }

    pub(crate) fn quit() -> Reply {
        Reply::one(221, [2, 0, 0], "Bye")
    }

    pub(crate) fn shutting_down() -> Reply {
        Reply::one(421, [4, 3, 2], "shutting down")
    }

    pub(crate) fn timeout() -> Reply {
        Reply::one(421, [4, 4, 2], "Timeout exceeded, closing connection")
    }

    pub(crate) fn too_many_connections() -> Reply {
        Reply::one(421, [4, 7, 0], "too many connections, try again later")
    }

    pub(crate) fn connecting_too_often() -> Reply {
        Reply::one(
            421,
            [4, 7, 0],
            "too many connections from your address, try again later",
        )
    }

    pub(crate) fn too_many_errors() -> Reply {
        Reply::one(421, [4, 7, 0], "Too many errors, closing connection")
    }

    pub(crate) fn line_too_long() -> Reply {
        Reply::one(500, [5, 5, 6], "Line too long")
    }

    pub(crate) fn syntax_error() -> Reply {
        Reply::one(500, [5, 5, 2], "Syntax error")
    }

    pub(crate) fn syntax(expected: &str) -> Reply {
        Reply::one(501, [5, 5, 2], format!("Syntax: {expected}"))
    }

    /// A pipelined chunk of a message refused earlier; `temporary` keeps the earlier
    /// refusal's class, so a sender retries what it should retry.
    pub(crate) fn chunk_discarded(size: usize, temporary: bool) -> Reply {
        let text = format!("{size} octets discarded: the message was refused at an earlier chunk");
        if temporary {
            Reply::one(451, [4, 5, 1], text)
        } else {
            Reply::one(503, [5, 5, 1], text)
        }
    }

    pub(crate) fn parameters_need_ehlo() -> Reply {
        Reply::one(555, [5, 5, 4], "MAIL parameters need EHLO, not HELO")
    }

    pub(crate) fn needs_smtputf8() -> Reply {
        Reply::one(
            553,
            [5, 6, 7],
            "A UTF-8 address needs SMTPUTF8 on the MAIL command",
        )
    }

    pub(crate) fn unreadable_chunk_size() -> Reply {
        Reply::one(
            501,
            [5, 5, 4],
            "Syntax: BDAT chunk size must be a decimal number of octets below 2^64; closing connection",
        )
    }

    pub(crate) fn invalid_parameter(param: &str) -> Reply {
        Reply::one(501, [5, 5, 4], format!("Invalid {param} parameter"))
    }

    pub(crate) fn unsupported_parameter(param: &str) -> Reply {
        Reply::one(555, [5, 5, 4], format!("Unsupported parameter {param}"))
    }

    pub(crate) fn bad_sender(why: &str) -> Reply {
        Reply::one(501, [5, 1, 7], format!("Bad sender address: {why}"))
    }

    pub(crate) fn bad_recipient(why: &str) -> Reply {
        Reply::one(501, [5, 1, 3], format!("Bad recipient address: {why}"))
    }

    pub(crate) fn unknown_command() -> Reply {
        Reply::one(502, [5, 5, 2], "Command not recognized")
    }

    pub(crate) fn not_implemented() -> Reply {
        Reply::one(502, [5, 5, 1], "Command not implemented")
    }

    pub(crate) fn bad_sequence(why: &'static str) -> Reply {
        Reply::one(503, [5, 5, 1], why)
    }

    pub(crate) fn relaying_denied() -> Reply {
        Reply::one(550, [5, 7, 1], "relaying denied")
    }

    pub(crate) fn bare_line_ending() -> Reply {
        let text = "bare CR or LF in message; lines must end with CRLF";
        Reply::one(550, [5, 6, 11], text)
    }

    pub(crate) fn too_large() -> Reply {
        let text = "Message size exceeds fixed maximum message size";
        Reply::one(552, [5, 3, 4], text)
    }

    /// The answer to a command line smtp-proto could not parse.
    pub(crate) fn for_parse_error(error: &smtp_proto::Error) -> Reply {
        use smtp_proto::Error;
        match error {
            Error::UnknownCommand => Reply::unknown_command(),
            Error::InvalidSenderAddress => Reply::bad_sender("invalid syntax"),
            Error::InvalidRecipientAddress => Reply::bad_recipient("invalid syntax"),
            Error::SyntaxError { syntax } => Reply::syntax(syntax),
            Error::InvalidParameter { param } => Reply::invalid_parameter(param),
            Error::UnsupportedParameter { param } => {
                let param: String = param
                    .chars()
                    .filter(char::is_ascii_graphic)
                    .take(64)
                    .collect();
                Reply::unsupported_parameter(&param)
            }
            Error::NeedsMoreData { .. }
            | Error::ResponseTooLong
            | Error::InvalidResponse { .. } => Reply::syntax_error(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        let mut out = Vec::new();
        reply.write_to(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn replies_have_codes_and_enhanced_codes() {
        assert_eq!(wire(&Reply::ok()), "250 2.0.0 Ok\r\n");
        assert_eq!(
            wire(&Reply::bare_line_ending()),
            "550 5.6.11 bare CR or LF in message; lines must end with CRLF\r\n"
        );
        assert_eq!(
            wire(&Reply::ehlo("mx.test", 10, false)),
            "250-mx.test\r\n250-SIZE 10\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
             250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n"
        );
    }

    #[test]
    fn control_characters_never_reach_the_wire() {
        assert_eq!(
            wire(&Reply::greeting("a\r\nb")),
            "220 a??b ESMTP mailfwd\r\n"
        );
    }
}
