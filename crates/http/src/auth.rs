//! Who may use the `/v1` API: holders of the bearer token, or, when no token is
//! configured, only clients on a loopback address (the laptop default).

use std::net::SocketAddr;

use axum::extract::rejection::ExtensionRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use mailfwd_domain::access::Denied;

use crate::AppState;
use crate::error::ApiError;

const MISSING: &str = "this API needs an 'Authorization: Bearer <token>' header";
const WRONG: &str = "the bearer token in the 'Authorization' header is not valid";
const REMOTE: &str = "this server has no API token, so it only answers clients on a loopback address; \
                      set MAILFWD_API_TOKEN on the server and send it as 'Authorization: Bearer <token>'";

/// Lets the request through or answers 401 (with `WWW-Authenticate: Bearer`).
pub(crate) async fn authorize(
    State(state): State<AppState>,
    peer: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // Without ConnectInfo (a router driven in-process, e.g. by `oneshot` in a test)
    // there is no remote peer.
    let peer = peer.ok().map(|ConnectInfo(addr)| addr.ip());
    match state.access.check(authorization, peer) {
        Ok(()) => Ok(next.run(request).await),
        Err(Denied::MissingToken) => Err(ApiError::Unauthorized(MISSING)),
        Err(Denied::WrongToken) => Err(ApiError::Unauthorized(WRONG)),
        Err(Denied::RemoteWithoutToken) => Err(ApiError::Unauthorized(REMOTE)),
    }
}
