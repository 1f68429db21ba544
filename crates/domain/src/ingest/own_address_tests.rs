//! The recipient policy for mailfwd's own addresses: SRS bounce addresses and
//! postmaster.

use std::sync::Arc;

use super::tests::{addr, origin, service};
use super::*;

/// `service` answering for mailfwd's own addresses too: SRS at `fwd.test`, host name
/// `mx.fwd.test`.
async fn with_own_addresses() -> (Ingest, Arc<crate::OwnAddresses>) {
    let (ingest, _) = service(IngestLimits::default()).await;
    let srs = crate::Srs::new(
        crate::Domain::parse("fwd.test").unwrap(),
        vec!["secret".into()],
        21,
    )
    .unwrap();
    let own = Arc::new(crate::OwnAddresses::new(
        srs,
        crate::Domain::parse("mx.fwd.test").unwrap(),
        None,
    ));
    (ingest.with_own_addresses(Arc::clone(&own)), own)
}

#[tokio::test]
async fn bounces_are_accepted_only_for_srs_addresses_that_verify_and_have_not_expired() {
    let (ingest, own) = with_own_addresses().await;
    let now = std::time::SystemTime::now();
    let alice = addr("alice@sender.test");
    let fresh = own.srs().forward(Some(&alice), now).unwrap();
    let mut tx = ingest.begin(None, origin()).await.unwrap();
    assert_eq!(
        tx.add_recipient(&fresh).await.unwrap(),
        RecipientAdded::Accepted
    );

    let day = std::time::Duration::from_secs(86_400);
    let expired = own.srs().forward(Some(&alice), now - day * 30).unwrap();
    // One character of the hash changed.
    let text = fresh.to_string();
    let flipped = if &text[5..6] == "a" { "b" } else { "a" };
    let forged =
        EmailAddress::parse_rewritten(&format!("{}{flipped}{}", &text[..5], &text[6..])).unwrap();
    let malformed = EmailAddress::parse("SRS0=nothing@fwd.test").unwrap();
    for (bad, expected) in [
        (expired, "expired"),
        (forged, "forged"),
        (malformed, "malformed"),
    ] {
        let error = tx.add_recipient(&bad).await.unwrap_err();
        assert!(
            matches!(error, IngestError::BadSrsAddress(_)),
            "{bad}: {error:?}"
        );
        assert!(error.to_string().contains(expected), "{error}");
    }
    assert_eq!(tx.recipients(), [fresh]);
}

#[tokio::test]
async fn postmaster_is_accepted_for_our_names_and_the_domains_we_receive_for() {
    let (ingest, own) = with_own_addresses().await;
    for accepted in [
        own.bare_postmaster(),
        addr("PostMaster@mx.fwd.test"),
        addr("postmaster@fwd.test"),
        addr("postmaster@acme.test"),
    ] {
        let mut tx = ingest.begin(None, origin()).await.unwrap();
        assert_eq!(
            tx.add_recipient(&accepted).await.unwrap(),
            RecipientAdded::Accepted,
            "{accepted}"
        );
    }
    let mut tx = ingest.begin(None, origin()).await.unwrap();
    assert!(matches!(
        tx.add_recipient(&addr("postmaster@elsewhere.test")).await,
        Err(IngestError::UnknownRecipient(_))
    ));
    // Without its own addresses, ingest takes what the rules match and nothing else.
    let (plain, _) = service(IngestLimits::default()).await;
    let mut tx = plain.begin(None, origin()).await.unwrap();
    assert!(
        tx.add_recipient(&addr("postmaster@acme.test"))
            .await
            .is_err()
    );
    assert_eq!(plain.bare_postmaster(), None);
}
