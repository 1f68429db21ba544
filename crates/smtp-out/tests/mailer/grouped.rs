//! One message to several recipients at one destination: one transaction, a RCPT TO
//! each, and each recipient's own outcome.

use mailfwd_domain::delivery::{DeliveryOutcome, Mailer};
use mailfwd_testkit::sink::{Options, Sink};

use crate::body::to_all;
use crate::relay_to;

#[tokio::test]
async fn ten_recipients_go_in_one_transaction_and_a_refused_one_keeps_its_reply() {
    let sink = Sink::start(Options::destination()).await;
    let recipients: Vec<String> = (0..10)
        .map(|n| match n {
            3 => "reject3@dest.test".to_owned(),
            n => format!("user{n}@dest.test"),
        })
        .collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let message = to_all(
        Some("a@sender.test"),
        &refs,
        &[b"Subject: hi\r\n\r\nhello\r\n"],
    );

    let outcomes = relay_to(&sink).send(message).await;

    let delivered = DeliveryOutcome::Delivered("250 2.0.0 queued by sink".into());
    let refused = DeliveryOutcome::Permanent("550 5.1.1 no such user here".into());
    let expected: Vec<DeliveryOutcome> = (0..10)
        .map(|n| {
            if n == 3 {
                refused.clone()
            } else {
                delivered.clone()
            }
        })
        .collect();
    assert_eq!(outcomes, expected);
    let commands = sink.commands();
    let count = |verb: &str| commands.iter().filter(|c| c.starts_with(verb)).count();
    assert_eq!(
        (count("MAIL"), count("RCPT"), count("DATA")),
        (1, 10, 1),
        "{commands:?}"
    );
    let received = sink.received();
    assert_eq!(received.len(), 1, "one message");
    let mut accepted = refs.clone();
    accepted.remove(3);
    assert_eq!(received[0].recipients, accepted);
}

#[tokio::test]
async fn with_every_recipient_refused_no_data_goes_and_the_connection_is_kept() {
    let sink = Sink::start(Options::destination()).await;
    let mailer = relay_to(&sink);
    let message = to_all(
        Some("a@sender.test"),
        &["reject1@dest.test", "reject2@dest.test"],
        &[b"Subject: hi\r\n\r\nhello\r\n"],
    );
    let refused = DeliveryOutcome::Permanent("550 5.1.1 no such user here".into());
    assert_eq!(mailer.send(message).await, [refused.clone(), refused]);

    let next = to_all(
        Some("a@sender.test"),
        &["b@dest.test", "c@dest.test"],
        &[b"Subject: hi\r\n\r\nhello\r\n"],
    );
    let delivered = DeliveryOutcome::Delivered("250 2.0.0 queued by sink".into());
    assert_eq!(mailer.send(next).await, [delivered.clone(), delivered]);
    let log = sink.log();
    assert_eq!(log.connections, 1, "reset and reused: {:?}", log.commands);
    assert_eq!(log.messages.len(), 1);
    assert!(log.commands.iter().any(|(_, c)| c == "RSET"));
}
