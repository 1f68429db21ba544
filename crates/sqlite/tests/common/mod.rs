//! A fresh SQLite database per test, under target/tmp (removed with `cargo clean`).

use std::sync::atomic::{AtomicUsize, Ordering};

/// The URL of a database file no other test uses, with any leftovers of an earlier run
/// of the same process id removed.
pub fn fresh_url(suite: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{suite}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the test directory under target/tmp");
    let file = dir.join(format!("{}.db", NEXT.fetch_add(1, Ordering::Relaxed)));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    format!("sqlite://{}", file.display())
}
