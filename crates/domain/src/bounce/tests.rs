use std::sync::Arc;

use super::*;
use crate::address::{Domain, EmailAddress};
use crate::email::SplitEmailStore;
use crate::ingest::IngestLimits;
use crate::memory::{MemoryBodyStore, MemoryEmailLog, MemoryRuleStore};
use crate::rule_store::RuleStore;
use crate::srs::Srs;
use crate::{RecipientPattern, Rule};

fn address(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

struct Setup {
    bouncer: Bouncer,
    ingest: Ingest,
    emails: Arc<dyn EmailStore>,
    own: Arc<OwnAddresses>,
}

async fn setup() -> Setup {
    let rules = Arc::new(MemoryRuleStore::new());
    let rule = Rule::new(
        RecipientPattern::parse("sales@acme.test").unwrap(),
        vec![address("bob@gmail.test")],
        10,
    )
    .unwrap();
    rules.create(rule).await.unwrap();
    let emails: Arc<dyn EmailStore> = Arc::new(SplitEmailStore::new(
        Arc::new(MemoryBodyStore::new()),
        Arc::new(MemoryEmailLog::new()),
    ));
    let srs = Srs::new(Domain::parse("fwd.test").unwrap(), vec!["k".into()], 21).unwrap();
    let own = Arc::new(OwnAddresses::new(
        srs,
        Domain::parse("mx.fwd.test").unwrap(),
        None,
    ));
    let ingest = Ingest::new(rules, Arc::clone(&emails), IngestLimits::default())
        .with_own_addresses(Arc::clone(&own));
    let bouncer = Bouncer::new(ingest.clone(), Arc::clone(&emails), Arc::clone(&own), 1000);
    Setup {
        bouncer,
        ingest,
        emails,
        own,
    }
}

/// Receives `message` from `sender` for `recipient` through ingest.
async fn receive(
    ingest: &Ingest,
    sender: Option<&str>,
    recipient: &EmailAddress,
    message: &[u8],
) -> ReceivedEmail {
    let mut tx = ingest
        .begin(sender.map(address), Origin::default())
        .await
        .unwrap();
    tx.add_recipient(recipient).await.unwrap();
    let Ok(addressed) = tx.addressed() else {
        panic!("accepted")
    };
    let mut incoming = addressed.start_body().await.ok().unwrap();
    incoming.write(message).await.unwrap();
    incoming.commit().await.unwrap()
}

async fn body(emails: &Arc<dyn EmailStore>, id: &EmailId) -> String {
    let mut body = emails.open_body(id).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next_chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).unwrap()
}

fn refused() -> Vec<Failure> {
    vec![Failure {
        recipient: address("bob@gmail.test"),
        reason: "550 5.1.1 user unknown".into(),
    }]
}

#[tokio::test]
async fn a_failure_is_reported_to_the_sender_through_its_srs_address() {
    let s = setup().await;
    let original = receive(
        &s.ingest,
        Some("alice@sender.test"),
        &address("sales@acme.test"),
        b"Subject: hi\r\nFrom: alice@sender.test\r\n\r\nbody text\r\n",
    )
    .await;
    let now = SystemTime::now();
    let Bounced::Sent(id) = s.bouncer.bounce(&original, &refused(), now).await.unwrap() else {
        panic!("a notification is due")
    };
    let dsn = s.emails.get(&id).await.unwrap();
    assert_eq!(dsn.email.envelope.sender, None, "from the null sender");
    let [bounce_path] = dsn.email.envelope.recipients.as_slice() else {
        panic!("one recipient")
    };
    assert!(s.own.is_srs_address(bounce_path));
    assert_eq!(
        s.own.bounce_to(bounce_path, now).unwrap(),
        address("alice@sender.test")
    );
    let text = body(&s.emails, &id).await;
    assert!(text.contains("Status: 5.1.1"));
    // The original header section is attached, and not the body.
    assert!(text.contains("Subject: hi\r\nFrom: alice@sender.test\r\n\r\n--"));
    assert!(!text.contains("body text"));
}

#[tokio::test]
async fn no_notification_answers_the_null_sender_or_a_bounce() {
    let s = setup().await;
    let now = SystemTime::now();
    let from_null = receive(&s.ingest, None, &address("sales@acme.test"), b"x\r\n").await;
    assert_eq!(
        s.bouncer.bounce(&from_null, &refused(), now).await.unwrap(),
        Bounced::NotDue("the email had the null sender")
    );
    // A bounce coming back through an SRS address, even one with a sender.
    let bounce_path = s
        .own
        .srs()
        .forward(Some(&address("alice@sender.test")), now)
        .unwrap();
    let bounce = receive(&s.ingest, Some("daemon@gmail.test"), &bounce_path, b"x\r\n").await;
    assert_eq!(
        s.bouncer.bounce(&bounce, &refused(), now).await.unwrap(),
        Bounced::NotDue("the email was itself a bounce")
    );
    // And the notification itself, should it fail, has the null sender.
    let original = receive(
        &s.ingest,
        Some("alice@sender.test"),
        &address("sales@acme.test"),
        b"x\r\n",
    )
    .await;
    let Bounced::Sent(id) = s.bouncer.bounce(&original, &refused(), now).await.unwrap() else {
        panic!("due")
    };
    let dsn = s.emails.get(&id).await.unwrap();
    assert!(matches!(
        s.bouncer.bounce(&dsn, &refused(), now).await.unwrap(),
        Bounced::NotDue(_)
    ));
}

#[tokio::test]
async fn the_attached_headers_are_cut_at_a_line_end_within_the_limit() {
    let s = setup().await;
    let mut message = Vec::new();
    for n in 0..100 {
        message.extend_from_slice(format!("X-Filler-{n:03}: {}\r\n", "y".repeat(30)).as_bytes());
    }
    message.extend_from_slice(b"\r\nbody\r\n");
    let original = receive(
        &s.ingest,
        Some("alice@sender.test"),
        &address("sales@acme.test"),
        &message,
    )
    .await;
    let headers = s.bouncer.header_section(&original.id).await.unwrap();
    assert!(headers.len() <= 1000);
    assert!(headers.ends_with(b"\r\n"));
    assert!(headers.starts_with(b"X-Filler-000: "));
}
