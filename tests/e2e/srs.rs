//! Forwarding as a good citizen (ADR 0020): the envelope sender rewritten by SRS,
//! bounces that come back through an SRS address, delivery status notifications to the
//! original sender only, and postmaster.

use std::time::{Duration, SystemTime};

use mailfwd_domain::{Domain, EmailAddress, Srs};
use mailfwd_testkit::Client;
use mailfwd_testkit::sink::{Options, Received, Sink};
use serde_json::json;

use crate::harness::Server;

const SECRET: &str = "e2e-srs-secret";

/// A server with SRS into `fwd.test`; `gmail.test` goes to `destination` and
/// `sender.test` (the original senders' domain) to `senders`.
fn start(
    data: &std::path::Path,
    destination: &Sink,
    senders: &Sink,
    extra: &[(&str, &str)],
) -> Server {
    let routes = format!(
        "gmail.test={},sender.test={}",
        destination.addr, senders.addr
    );
    let mut env = vec![
        ("MAILFWD_ROUTES", routes.as_str()),
        ("MAILFWD_HOSTNAME", "mx.fwd.test"),
        ("MAILFWD_SRS_DOMAIN", "fwd.test"),
        ("MAILFWD_SRS_SECRET", SECRET),
    ];
    env.extend_from_slice(extra);
    Server::start(data, &env)
}

fn srs() -> Srs {
    Srs::new(Domain::parse("fwd.test").unwrap(), vec![SECRET.into()], 21).unwrap()
}

fn address(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

/// The messages `sink` holds once it has held `count` for a moment longer: more would
/// have arrived by then if any were coming.
async fn exactly(sink: &Sink, count: usize) -> Vec<Received> {
    sink.wait_for_messages(count, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = sink.received();
    assert_eq!(received.len(), count, "{received:#?}");
    received
}

#[tokio::test]
async fn the_destination_sees_the_rewritten_sender_and_a_bounce_to_it_reaches_the_original_sender()
{
    let destination = Sink::start(Options::destination()).await;
    let senders = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &destination, &senders, &[]);
    server
        .create_rule("sales@acme.test", json!("bob@gmail.test"))
        .await;

    let mut client = Client::connect(&server.smtp).await;
    client
        .send_mail(
            "alice@sender.test",
            "sales@acme.test",
            b"Subject: hello\r\n\r\nhi\r\n",
        )
        .await;
    let [forwarded] = exactly(&destination, 1).await.try_into().unwrap();
    assert!(
        forwarded.sender.starts_with("SRS0="),
        "{}",
        forwarded.sender
    );
    assert!(
        forwarded.sender.ends_with("@fwd.test"),
        "{}",
        forwarded.sender
    );
    let rewritten = EmailAddress::parse_rewritten(&forwarded.sender).unwrap();
    assert_eq!(
        srs().reverse(&rewritten, SystemTime::now()).unwrap(),
        address("alice@sender.test")
    );

    // The destination bounces later, to the rewritten sender, from a sender of its own
    // (non-compliant, but seen): it reaches alice with the null sender.
    let mut bouncer = Client::connect(&server.smtp).await;
    bouncer
        .envelope("MAILER-DAEMON@gmail.test", &[&forwarded.sender])
        .await;
    let done = bouncer
        .data(b"Subject: Undelivered Mail Returned to Sender\r\n\r\nbob is gone\r\n.\r\n")
        .await;
    assert_eq!(done.code, 250, "{done:?}");
    let [bounce] = exactly(&senders, 1).await.try_into().unwrap();
    assert_eq!(bounce.sender, "", "a bounce goes on with the null sender");
    assert_eq!(bounce.recipients, ["alice@sender.test"]);
    assert!(String::from_utf8_lossy(&bounce.data).contains("bob is gone"));
}

#[tokio::test]
async fn forged_expired_and_malformed_srs_addresses_are_refused_at_rcpt() {
    let destination = Sink::start(Options::destination()).await;
    let senders = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &destination, &senders, &[]);
    let alice = address("alice@sender.test");
    let now = SystemTime::now();
    let fresh = srs().forward(Some(&alice), now).unwrap().to_string();
    let expired = srs()
        .forward(Some(&alice), now - Duration::from_secs(86_400 * 30))
        .unwrap()
        .to_string();
    let other_secret = Srs::new(Domain::parse("fwd.test").unwrap(), vec!["guess".into()], 21)
        .unwrap()
        .forward(Some(&alice), now)
        .unwrap()
        .to_string();
    let tampered = fresh.replace("=alice@", "=mallory@");

    let mut client = Client::connect(&server.smtp).await;
    client.ehlo().await;
    client.cmd("MAIL FROM:<>", 250).await;
    for (bad, says) in [
        (expired.as_str(), "expired"),
        (other_secret.as_str(), "forged"),
        (tampered.as_str(), "forged"),
        ("SRS0=xx@fwd.test", "malformed"),
    ] {
        let reply = client.command(&format!("RCPT TO:<{bad}>")).await;
        assert_eq!(reply.code, 550, "{bad}: {reply:?}");
        assert!(
            reply.line().contains("5.1.1") && reply.line().contains(says),
            "{bad}: {reply:?}"
        );
    }
    client.cmd(&format!("RCPT TO:<{fresh}>"), 250).await;
    let done = client.data(b"Subject: bounce\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(done.code, 250);
    let [bounce] = exactly(&senders, 1).await.try_into().unwrap();
    assert_eq!(bounce.recipients, ["alice@sender.test"]);
}

#[tokio::test]
async fn a_refused_delivery_gives_the_original_sender_exactly_one_dsn_and_a_null_sender_none() {
    let destination = Sink::start(Options {
        rcpt_reply: "550 5.1.1 <bob@gmail.test>: user unknown".into(),
        ..Options::destination()
    })
    .await;
    let senders = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &destination, &senders, &[]);
    server
        .create_rule("sales@acme.test", json!("bob@gmail.test"))
        .await;

    // From the null sender first: its failure is reported to no one.
    let mut client = Client::connect(&server.smtp).await;
    let null = client
        .send_mail("", "sales@acme.test", b"Subject: from nobody\r\n\r\nx\r\n")
        .await;
    crate::forward::deliveries_until(&server, &null, |d| d["state"] == "failed").await;

    let mut client = Client::connect(&server.smtp).await;
    let id = client
        .send_mail(
            "alice@sender.test",
            "sales@acme.test",
            b"Subject: quarterly figures\r\nFrom: Alice <alice@sender.test>\r\n\r\nthe figures\r\n",
        )
        .await;
    let [dsn] = exactly(&senders, 1).await.try_into().unwrap();
    assert_eq!(dsn.sender, "", "a DSN comes from the null sender");
    assert_eq!(dsn.recipients, ["alice@sender.test"]);
    let text = String::from_utf8(dsn.data).unwrap();
    for expected in [
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Final-Recipient: rfc822; bob@gmail.test",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 <bob@gmail.test>: user unknown",
        &format!("X-Mailfwd-Email-ID: {id}"),
        "Subject: quarterly figures",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(
        !text.contains("the figures\r\n"),
        "only the headers are returned"
    );
    assert!(!text.contains("from nobody"));
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("mailfwd_dsn_total{outcome=\"sent\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mailfwd_dsn_total{outcome=\"not_due\"} 1"));
}

