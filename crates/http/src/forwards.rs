//! `/v1/forwards`: create, read, list and delete forwarding rules.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};

use mailfwd_domain::expansion::check_new_rule;

use crate::AppState;
use crate::dto::{CreateRuleBody, ListQuery, RuleBody, RuleListBody};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, PatternPath};

/// Creates a forwarding rule.
#[utoipa::path(
    post,
    path = "/v1/forwards",
    tag = "forwards",
    request_body = CreateRuleBody,
    responses(
        (status = 201, description = "The rule was created", body = RuleBody,
            headers(("location" = String, description = "The path of the new rule"))),
        (status = 400, description = "Malformed JSON, or a field that is not a valid address (the detail names the field)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token, or (no token configured) a peer not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token is configured and the Host header names neither a loopback host nor an allowed one", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A rule for this recipient already exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the JSON body limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The content type is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Valid addresses, but not a valid rule: no destination, too many, forwarding to itself, or, with the rules already stored, a forwarding loop or a chain of rules too long (the detail names the addresses)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Something unexpected failed; the cause is in the server log, not in the answer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the email store is not answering; try again after `Retry-After` seconds (the cause is in the server log)", body = Problem, content_type = "application/problem+json",
            headers(("retry-after" = u32, description = "Seconds to wait before trying again"))),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create_rule(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateRuleBody>,
) -> Result<(StatusCode, [(HeaderName, String); 1], Json<RuleBody>), ApiError> {
    let rule = body.into_rule(state.config.max_destinations)?;
    check_new_rule(state.rules.as_ref(), &rule, state.config.expansion).await?;
    let rule = state.rules.create(rule).await?;
    let location = format!(
        "/v1/forwards/{}",
        encode_segment(&rule.pattern().to_string())
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(RuleBody::from(&rule)),
    ))
}

/// Lists forwarding rules, a page at a time, optionally of one domain.
#[utoipa::path(
    get,
    path = "/v1/forwards",
    tag = "forwards",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of rules", body = RuleListBody),
        (status = 400, description = "A bad domain, a limit out of 1..=1000, or a cursor this server did not hand out", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token, or (no token configured) a peer not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token is configured and the Host header names neither a loopback host nor an allowed one", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Something unexpected failed; the cause is in the server log, not in the answer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the email store is not answering; try again after `Retry-After` seconds (the cause is in the server log)", body = Problem, content_type = "application/problem+json",
            headers(("retry-after" = u32, description = "Seconds to wait before trying again"))),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_rules(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<RuleListBody>, ApiError> {
    let page = state.rules.list(&query.into_query()?).await?;
    Ok(Json(RuleListBody {
        forwards: page.rules.iter().map(RuleBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Reads the rule of one recipient pattern.
#[utoipa::path(
    get,
    path = "/v1/forwards/{email}",
    tag = "forwards",
    params(("email" = String, Path, format = IdnEmail, min_length = 1, max_length = 254, description = "The recipient pattern, percent-encoded: `sales@acme.test`, `*@acme.test` (or `%2A@acme.test`); a domain name, not an address literal")),
    responses(
        (status = 200, description = "The rule", body = RuleBody),
        (status = 400, description = "The path parameter is not a valid address or `*@domain`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token, or (no token configured) a peer not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token is configured and the Host header names neither a loopback host nor an allowed one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No rule for this pattern", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Something unexpected failed; the cause is in the server log, not in the answer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the email store is not answering; try again after `Retry-After` seconds (the cause is in the server log)", body = Problem, content_type = "application/problem+json",
            headers(("retry-after" = u32, description = "Seconds to wait before trying again"))),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_rule(
    State(state): State<AppState>,
    PatternPath(pattern): PatternPath,
) -> Result<Json<RuleBody>, ApiError> {
    let rule = state.rules.get(&pattern).await?;
    Ok(Json(RuleBody::from(&rule)))
}

/// Deletes the rule of one recipient pattern.
#[utoipa::path(
    delete,
    path = "/v1/forwards/{email}",
    tag = "forwards",
    params(("email" = String, Path, format = IdnEmail, min_length = 1, max_length = 254, description = "The recipient pattern, percent-encoded: `sales@acme.test`, `*@acme.test` (or `%2A@acme.test`); a domain name, not an address literal")),
    responses(
        (status = 204, description = "The rule was deleted"),
        (status = 400, description = "The path parameter is not a valid address or `*@domain`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token, or (no token configured) a peer not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token is configured and the Host header names neither a loopback host nor an allowed one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No rule for this pattern", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Something unexpected failed; the cause is in the server log, not in the answer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the email store is not answering; try again after `Retry-After` seconds (the cause is in the server log)", body = Problem, content_type = "application/problem+json",
            headers(("retry-after" = u32, description = "Seconds to wait before trying again"))),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete_rule(
    State(state): State<AppState>,
    PatternPath(pattern): PatternPath,
) -> Result<StatusCode, ApiError> {
    state.rules.delete(&pattern).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Percent-encodes a path segment, leaving the characters RFC 3986 allows in one
/// (so `*@acme.test` stays readable) and encoding the rest (`"`, space, `/`, non-ASCII).
fn encode_segment(segment: &str) -> String {
    const KEEP: &[u8] = b"-._~!$&'()*+,;=:@";
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || KEEP.contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::encode_segment;

    #[test]
    fn segments_keep_readable_characters() {
        assert_eq!(encode_segment("*@acme.test"), "*@acme.test");
        assert_eq!(encode_segment("\"a b\"@x.test"), "%22a%20b%22@x.test");
        assert_eq!(encode_segment("a/b@x.test"), "a%2Fb@x.test");
    }
}
