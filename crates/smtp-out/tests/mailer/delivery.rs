//! One transaction: the exact bytes that arrive, the envelope, and what each reply means.

use mailfwd_domain::delivery::DeliveryOutcome;

use crate::SendOne;
use crate::body::{message, simple};
use crate::relay_to;
use mailfwd_testkit::sink::{Options, Sink};

/// Lines starting with dots, cut at every awkward place: before the dot, between the
/// CR and the LF that precede it, and a lone "." line that would end DATA if unstuffed.
const TRICKY: &[&[u8]] = &[
    b"Subject: dots\r\n\r\n",
    b".",
    b"leading dot\r",
    b"\n",
    b".",
    b".two dots\r\n.\r",
    b"\n",
    b"..\r\nMAIL FROM:<evil@x.test>\r\n\r\n",
    b".\r\n",
    b"end\r\n",
];

#[tokio::test]
async fn data_delivers_the_exact_bytes_across_chunk_boundaries() {
    let sink = Sink::start(Options::default()).await;
    let outcome = relay_to(&sink)
        .send_one(message(Some("a@sender.test"), "b@dest.test", TRICKY))
        .await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Delivered("250 2.0.0 Ok: queued as SINK1".into())
    );
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, TRICKY.concat());
    assert_eq!(messages[0].mail_from, "MAIL FROM:<a@sender.test>");
    assert_eq!(messages[0].rcpt_to, ["RCPT TO:<b@dest.test>"]);
    assert!(!messages[0].bdat);
}

#[tokio::test]
async fn data_ends_a_body_without_final_crlf_on_a_line_of_its_own() {
    let sink = Sink::start(Options::default()).await;
    let outcome = relay_to(&sink)
        .send_one(message(
            None,
            "b@dest.test",
            &[b"Subject: x\r\n\r\n", b".no newline"],
        ))
        .await;
    assert!(matches!(outcome, DeliveryOutcome::Delivered(_)));
    assert_eq!(
        sink.messages()[0].body,
        b"Subject: x\r\n\r\n.no newline\r\n"
    );
}

#[tokio::test]
async fn bdat_delivers_the_exact_bytes_in_chunks() {
    let sink = Sink::start(Options {
        chunking: true,
        ..Options::default()
    })
    .await;
    let big: Vec<u8> = TRICKY.concat().repeat(2000);
    assert!(big.len() > 2 * 64 * 1024);
    let (head, tail) = big.split_at(1001);
    let chunks: [&[u8]; 3] = [head, tail, b"\r\n.no final newline"];
    let outcome = relay_to(&sink)
        .send_one(message(Some("a@sender.test"), "b@dest.test", &chunks))
        .await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Delivered("250 2.0.0 Ok: queued as SINK1".into())
    );
    let messages = sink.messages();
    // As over DATA, a body that does not end with CRLF gets one.
    assert_eq!(messages[0].body, [&chunks.concat()[..], b"\r\n"].concat());
    assert!(messages[0].bdat);
    let bdats: Vec<String> = sink
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("BDAT"))
        .collect();
    assert_eq!(bdats.first().map(String::as_str), Some("BDAT 65536"));
    assert!(bdats.last().is_some_and(|c| c.ends_with(" LAST")));
    assert!(!sink.commands().contains(&"DATA".to_owned()));
}