#[tokio::test]
async fn postmaster_is_accepted_with_or_without_a_domain_and_delivered_to_the_configured_mailbox() {
    let destination = Sink::start(Options::destination()).await;
    let senders = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = start(
        data.path(),
        &destination,
        &senders,
        &[("MAILFWD_POSTMASTER", "admin@sender.test")],
    );
    server
        .create_rule("sales@acme.test", json!("bob@gmail.test"))
        .await;

    let mut client = Client::connect(&server.smtp).await;
    client.ehlo().await;
    client.cmd("MAIL FROM:<someone@example.org>", 250).await;
    client.cmd("RCPT TO:<Postmaster>", 250).await;
    client.cmd("RCPT TO:<postmaster@acme.test>", 250).await;
    client.cmd("RCPT TO:<postmaster@mx.fwd.test>", 250).await;
    let refused = client.command("RCPT TO:<postmaster@elsewhere.test>").await;
    assert_eq!(refused.code, 550, "{refused:?}");
    let done = client
        .data(b"Subject: abuse report\r\n\r\nx\r\n.\r\n")
        .await;
    assert_eq!(done.code, 250);
    let [message] = exactly(&senders, 1).await.try_into().unwrap();
    assert_eq!(message.recipients, ["admin@sender.test"]);
    assert!(message.sender.starts_with("SRS0="), "{}", message.sender);
    assert!(destination.received().is_empty());
}

#[tokio::test]
async fn a_delivery_given_up_on_after_the_retry_period_is_reported_once() {
    let destination = Sink::start(Options::destination()).await;
    destination.set_mode(mailfwd_testkit::sink::Mode::TempFail);
    let senders = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = start(
        data.path(),
        &destination,
        &senders,
        &[
            ("MAILFWD_RETRY_SCHEDULE", "1s"),
            ("MAILFWD_RETRY_EVERY", "1s"),
            ("MAILFWD_RETRY_GIVE_UP", "3s"),
        ],
    );
    server
        .create_rule("sales@acme.test", json!("bob@gmail.test"))
        .await;
    let mut client = Client::connect(&server.smtp).await;
    client
        .send_mail(
            "alice@sender.test",
            "sales@acme.test",
            b"Subject: late\r\n\r\nx\r\n",
        )
        .await;
    let [dsn] = exactly(&senders, 1).await.try_into().unwrap();
    assert_eq!(
        (dsn.sender.as_str(), dsn.recipients.as_slice()),
        ("", &["alice@sender.test".to_owned()][..])
    );
    let text = String::from_utf8(dsn.data).unwrap();
    assert!(text.contains("Action: failed\r\nStatus: 4."), "{text}");
    assert!(text.contains("gave up after"), "{text}");
    assert!(destination.received().is_empty());
}
