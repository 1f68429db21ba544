//! Extractors whose rejections are [`ApiError`]s, so a malformed request gets a problem
//! document that says what to fix, like every other error.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use mailfwd_domain::RecipientPattern;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, Input};

/// A JSON body: needs `Content-Type: application/json` (or `application/*+json`) and at
/// most `json_body_limit` bytes. Syntax and shape errors name the line and column.
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = media_type(request.headers()).is_some_and(|media| {
            media == "application/json"
                || (media.starts_with("application/") && media.ends_with("+json"))
        });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "this endpoint needs 'Content-Type: application/json'",
            ));
        }
        let declared = declared_length(request.headers());
        let bytes = read_body(request.into_body(), declared, state.config.json_body_limit).await?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::BadRequest(format!("the JSON body is invalid: {e}")))
    }
}

/// A query string; a parameter of the wrong type is a 400 that names it.
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// The `{email}` path parameter, percent-decoded and parsed as a recipient pattern
/// (`*@domain` is a catch-all).
pub(crate) struct PatternPath(pub RecipientPattern);

impl<S: Send + Sync> FromRequestParts<S> for PatternPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        RecipientPattern::parse(&raw)
            .map(PatternPath)
            .map_err(|source| ApiError::InvalidAddress {
                input: Input::PathParam("email"),
                source,
            })
    }
}

/// The media type of the body without parameters, lower-cased: `text/csv; charset=utf-8`
/// → `text/csv`.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    Some(essence.to_ascii_lowercase())
}

/// The declared `Content-Length`, if there is a readable one.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads a whole (small) body, refusing more than `limit` bytes: at once when
/// `Content-Length` says so, else as soon as the limit is passed.
async fn read_body(body: Body, declared: Option<u64>, limit: usize) -> Result<Bytes, ApiError> {
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|error| ApiError::body(&error, limit))
}
