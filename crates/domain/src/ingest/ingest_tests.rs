use std::sync::Arc;

use super::*;
use crate::email::{Envelope, SplitEmailStore};
use crate::memory::{MemoryBodyStore, MemoryEmailLog, MemoryRuleStore};
use crate::{RecipientPattern, Rule};

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

async fn service(limits: IngestLimits) -> (Ingest, Arc<dyn EmailStore>) {
    let rules = Arc::new(MemoryRuleStore::new());
    let rule = Rule::new(
        RecipientPattern::parse("sales@acme.test").unwrap(),
        vec![addr("a@b.test")],
        10,
    )
    .unwrap();
    rules.create(rule).await.unwrap();
    let emails: Arc<dyn EmailStore> = Arc::new(SplitEmailStore::new(
        Arc::new(MemoryBodyStore::new()),
        Arc::new(MemoryEmailLog::new()),
    ));
    (Ingest::new(rules, Arc::clone(&emails), limits), emails)
}

fn new_email() -> NewEmail {
    NewEmail {
        envelope: Envelope {
            sender: None,
            recipients: vec![addr("sales@acme.test")],
        },
        peer: Some("192.0.2.1:1234".into()),
        helo: Some("client.test".into()),
        tls: false,
    }
}

#[tokio::test]
async fn recipients_must_have_a_rule_and_be_few_enough() {
    let (ingest, _) = service(IngestLimits {
        max_recipients: 2,
        ..IngestLimits::default()
    })
    .await;
    assert!(
        ingest
            .check_recipient(&addr("sales@acme.test"), 0)
            .await
            .is_ok()
    );
    assert!(
        ingest
            .check_recipient(&addr("Sales+x@ACME.test"), 1)
            .await
            .is_ok()
    );
    assert!(matches!(
        ingest.check_recipient(&addr("nobody@acme.test"), 0).await,
        Err(IngestError::UnknownRecipient(a)) if a == addr("nobody@acme.test")
    ));
    assert!(matches!(
        ingest.check_recipient(&addr("sales@acme.test"), 2).await,
        Err(IngestError::TooManyRecipients(2))
    ));
}

#[tokio::test]
async fn an_accepted_email_is_stored_byte_for_byte_with_its_record() {
    let (ingest, emails) = service(IngestLimits::default()).await;
    let mut incoming = ingest.begin().await.unwrap();
    incoming.write(b"Subject: hi\r\n\r\n").await.unwrap();
    incoming.write(b"body\r\n").await.unwrap();
    let received = incoming.commit(new_email()).await.unwrap();
    assert_eq!(received.size, 21);
    assert_eq!(emails.get(&received.id).await.unwrap(), received);
    let mut body = emails.open_body(&received.id).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next_chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    assert_eq!(bytes, b"Subject: hi\r\n\r\nbody\r\n");
}

#[tokio::test]
async fn size_and_loop_limits_stop_the_body() {
    let (ingest, emails) = service(IngestLimits {
        max_message_size: 10,
        ..IngestLimits::default()
    })
    .await;
    let mut incoming = ingest.begin().await.unwrap();
    incoming.write(b"0123456789").await.unwrap();
    assert!(matches!(
        incoming.write(b"x").await,
        Err(IngestError::TooLarge(10))
    ));
    let id = incoming.id();
    incoming.abort().await;
    assert!(matches!(
        emails.get(&id).await,
        Err(StoreError::NotFound(_))
    ));

    let (ingest, _) = service(IngestLimits {
        max_received_headers: 2,
        ..IngestLimits::default()
    })
    .await;
    let mut incoming = ingest.begin().await.unwrap();
    let looped = incoming
        .write(b"Received: a\r\nReceived: b\r\nReceived: c\r\n\r\n")
        .await;
    assert!(matches!(looped, Err(IngestError::MailLoop(2))));
}
