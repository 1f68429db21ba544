//! The `DeliveryQueue` contract suite on a fresh SQLite file per test.

use std::sync::atomic::{AtomicUsize, Ordering};

use mailfwd_domain::delivery_queue_contract_tests;
use mailfwd_sqlite::SqliteDeliveryQueue;

async fn fresh_queue() -> SqliteDeliveryQueue {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("queue-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the test directory under target/tmp");
    let file = dir.join(format!("{}.db", NEXT.fetch_add(1, Ordering::Relaxed)));
    let pool = mailfwd_sqlite::connect(&format!("sqlite://{}", file.display()))
        .await
        .expect("open a fresh database");
    SqliteDeliveryQueue::new(pool)
}

delivery_queue_contract_tests!(fresh_queue());
