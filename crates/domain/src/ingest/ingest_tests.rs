use std::sync::Arc;

use super::*;
use crate::email::SplitEmailStore;
use crate::memory::{MemoryBodyStore, MemoryEmailLog, MemoryRuleStore};
use crate::message::BareLineEndings;
use crate::{RecipientPattern, Rule};

pub(super) fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

pub(super) async fn service(limits: IngestLimits) -> (Ingest, Arc<dyn EmailStore>) {
    let rules = Arc::new(MemoryRuleStore::new());
    for pattern in ["sales@acme.test", "info@acme.test"] {
        let rule = Rule::new(
            RecipientPattern::parse(pattern).unwrap(),
            vec![addr("a@b.test")],
            10,
        )
        .unwrap();
        rules.create(rule).await.unwrap();
    }
    let emails: Arc<dyn EmailStore> = Arc::new(SplitEmailStore::new(
        Arc::new(MemoryBodyStore::new()),
        Arc::new(MemoryEmailLog::new()),
    ));
    (Ingest::new(rules, Arc::clone(&emails), limits), emails)
}

pub(super) fn origin() -> Origin {
    Origin {
        peer: Some("192.0.2.1:1234".into()),
        helo: Some("client.test".into()),
        tls: true,
        declared: crate::Encoding::default(),
        client: crate::email::Client::from_peer("192.0.2.1:1234"),
    }
}

