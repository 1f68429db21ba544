//! How far a migration got: the id up to which every body is done, in a small file in
//! the data directory, one per (from, to) pair, replaced atomically.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailfwd_domain::EmailId;

/// Written at most this often while the migration runs (and once at the end): a run
/// killed in between redoes at most this much, checking rather than copying.
const EVERY: Duration = Duration::from_secs(1);

/// The checkpoint of one migration.
pub(super) struct Checkpoint {
    path: PathBuf,
    done: Option<EmailId>,
    written: Option<EmailId>,
    last_write: Instant,
}

impl Checkpoint {
    /// The checkpoint of the migration from `from` to `to`, as an earlier run left it.
    pub(super) fn open(
        data_dir: &Path,
        from: &str,
        to: &str,
        delete_source: bool,
    ) -> std::io::Result<Checkpoint> {
        let dir = data_dir.join("migrate-emails");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.done", key(from, to, delete_source)));
        let done = match std::fs::read_to_string(&path) {
            Ok(text) => Some(EmailId::parse(text.trim()).map_err(|_| {
                std::io::Error::other(format!(
                    "the checkpoint {} does not hold an email id; delete it to start over",
                    path.display()
                ))
            })?),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        Ok(Checkpoint {
            path,
            done,
            written: done,
            last_write: Instant::now(),
        })
    }

    /// The id up to which (inclusive) every body is done; `None` to start at the first.
    pub(super) fn done_up_to(&self) -> Option<EmailId> {
        self.done
    }

    /// Every body up to `id` is done.
    pub(super) fn done(&mut self, id: EmailId) -> std::io::Result<()> {
        self.done = Some(id);
        if self.last_write.elapsed() >= EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the checkpoint now (if it moved).
    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        let Some(done) = self.done.filter(|done| Some(*done) != self.written) else {
            return Ok(());
        };
        let staged = self.path.with_extension("tmp");
        std::fs::write(&staged, format!("{done}\n"))?;
        std::fs::rename(&staged, &self.path)?;
        self.written = Some(done);
        self.last_write = Instant::now();
        Ok(())
    }
}

/// The checkpoint's name: a hash of everything a resumed run must share with the one
/// that wrote it, so two migrations never share a checkpoint (URLs that differ only in
/// characters a file name cannot hold, or a run with `--delete-source` after one
/// without, which must revisit every email to delete its source).
fn key(from: &str, to: &str, delete_source: bool) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{from}\n{to}\n{delete_source}"));
    digest
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
