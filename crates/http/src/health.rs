//! `GET /healthz`: is the server up and can it reach its rule store?

use axum::Json;
use axum::extract::State;
use mailfwd_domain::RuleQuery;

use crate::AppState;
use crate::dto::HealthBody;
use crate::error::{ApiError, Problem};

/// Answers 200 when a one-rule list from the store succeeds, 503 when it fails.
/// Public: needs no token, so load balancers and probes can call it.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, description = "The server and its rule store work", body = HealthBody),
        (status = 503, description = "The rule store is not answering", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn healthz(State(state): State<AppState>) -> Result<Json<HealthBody>, ApiError> {
    let query = RuleQuery {
        limit: 1,
        ..RuleQuery::default()
    };
    state
        .rules
        .list(&query)
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(Json(HealthBody { status: "ok" }))
}
