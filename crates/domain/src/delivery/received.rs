//! The one header mailfwd adds to a forwarded message, and the body that carries it.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use crate::address::EmailAddress;
use crate::calendar::civil_date;
use crate::email::{BodyReader, ReceivedEmail, StoreError};

/// The `Received:` trace header (RFC 5321 §4.4) for forwarding `email` to `recipients`.
/// Folded onto several lines, each far below the 998-octet limit. The `for` clause
/// names the recipient of a copy sent to one; a copy for several names none, as
/// Postfix does: one copy's header must not tell each recipient who else got it.
#[must_use]
pub fn received_header(
    email: &ReceivedEmail,
    recipients: &[EmailAddress],
    hostname: &str,
    now: SystemTime,
) -> String {
    let helo = printable_helo(email.email.helo.as_deref().unwrap_or(""));
    let ip = email.email.peer.as_deref().map_or("unknown", peer_ip);
    let protocol = if email.email.tls { "ESMTPS" } else { "ESMTP" };
    let date = rfc5322_date(now);
    let id = email.id;
    let head = format!(
        "Received: from {helo} ([{ip}])\r\n\tby {hostname} (mailfwd) with {protocol} id {id}"
    );
    match recipients {
        [recipient] => format!("{head}\r\n\tfor <{recipient}>; {date}\r\n"),
        _ => format!("{head};\r\n\t{date}\r\n"),
    }
}

/// Longest HELO name kept in the header: a domain name is at most 255 octets.
const HELO_MAX: usize = 255;

/// The client's HELO name as it may appear in the header. Whatever the client said
/// goes in as text of our own header, so only what a domain name or an address literal
/// may hold is kept and anything else becomes `?`, as Postfix's `printable()` does:
/// no 8-bit bytes, no parentheses to open or close a comment, no CR or LF to end the
/// header, no spaces to forge further clauses.
fn printable_helo(helo: &str) -> String {
    let kept: String = helo
        .chars()
        .take(HELO_MAX)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | ':' | '[' | ']' => c,
            _ => '?',
        })
        .collect();
    if kept.is_empty() {
        "unknown".to_owned()
    } else {
        kept
    }
}

/// The address part of `ip:port` or `[v6]:port`.
fn peer_ip(peer: &str) -> &str {
    let host = peer.rsplit_once(':').map_or(peer, |(host, _port)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `Sun, 22 Nov 2026 05:10:00 +0000`.
#[must_use]
pub fn rfc5322_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_date(days);
    let weekday = DAYS[usize::try_from(days % 7).unwrap_or(0)];
    let month_name = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A stored body with a header in front of it, streamed without copying the body.
pub struct PrefixedBody {
    prefix: Option<Bytes>,
    body: Box<dyn BodyReader>,
}

impl PrefixedBody {
    /// `prefix`, then every chunk of `body`.
    #[must_use]
    pub fn new(prefix: String, body: Box<dyn BodyReader>) -> Self {
        PrefixedBody {
            prefix: Some(Bytes::from(prefix)),
            body,
        }
    }
}

#[async_trait]
impl BodyReader for PrefixedBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        match self.prefix.take() {
            Some(prefix) => Ok(Some(prefix)),
            None => self.body.next_chunk().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::email::{EmailId, Envelope, NewEmail};

    #[test]
    fn dates_are_rfc5322() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_324_200); // 2026-11-22 05:10:00 UTC
        assert_eq!(rfc5322_date(t), "Sun, 22 Nov 2026 05:10:00 +0000");
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
    }

    /// An email received at the epoch from `peer`, which said `helo`.
    fn received_from(peer: &str, helo: &str, tls: bool) -> ReceivedEmail {
        ReceivedEmail {
            id: EmailId::new(),
            email: NewEmail {
                envelope: Envelope {
                    sender: None,
                    recipients: vec![],
                },
                peer: Some(peer.into()),
                helo: Some(helo.into()),
                tls,
                encoding: crate::email::Encoding::default(),
            },
            size: 1,
            received_at: UNIX_EPOCH,
        }
    }

    #[test]
    fn the_header_names_peer_helo_host_id_and_destination() {
        let email = received_from("[2001:db8::1]:4567", "client.example", true);
        let dest = [EmailAddress::parse("alice@gmail.test").unwrap()];
        let header = received_header(&email, &dest, "mx.mailfwd.test", UNIX_EPOCH);
        assert_eq!(
            header,
            format!(
                "Received: from client.example ([2001:db8::1])\r\n\tby mx.mailfwd.test (mailfwd) with ESMTPS id {}\r\n\
                 \tfor <alice@gmail.test>; Thu, 01 Jan 1970 00:00:00 +0000\r\n",
                email.id
            )
        );
        assert!(header.lines().all(|l| l.len() < 998));
    }

    #[test]
    fn a_copy_for_several_recipients_names_none_of_them() {
        let email = received_from("192.0.2.1:25", "client.example", false);
        let recipients = ["alice@gmail.test", "bob@gmail.test"]
            .map(|address| EmailAddress::parse(address).unwrap());
        let header = received_header(&email, &recipients, "mx.mailfwd.test", UNIX_EPOCH);
        assert_eq!(
            header,
            format!(
                "Received: from client.example ([192.0.2.1])\r\n\tby mx.mailfwd.test (mailfwd) with ESMTP id {};\r\n\
                 \tThu, 01 Jan 1970 00:00:00 +0000\r\n",
                email.id
            )
        );
        assert!(!header.contains("gmail.test"));
    }

    #[test]
    fn a_hostile_helo_name_cannot_shape_the_header() {
        let mut email = received_from(
            "192.0.2.1:25",
            "evil (by trusted.test) héllo\r\nX-Injected: 1 [192.0.2.9]",
            false,
        );
        let dest = [EmailAddress::parse("alice@gmail.test").unwrap()];
        let header = received_header(&email, &dest, "mx.test", UNIX_EPOCH);
        let first = header.lines().next().unwrap();
        assert_eq!(
            first,
            "Received: from evil??by?trusted.test??h?llo??X-Injected:?1?[192.0.2.9] ([192.0.2.1])"
        );
        email.email.helo = Some("x".repeat(1000));
        let header = received_header(&email, &dest, "mx.test", UNIX_EPOCH);
        assert!(header.lines().all(|l| l.len() < 998));
        email.email.helo = Some(String::new());
        let header = received_header(&email, &dest, "mx.test", UNIX_EPOCH);
        assert!(header.starts_with("Received: from unknown ([192.0.2.1])"));
    }
}
