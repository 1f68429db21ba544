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
                       destination, too many, forwarding to itself) is 422.\n\n\
                       Authorization depends on how the server runs. With `MAILFWD_API_TOKEN` set, \
                       `/v1/*` and `/metrics` need `Authorization: Bearer <token>` (the `bearer` scheme \
                       below); a missing or wrong token is 401. Without a token the server takes no \
                       credentials: it answers loopback clients only (others get 401) and only for a \
                       loopback or allowed `Host` (others get 403). This document is served to match: \
                       without a token its operations declare no security requirement."
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

/// The document as this server answers it. With a token every protected operation
/// requires the `bearer` scheme. Without one (loopback only) the server takes no
/// credentials at all, so the document declares none: a client generated from it, or a
/// fuzzer reading it, sees what this server actually does.
pub(crate) fn for_access(
    mut api: utoipa::openapi::OpenApi,
    token_set: bool,
) -> utoipa::openapi::OpenApi {
    if token_set {
        return api;
    }
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = None;
        }
    }
    if let Some(components) = api.components.as_mut() {
        components.security_schemes.remove("bearer");
    }
    api
}

/// `GET /openapi.json`, answering with the finished document.
pub(crate) fn serve_document(api: utoipa::openapi::OpenApi) -> MethodRouter<AppState> {
    let api = Arc::new(api);
    get(move || {
        let api = Arc::clone(&api);
        async move { Json(&*api).into_response() }
    })
}
