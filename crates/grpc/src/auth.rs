//! Who may call the Forwarding service: holders of the bearer token, or, when no token
//! is configured, only clients on a loopback address (the laptop default, as in HTTP).

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::GrpcError;

const MISSING: &str = "this API needs the metadata 'authorization: Bearer <token>'";
const WRONG: &str = "the bearer token in the 'authorization' metadata is not valid";
const REMOTE: &str = "this server has no API token, so it only answers clients on a loopback \
                      address; set MAILFWD_API_TOKEN on the server and send it as \
                      'authorization: Bearer <token>'";

/// Checks every call before it reaches the service.
#[derive(Clone)]
pub struct Authorize {
    token: Option<Arc<str>>,
}

impl Authorize {
    /// Requires `token` when it is `Some`; otherwise only loopback peers get in.
    #[must_use]
    pub fn new(token: Option<String>) -> Self {
        Authorize {
            token: token.map(Arc::from),
        }
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), GrpcError> {
        match self.token.as_deref() {
            Some(token) => match bearer_token(request) {
                None => Err(GrpcError::Unauthenticated(MISSING)),
                Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
                Some(_) => Err(GrpcError::Unauthenticated(WRONG)),
            },
            // No remote address means an in-process transport: as local as it gets.
            None => match request.remote_addr() {
                Some(addr) if !addr.ip().to_canonical().is_loopback() => {
                    Err(GrpcError::Unauthenticated(REMOTE))
                }
                _ => Ok(()),
            },
        }
    }
}

impl Interceptor for Authorize {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request)?;
        Ok(request)
    }
}

/// The token of `authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer_token<T>(request: &Request<T>) -> Option<&str> {
    let value = request.metadata().get("authorization")?.to_str().ok()?;
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

    fn with_header(value: &str) -> Request<()> {
        let mut request = Request::new(());
        if let Ok(value) = value.parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    #[test]
    fn tokens_compare_by_content() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        let auth = Authorize::new(Some("s3cret".into()));
        assert!(auth.check(&with_header("Bearer s3cret")).is_ok());
        assert!(auth.check(&with_header("bearer s3cret")).is_ok());
        let wrong = auth
            .check(&with_header("Bearer nope"))
            .map_err(|e| e.to_string());
        assert_eq!(wrong, Err(WRONG.to_owned()));
        let basic = auth
            .check(&with_header("Basic s3cret"))
            .map_err(|e| e.to_string());
        assert_eq!(basic, Err(MISSING.to_owned()));
        let none = auth.check(&Request::new(())).map_err(|e| e.to_string());
        assert_eq!(none, Err(MISSING.to_owned()));
    }
}
