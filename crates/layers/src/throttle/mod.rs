//! The email store protects itself: a layer over any [`EmailStore`] that limits the
//! messages and bytes it takes per second, over all clients and per client, and
//! refuses new mail while its disk is nearly full or the delivery backlog is too long.
//!
//! Every inbound path (SMTP, gRPC) asks the store through [`EmailStore::admit`] and
//! [`EmailStore::begin_for`], so the limits live here, in one place, and each adapter
//! only translates the answer: "slow down, retry after N" ([`StoreError::Overloaded`])
//! or "no new mail for now" ([`StoreError::InsufficientStorage`]). Reads, evaluation
//! and deliveries pass straight through: mail already accepted keeps moving.

mod limits;
mod shedding;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::delivery::DeliveryQueue;
use mailfwd_domain::email::{
    BodyReader, Client, EmailId, EmailPage, EmailQuery, EmailWriter, ReceivedEmail, Shedding,
    UnevaluatedStats,
};
use mailfwd_domain::{EmailStore, StoreError};

use limits::{Limits, Reached};
pub use shedding::{DiskFreeSpace, FreeSpace};
use shedding::{Shedder, Sources};
use writer::ThrottledWriter;

/// How often, at most, the disk and the backlog are measured again.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The rates, each off when `None` (or 0): the default limits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Messages per second over all clients.
    pub messages_per_second: Option<u64>,
    /// Body bytes per second over all clients.
    pub bytes_per_second: Option<u64>,
    /// Messages per second from one client.
    pub client_messages_per_second: Option<u64>,
    /// Body bytes per second from one client.
    pub client_bytes_per_second: Option<u64>,
}

/// An [`EmailStore`] that takes new mail only as fast as it is configured to, and not
/// at all while it sheds load.
pub struct ThrottledEmailStore {
    inner: Arc<dyn EmailStore>,
    limits: Arc<Limits>,
    shedder: Arc<Shedder>,
    sources: Sources,
}

impl ThrottledEmailStore {
    /// `inner`, limited to the rates of `config`; it sheds no load until told what to
    /// measure ([`ThrottledEmailStore::with_disk_floor`],
    /// [`ThrottledEmailStore::with_max_backlog`]).
    #[must_use]
    pub fn new(inner: Arc<dyn EmailStore>, config: &ThrottleConfig) -> Self {
        ThrottledEmailStore {
            inner,
            limits: Arc::new(Limits::new(config)),
            shedder: Arc::new(Shedder::new(Sources::default(), DEFAULT_CHECK_INTERVAL)),
            sources: Sources::default(),
        }
    }

    /// Refuses new mail while `disk` has fewer than `floor` bytes free.
    #[must_use]
    pub fn with_disk_floor(mut self, disk: Arc<dyn FreeSpace>, floor: u64) -> Self {
        self.sources.disk = Some((disk, floor));
        self.with_check_interval(DEFAULT_CHECK_INTERVAL)
    }

    /// Refuses new mail while more than `max` delivery jobs are pending in `queue`.
    #[must_use]
    pub fn with_max_backlog(mut self, queue: Arc<dyn DeliveryQueue>, max: u64) -> Self {
        self.sources.backlog = Some((queue, max));
        self.with_check_interval(DEFAULT_CHECK_INTERVAL)
    }

    /// Measures the disk and the backlog at most once per `interval` (tests shorten it).
    #[must_use]
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.shedder = Arc::new(Shedder::new(self.sources.clone(), interval));
        self
    }

    /// Refuses with the shedding verdict, if there is one.
    async fn check_shedding(&self, client: &Client) -> Result<(), StoreError> {
        if *client == Client::Internal {
            return Ok(());
        }
        match self.shedder.verdict().await {
            Some(why) => {
                metrics::counter!("mailfwd_shed_total", "reason" => why.reason()).increment(1);
                Err(StoreError::InsufficientStorage(why))
            }
            None => Ok(()),
        }
    }
}

/// A reached rate as the store's answer, counted in `mailfwd_throttled_total`.
pub(crate) fn slow_down(reached: Reached) -> StoreError {
    metrics::counter!("mailfwd_throttled_total", "reason" => reached.reason).increment(1);
    StoreError::Overloaded {
        retry_after: reached.retry_after,
    }
}

#[async_trait]
impl EmailStore for ThrottledEmailStore {
    /// Without a client (tools and tests; every inbound path names one through
    /// [`EmailStore::begin_for`]): only load shedding applies.
    async fn begin(&self) -> Result<Box<dyn EmailWriter>, StoreError> {
        if let Some(why) = self.shedder.verdict().await {
            return Err(StoreError::InsufficientStorage(why));
        }
        self.inner.begin().await
    }

    /// Mail from mailfwd itself ([`Client::Internal`]) is never refused: it follows
    /// from mail already accepted, and the disk floor is there to leave room for it.
    async fn admit(&self, client: &Client) -> Result<(), StoreError> {
        self.check_shedding(client).await?;
        if *client != Client::Internal {
            self.limits.message(client).map_err(slow_down)?;
        }
        self.inner.admit(client).await
    }

    async fn begin_for(&self, client: &Client) -> Result<Box<dyn EmailWriter>, StoreError> {
        self.check_shedding(client).await?;
        let writer = self.inner.begin_for(client).await?;
        if *client == Client::Internal {
            return Ok(writer);
        }
        Ok(Box::new(ThrottledWriter::new(
            writer,
            client.clone(),
            Arc::clone(&self.limits),
            Arc::clone(&self.shedder),
        )))
    }

    async fn shedding(&self) -> Option<Shedding> {
        match self.shedder.verdict().await {
            Some(why) => Some(why),
            None => self.inner.shedding().await,
        }
    }

    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError> {
        self.inner.get(id).await
    }

    async fn open_body(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        self.inner.open_body(id).await
    }

    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError> {
        self.inner.list(query).await
    }

    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError> {
        self.inner.mark_evaluated(id).await
    }

    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError> {
        self.inner.unevaluated(after, limit).await
    }

    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError> {
        self.inner.unevaluated_stats().await
    }

    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError> {
        self.inner.forget(id).await
    }
}

#[cfg(test)]
mod tests;