async fn body(emails: &Arc<dyn EmailStore>, id: &crate::EmailId) -> Vec<u8> {
    let mut body = emails.open_body(id).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next_chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// A transaction to `sales@acme.test` with its body started.
async fn started(ingest: &Ingest) -> Incoming {
    let mut tx = ingest.begin(None, origin()).await.unwrap();
    tx.add_recipient(&addr("sales@acme.test")).await.unwrap();
    let Ok(addressed) = tx.addressed() else {
        panic!("a recipient was accepted")
    };
    addressed.start_body().await.ok().unwrap()
}

#[tokio::test]
async fn the_recipient_policy_refuses_relays_and_strangers_and_merges_duplicates() {
    let (ingest, _) = service(IngestLimits {
        max_recipients: 2,
        ..IngestLimits::default()
    })
    .await;
    let mut tx = ingest
        .begin(Some(addr("x@y.test")), origin())
        .await
        .unwrap();
    for relay in [
        "x%victim.test@acme.test",
        "victim.test!x@acme.test",
        "\"x@victim.test\"@acme.test",
    ] {
        assert!(
            matches!(tx.add_recipient(&addr(relay)).await, Err(IngestError::RelayDenied(r)) if r == relay),
            "{relay}"
        );
    }
    assert!(matches!(
        tx.add_recipient(&addr("nobody@acme.test")).await,
        Err(IngestError::UnknownRecipient(a)) if a == addr("nobody@acme.test")
    ));
    assert!(matches!(
        tx.add_recipient(&addr("sales@acme.test")).await,
        Ok(RecipientAdded::Accepted)
    ));
    assert!(matches!(
        tx.add_recipient(&addr("Sales@ACME.test")).await,
        Ok(RecipientAdded::Duplicate)
    ));
    assert!(matches!(
        tx.add_recipient(&addr("info@acme.test")).await,
        Ok(RecipientAdded::Accepted)
    ));
    // At the limit a duplicate is still answered OK; a new recipient is not.
    assert!(matches!(
        tx.add_recipient(&addr("info@acme.test")).await,
        Ok(RecipientAdded::Duplicate)
    ));
    assert!(matches!(
        tx.add_recipient(&addr("sales+x@acme.test")).await,
        Err(IngestError::TooManyRecipients(2))
    ));
    assert_eq!(
        tx.recipients(),
        [addr("sales@acme.test"), addr("info@acme.test")]
    );
}

#[tokio::test]
async fn no_body_without_a_recipient() {
    let (ingest, _) = service(IngestLimits::default()).await;
    let mut tx = ingest.begin(None, origin()).await.unwrap();
    assert!(tx.add_recipient(&addr("nobody@acme.test")).await.is_err());
    let Err(mut tx) = tx.addressed() else {
        panic!("no recipient was accepted")
    };
    tx.add_recipient(&addr("sales@acme.test")).await.unwrap();
    assert!(tx.addressed().is_ok());
}

#[tokio::test]
async fn an_accepted_email_is_stored_byte_for_byte_with_the_record_the_transaction_built() {
    let (ingest, emails) = service(IngestLimits::default()).await;
    let mut tx = ingest
        .begin(Some(addr("from@x.test")), origin())
        .await
        .unwrap();
    tx.add_recipient(&addr("sales@acme.test")).await.unwrap();
    tx.add_recipient(&addr("SALES@acme.test")).await.unwrap();
    let Ok(addressed) = tx.addressed() else {
        panic!("addressed")
    };
    let mut incoming = addressed.start_body().await.ok().unwrap();
    incoming.write(b"Subject: hi\r\n\r\n").await.unwrap();
    incoming.write(b"body\r\n").await.unwrap();
    let received = incoming.commit().await.unwrap();
    assert_eq!(received.size, 21);
    assert_eq!(
        received.email.envelope.recipients,
        [addr("sales@acme.test")]
    );
    assert_eq!(received.email.envelope.sender, Some(addr("from@x.test")));
    assert_eq!(received.email.peer.as_deref(), Some("192.0.2.1:1234"));
    assert_eq!(received.email.helo.as_deref(), Some("client.test"));
    assert!(received.email.tls);
    assert_eq!(emails.get(&received.id).await.unwrap(), received);
    assert_eq!(
        body(&emails, &received.id).await,
        b"Subject: hi\r\n\r\nbody\r\n"
    );
}

#[tokio::test]
async fn an_empty_body_is_refused_at_commit_and_nothing_is_kept() {
    let (ingest, emails) = service(IngestLimits::default()).await;
    let mut incoming = started(&ingest).await;
    incoming.write(b"").await.unwrap();
    let id = incoming.id();
    assert!(matches!(
        incoming.commit().await,
        Err(IngestError::EmptyMessage)
    ));
    assert!(matches!(
        emails.get(&id).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_message_policy_applies_to_every_chunk() {
    let (ingest, _) = service(IngestLimits::default()).await;
    let mut incoming = started(&ingest).await;
    incoming.write(b"Subject: x\r\n\r\nfine\r").await.unwrap();
    let refused = incoming.write(b"\nthen\n").await;
    assert!(matches!(
        refused,
        Err(IngestError::Message(MessageError::BareLf(24)))
    ));
    incoming.abort().await;

    let mut incoming = started(&ingest).await;
    incoming.write(b"a\r\nb\r").await.unwrap();
    assert!(matches!(
        incoming.commit().await,
        Err(IngestError::Message(MessageError::BareCr(4)))
    ));

    let (ingest, emails) = service(IngestLimits {
        message: MessagePolicy {
            max_size: 10,
            ..MessagePolicy::default()
        },
        ..IngestLimits::default()
    })
    .await;
    let mut incoming = started(&ingest).await;
    incoming.write(b"0123456789").await.unwrap();
    assert!(matches!(
        incoming.write(b"x").await,
        Err(IngestError::Message(MessageError::TooLarge(10)))
    ));
    let id = incoming.id();
    incoming.abort().await;
    assert!(matches!(
        emails.get(&id).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn normalize_stores_a_bare_lf_body_with_crlf() {
    let (ingest, emails) = service(IngestLimits {
        message: MessagePolicy {
            bare_line_endings: BareLineEndings::Normalize,
            ..MessagePolicy::default()
        },
        ..IngestLimits::default()
    })
    .await;
    let mut incoming = started(&ingest).await;
    incoming.write(b"Subject: x\n\nline\n.\n").await.unwrap();
    let received = incoming.commit().await.unwrap();
    let stored = b"Subject: x\r\n\r\nline\r\n.\r\n";
    assert_eq!(received.size, stored.len() as u64);
    assert_eq!(body(&emails, &received.id).await, stored);
}

/// Sends `message` through a fresh transaction in pieces cut at `cuts`: the stored
/// bytes, or the refusal in words.
async fn ingest_in_pieces(
    ingest: &Ingest,
    emails: &Arc<dyn EmailStore>,
    message: &[u8],
    cuts: &[usize],
) -> Result<Vec<u8>, String> {
    let mut incoming = started(ingest).await;
    let mut ends: Vec<usize> = cuts.iter().map(|&cut| cut.min(message.len())).collect();
    ends.sort_unstable();
    ends.push(message.len());
    let mut start = 0;
    for end in ends {
        if let Err(error) = incoming.write(&message[start..end]).await {
            incoming.abort().await;
            return Err(error.to_string());
        }
        start = end;
    }
    let received = incoming.commit().await.map_err(|e| e.to_string())?;
    Ok(body(emails, &received.id).await)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn where_the_body_is_cut_changes_neither_the_verdict_nor_the_stored_bytes(
        message in proptest::collection::vec(
            proptest::sample::select(b"Received: x\r\n\0ab".to_vec()), 0..200),
        cuts in proptest::collection::vec(0usize..200, 0..5),
        normalize in proptest::prelude::any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (whole, pieces) = runtime.block_on(async {
            let mode = if normalize { BareLineEndings::Normalize } else { BareLineEndings::Reject };
            let (ingest, emails) = service(IngestLimits {
                message: MessagePolicy {
                    bare_line_endings: mode,
                    max_received_headers: 3,
                    max_header_field_size: 30,
                    max_size: 150,
                    ..MessagePolicy::default()
                },
                ..IngestLimits::default()
            })
            .await;
            (
                ingest_in_pieces(&ingest, &emails, &message, &[]).await,
                ingest_in_pieces(&ingest, &emails, &message, &cuts).await,
            )
        });
        proptest::prop_assert_eq!(whole, pieces);
    }
}

/// Commits `chunks` to sales@acme.test from `sender`, declaring `declared`.
async fn encoding_of(sender: &str, declared: crate::Encoding, chunks: &[&[u8]]) -> crate::Encoding {
    let (ingest, emails) = service(IngestLimits::default()).await;
    let origin = Origin {
        declared,
        ..origin()
    };
    let mut tx = ingest.begin(Some(addr(sender)), origin).await.unwrap();
    tx.add_recipient(&addr("sales@acme.test")).await.unwrap();
    let Ok(addressed) = tx.addressed() else {
        panic!("addressed")
    };
    let mut incoming = addressed.start_body().await.ok().unwrap();
    for chunk in chunks {
        incoming.write(chunk).await.unwrap();
    }
    let received = incoming.commit().await.unwrap();
    assert_eq!(
        emails.get(&received.id).await.unwrap(),
        received,
        "stored with it"
    );
    received.email.encoding
}

#[tokio::test]
async fn the_encoding_comes_from_what_was_declared_and_what_the_data_holds() {
    use crate::Encoding;
    let plain = encoding_of(
        "a@x.test",
        Encoding::default(),
        &[b"Subject: a\r\n\r\nb\r\n"],
    )
    .await;
    assert_eq!(plain, Encoding::default());

    // Declared 8BITMIME stays declared, even over 7-bit data.
    let declared = Encoding {
        eight_bit: true,
        ..Encoding::default()
    };
    let result = encoding_of("a@x.test", declared, &[b"Subject: a\r\n\r\nb\r\n"]).await;
    assert_eq!(result, declared);

    // 8-bit octets in the body (even undeclared, as sloppy clients send them), split
    // across chunks; none in the header section.
    let body_only = encoding_of(
        "a@x.test",
        Encoding::default(),
        &[b"Subject: a\r\n\r\nna", "\u{ef}ve\r\n".as_bytes()],
    )
    .await;
    assert_eq!(
        body_only,
        Encoding {
            eight_bit: true,
            ..Encoding::default()
        }
    );

    // UTF-8 in a header field, declared SMTPUTF8.
    let smtputf8 = Encoding {
        smtputf8: true,
        ..Encoding::default()
    };
    let headers = encoding_of(
        "a@x.test",
        smtputf8,
        &["Subject: caf\u{e9}\r\n\r\nb\r\n".as_bytes()],
    )
    .await;
    assert_eq!(
        headers,
        Encoding {
            eight_bit: true,
            smtputf8: true,
            utf8_headers: true,
        }
    );

    // A UTF-8 sender makes it SMTPUTF8 whatever was declared (gRPC declares nothing).
    let utf8_sender = encoding_of(
        "j\u{f6}rg@x.test",
        Encoding::default(),
        &[b"S: a\r\n\r\nb\r\n"],
    )
    .await;
    assert!(utf8_sender.smtputf8 && !utf8_sender.eight_bit);
}
