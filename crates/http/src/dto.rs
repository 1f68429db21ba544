//! The JSON shapes of the API and their one conversion to and from domain types.
//!
//! Request DTOs hold plain strings; [`CreateRuleBody::into_rule`] and
//! [`ListQuery::into_query`] are the only places they become domain values, and they
//! leave every check to the domain's parsers, adding only *which* field was wrong.

use mailfwd_domain::address::MAX_ADDRESS;
use mailfwd_domain::import::{ImportReport, RowError};
use mailfwd_domain::{Domain, EmailAddress, RecipientPattern, Rule, RuleQuery};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, Input};

/// Rules per page when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted; larger values are answered 400, not clamped.
pub(crate) const MAX_LIMIT: usize = 1000;

/// A new forwarding rule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "sales@acme.test", "forward": ["alice@gmail.test", "bob@corp.test"]}))]
pub(crate) struct CreateRuleBody {
    /// The recipient: an address, or `*@domain` for every address at the domain. A domain
    /// name, not an address literal.
    #[schema(format = IdnEmail, min_length = 1, max_length = 254)]
    pub email: String,
    /// Where its mail goes: one address or a list of addresses.
    #[schema(schema_with = forward_schema)]
    pub forward: Forward,
}

/// The schema of [`Forward`]: an address, or a non-empty list of them. There is no
/// `maxItems`: the limit (`MAILFWD_MAX_DESTINATIONS`) counts distinct addresses after
/// duplicates are merged, which a list length cannot say; a rule over it is a 422.
fn forward_schema() -> Schema {
    let address = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::IdnEmail)))
            .min_length(Some(1))
            .max_length(Some(MAX_ADDRESS))
    };
    OneOfBuilder::new()
        .item(address().description(Some("A single destination.")))
        .item(
            ArrayBuilder::new()
                .items(address())
                .min_items(Some(1))
                .description(Some(
                    "Several destinations; duplicates (compared case-insensitively) are merged, \
                     and at most `MAILFWD_MAX_DESTINATIONS` (default 10) distinct ones may remain.",
                )),
        )
        .description(Some(
            "Where its mail goes: one address or a non-empty list of addresses.",
        ))
        .into()
}

/// One destination or several.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "'forward' must be an email address or a list of email addresses"
)]
pub(crate) enum Forward {
    /// A single destination.
    One(String),
    /// Several destinations.
    Many(Vec<String>),
}

