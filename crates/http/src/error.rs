//! The crate's one error type and its table from error to HTTP status.
//!
//! Every error is answered as an RFC 9457 problem document
//! (`content-type: application/problem+json`) whose `detail` tells the client what to
//! fix. Internal errors are logged and answered with a generic detail: their text may
//! hold storage internals a client must not see.

mod convert;

use std::error::Error as StdError;
use std::fmt;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mailfwd_domain::{AddressError, InvalidRule, RuleError};
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

/// The media type of problem documents.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document, the body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "about:blank",
    "title": "Bad Request",
    "status": 400,
    "detail": "the field 'forward[1]' is invalid: the local part contains ' ', which is not allowed outside quotes"
}))]
pub(crate) struct Problem {
    /// Always `about:blank`: the status code says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The reason phrase of the status code.
    pub title: &'static str,
    /// The HTTP status code, repeated.
    pub status: u16,
    /// What went wrong with this request, for a person.
    pub detail: String,
}

/// Where a bad value came from, so the client knows which one to fix.
#[derive(Debug)]
pub(crate) enum Input {
    /// A field of the JSON body, such as `forward[2]`.
    Field(String),
    /// A path parameter.
    PathParam(&'static str),
    /// A query parameter.
    QueryParam(&'static str),
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Field(name) => write!(f, "the field '{name}'"),
            Input::PathParam(name) => write!(f, "the path parameter '{name}'"),
            Input::QueryParam(name) => write!(f, "the query parameter '{name}'"),
        }
    }
}

/// Everything a request can end in other than success. Each variant's doc names its status.
#[derive(Debug, Error)]
pub(crate) enum ApiError {
    /// 400: a field or parameter does not hold a valid address or domain.
    #[error("{input} is invalid: {source}")]
    InvalidAddress {
        /// Which value.
        input: Input,
        /// Why, in the domain's words.
        source: AddressError,
    },
    /// 400: the request cannot be read (malformed JSON, query string, CSV header, …).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid bearer token, or a remote peer while no token is configured.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: no token is configured and the request names a host that is not a loopback
    /// or allowed one (DNS rebinding).
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no rule for this pattern, or no email with this id.
    #[error("{0}")]
    NotFound(String),
    /// 404: no route for this path.
    #[error("there is no resource at this path; see /openapi.json for the API")]
    NoRoute,
    /// 405: the path exists but not with this method.
    #[error("this method is not allowed on this path; see /openapi.json for the API")]
    MethodNotAllowed,
    /// 409: a rule for this pattern already exists.
    #[error("{0}; delete it first to replace it")]
    Conflict(String),
    /// 413: the body is larger than the configured limit.
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 413: an atomic import with more rows than it may hold.
    #[error("{0}")]
    ImportTooLarge(String),
    /// 415: the body's content type is missing or not one this route reads.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// 422: every field is a valid address but the rule as a whole is not valid.
    #[error(transparent)]
    InvalidRule(#[from] InvalidRule),
    /// 500: the store failed during an import; batches before the failure stay written.
    #[error(
        "the import stopped after {rules_written} rules were written because of an internal error"
    )]
    ImportInterrupted {
        /// Rules written before the failure.
        rules_written: u64,
        /// The store's error, logged only.
        source: RuleError,
    },
    /// 500: anything unexpected; the source is logged, never sent.
    #[error("an internal error occurred; it has been logged")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
    /// 503: the database or the email store is not answering (down, unreachable,
    /// overloaded); the source is logged, never sent, and the client is told when to
    /// try again.
    #[error("the database or the email store is not answering; try again shortly")]
    StorageUnavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// 503 with `Retry-After`: the email store asks clients to slow down, or refuses
    /// new mail for now (load shedding); the text says which, and why.
    #[error("{detail}")]
    StoreBusy {
        /// The store's answer, for a person.
        detail: String,
        /// Whole seconds to wait before trying again.
        retry_after: u64,
    },
    /// 503: the health check could not reach the store.
    #[error("the rule store is not answering; see the server log")]
    Unavailable(#[source] RuleError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidAddress { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } | ApiError::ImportTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InvalidRule(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ImportInterrupted { .. } | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Unavailable(_)
            | ApiError::StorageUnavailable(_)
            | ApiError::StoreBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error of a request body that could not be read: too large, or a transport error.
    pub(crate) fn body(error: &axum::Error, limit: usize) -> Self {
        let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(current) = cause {
            if current.is::<http_body_util::LengthLimitError>() {
                return ApiError::PayloadTooLarge { limit };
            }
            cause = current.source();
        }
        ApiError::BadRequest(format!("the request body could not be read: {error}"))
    }
}

/// The error and its causes on one line, for the log.
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(source) => {
                tracing::error!(error = %chain(source.as_ref()), "request failed");
            }
            ApiError::StorageUnavailable(source) => {
                tracing::error!(error = %chain(source.as_ref()), "request failed: storage is not answering");
            }
            ApiError::ImportInterrupted { source, .. } => {
                tracing::error!(error = %chain(source), "import failed");
            }
            ApiError::Unavailable(source) => {
                tracing::error!(error = %chain(source), "health check failed");
            }
            _ => {}
        }
        let status = self.status();
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::StorageUnavailable(_) | ApiError::Unavailable(_) = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let ApiError::StoreBusy { retry_after, .. } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        if let ApiError::Unauthorized(_) = self {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mailfwd\""),
            );
        }
        response
    }
}

pub(crate) use mailfwd_domain::email::SHEDDING_RETRY_AFTER_SECS;

/// The router's fallback: a problem document instead of an empty 404.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NoRoute
}

/// The router's answer to a known path with an unknown method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
