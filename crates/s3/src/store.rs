//! [`ObjectBodyStore`]: the `BodyStore` port on any object store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyReader, BodyStore, BodyWriter, StoreError};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::durable::LocalDisk;
use crate::error::{Step, body_error};
use crate::key::body_key;
use crate::marker::Markers;
use crate::writer::{ObjectBodyWriter, Parts};

/// Parts for a local directory: small, since a part is only a write into the staging
/// file, and each writer holds one part (plus one being written) in memory.
const LOCAL_PARTS: Parts = Parts {
    size: 256 * 1024,
    in_flight: 1,
};

/// Parts for S3: 5 MiB is the smallest part S3 accepts (bar the last); two uploading at
/// once keep the connection busy while the next part fills.
const REMOTE_PARTS: Parts = Parts {
    size: 5 * 1024 * 1024,
    in_flight: 2,
};

/// Email bodies as objects named `<prefix>/YYYY/MM/DD/<id>.eml`, on S3 or in a local
/// directory through the same code.
///
/// Bodies stream in and out in chunks and are never held whole in memory. A body is
/// visible only once committed; on a local directory `commit` also syncs the file and
/// every directory on its path before it returns, so a committed body survives a crash.
///
/// On a remote store (S3), each body is also marked pending (`<prefix>/pending/<id>`)
/// from before it is visible until [`BodyStore::accepted`] says its record is durable,
/// so [`BodyStore::pending`] can find the orphans a crash leaves by listing the markers
/// alone, not the whole bucket. A local directory keeps no markers, as before: a marker
/// would add a file create, sync and unlink to every email on a path tuned for
/// throughput, and its `pending` is always empty.
#[derive(Debug, Clone)]
pub struct ObjectBodyStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    parts: Parts,
    disk: Option<Arc<LocalDisk>>,
    markers: Option<Markers>,
}

impl ObjectBodyStore {
    /// Bodies in `store` under `prefix` (slashes at either end are ignored; empty for
    /// none).
    ///
    /// `local_root` says that `store` is a local directory and which one: the directory
    /// that object keys are relative to (where `LocalFileSystem::new_with_prefix`
    /// points). Writes then use small parts, and `commit` syncs the file and its
    /// directories there, whether or not `store` syncs itself (`from_url` opens one that
    /// does, which is faster and never publishes a torn file). `None` means a remote
    /// store, whose completed uploads are already durable.
    #[must_use]
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, local_root: Option<PathBuf>) -> Self {
        let disk = local_root.map(|root| LocalDisk::new(root, false));
        ObjectBodyStore::with_disk(store, prefix, disk)
    }

    /// [`ObjectBodyStore::new`] with the local disk already described.
    pub(crate) fn with_disk(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        disk: Option<LocalDisk>,
    ) -> Self {
        let prefix = prefix.trim_matches('/').to_owned();
        let (parts, disk, markers) = match disk {
            Some(disk) => (LOCAL_PARTS, Some(Arc::new(disk)), None),
            None => (
                REMOTE_PARTS,
                None,
                Some(Markers::new(Arc::clone(&store), &prefix)),
            ),
        };
        ObjectBodyStore {
            store,
            prefix,
            parts,
            disk,
            markers,
        }
    }

    /// The object key of the body of `id`: `<prefix>/YYYY/MM/DD/<id>.eml`, the date
    /// (UTC) being the one in the id's UUIDv7 timestamp.
    #[must_use]
    pub fn key_of(&self, id: &EmailId) -> String {
        body_key(&self.prefix, id).to_string()
    }
}

#[async_trait]
impl BodyStore for ObjectBodyStore {
    async fn create(&self, id: &EmailId) -> Result<Box<dyn BodyWriter>, StoreError> {
        let key = body_key(&self.prefix, id);
        let marking = match &self.markers {
            Some(markers) => Some((markers.clone(), markers.start(*id, &key)?)),
            None => None,
        };
        Ok(Box::new(ObjectBodyWriter::new(
            *id,
            Arc::clone(&self.store),
            key,
            self.parts,
            self.disk.clone(),
            marking,
        )))
    }

    async fn open(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        match self.store.get(&body_key(&self.prefix, id)).await {
            Ok(found) => Ok(Box::new(ObjectBodyReader {
                id: *id,
                chunks: found.into_stream(),
            })),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::NotFound(*id)),
            Err(e) => Err(body_error(*id, Step::Read, e)),
        }
    }

    /// Deletes the body, then its marker: a marker outliving its body is harmless (the
    /// sweep finds no record and deletes again), a body outliving its marker is not.
    async fn delete(&self, id: &EmailId) -> Result<(), StoreError> {
        match self.store.delete(&body_key(&self.prefix, id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(body_error(*id, Step::Delete, e)),
        }
        match &self.markers {
            Some(markers) => markers.remove(id).await,
            None => Ok(()),
        }
    }

    /// Removes the marker in the background, so the client's `250` does not wait for
    /// a round trip to S3.
    async fn accepted(&self, id: &EmailId) {
        if let Some(markers) = &self.markers {
            markers.remove_soon(*id);
        }
    }

    /// Writes the marker again, and waits for it: the body is about to lose its record.
    async fn forgetting(&self, id: &EmailId) -> Result<(), StoreError> {
        match &self.markers {
            Some(markers) => markers.mark(id, &body_key(&self.prefix, id)).await,
            None => Ok(()),
        }
    }

    async fn pending(&self, older_than: SystemTime) -> Result<Vec<EmailId>, StoreError> {
        match &self.markers {
            Some(markers) => markers.older_than(older_than).await,
            None => Ok(Vec::new()),
        }
    }
}

/// Reads a body as the object store streams it.
struct ObjectBodyReader {
    id: EmailId,
    chunks: BoxStream<'static, object_store::Result<Bytes>>,
}

#[async_trait]
impl BodyReader for ObjectBodyReader {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        self.chunks
            .next()
            .await
            .transpose()
            .map_err(|e| body_error(self.id, Step::Read, e))
    }
}
