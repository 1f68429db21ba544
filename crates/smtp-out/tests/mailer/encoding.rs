//! 8BITMIME and SMTPUTF8 are passed on as received (RFC 6152, RFC 6531); a message that
//! needs SMTPUTF8 does not go to a server without it.

use mailfwd_domain::Encoding;
use mailfwd_domain::delivery::{DeliveryOutcome, Outgoing};
use mailfwd_testkit::sink::{Options, Sink};

use crate::SendOne;
use crate::body::message;
use crate::relay_to;

fn with(encoding: Encoding, sender: &str, body: &[u8]) -> Outgoing {
    Outgoing {
        encoding,
        ..message(Some(sender), "b@dest.test", &[body])
    }
}

const EIGHT_BIT: Encoding = Encoding {
    eight_bit: true,
    smtputf8: false,
    utf8_headers: false,
};

const UTF8_HEADERS: Encoding = Encoding {
    eight_bit: true,
    smtputf8: true,
    utf8_headers: true,
};

async fn mail_from(options: Options, message: Outgoing) -> (DeliveryOutcome, Vec<String>) {
    let sink = Sink::start(options).await;
    let outcome = relay_to(&sink).send_one(message).await;
    let lines = sink.messages().into_iter().map(|m| m.mail_from).collect();
    (outcome, lines)
}

#[tokio::test]
async fn body_8bitmime_and_smtputf8_are_passed_on() {
    let options = Options {
        smtputf8: true,
        ..Options::default()
    };
    let body = "Subject: caf\u{e9}\r\n\r\nna\u{ef}ve\r\n".as_bytes();
    let (outcome, lines) = mail_from(options, with(UTF8_HEADERS, "a@sender.test", body)).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    assert_eq!(lines, ["MAIL FROM:<a@sender.test> BODY=8BITMIME SMTPUTF8"]);

    // A 7-bit message declares neither.
    let (_, lines) = mail_from(
        Options::default(),
        with(
            Encoding::default(),
            "a@sender.test",
            b"Subject: plain\r\n\r\nx\r\n",
        ),
    )
    .await;
    assert_eq!(lines, ["MAIL FROM:<a@sender.test>"]);
}

#[tokio::test]
async fn a_message_that_needs_smtputf8_fails_with_5_6_7_where_it_is_missing() {
    let body = "Subject: caf\u{e9}\r\n\r\nx\r\n".as_bytes();
    let (outcome, lines) = mail_from(
        Options::default(),
        with(UTF8_HEADERS, "a@sender.test", body),
    )
    .await;
    let DeliveryOutcome::Permanent(text) = outcome else {
        panic!("fails for good: {outcome:?}");
    };
    assert!(
        text.starts_with("5.6.7 ") && text.contains("SMTPUTF8"),
        "{text}"
    );
    assert!(lines.is_empty(), "nothing was sent");

    // A UTF-8 sender address needs it too.
    let (outcome, _) = mail_from(
        Options::default(),
        with(
            Encoding::default(),
            "j\u{f6}rg@sender.test",
            b"Subject: x\r\n\r\nx\r\n",
        ),
    )
    .await;
    assert!(matches!(outcome, DeliveryOutcome::Permanent(ref t) if t.starts_with("5.6.7")));

    // Declared SMTPUTF8 with ASCII headers and envelope: the message does not need it.
    let ascii_headers = Encoding {
        utf8_headers: false,
        ..UTF8_HEADERS
    };
    let (outcome, lines) = mail_from(
        Options::default(),
        with(
            ascii_headers,
            "a@sender.test",
            "Subject: x\r\n\r\nna\u{ef}ve\r\n".as_bytes(),
        ),
    )
    .await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    assert_eq!(lines, ["MAIL FROM:<a@sender.test> BODY=8BITMIME"]);
}

#[tokio::test]
async fn an_8bit_message_goes_undeclared_to_a_server_without_8bitmime() {
    // ADR 0014: passed through as it is (as sendmail's default and Exim do), not
    // converted (which breaks DKIM) and not bounced.
    let options = Options {
        eight_bit_mime: false,
        ..Options::default()
    };
    let body = "Subject: x\r\n\r\nna\u{ef}ve\r\n".as_bytes();
    let (outcome, lines) = mail_from(options, with(EIGHT_BIT, "a@sender.test", body)).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    assert_eq!(lines, ["MAIL FROM:<a@sender.test>"]);
}
