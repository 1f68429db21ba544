//! The Prometheus recorder, and queue gauges refreshed at every scrape.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use mailfwd_domain::delivery::DeliveryQueue;
use mailfwd_http::MetricsSource;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};

/// Renders the process's metrics for `GET /metrics`.
pub struct Prometheus {
    handle: PrometheusHandle,
    queue: Arc<dyn DeliveryQueue>,
}

impl Prometheus {
    /// Installs the global recorder (once per process).
    ///
    /// # Errors
    /// [`BuildError`] if a recorder is already installed.
    pub fn install(queue: Arc<dyn DeliveryQueue>) -> Result<Prometheus, BuildError> {
        let handle = PrometheusBuilder::new().install_recorder()?;
        for counter in [
            "mailfwd_received_total",
            "mailfwd_delivered_total",
            "mailfwd_deferred_total",
            "mailfwd_failed_total",
            "mailfwd_unmatched_recipients_total",
        ] {
            metrics::counter!(counter).absolute(0);
        }
        Ok(Prometheus { handle, queue })
    }
}

#[async_trait]
impl MetricsSource for Prometheus {
    async fn render(&self) -> String {
        match self.queue.stats(SystemTime::now()).await {
            Ok(stats) => {
                metrics::gauge!("mailfwd_queue_pending").set(stats.pending as f64);
                metrics::gauge!("mailfwd_queue_due").set(stats.due as f64);
                metrics::gauge!("mailfwd_queue_oldest_due_age_seconds")
                    .set(stats.oldest_due_age.as_secs_f64());
            }
            Err(error) => tracing::error!(%error, "cannot read queue statistics for /metrics"),
        }
        self.handle.render()
    }
}
