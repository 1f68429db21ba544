//! `ObjectBodyStore` on a local directory and on a real S3-protocol server (s3s-fs,
//! in process, from the test kit): the `BodyStore` contract on both, plus what each
//! leaves on disk, how S3 failures surface, and how orphan bodies are swept.

mod faults;
mod local;
mod orphans;
mod s3;
mod urls;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use mailfwd_domain::email::BodyReader;

/// A fresh, empty, not yet existing directory under `target/tmp` for one test.
pub fn fresh_dir(kind: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("s3-{kind}-{}", std::process::id()))
        .join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Everything a reader yields.
pub async fn read_all(mut reader: Box<dyn BodyReader>) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.expect("read a chunk") {
        body.extend_from_slice(&chunk);
    }
    body
}

/// `len` bytes that differ from one position and one seed to the next.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// The names in `dir`, sorted; empty if it does not exist.
pub fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| {
                    e.expect("a directory entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The files under `dir`, at any depth, as paths relative to it, sorted; empty if it
/// does not exist. Directories left empty do not count: S3 has none.
pub fn files_under(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                let relative = path.strip_prefix(root).expect("under the root");
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}
