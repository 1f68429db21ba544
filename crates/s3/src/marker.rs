//! Pending markers: `<prefix>/pending/<id>`, one per body whose record is not yet known
//! to be durable.
//!
//! A body is committed before its record (the domain's `SplitEmailStore`), so a crash in
//! between, or a record that fails, leaves a body no record points at. On S3 nothing
//! would ever find it again: listing a bucket of millions of bodies to compare with the
//! log is no way to find a handful of orphans. So the marker is written before the body
//! becomes visible and removed once the record is durable; the sweep lists only the
//! markers, a short list whatever the size of the bucket.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::TryStreamExt;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::StoreError;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::task::JoinHandle;

use crate::error::{Step, body_error, listing_error};

/// The markers of one body store.
#[derive(Debug, Clone)]
pub(crate) struct Markers {
    store: Arc<dyn ObjectStore>,
    dir: Path,
}

impl Markers {
    /// Markers in `store` under `<prefix>/pending/` (`prefix` already trimmed). Body keys
    /// start with a four-digit year, so `pending` never clashes with them.
    pub(crate) fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        let dir = if prefix.is_empty() {
            Path::from("pending")
        } else {
            Path::from(format!("{prefix}/pending"))
        };
        Markers { store, dir }
    }

    fn key(&self, id: &EmailId) -> Path {
        self.dir.clone().join(id.to_string())
    }

    /// Starts writing the marker of `id` in the background, so it overlaps with the
    /// upload of the body; the marker holds the body's key, for whoever looks at it.
    ///
    /// # Errors
    /// [`StoreError::Storage`] outside a Tokio runtime.
    pub(crate) fn start(&self, id: EmailId, body_key: &Path) -> Result<Marking, StoreError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|e| body_error(id, Step::Mark, e))?;
        let (store, key) = (Arc::clone(&self.store), self.key(&id));
        let payload = PutPayload::from(Bytes::from(body_key.to_string()));
        let write = runtime.spawn(async move { store.put(&key, payload).await.map(drop) });
        Ok(Marking {
            id,
            write,
            markers: self.clone(),
            body_key: body_key.clone(),
            started: Instant::now(),
        })
    }

    /// Writes the marker of `id` and waits until it is durable.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if it could not be written.
    pub(crate) async fn mark(&self, id: &EmailId, body_key: &Path) -> Result<(), StoreError> {
        let payload = PutPayload::from(Bytes::from(body_key.to_string()));
        match self.store.put(&self.key(id), payload).await {
            Ok(_) => Ok(()),
            Err(e) => Err(body_error(*id, Step::Mark, e)),
        }
    }

    /// Removes the marker of `id`; one that is not there is fine.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if it may still be there.
    pub(crate) async fn remove(&self, id: &EmailId) -> Result<(), StoreError> {
        match self.store.delete(&self.key(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(body_error(*id, Step::Unmark, e)),
        }
    }

    /// Removes the marker of `id` in the background, logging a failure: the next sweep
    /// finds the record and tries again.
    pub(crate) fn remove_soon(&self, id: EmailId) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(%id, "no runtime to remove the pending marker; the sweep will");
            return;
        };
        let markers = self.clone();
        runtime.spawn(async move {
            if let Err(e) = markers.remove(&id).await {
                tracing::warn!(%id, error = %e, "could not remove a pending marker");
            }
        });
    }

    /// The ids whose marker was last written before `older_than`, by the server's clock.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if the markers cannot be listed.
    pub(crate) async fn older_than(
        &self,
        older_than: SystemTime,
    ) -> Result<Vec<EmailId>, StoreError> {
        let found: Vec<_> = self
            .store
            .list(Some(&self.dir))
            .try_collect()
            .await
            .map_err(listing_error)?;
        let mut ids = Vec::new();
        for meta in found {
            if SystemTime::from(meta.last_modified) >= older_than {
                continue;
            }
            match meta.location.filename().map(EmailId::parse) {
                Some(Ok(id)) => ids.push(id),
                _ => tracing::warn!(key = %meta.location, "not a pending marker; left alone"),
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// A marker being written.
pub(crate) struct Marking {
    id: EmailId,
    write: JoinHandle<object_store::Result<()>>,
    markers: Markers,
    body_key: Path,
    started: Instant,
}

/// A marker older than this when its body is about to be completed is written again
/// first. The sweep judges markers by their age (an hour), and the upload of a body
/// trickling in for longer must not be judged while its record is being written: its
/// marker's age then counts from the completion, not from the first byte.
const REFRESH_AFTER: Duration = Duration::from_secs(10 * 60);

impl Marking {
    /// Waits until the marker is durable, writing it again if it has become old (see
    /// [`REFRESH_AFTER`]).
    ///
    /// # Errors
    /// [`StoreError::Storage`] if it could not be written.
    pub(crate) async fn written(self) -> Result<(), StoreError> {
        let (id, started) = (self.id, self.started);
        match self.write.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(body_error(id, Step::Mark, e)),
            Err(e) => return Err(body_error(id, Step::Mark, e)),
        }
        if started.elapsed() < REFRESH_AFTER {
            return Ok(());
        }
        let payload = PutPayload::from(Bytes::from(self.body_key.to_string()));
        self.markers
            .store
            .put(&self.markers.key(&id), payload)
            .await
            .map(drop)
            .map_err(|e| body_error(id, Step::Mark, e))
    }

    /// The body will not be stored: waits for the marker, then removes it, even if its
    /// write failed (a timed-out write may still have landed). Best effort: a marker
    /// without a body is swept like any other.
    pub(crate) async fn cancel(self) {
        let (id, markers) = (self.id, self.markers.clone());
        let _ = self.written().await;
        if let Err(e) = markers.remove(&id).await {
            tracing::warn!(%id, error = %e, "could not remove the marker of an aborted body");
        }
    }
}
