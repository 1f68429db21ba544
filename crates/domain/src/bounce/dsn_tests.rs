use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::email::{EmailId, Encoding, Envelope, NewEmail};

fn address(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

fn email() -> ReceivedEmail {
    ReceivedEmail {
        id: EmailId::new(),
        email: NewEmail {
            envelope: Envelope {
                sender: Some(address("alice@sender.test")),
                recipients: vec![address("sales@acme.test")],
            },
            peer: Some("192.0.2.1:25".into()),
            helo: Some("client.test".into()),
            tls: false,
            encoding: Encoding::default(),
        },
        size: 100,
        received_at: UNIX_EPOCH + Duration::from_secs(1_796_000_000),
    }
}

fn message(failures: &[Failure], headers: &[u8]) -> String {
    let email = email();
    let to = address("alice@sender.test");
    let report = Report {
        hostname: "mx.fwd.test",
        to: &to,
        email: &email,
        failures,
        headers,
        now: UNIX_EPOCH + Duration::from_secs(1_796_000_600),
    };
    String::from_utf8(report.to_message()).unwrap()
}

fn failure(recipient: &str, reason: &str) -> Failure {
    Failure {
        recipient: address(recipient),
        reason: reason.into(),
    }
}

const HEADERS: &[u8] = b"From: Alice <alice@sender.test>\r\nTo: sales@acme.test\r\nSubject: hi\r\n";

#[test]
fn a_notification_is_a_multipart_report_with_the_status_and_the_original_headers() {
    let text = message(
        &[failure(
            "bob@gmail.test",
            "550 5.1.1 <bob@gmail.test>: user unknown",
        )],
        HEADERS,
    );
    for expected in [
        "From: Mail Delivery System <MAILER-DAEMON@mx.fwd.test>\r\n",
        "To: <alice@sender.test>\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "Content-Type: multipart/report; report-type=delivery-status;\r\n",
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.fwd.test\r\n",
        "Final-Recipient: rfc822; bob@gmail.test\r\nAction: failed\r\nStatus: 5.1.1\r\n",
        "Diagnostic-Code: smtp; 550 5.1.1 <bob@gmail.test>: user unknown\r\n",
        "Content-Type: text/rfc822-headers\r\n\r\nFrom: Alice <alice@sender.test>\r\nTo: sales@acme.test\r\nSubject: hi\r\n\r\n--",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(text.ends_with("--\r\n"));
    // Three parts, each opened by the boundary, and the closing one.
    let boundary = text
        .split("boundary=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert_eq!(text.matches(&format!("--{boundary}\r\n")).count(), 3);
    assert_eq!(text.matches(&format!("--{boundary}--\r\n")).count(), 1);
    assert_every_line_is_crlf_and_short(&text);
}

#[test]
fn one_notification_lists_every_failed_destination() {
    let text = message(
        &[
            failure("a@x.test", "550 5.1.1 no such user"),
            failure("b@x.test", "552 5.2.2 mailbox full"),
        ],
        HEADERS,
    );
    assert!(text.contains("Final-Recipient: rfc822; a@x.test\r\nAction: failed\r\nStatus: 5.1.1"));
    assert!(text.contains("Final-Recipient: rfc822; b@x.test\r\nAction: failed\r\nStatus: 5.2.2"));
}

#[test]
fn the_status_comes_from_the_reason_or_from_how_delivery_ended() {
    assert_eq!(status("550 5.7.1 refused"), "5.7.1");
    assert_eq!(
        status("gave up after 9 attempts over 5d; last: 451 4.3.0 try later"),
        "4.3.0"
    );
    assert_eq!(
        status("gave up after 9 attempts over 5d; last: connection refused"),
        "4.4.7"
    );
    assert_eq!(status("550 no enhanced code"), "5.0.0");
    assert_eq!(status("mail loops back to myself 5.4.6"), "5.4.6");
    assert_eq!(status("version 1.2.3 is not a code"), "5.0.0");
}

#[test]
fn a_hostile_reply_stays_on_one_short_printable_line() {
    let reason = format!(
        "550 5.1.1 bad\r\nBcc: victim@x.test\r\n{}é",
        "x".repeat(5000)
    );
    let text = message(&[failure("b@x.test", &reason)], HEADERS);
    assert!(!text.contains("\r\nBcc:"));
    assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 bad  Bcc: victim@x.test"));
    assert!(text.is_ascii());
    assert_every_line_is_crlf_and_short(&text);
    // Our own reasons are not dressed up as SMTP replies.
    let text = message(
        &[failure("b@x.test", "the stored email is missing")],
        HEADERS,
    );
    assert!(text.contains("Diagnostic-Code: X-mailfwd; the stored email is missing\r\n"));
}

#[test]
fn utf8_headers_make_a_global_report() {
    let headers = "Subject: grüße\r\n".as_bytes();
    let text = message(&[failure("b@x.test", "550 5.1.1 no")], headers);
    assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
    assert!(text.contains("Final-Recipient: utf-8; b@x.test"));
    assert!(text.contains("Content-Type: message/global-headers\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: grüße\r\n"));
    let ascii = message(&[failure("b@x.test", "550 5.1.1 no")], HEADERS);
    assert!(!ascii.contains("global"));
}

fn assert_every_line_is_crlf_and_short(text: &str) {
    let body = text.strip_suffix("\r\n").unwrap();
    for line in body.split("\r\n") {
        assert!(!line.contains(['\r', '\n']), "bare line ending in {line:?}");
        assert!(line.len() <= 998, "a line of {} octets", line.len());
    }
}
