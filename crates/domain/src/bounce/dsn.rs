//! The delivery status notification itself (RFC 3464): a `multipart/report` with a
//! human-readable part, the machine-readable `message/delivery-status`, and the original
//! header section. Pure: bytes in, bytes out.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::address::EmailAddress;
use crate::delivery::rfc5322_date;
use crate::email::ReceivedEmail;

/// One destination the email could not be delivered to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The destination.
    pub recipient: EmailAddress,
    /// The remote reply or our own reason, as recorded in the queue.
    pub reason: String,
}

/// What a notification says and about what.
pub struct Report<'a> {
    /// Our host name: the reporting MTA and `MAILER-DAEMON@` it.
    pub hostname: &'a str,
    /// The original envelope sender, who the notification is for.
    pub to: &'a EmailAddress,
    /// The email that failed.
    pub email: &'a ReceivedEmail,
    /// Its destinations that failed for good.
    pub failures: &'a [Failure],
    /// Its header section as stored, CRLF line ends, without the empty line.
    pub headers: &'a [u8],
    /// When the notification is made.
    pub now: SystemTime,
}

/// Longest diagnostic text kept: the field then stays well inside the 998-octet line
/// limit whatever the remote server said.
const MAX_DIAGNOSTIC: usize = 900;

impl Report<'_> {
    /// Whether anything in it is not ASCII: the report then uses the RFC 6533 types
    /// (`message/global-delivery-status`, `message/global-headers`) and needs SMTPUTF8.
    #[must_use]
    pub fn is_global(&self) -> bool {
        !self.to.local_part().is_ascii()
            || !self.headers.is_ascii()
            || self
                .failures
                .iter()
                .any(|failure| !failure.recipient.local_part().is_ascii())
    }

    /// The whole message, header section and body, every line ending in CRLF.
    #[must_use]
    pub fn to_message(&self) -> Vec<u8> {
        let global = self.is_global();
        let (host, id) = (self.hostname, self.email.id);
        let boundary = format!("{id}/{host}");
        let mut out = String::new();
        let line = |out: &mut String, text: &str| {
            out.push_str(text);
            out.push_str("\r\n");
        };
        line(
            &mut out,
            &format!("From: Mail Delivery System <MAILER-DAEMON@{host}>"),
        );
        line(&mut out, &format!("To: <{}>", self.to));
        line(&mut out, "Subject: Undelivered Mail Returned to Sender");
        line(&mut out, &format!("Date: {}", rfc5322_date(self.now)));
        line(&mut out, &format!("Message-ID: <{id}.dsn@{host}>"));
        line(&mut out, "Auto-Submitted: auto-replied");
        line(&mut out, "MIME-Version: 1.0");
        line(
            &mut out,
            &format!(
                "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""
            ),
        );
        line(&mut out, "");
        line(&mut out, "This is a MIME-encapsulated message.");
        line(&mut out, "");

        line(&mut out, &format!("--{boundary}"));
        line(&mut out, "Content-Description: Notification");
        if global {
            line(&mut out, "Content-Type: text/plain; charset=utf-8");
            line(&mut out, "Content-Transfer-Encoding: 8bit");
        } else {
            line(&mut out, "Content-Type: text/plain; charset=us-ascii");
        }
        line(&mut out, "");
        line(
            &mut out,
            &format!("This is the mail system at host {host}."),
        );
        line(&mut out, "");
        line(
            &mut out,
            "Your message could not be delivered to one or more",
        );
        line(&mut out, "recipients. It is attached below.");
        line(&mut out, "");
        for failure in self.failures {
            line(
                &mut out,
                &format!("<{}>: {}", failure.recipient, diagnostic(&failure.reason)),
            );
        }
        line(&mut out, "");

        line(&mut out, &format!("--{boundary}"));
        line(&mut out, "Content-Description: Delivery report");
        let status_type = if global {
            "message/global-delivery-status"
        } else {
            "message/delivery-status"
        };
        line(&mut out, &format!("Content-Type: {status_type}"));
        line(&mut out, "");
        line(&mut out, &format!("Reporting-MTA: dns; {host}"));
        line(&mut out, &format!("X-Mailfwd-Email-ID: {id}"));
        line(
            &mut out,
            &format!("Arrival-Date: {}", rfc5322_date(self.email.received_at)),
        );
        let address_type = if global { "utf-8" } else { "rfc822" };
        for failure in self.failures {
            line(&mut out, "");
            line(
                &mut out,
                &format!("Final-Recipient: {address_type}; {}", failure.recipient),
            );
            line(&mut out, "Action: failed");
            line(&mut out, &format!("Status: {}", status(&failure.reason)));
            let _ = write!(
                out,
                "Diagnostic-Code: {}\r\n",
                diagnostic_code(&failure.reason)
            );
        }
        line(&mut out, "");

        line(&mut out, &format!("--{boundary}"));
        line(&mut out, "Content-Description: Undelivered Message Headers");
        let headers_type = if global {
            "message/global-headers"
        } else {
            "text/rfc822-headers"
        };
        line(&mut out, &format!("Content-Type: {headers_type}"));
        if global {
            line(&mut out, "Content-Transfer-Encoding: 8bit");
        }
        line(&mut out, "");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(self.headers);
        if !self.headers.is_empty() && !self.headers.ends_with(b"\r\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        bytes
    }
}

/// The enhanced status code (RFC 3463) in `reason`, if any; else `4.4.7` (delivery
/// time expired) for a delivery given up on, `5.0.0` otherwise.
fn status(reason: &str) -> String {
    reason
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .find(|word| is_enhanced_code(word))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if reason.starts_with("gave up") {
                "4.4.7".to_owned()
            } else {
                "5.0.0".to_owned()
            }
        })
}

/// `class.subject.detail`: class 2, 4 or 5, the others 1 to 3 digits.
fn is_enhanced_code(word: &str) -> bool {
    let mut parts = word.split('.');
    let class = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    matches!(class, "2" | "4" | "5")
        && rest.len() == 2
        && rest
            .iter()
            .all(|part| (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
}

/// `smtp; <reply>` when the reason is a remote reply (it starts with its code),
/// `X-mailfwd; <reason>` for one of our own.
fn diagnostic_code(reason: &str) -> String {
    let text = diagnostic(reason);
    let is_reply = text.len() >= 4
        && text.as_bytes()[..3].iter().all(u8::is_ascii_digit)
        && matches!(text.as_bytes()[3], b' ' | b'-');
    if is_reply {
        format!("smtp; {text}")
    } else {
        format!("X-mailfwd; {text}")
    }
}

/// `reason` on one line of printable ASCII, shortened: a remote server wrote it, and it
/// goes into a header-like field and a text part.
fn diagnostic(reason: &str) -> String {
    let mut text: String = reason
        .chars()
        .map(|c| match c {
            '\r' | '\n' | '\t' => ' ',
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    if text.len() > MAX_DIAGNOSTIC {
        text.truncate(MAX_DIAGNOSTIC);
        text.push_str(" ...");
    }
    text
}

#[cfg(test)]
#[path = "dsn_tests.rs"]
mod tests;
