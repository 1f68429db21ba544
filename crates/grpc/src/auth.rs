//! Who may call the Forwarding service: holders of the bearer token, or, when no token
//! is configured, only clients on a loopback address (the laptop default, as in HTTP).

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use mailfwd_domain::access::{ApiAccess, Denied};

use crate::error::GrpcError;

const MISSING: &str = "this API needs the metadata 'authorization: Bearer <token>'";
const WRONG: &str = "the bearer token in the 'authorization' metadata is not valid";
const REMOTE: &str = "this server has no API token, so it only answers clients on a loopback \
                      address; set MAILFWD_API_TOKEN on the server and send it as \
                      'authorization: Bearer <token>'";

/// Checks every call before it reaches the service.
#[derive(Clone)]
pub struct Authorize {
    access: Arc<ApiAccess>,
}

impl Authorize {
    /// Requires `token` when it is `Some`; otherwise only loopback peers get in.
    #[must_use]
    pub fn new(token: Option<String>) -> Self {
        Authorize {
            access: Arc::new(ApiAccess::new(token)),
        }
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), GrpcError> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        // No remote address means an in-process transport: as local as it gets.
        let peer = request.remote_addr().map(|addr| addr.ip());
        // No host to check: tonic serves HTTP/2 with gRPC framing only, which a web page
        // cannot send, so DNS rebinding does not reach this API.
        self.access
            .check(authorization, peer, None)
            .map_err(|denied| {
                GrpcError::Unauthenticated(match denied {
                    Denied::MissingToken => MISSING,
                    Denied::WrongToken => WRONG,
                    Denied::RemoteWithoutToken | Denied::ForeignHost => REMOTE,
                })
            })
    }
}

impl Interceptor for Authorize {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request)?;
        Ok(request)
    }
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