impl CreateRuleBody {
    /// The rule this body asks for.
    ///
    /// # Errors
    /// [`ApiError::InvalidAddress`] naming the field (`email`, `forward`, `forward[2]`),
    /// or [`ApiError::InvalidRule`] when the rule as a whole is not valid.
    pub(crate) fn into_rule(self, max_destinations: usize) -> Result<Rule, ApiError> {
        let invalid = |field: String| {
            move |source| ApiError::InvalidAddress {
                input: Input::Field(field),
                source,
            }
        };
        let pattern = RecipientPattern::parse(&self.email).map_err(invalid("email".to_owned()))?;
        let destinations = match self.forward {
            Forward::One(address) => {
                vec![EmailAddress::parse(&address).map_err(invalid("forward".to_owned()))?]
            }
            Forward::Many(addresses) => addresses
                .iter()
                .enumerate()
                .map(|(index, address)| {
                    EmailAddress::parse(address).map_err(invalid(format!("forward[{index}]")))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Rule::new(pattern, destinations, max_destinations)?)
    }
}

/// A forwarding rule as stored.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"email": "sales@acme.test", "forward": ["alice@gmail.test"]}))]
pub(crate) struct RuleBody {
    /// The recipient pattern, normalized (domain lower-cased, `*@domain` for a catch-all).
    pub email: String,
    /// The destinations, without duplicates, in the order given.
    pub forward: Vec<String>,
}

impl From<&Rule> for RuleBody {
    fn from(rule: &Rule) -> Self {
        RuleBody {
            email: rule.pattern().to_string(),
            forward: rule
                .destinations()
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

/// Which rules to list. Empty `domain=` or `cursor=` values count as absent.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only rules of this domain (any case; a Unicode name or its punycode).
    pub domain: Option<String>,
    /// Rules per page, 1 to 1000 (default 100); other values are answered 400.
    #[param(value_type = Option<u16>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page, unchanged.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// The store query this asks for.
    ///
    /// # Errors
    /// [`ApiError::InvalidAddress`] for a bad domain, [`ApiError::BadRequest`] for a
    /// limit out of range.
    pub(crate) fn into_query(self) -> Result<RuleQuery, ApiError> {
        let limit = page_limit(self.limit)?;
        let domain = non_empty(self.domain)
            .map(|domain| Domain::parse(&domain))
            .transpose()
            .map_err(|source| ApiError::InvalidAddress {
                input: Input::QueryParam("domain"),
                source,
            })?;
        Ok(RuleQuery {
            domain,
            limit,
            cursor: non_empty(self.cursor),
        })
    }
}

/// The `limit` of a list request: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
///
/// Read from text here rather than by serde, so that every bad value (`0`, `-1`, `1e3`,
/// a number too large for any integer type, `ten`, an empty `limit=`) gets the same
/// answer saying what is allowed, not a parser's "invalid digit found in string".
///
/// # Errors
/// [`ApiError::BadRequest`] naming the parameter and the allowed range.
pub(crate) fn page_limit(limit: Option<String>) -> Result<usize, ApiError> {
    let Some(text) = limit else {
        return Ok(DEFAULT_LIMIT);
    };
    // Digits only: `usize::from_str` would also take a leading `+`.
    let number = text
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse::<usize>().ok())
        .flatten();
    match number {
        Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::BadRequest(format!(
            "the query parameter 'limit' must be a whole number between 1 and {MAX_LIMIT}; it is '{}'",
            text.chars().take(32).collect::<String>()
        ))),
    }
}

/// An empty query parameter (`?cursor=`) counts as absent.
pub(crate) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// One page of rules.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleListBody {
    /// The rules on this page, in pattern-key order.
    pub forwards: Vec<RuleBody>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// How to import.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportQuery {
    /// Import nothing unless every row is valid (default false). An atomic import holds
    /// the whole file's rules in memory until the end.
    pub atomic: Option<bool>,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportReportBody {
    /// Data rows read (not counting the header and blank lines).
    pub rows: u64,
    /// Rows whose rule was written.
    pub imported_rows: u64,
    /// Rows rejected.
    pub rejected_rows: u64,
    /// Distinct rules created or replaced.
    pub rules_written: u64,
    /// The first rejected rows (up to 1000), in order.
    pub errors: Vec<RowErrorBody>,
    /// True when more rows were rejected than `errors` lists.
    pub errors_truncated: bool,
}

/// One rejected CSV row.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"line": 4, "column": "email", "reason": "'x@': the domain (after '@') is empty"}))]
pub(crate) struct RowErrorBody {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// `email`, `forward`, or `row` when the line as a whole is wrong.
    pub column: String,
    /// What is wrong.
    pub reason: String,
}

impl From<ImportReport> for ImportReportBody {
    fn from(report: ImportReport) -> Self {
        ImportReportBody {
            rows: report.rows,
            imported_rows: report.imported_rows,
            rejected_rows: report.rejected_rows,
            rules_written: report.rules_written,
            errors: report.errors.into_iter().map(RowErrorBody::from).collect(),
            errors_truncated: report.errors_truncated,
        }
    }
}

impl From<RowError> for RowErrorBody {
    fn from(error: RowError) -> Self {
        RowErrorBody {
            line: error.line,
            column: error.column.to_owned(),
            reason: error.reason,
        }
    }
}

/// The health check's answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub(crate) struct HealthBody {
    /// Always `ok`; failures are answered 503 with a problem document.
    pub status: &'static str,
}
