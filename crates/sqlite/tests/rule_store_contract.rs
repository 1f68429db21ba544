//! The `RuleStore` contract suite on a fresh SQLite file per test.

use std::sync::atomic::{AtomicUsize, Ordering};

use mailfwd_domain::rule_store_contract_tests;
use mailfwd_sqlite::SqliteRuleStore;

async fn fresh_store() -> SqliteRuleStore {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rules-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the test directory under target/tmp");
    let file = dir.join(format!("{}.db", NEXT.fetch_add(1, Ordering::Relaxed)));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    SqliteRuleStore::connect(&format!("sqlite://{}", file.display()))
        .await
        .expect("open a fresh database")
}

rule_store_contract_tests!(fresh_store());
