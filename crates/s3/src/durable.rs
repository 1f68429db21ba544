//! Making local bodies durable.
//!
//! A body is published by renaming its staging file into place. It survives a crash only
//! if its data was synced before the rename, the directory holding it was synced after,
//! and every directory on the way up is durably linked into its parent. `LocalFileSystem`
//! with `with_fsync(true)` (what `from_url` opens) does the first two, and syncs the
//! directories it creates itself; but a day directory created a moment earlier by
//! another writer may not be linked durably yet. [`LocalDisk`] closes that gap: after a
//! commit it walks up from the body's directory, syncing each parent whose child is not
//! yet known to be durable, so `commit` never returns before the whole path would
//! survive a power cut. For a store that does not sync (one given to
//! [`crate::ObjectBodyStore::new`]), it also syncs the file and its directory, after the
//! rename: slower and weaker (a crash in between may leave a torn body without a record,
//! never a record without its body), but durable when `commit` returns.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The directory a local object store keeps its objects in, and which of its
/// subdirectories are known to be durably linked into their parents.
#[derive(Debug)]
pub(crate) struct LocalDisk {
    root: PathBuf,
    store_syncs: bool,
    durable_dirs: Mutex<HashSet<PathBuf>>,
}

impl LocalDisk {
    /// The disk under `root`, the directory the store's keys are relative to.
    /// `store_syncs` says the store already syncs each file before publishing it and
    /// its directory after (`LocalFileSystem::with_fsync(true)`).
    pub(crate) fn new(root: PathBuf, store_syncs: bool) -> Self {
        LocalDisk {
            root,
            store_syncs,
            durable_dirs: Mutex::new(HashSet::new()),
        }
    }

    /// Where the object `key` is on disk.
    pub(crate) fn path_of(&self, key: &object_store::path::Path) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.parts().map(|part| part.as_ref().to_owned()));
        path
    }

    /// Makes the published `file` durable: its data and directory (unless the store did),
    /// and every ancestor up to the root whose entry is not yet known to be durable.
    /// Runs on the blocking pool.
    pub(crate) async fn make_durable(self: &Arc<Self>, file: PathBuf) -> io::Result<()> {
        let disk = Arc::clone(self);
        tokio::task::spawn_blocking(move || disk.sync_path(&file))
            .await
            .map_err(io::Error::other)?
    }

    fn sync_path(&self, file: &Path) -> io::Result<()> {
        let Some(mut dir) = file.parent() else {
            return Ok(());
        };
        if !self.store_syncs {
            File::open(file)?.sync_all()?;
            sync_dir(dir)?;
        }
        // `dir`'s own entry lives in its parent: sync that unless it is known durable.
        // The root's entry was made durable when the store was opened.
        while dir != self.root && !self.is_durable(dir) {
            let Some(parent) = dir.parent() else { break };
            sync_dir(parent)?;
            self.mark_durable(dir);
            dir = parent;
        }
        Ok(())
    }

    fn is_durable(&self, dir: &Path) -> bool {
        self.durable_dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(dir)
    }

    fn mark_durable(&self, dir: &Path) {
        self.durable_dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dir.to_owned());
    }
}

/// Creates `dir` and any missing ancestors, durably, and returns its canonical path.
pub(crate) fn create_root(dir: &Path) -> io::Result<PathBuf> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .collect();
    std::fs::create_dir_all(dir)?;
    for created in missing {
        match created.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent)?,
            _ => sync_dir(Path::new("."))?,
        }
    }
    dir.canonicalize()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
