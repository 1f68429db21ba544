//! `/v1/emails`: the received log and the record of one received email.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use mailfwd_domain::delivery::DeliveryJob;
use mailfwd_domain::email::{EmailId, EmailQuery, ReceivedEmail};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::dto::{non_empty, page_limit};
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;

/// The record of one accepted email.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "019a8f3e-6c2b-7d41-9a0e-3b5f1c2d4e6f", "received_at": "2026-11-22T05:10:00.123Z",
    "sender": "someone@example.org", "recipients": ["sales@acme.test"], "size": 2048,
    "peer": "192.0.2.10:53412", "helo": "mail.example.org", "tls": true
}))]
pub(crate) struct EmailBody {
    /// The email's id (a UUIDv7: ids sort by time).
    pub id: String,
    /// When it was accepted, RFC 3339 in UTC.
    pub received_at: String,
    /// The envelope sender; `null` for the null reverse path `<>`.
    pub sender: Option<String>,
    /// The accepted envelope recipients.
    pub recipients: Vec<String>,
    /// Size of the stored message in octets.
    pub size: u64,
    /// The client's `ip:port`, when known.
    pub peer: Option<String>,
    /// The name the client gave in HELO/EHLO.
    pub helo: Option<String>,
    /// Whether the message arrived over TLS.
    pub tls: bool,
    /// Each destination's delivery (only in `GET /v1/emails/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliveryBody>>,
}

/// Where the delivery to one destination stands.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryBody {
    /// The destination address.
    pub destination: String,
    /// `pending`, `delivered` or `failed`.
    pub state: &'static str,
    /// Attempts started so far.
    pub attempts: u32,
    /// When the next attempt is due (pending only), RFC 3339.
    pub next_attempt_at: Option<String>,
    /// The last remote reply, or the reason delivery stopped.
    pub last_reply: Option<String>,
}

impl From<&DeliveryJob> for DeliveryBody {
    fn from(job: &DeliveryJob) -> Self {
        DeliveryBody {
            destination: job.destination.to_string(),
            state: job.state.name(),
            attempts: job.attempts,
            next_attempt_at: (!job.state.is_final())
                .then(|| humantime::format_rfc3339_millis(job.next_attempt_at).to_string()),
            last_reply: job.last_reply.clone(),
        }
    }
}

impl From<&ReceivedEmail> for EmailBody {
    fn from(email: &ReceivedEmail) -> Self {
        let envelope = &email.email.envelope;
        EmailBody {
            id: email.id.to_string(),
            received_at: humantime::format_rfc3339_millis(email.received_at).to_string(),
            sender: envelope.sender.as_ref().map(ToString::to_string),
            recipients: envelope
                .recipients
                .iter()
                .map(ToString::to_string)
                .collect(),
            size: email.size,
            peer: email.email.peer.clone(),
            helo: email.email.helo.clone(),
            tls: email.email.tls,
            deliveries: None,
        }
    }
}

/// One page of the received log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EmailListBody {
    /// Emails in id (time) order.
    pub emails: Vec<EmailBody>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Which part of the received log to read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmailListQuery {
    /// Received at or after this time (RFC 3339, e.g. `2026-11-22T00:00:00Z`).
    pub since: Option<String>,
    /// Received before this time (RFC 3339).
    pub until: Option<String>,
    /// Emails per page, 1 to 1000 (default 100); other values are answered 400.
    #[param(value_type = Option<u16>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (an email id).
    pub cursor: Option<String>,
}

fn time(name: &'static str, value: Option<String>) -> Result<Option<SystemTime>, ApiError> {
    match non_empty(value) {
        None => Ok(None),
        Some(text) => humantime::parse_rfc3339_weak(&text).map(Some).map_err(|e| {
            ApiError::BadRequest(format!(
                "the query parameter '{name}' is not an RFC 3339 time such as 2026-11-22T05:00:00Z: {e}"
            ))
        }),
    }
}

impl EmailListQuery {
    fn into_query(self) -> Result<EmailQuery, ApiError> {
        Ok(EmailQuery {
            since: time("since", self.since)?,
            until: time("until", self.until)?,
            limit: page_limit(self.limit)?,
            cursor: non_empty(self.cursor),
        })
    }
}

/// The `{id}` path parameter, parsed as an email id.
pub(crate) struct EmailIdPath(EmailId);

impl<S: Send + Sync> FromRequestParts<S> for EmailIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        EmailId::parse(&raw)
            .map(EmailIdPath)
            .map_err(|e| ApiError::BadRequest(format!("the path parameter 'id' is invalid: {e}")))
    }
}

/// Reads the record of one received email.
#[utoipa::path(
    get,
    path = "/v1/emails/{id}",
    tag = "emails",
    params(("id" = String, Path, format = "uuid", description = "The email id, a UUID (hyphenated, as in the SMTP reply `250 2.0.0 Ok: queued as <id>`)")),
    responses(
        (status = 200, description = "The email's record, with the state of each destination's delivery", body = EmailBody),
        (status = 400, description = "The id is not an email id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token, or (no token configured) a peer not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token is configured and the Host header names neither a loopback host nor an allowed one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No email with this id", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Something unexpected failed; the cause is in the server log, not in the answer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the email store is not answering; try again after `Retry-After` seconds (the cause is in the server log)", body = Problem, content_type = "application/problem+json",
            headers(("retry-after" = u32, description = "Seconds to wait before trying again"))),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_email(
    State(state): State<AppState>,
    EmailIdPath(id): EmailIdPath,
) -> Result<Json<EmailBody>, ApiError> {
    let email = state.emails.get(&id).await?;
    let jobs = state.deliveries.jobs_of(id).await?;
    let mut body = EmailBody::from(&email);
    body.deliveries = Some(jobs.iter().map(DeliveryBody::from).collect());
    Ok(Json(body))
}

/// Lists received emails in a time window: the audit log that reprocessing relies on.
#[utoipa::path(
    get,
    path = "/v1/emails",
    tag = "emails",
    params(EmailListQuery),
    responses(
        (status = 200, description = "One page of the received log", body = EmailListBody),
        (status = 400, description = "A time that is not RFC 3339 in UTC, a limit out of 1..=1000, a cursor this server did not hand out, or an unknown parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token, or (no token configured) a peer not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token is configured and the Host header names neither a loopback host nor an allowed one", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Something unexpected failed; the cause is in the server log, not in the answer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the email store is not answering; try again after `Retry-After` seconds (the cause is in the server log)", body = Problem, content_type = "application/problem+json",
            headers(("retry-after" = u32, description = "Seconds to wait before trying again"))),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_emails(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EmailListQuery>,
) -> Result<Json<EmailListBody>, ApiError> {
    let page = state.emails.list(&query.into_query()?).await?;
    Ok(Json(EmailListBody {
        emails: page.emails.iter().map(EmailBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
