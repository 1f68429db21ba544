//! `GET /metrics`: Prometheus text, rendered by whoever owns the recorder.

use async_trait::async_trait;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::AppState;
use crate::error::Problem;

/// Renders the current metrics in the Prometheus text format. The app implements it
/// (it owns the recorder and refreshes gauges such as queue depth before rendering).
#[async_trait]
pub trait MetricsSource: Send + Sync {
    /// The metrics, as Prometheus text.
    async fn render(&self) -> String;
}

/// Prometheus metrics: messages received, delivered, deferred and failed; queue depth
/// and the age of the oldest due job.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing or wrong bearer token, or (no token configured) a peer not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token is configured and the Host header names neither a loopback host nor an allowed one", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = state.metrics.render().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
