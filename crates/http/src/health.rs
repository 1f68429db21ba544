//! `GET /healthz`: is the server up, can it reach its rule store, and does its email
//! store take new mail?

use axum::Json;
use axum::extract::State;
use mailfwd_domain::RuleQuery;

use crate::AppState;
use crate::dto::HealthBody;
use crate::error::{ApiError, Problem, SHEDDING_RETRY_AFTER_SECS};

/// Answers 200 when a one-rule list from the store succeeds, 503 when it fails, and
/// 503 saying why while the email store refuses new mail (load shedding), so that a
/// load balancer sends mail elsewhere and an operator sees the cause.
/// Public: needs no token, so load balancers and probes can call it.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, description = "The server and its rule store work", body = HealthBody),
        (status = 503, description = "The rule store is not answering, or the email store refuses new mail for now (the detail says why)", body = Problem, content_type = "application/problem+json"),
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
    if let Some(why) = state.emails.shedding().await {
        return Err(ApiError::StoreBusy {
            detail: format!("refusing new mail: {why}"),
            retry_after: SHEDDING_RETRY_AFTER_SECS,
        });
    }
    Ok(Json(HealthBody { status: "ok" }))
}
