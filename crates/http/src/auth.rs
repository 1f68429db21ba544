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

const FOREIGN_HOST: &str = "this server has no API token, so it only answers requests for a \
                            loopback host name (localhost, 127.0.0.1, [::1]) or one listed in \
                            MAILFWD_API_ALLOWED_HOSTS; the 'Host' header named another \
                            (a DNS rebinding attempt looks like this)";

/// Lets the request through, or answers 401 (with `WWW-Authenticate: Bearer`) or 403.
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
    // HTTP/1.1 names the host in `Host`, HTTP/2 in the `:authority` of the URI.
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or(""))
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    match state.access.check(authorization, peer, host) {
        Ok(()) => Ok(next.run(request).await),
        Err(Denied::MissingToken) => Err(ApiError::Unauthorized(MISSING)),
        Err(Denied::WrongToken) => Err(ApiError::Unauthorized(WRONG)),
        Err(Denied::RemoteWithoutToken) => Err(ApiError::Unauthorized(REMOTE)),
        Err(Denied::ForeignHost) => Err(ApiError::Forbidden(FOREIGN_HOST)),
    }
}
