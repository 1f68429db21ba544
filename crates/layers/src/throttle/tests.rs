//! The layer's promises, over the in-memory stores: rates per client and overall,
//! bodies slowed to the byte rates (refused only when a chunk would wait minutes, with
//! nothing kept), load shed and taken up again by itself.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use mailfwd_domain::EmailAddress;
use mailfwd_domain::email::{Envelope, NewEmail, SplitEmailStore};
use mailfwd_domain::memory::{MemoryBodyStore, MemoryDeliveryQueue, MemoryEmailLog};

use super::*;

fn memory_store() -> Arc<dyn EmailStore> {
    Arc::new(SplitEmailStore::new(
        Arc::new(MemoryBodyStore::new()),
        Arc::new(MemoryEmailLog::new()),
    ))
}

fn peer(last: u8) -> Client {
    Client::Peer(std::net::IpAddr::from([127, 0, 0, last]))
}

fn new_email() -> NewEmail {
    NewEmail {
        envelope: Envelope {
            sender: None,
            recipients: vec![EmailAddress::parse("to@acme.test").unwrap()],
        },
        peer: None,
        helo: None,
        tls: false,
        encoding: Default::default(),
    }
}

fn retry_after(result: Result<(), StoreError>) -> Duration {
    match result {
        Err(StoreError::Overloaded { retry_after }) => retry_after,
        other => panic!("expected Overloaded, got {other:?}"),
    }
}

#[tokio::test]
async fn the_default_limits_nothing() {
    let store = ThrottledEmailStore::new(memory_store(), &ThrottleConfig::default());
    for _ in 0..1000 {
        store.admit(&peer(1)).await.unwrap();
    }
    assert_eq!(store.shedding().await, None);
}

#[tokio::test]
async fn one_client_over_its_rate_is_told_to_wait_while_another_is_served() {
    let config = ThrottleConfig {
        client_messages_per_second: Some(2),
        ..ThrottleConfig::default()
    };
    let store = ThrottledEmailStore::new(memory_store(), &config);
    store.admit(&peer(1)).await.unwrap();
    store.admit(&peer(1)).await.unwrap();
    let wait = retry_after(store.admit(&peer(1)).await);
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    store.admit(&peer(2)).await.unwrap();
    // mailfwd's own mail (bounces) is never throttled.
    for _ in 0..10 {
        store.admit(&Client::Internal).await.unwrap();
    }
}

#[tokio::test]
async fn the_global_rate_counts_every_client() {
    let config = ThrottleConfig {
        messages_per_second: Some(3),
        ..ThrottleConfig::default()
    };
    let store = ThrottledEmailStore::new(memory_store(), &config);
    for last in 1..=3 {
        store.admit(&peer(last)).await.unwrap();
    }
    retry_after(store.admit(&peer(4)).await);
}

