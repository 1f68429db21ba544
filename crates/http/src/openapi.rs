//! The OpenAPI document: its fixed parts here, its paths collected from the handlers'
//! `#[utoipa::path]` attributes as the routes are registered.

use std::sync::Arc;

use axum::Json;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

/// The parts of the document that belong to no single route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mailfwd HTTP API",
        description = "Forwarding rules of mailfwd. Errors are RFC 9457 problem documents \
                       (`application/problem+json`). A request that cannot be read (bad JSON, a field that \
                       is not an address) is 400; a rule that is well-formed but invalid as a whole (no \
                       destination, too many, forwarding to itself) is 422."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "forwards", description = "Forwarding rules: which recipient goes to which destinations"),
        (name = "emails", description = "The received log: every accepted email's record"),
        (name = "health", description = "Liveness of the server and its store"),
    )
)]
pub(crate) struct ApiDoc;

/// Declares the `bearer` security scheme that the `/v1` operations require.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// `GET /openapi.json`, answering with the finished document.
pub(crate) fn serve_document(api: utoipa::openapi::OpenApi) -> MethodRouter<AppState> {
    let api = Arc::new(api);
    get(move || {
        let api = Arc::clone(&api);
        async move { Json(&*api).into_response() }
    })
}
