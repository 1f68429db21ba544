//! Writing one body: buffered up to one part, then streamed as a multipart upload.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyWriter, StoreError};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::durable::LocalDisk;
use crate::error::{Step, body_error, unusable};
use crate::marker::{Markers, Marking};

/// How bodies are cut into parts for one kind of backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts {
    /// Bytes per part; every part but the last has exactly this size.
    pub(crate) size: usize,
    /// Parts uploading at once. With the buffer, a writer holds at most
    /// `(in_flight + 1) * size` bytes, whatever the size of the body.
    pub(crate) in_flight: usize,
}

enum State {
    /// Nothing uploaded yet: the body so far, shorter than one part.
    Buffering(Vec<u8>),
    /// A multipart upload is under way.
    Uploading(WriteMultipart),
    /// Committed, aborted or failed.
    Finished,
}

/// A [`BodyWriter`] on an object store.
///
/// A body shorter than one part (most email) is stored with one plain `put`; a longer
/// one becomes a multipart upload as soon as its first part is full. Either way the
/// object becomes visible only when the upload completes.
///
/// On S3, the body's pending marker is being written meanwhile (see [`crate::marker`]);
/// `commit` waits for it before it completes the upload, so no body is ever visible
/// without its marker, and a writer that does not commit removes it.
pub(crate) struct ObjectBodyWriter {
    id: EmailId,
    store: Arc<dyn ObjectStore>,
    key: Path,
    parts: Parts,
    disk: Option<Arc<LocalDisk>>,
    marking: Option<(Markers, Marking)>,
    state: State,
    size: u64,
}

impl ObjectBodyWriter {
    pub(crate) fn new(
        id: EmailId,
        store: Arc<dyn ObjectStore>,
        key: Path,
        parts: Parts,
        disk: Option<Arc<LocalDisk>>,
        marking: Option<(Markers, Marking)>,
    ) -> Self {
        ObjectBodyWriter {
            id,
            store,
            key,
            parts,
            disk,
            marking,
            state: State::Buffering(Vec::new()),
            size: 0,
        }
    }

    /// Waits until at most `in_flight` parts are uploading; on failure the upload is
    /// aborted and the writer is unusable.
    async fn wait_for_parts(&mut self) -> Result<(), StoreError> {
        let State::Uploading(upload) = &mut self.state else {
            return Ok(());
        };
        let Err(e) = upload.wait_for_capacity(self.parts.in_flight).await else {
            return Ok(());
        };
        if let State::Uploading(upload) = std::mem::replace(&mut self.state, State::Finished) {
            let _ = upload.abort().await;
        }
        Err(body_error(self.id, Step::Write, e))
    }

    /// Completes the upload: the object is visible (and, locally, renamed into place).
    async fn complete(&mut self) -> Result<(), StoreError> {
        let result = match std::mem::replace(&mut self.state, State::Finished) {
            State::Buffering(body) => self
                .store
                .put(&self.key, PutPayload::from(Bytes::from(body)))
                .await
                .map(drop),
            // `finish` aborts the upload itself when it fails.
            State::Uploading(upload) => upload.finish().await.map(drop),
            State::Finished => return Err(unusable(self.id, Step::Commit)),
        };
        result.map_err(|e| body_error(self.id, Step::Commit, e))
    }
}

#[async_trait]
impl BodyWriter for ObjectBodyWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        match &mut self.state {
            State::Buffering(buffer) if buffer.len() + chunk.len() < self.parts.size => {
                buffer.extend_from_slice(chunk);
            }
            State::Buffering(buffer) => {
                let first = std::mem::take(buffer);
                self.state = State::Finished;
                let mut upload =
                    start_upload(Arc::clone(&self.store), &self.key, self.parts, first)
                        .await
                        .map_err(|e| body_error(self.id, Step::Write, e))?;
                upload.write(chunk);
                self.state = State::Uploading(upload);
            }
            State::Uploading(upload) => upload.write(chunk),
            State::Finished => return Err(unusable(self.id, Step::Write)),
        }
        self.size += chunk.len() as u64;
        self.wait_for_parts().await
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StoreError> {
        if let Some((markers, marking)) = self.marking.take() {
            if let Err(e) = marking.written().await {
                self.abort_upload().await;
                markers.remove_soon(self.id);
                return Err(e);
            }
            if let Err(e) = self.complete().await {
                take_back_soon(self.id, Arc::clone(&self.store), self.key.clone(), markers);
                return Err(e);
            }
            return Ok(self.size);
        }
        self.complete().await?;
        if let Some(disk) = &self.disk
            && let Err(e) = disk.make_durable(disk.path_of(&self.key)).await
        {
            // Not durable means not stored: take the body back rather than leave a file
            // that a crash might lose after the caller moved on.
            let _ = self.store.delete(&self.key).await;
            return Err(body_error(self.id, Step::Sync, e));
        }
        Ok(self.size)
    }

    async fn abort(mut self: Box<Self>) {
        self.abort_upload().await;
        if let Some((_, marking)) = self.marking.take() {
            marking.cancel().await;
        }
    }
}

impl ObjectBodyWriter {
    /// Aborts the multipart upload, if one is under way.
    async fn abort_upload(&mut self) {
        if let State::Uploading(upload) = std::mem::replace(&mut self.state, State::Finished)
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(id = %self.id, error = %e, "could not abort a body upload");
        }
    }
}

impl Drop for ObjectBodyWriter {
    /// A writer dropped before it committed (its session was cancelled, or a write
    /// failed) aborts the upload and removes the marker in the background, so neither
    /// an incomplete multipart upload nor a stray marker is left behind.
    fn drop(&mut self) {
        let upload = match std::mem::replace(&mut self.state, State::Finished) {
            State::Uploading(upload) => Some(upload),
            _ => None,
        };
        let marking = self.marking.take();
        if (upload.is_some() || marking.is_some())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Some(upload) = upload {
                    let _ = upload.abort().await;
                }
                if let Some((_, marking)) = marking {
                    marking.cancel().await;
                }
            });
        }
    }
}

/// Starts a multipart upload whose first part is `first`. A free function, not a
/// method: a writer is not `Sync` and must not be borrowed across this await.
async fn start_upload(
    store: Arc<dyn ObjectStore>,
    key: &Path,
    parts: Parts,
    first: Vec<u8>,
) -> object_store::Result<WriteMultipart> {
    let upload = store.put_multipart(key).await?;
    let mut upload = WriteMultipart::new_with_chunk_size(upload, parts.size);
    upload.put(Bytes::from(first));
    Ok(upload)
}

/// After a failed completion, in the background (the caller is owed its error now):
/// makes sure the body is not stored and drops its marker.
///
/// A completion that timed out may still have landed, so the marker is removed only
/// once the body is known to be absent, or deleted; when S3 cannot tell, the marker
/// stays, and the sweep deletes the body later. Never a body without its marker.
fn take_back_soon(id: EmailId, store: Arc<dyn ObjectStore>, key: Path, markers: Markers) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let absent = match store.head(&key).await {
            Err(object_store::Error::NotFound { .. }) => true,
            Ok(_) => store.delete(&key).await.is_ok(),
            Err(_) => false,
        };
        if !absent {
            tracing::warn!(%id, "a failed body may be stored; left marked for the sweep");
        } else if let Err(e) = markers.remove(&id).await {
            tracing::warn!(%id, error = %e, "could not remove the marker of a failed body");
        }
    });
}
