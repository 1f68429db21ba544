//! mailfwd's HTTP API on axum: forwarding-rule CRUD under `/v1/forwards`, streamed CSV
//! import, the received log under `/v1/emails`, `/healthz` and the OpenAPI document at
//! `/openapi.json`.
//!
//! The crate turns HTTP into domain calls and domain outcomes into HTTP; it validates
//! nothing itself. Every error leaves as an RFC 9457 problem document (see `error.rs`).

mod auth;
mod dto;
mod emails;
mod error;
mod extract;
mod forwards;
mod health;
mod import;
mod metrics;
mod openapi;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::middleware;
use mailfwd_domain::ExpansionLimits;
use mailfwd_domain::access::ApiAccess;
use mailfwd_domain::delivery::DeliveryQueue;
use mailfwd_domain::rule::DEFAULT_MAX_DESTINATIONS;
use mailfwd_domain::{EmailStore, RuleStore};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Default limit of a CSV import body: 64 MiB.
pub const DEFAULT_IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Default limit of a JSON request body: 64 KiB.
pub const DEFAULT_JSON_BODY_LIMIT: usize = 64 * 1024;

/// How the HTTP API behaves.
#[derive(Clone)]
pub struct HttpConfig {
    /// The bearer token every `/v1` request must carry. `None` serves loopback peers only,
    /// and only requests whose `Host` is a loopback name or one of `allowed_hosts`.
    pub api_token: Option<String>,
    /// Host names (without port) a tokenless server answers besides loopback ones.
    pub allowed_hosts: Vec<String>,
    /// The most destinations one rule may have.
    pub max_destinations: usize,
    /// How far a rule may expand through others: a rule that would loop or run past
    /// these is refused.
    pub expansion: ExpansionLimits,
    /// The largest CSV import body, in bytes; larger bodies are answered 413.
    pub import_body_limit: usize,
    /// The most rows of an atomic import; more are answered 413, nothing written.
    pub import_atomic_max_rows: u64,
    /// The largest JSON request body, in bytes; larger bodies are answered 413.
    pub json_body_limit: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            api_token: None,
            allowed_hosts: Vec::new(),
            max_destinations: DEFAULT_MAX_DESTINATIONS,
            expansion: ExpansionLimits::default(),
            import_body_limit: DEFAULT_IMPORT_BODY_LIMIT,
            import_atomic_max_rows: mailfwd_domain::import::DEFAULT_ATOMIC_MAX_ROWS,
            json_body_limit: DEFAULT_JSON_BODY_LIMIT,
        }
    }
}

/// Written by hand so the token never reaches a log line.
impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("max_destinations", &self.max_destinations)
            .field("expansion", &self.expansion)
            .field("import_body_limit", &self.import_body_limit)
            .field("import_atomic_max_rows", &self.import_atomic_max_rows)
            .field("json_body_limit", &self.json_body_limit)
            .finish()
    }
}

pub use metrics::MetricsSource;

/// The ports and sources the API reads and writes.
#[derive(Clone)]
pub struct Services {
    /// Forwarding rules.
    pub rules: Arc<dyn RuleStore>,
    /// Received emails and the received log.
    pub emails: Arc<dyn EmailStore>,
    /// Delivery state of each email's destinations.
    pub deliveries: Arc<dyn DeliveryQueue>,
    /// What `GET /metrics` shows.
    pub metrics: Arc<dyn MetricsSource>,
}

/// What every handler can reach.
#[derive(Clone)]
struct AppState {
    rules: Arc<dyn RuleStore>,
    emails: Arc<dyn EmailStore>,
    deliveries: Arc<dyn DeliveryQueue>,
    metrics: Arc<dyn MetricsSource>,
    access: Arc<ApiAccess>,
    config: Arc<HttpConfig>,
}

/// The whole HTTP application: routes, authentication, problem-details fallbacks and
/// request tracing. `/healthz` and `/openapi.json` are public; `/v1/*` needs the token
/// (or a loopback peer when no token is configured).
pub fn router(services: Services, config: HttpConfig) -> Router {
    let state = AppState {
        rules: services.rules,
        emails: services.emails,
        deliveries: services.deliveries,
        metrics: services.metrics,
        access: Arc::new(
            ApiAccess::new(config.api_token.clone())
                .with_allowed_hosts(config.allowed_hosts.iter().cloned()),
        ),
        config: Arc::new(config),
    };
    // Routes are registered through `routes!`, which also records them in the OpenAPI
    // document, so the document cannot describe a route that does not exist.
    let protected = OpenApiRouter::new()
        .routes(routes!(forwards::create_rule, forwards::list_rules))
        .routes(routes!(forwards::get_rule, forwards::delete_rule))
        .routes(routes!(import::import_rules))
        .routes(routes!(emails::list_emails))
        .routes(routes!(emails::get_email))
        .routes(routes!(metrics::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ));
    let (router, api) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(protected)
        .routes(routes!(health::healthz))
        .split_for_parts();
    let api = openapi::for_access(api, state.config.api_token.is_some());
    router
        .route("/openapi.json", openapi::serve_document(api))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish. Each request carries the peer's `ConnectInfo<SocketAddr>`, which the
/// loopback-only mode relies on.
///
/// # Errors
/// The I/O error that stopped the server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
