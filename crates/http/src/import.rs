//! `POST /v1/forwards/import`: a CSV body streamed chunk by chunk into the domain's
//! [`CsvImport`], so a file of any length is read in bounded memory (unless atomic).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use futures_util::StreamExt;
use mailfwd_domain::import::{CsvImport, ImportOptions};

use crate::AppState;
use crate::dto::{ImportQuery, ImportReportBody};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiQuery, declared_length, media_type};

/// Media types accepted for the CSV body.
const CSV_TYPES: [&str; 2] = ["text/csv", "application/octet-stream"];

/// Imports forwarding rules from CSV with the header `email,forward`; several
/// destinations in one row are separated by `;`, and rows for the same recipient merge.
/// A rule for a recipient that already has one replaces it.
///
/// Not atomic (the default): valid rows are written in batches while the body streams
/// in, rejected rows are reported, and the answer is 200. Atomic: nothing is written
/// unless every row is valid; otherwise the answer is 422 with the same report.
#[utoipa::path(
    post,
    path = "/v1/forwards/import",
    tag = "forwards",
    params(ImportQuery),
    request_body(
        description = "CSV whose first line is the header `email,forward`; several destinations of one row are separated by `;`",
        content(
            (String = "text/csv", example = "email,forward\nsales@acme.test,alice@gmail.test;bob@corp.test\n"),
            (String = "application/octet-stream"),
        ),
    ),
    responses(
        (status = 200, description = "The import ran; rejected rows, if any, are listed", body = ImportReportBody),
        (status = 400, description = "The first line is not the header `email,forward`, the file is empty, or `atomic` is not `true` or `false`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token, or (no token configured) a peer not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token is configured and the Host header names neither a loopback host nor an allowed one", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the import body limit (without `atomic`, batches read before the limit stay written), or an atomic import has more rows than the atomic row limit (nothing written)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The content type is not text/csv or application/octet-stream", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Atomic import with rejected rows: nothing was written", body = ImportReportBody),
        (status = 500, description = "The store failed during the import; the detail says how many rules were written before (they stay written unless atomic)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn import_rules(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ImportQuery>,
    request: Request,
) -> Result<(StatusCode, Json<ImportReportBody>), ApiError> {
    if !media_type(request.headers()).is_some_and(|media| CSV_TYPES.contains(&media.as_str())) {
        return Err(ApiError::UnsupportedMediaType(
            "this endpoint needs 'Content-Type: text/csv'",
        ));
    }
    let limit = state.config.import_body_limit;
    if declared_length(request.headers()).is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let atomic = query.atomic.unwrap_or(false);
    let options = ImportOptions {
        atomic,
        atomic_max_rows: state.config.import_atomic_max_rows,
        max_destinations: state.config.max_destinations,
        expansion: state.config.expansion,
        ..ImportOptions::default()
    };
    let mut import = CsvImport::new(state.rules.as_ref(), options);
    let mut body = request.into_body().into_data_stream();
    let mut received: usize = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| ApiError::body(&error, limit))?;
        received = received.saturating_add(chunk.len());
        if received > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        import.feed(&chunk).await?;
    }
    let report = import.finish().await?;
    let status = if atomic && report.rejected_rows > 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report.into())))
}
