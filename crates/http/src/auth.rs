//! Who may use the `/v1` API: holders of the bearer token, or, when no token is
//! configured, only clients on a loopback address (the laptop default).

use std::net::SocketAddr;

use axum::extract::rejection::ExtensionRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

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
    match state.config.api_token.as_deref() {
        Some(token) => match bearer_token(request.headers()) {
            None => return Err(ApiError::Unauthorized(MISSING)),
            Some(given) if !constant_time_eq(given.as_bytes(), token.as_bytes()) => {
                return Err(ApiError::Unauthorized(WRONG));
            }
            Some(_) => {}
        },
        None => {
            // Without ConnectInfo (a router driven in-process, e.g. by `oneshot` in a test)
            // there is no remote peer, so the request is as local as it gets.
            if peer.is_ok_and(|ConnectInfo(addr)| !addr.ip().to_canonical().is_loopback()) {
                return Err(ApiError::Unauthorized(REMOTE));
            }
        }
    }
    Ok(next.run(request).await)
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without stopping at the first difference, so the time taken does not tell
/// an attacker how much of a guess was right. Only the length can leak.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn bearer_header_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            "bearer  abc ".parse().expect("valid header"),
        );
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(
            header::AUTHORIZATION,
            "Basic abc".parse().expect("valid header"),
        );
        assert_eq!(bearer_token(&headers), None);
    }
}