/// Every stage, every class: (options, expected outcome).
#[tokio::test]
async fn replies_are_classified_and_their_text_kept() {
    let with = |edit: fn(&mut Options)| {
        let mut options = Options::default();
        edit(&mut options);
        options
    };
    let cases: Vec<(Options, DeliveryOutcome)> = vec![
        (
            with(|o| o.mail_reply = "451 4.3.0 try again later".into()),
            DeliveryOutcome::Transient("451 4.3.0 try again later".into()),
        ),
        (
            with(|o| o.mail_reply = "550 5.7.1 sender rejected".into()),
            DeliveryOutcome::Permanent("550 5.7.1 sender rejected".into()),
        ),
        (
            with(|o| o.rcpt_reply = "450 4.2.1 mailbox busy".into()),
            DeliveryOutcome::Transient("450 4.2.1 mailbox busy".into()),
        ),
        (
            with(|o| o.rcpt_reply = "550 5.1.1 no such user".into()),
            DeliveryOutcome::Permanent("550 5.1.1 no such user".into()),
        ),
        (
            with(|o| o.data_reply = "452 4.3.1 insufficient storage".into()),
            DeliveryOutcome::Transient("452 4.3.1 insufficient storage".into()),
        ),
        (
            with(|o| o.data_reply = "554 5.7.1 spam".into()),
            DeliveryOutcome::Permanent("554 5.7.1 spam".into()),
        ),
        (
            with(|o| {
                o.chunking = true;
                o.data_reply = "554 5.6.0 bad content".into();
            }),
            DeliveryOutcome::Permanent("554 5.6.0 bad content".into()),
        ),
        (
            with(|o| o.data_reply = "250-2.0.0 first line\r\n250 2.0.0 second line".into()),
            DeliveryOutcome::Delivered("250 2.0.0 first line second line".into()),
        ),
        (
            with(|o| o.rcpt_reply = "550 no enhanced code".into()),
            DeliveryOutcome::Permanent("550 no enhanced code".into()),
        ),
    ];
    for (options, expected) in cases {
        let sink = Sink::start(options.clone()).await;
        let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
        assert_eq!(outcome, expected, "{options:?}");
    }
}

#[tokio::test]
async fn the_null_sender_is_sent_as_empty_path() {
    let sink = Sink::start(Options::default()).await;
    let outcome = relay_to(&sink)
        .send_one(message(None, "b@dest.test", &[b"bounce\r\n"]))
        .await;
    assert!(matches!(outcome, DeliveryOutcome::Delivered(_)));
    assert_eq!(sink.messages()[0].mail_from, "MAIL FROM:<>");
}

#[tokio::test]
async fn size_is_declared_when_advertised_and_enforced_when_limited() {
    let sink = Sink::start(Options {
        size: Some(10_000_000),
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
    assert!(matches!(outcome, DeliveryOutcome::Delivered(_)));
    let size = b"Subject: hi\r\n\r\nhello\r\n".len();
    assert_eq!(
        sink.messages()[0].mail_from,
        format!("MAIL FROM:<a@sender.test> SIZE={size}")
    );

    let small = Sink::start(Options {
        size: Some(10),
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&small).send_one(simple("b@dest.test")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Permanent(ref text) if text.contains("exceeds the size limit of 10")),
        "{outcome:?}"
    );
    assert!(!small.commands().iter().any(|c| c.starts_with("MAIL")));
}

#[tokio::test]
async fn smtputf8_is_asked_for_when_needed_and_refused_when_missing() {
    let sink = Sink::start(Options {
        smtputf8: true,
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink).send_one(simple("jürgen@dest.test")).await;
    assert!(matches!(outcome, DeliveryOutcome::Delivered(_)));
    let received = &sink.messages()[0];
    assert_eq!(received.mail_from, "MAIL FROM:<a@sender.test> SMTPUTF8");
    assert_eq!(received.rcpt_to, ["RCPT TO:<jürgen@dest.test>"]);

    let ascii_only = Sink::start(Options::default()).await;
    let outcome = relay_to(&ascii_only)
        .send_one(simple("jürgen@dest.test"))
        .await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Permanent(format!(
            "5.6.7 {} does not support SMTPUTF8, which this message needs",
            ascii_only.addr
        ))
    );
    let outcome = relay_to(&ascii_only)
        .send_one(simple("plain@dest.test"))
        .await;
    assert!(matches!(outcome, DeliveryOutcome::Delivered(_)));
    assert_eq!(
        ascii_only.messages()[0].mail_from,
        "MAIL FROM:<a@sender.test>"
    );
}

#[tokio::test]
async fn helo_is_used_when_ehlo_is_refused() {
    let sink = Sink::start(Options {
        ehlo: false,
        chunking: true,
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
    assert!(matches!(outcome, DeliveryOutcome::Delivered(_)));
    let commands = sink.commands();
    assert_eq!(commands[..2], ["EHLO mailfwd.test", "HELO mailfwd.test"]);
    assert!(!sink.messages()[0].bdat, "no extensions after HELO");
}