#[tokio::test]
async fn a_body_over_the_byte_rate_is_slowed_to_it_while_another_client_is_served() {
    let config = ThrottleConfig {
        client_bytes_per_second: Some(1000),
        ..ThrottleConfig::default()
    };
    let inner = memory_store();
    let store = ThrottledEmailStore::new(Arc::clone(&inner), &config);
    let started = Instant::now();
    let mut writer = store.begin_for(&peer(1)).await.unwrap();
    for _ in 0..3 {
        writer.write(&[b'a'; 600]).await.unwrap();
    }
    let received = writer.commit(new_email()).await.unwrap();
    let took = started.elapsed();
    // A second's worth at once, the other 800 bytes at 1,000 a second.
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert_eq!(inner.get(&received.id).await.unwrap().size, 1800);

    // Another client is not slowed by the first one's rate.
    let started = Instant::now();
    let mut writer = store.begin_for(&peer(2)).await.unwrap();
    writer.write(&[b'b'; 900]).await.unwrap();
    let received = writer.commit(new_email()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(inner.get(&received.id).await.unwrap().size, 900);
}

#[tokio::test]
async fn a_chunk_that_would_wait_minutes_is_refused_at_once_and_nothing_is_kept() {
    let config = ThrottleConfig {
        bytes_per_second: Some(100),
        ..ThrottleConfig::default()
    };
    let inner = memory_store();
    let store = ThrottledEmailStore::new(Arc::clone(&inner), &config);
    let started = Instant::now();
    let mut writer = store.begin_for(&peer(1)).await.unwrap();
    // 200 s at 100 bytes a second: more than the two minutes a chunk may wait.
    let refused = writer.write(&[b'a'; 20_000]).await;
    assert!(
        matches!(refused, Err(StoreError::Overloaded { .. })),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "refused at once"
    );
    let id = writer.id();
    writer.abort().await;
    assert!(matches!(inner.get(&id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(
        inner.open_body(&id).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A disk whose free space the test sets.
struct FakeDisk(AtomicU64);

impl FreeSpace for FakeDisk {
    fn free_bytes(&self) -> std::io::Result<u64> {
        Ok(self.0.load(Ordering::SeqCst))
    }
}

#[tokio::test]
async fn new_mail_is_refused_under_the_disk_floor_and_taken_again_when_space_frees() {
    let disk = Arc::new(FakeDisk(AtomicU64::new(500)));
    let inner = memory_store();
    let store = ThrottledEmailStore::new(Arc::clone(&inner), &ThrottleConfig::default())
        .with_disk_floor(Arc::clone(&disk) as Arc<dyn FreeSpace>, 1000)
        .with_check_interval(Duration::from_millis(20));
    // Accepted before: still readable while the store sheds.
    let mut writer = inner.begin().await.unwrap();
    writer.write(b"kept").await.unwrap();
    let kept = writer.commit(new_email()).await.unwrap();

    let full = Shedding::DiskFull {
        free: 500,
        floor: 1000,
    };
    let refused = store.admit(&peer(1)).await;
    assert!(matches!(refused, Err(StoreError::InsufficientStorage(why)) if why == full));
    assert!(matches!(
        store.begin_for(&peer(1)).await.err(),
        Some(StoreError::InsufficientStorage(_))
    ));
    assert_eq!(store.shedding().await, Some(full));
    assert_eq!(store.get(&kept.id).await.unwrap().size, 4);
    assert!(store.open_body(&kept.id).await.is_ok());
    store.admit(&Client::Internal).await.unwrap();

    disk.0.store(5000, Ordering::SeqCst);
    // The cached verdict holds until the next measurement.
    tokio::time::sleep(Duration::from_millis(30)).await;
    store.admit(&peer(1)).await.unwrap();
    assert_eq!(store.shedding().await, None);
}

#[tokio::test]
async fn bodies_written_since_the_last_measurement_count_against_the_floor() {
    let disk = Arc::new(FakeDisk(AtomicU64::new(5000)));
    let store = ThrottledEmailStore::new(memory_store(), &ThrottleConfig::default())
        .with_disk_floor(Arc::clone(&disk) as Arc<dyn FreeSpace>, 1000)
        .with_check_interval(Duration::from_millis(200));
    store.admit(&peer(1)).await.unwrap();
    let mut writer = store.begin_for(&peer(1)).await.unwrap();
    writer.write(&[b'x'; 4500]).await.unwrap();
    writer.commit(new_email()).await.unwrap();

    // The disk was measured at 5,000 bytes free less than a second ago; 4,500 have been
    // written since. (The fake disk does not see them: only the estimate does.)
    let estimated = Shedding::DiskFull {
        free: 500,
        floor: 1000,
    };
    let refused = store.admit(&peer(2)).await;
    assert!(matches!(refused, Err(StoreError::InsufficientStorage(why)) if why == estimated));

    // The next measurement decides: here the space is still there.
    tokio::time::sleep(Duration::from_millis(250)).await;
    store.admit(&peer(2)).await.unwrap();
}

#[tokio::test]
async fn new_mail_is_refused_while_the_backlog_is_over_its_maximum() {
    let queue = Arc::new(MemoryDeliveryQueue::new());
    let store = ThrottledEmailStore::new(memory_store(), &ThrottleConfig::default())
        .with_max_backlog(Arc::clone(&queue) as Arc<dyn DeliveryQueue>, 1)
        .with_check_interval(Duration::ZERO);
    store.admit(&peer(1)).await.unwrap();
    let destinations = [
        EmailAddress::parse("a@dest.test").unwrap(),
        EmailAddress::parse("b@dest.test").unwrap(),
    ];
    let now = SystemTime::now();
    queue
        .enqueue(EmailId::new(), &destinations, false, now)
        .await
        .unwrap();
    let refused = store.admit(&peer(1)).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::InsufficientStorage(Shedding::Backlog {
                pending: 2,
                max: 1
            }))
        ),
        "{refused:?}"
    );
}
