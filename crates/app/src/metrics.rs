//! The Prometheus recorder, and queue, backlog and load-shedding gauges refreshed at
//! every scrape.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use mailfwd_domain::EmailStore;
use mailfwd_domain::delivery::DeliveryQueue;
use mailfwd_http::MetricsSource;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Renders the process's metrics for `GET /metrics`.
pub struct Prometheus {
    handle: PrometheusHandle,
    queue: Arc<dyn DeliveryQueue>,
    emails: Arc<dyn EmailStore>,
}

impl Prometheus {
    /// Installs the global recorder (once per process).
    ///
    /// # Errors
    /// [`BuildError`] if a recorder is already installed.
    pub fn install(
        queue: Arc<dyn DeliveryQueue>,
        emails: Arc<dyn EmailStore>,
    ) -> Result<Prometheus, BuildError> {
        // Delivery latency, from 10 ms (a fresh email to a fast destination) to the days
        // a retried one can take.
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("mailfwd_delivery_latency_seconds".to_owned()),
                &[
                    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                    900.0, 3600.0, 14_400.0, 86_400.0, 432_000.0,
                ],
            )?
            .install_recorder()?;
        for counter in [
            "mailfwd_received_total",
            "mailfwd_delivered_total",
            "mailfwd_deferred_total",
            "mailfwd_failed_total",
            "mailfwd_unmatched_recipients_total",
            "mailfwd_rule_cache_hits_total",
            "mailfwd_rule_cache_misses_total",
        ] {
            metrics::counter!(counter).absolute(0);
        }
        for reason in ["loop", "too_deep", "too_many"] {
            metrics::counter!("mailfwd_expansion_cuts_total", "reason" => reason).absolute(0);
        }
        for reason in ["messages", "bytes", "client_messages", "client_bytes"] {
            metrics::counter!("mailfwd_throttled_total", "reason" => reason).absolute(0);
        }
        for reason in ["disk", "backlog"] {
            metrics::counter!("mailfwd_shed_total", "reason" => reason).absolute(0);
            metrics::gauge!("mailfwd_shedding", "reason" => reason).set(0.0);
        }
        Ok(Prometheus {
            handle,
            queue,
            emails,
        })
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
                metrics::gauge!("mailfwd_queue_oldest_pending_age_seconds")
                    .set(stats.oldest_pending_age.as_secs_f64());
            }
            Err(error) => tracing::error!(%error, "cannot read queue statistics for /metrics"),
        }
        match self.emails.unevaluated_stats().await {
            Ok(stats) => {
                let age = stats.oldest_received_at.map_or(0.0, |oldest| {
                    SystemTime::now()
                        .duration_since(oldest)
                        .unwrap_or_default()
                        .as_secs_f64()
                });
                metrics::gauge!("mailfwd_unevaluated_emails").set(stats.count as f64);
                metrics::gauge!("mailfwd_oldest_unevaluated_age_seconds").set(age);
            }
            Err(error) => {
                tracing::error!(%error, "cannot read unevaluated email statistics for /metrics")
            }
        }
        // Measures again if stale, which sets the `mailfwd_shedding` gauges: a store
        // that refuses mail is not asked by anyone else, yet must be seen to recover.
        if let Some(why) = self.emails.shedding().await {
            tracing::debug!(reason = why.reason(), "refusing new mail: {why}");
        }
        self.handle.render()
    }
}
