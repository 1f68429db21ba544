//! The writer of a throttled store: takes each chunk from the byte rates before it is
//! stored, waiting for them, so that a body arrives no faster than the rates allow
//! (the client's sends wait meanwhile: the stream is simply not read). Only a chunk
//! that would wait longer than two minutes is refused, and then nothing of that email
//! is kept.

use std::sync::Arc;

use async_trait::async_trait;
use mailfwd_domain::StoreError;
use mailfwd_domain::email::{Client, EmailId, EmailWriter, NewEmail, ReceivedEmail};

use super::limits::Limits;
use super::shedding::Shedder;
use super::slow_down;

pub(super) struct ThrottledWriter {
    inner: Box<dyn EmailWriter>,
    client: Client,
    limits: Arc<Limits>,
    /// Told of every chunk written, to estimate the free space between measurements.
    shedder: Arc<Shedder>,
}

impl ThrottledWriter {
    pub(super) fn new(
        inner: Box<dyn EmailWriter>,
        client: Client,
        limits: Arc<Limits>,
        shedder: Arc<Shedder>,
    ) -> Self {
        ThrottledWriter {
            inner,
            client,
            limits,
            shedder,
        }
    }
}

#[async_trait]
impl EmailWriter for ThrottledWriter {
    fn id(&self) -> EmailId {
        self.inner.id()
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.limits
            .bytes(&self.client, chunk.len())
            .await
            .map_err(slow_down)?;
        self.inner.write(chunk).await?;
        self.shedder.wrote(chunk.len());
        Ok(())
    }

    async fn commit(self: Box<Self>, email: NewEmail) -> Result<ReceivedEmail, StoreError> {
        self.inner.commit(email).await
    }

    async fn abort(self: Box<Self>) {
        self.inner.abort().await;
    }
}
