//! The `RuleStore` port: the one owner of forwarding rules.

use async_trait::async_trait;
use thiserror::Error;

use crate::address::{Domain, EmailAddress};
use crate::rule::{InvalidRule, RecipientPattern, Rule};

/// What can go wrong with a rule operation.
#[derive(Debug, Error)]
pub enum RuleError {
    /// A rule for this pattern already exists.
    #[error("a rule for '{0}' already exists")]
    AlreadyExists(RecipientPattern),
    /// No rule for this pattern exists.
    #[error("no rule for '{0}' exists")]
    NotFound(RecipientPattern),
    /// The rule breaks a rule of validity.
    #[error(transparent)]
    Invalid(#[from] InvalidRule),
    /// A list cursor that this store did not hand out.
    #[error("the cursor is not one this server handed out")]
    InvalidCursor,
    /// Anything unexpected: the storage failed, a row could not be read back, …
    #[error("rule storage failed: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RuleError {
    /// Wraps an unexpected storage error.
    pub fn storage(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        RuleError::Storage(Box::new(error))
    }
}

/// Which rules to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleQuery {
    /// Only rules for this domain, when set.
    pub domain: Option<Domain>,
    /// At most this many rules (stores clamp it to at least 1).
    pub limit: usize,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

/// One page of rules in key order, and the cursor of the next page if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePage {
    /// The rules on this page.
    pub rules: Vec<Rule>,
    /// Pass this as [`RuleQuery::cursor`] to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl RulePage {
    /// One page from up to `limit + 1` rules in key order, as a store fetches them: the
    /// extra rule, if any, only tells that another page follows. Every store pages this
    /// way, so a cursor means the same thing everywhere.
    #[must_use]
    pub fn from_overfetch(mut rules: Vec<Rule>, limit: usize) -> Self {
        let next_cursor = (rules.len() > limit)
            .then(|| {
                rules.truncate(limit);
                rules
                    .last()
                    .map(|rule| encode_cursor(&rule.pattern().key()))
            })
            .flatten();
        RulePage { rules, next_cursor }
    }
}

/// The owner of forwarding rules. Only valid rules exist in it, one per pattern key.
#[async_trait]
pub trait RuleStore: Send + Sync {
    /// Stores a new rule.
    ///
    /// # Errors
    /// [`RuleError::AlreadyExists`] if the pattern already has a rule.
    async fn create(&self, rule: Rule) -> Result<Rule, RuleError>;

    /// The rule for a pattern.
    ///
    /// # Errors
    /// [`RuleError::NotFound`] if there is none.
    async fn get(&self, pattern: &RecipientPattern) -> Result<Rule, RuleError>;

    /// Deletes the rule for a pattern.
    ///
    /// # Errors
    /// [`RuleError::NotFound`] if there is none.
    async fn delete(&self, pattern: &RecipientPattern) -> Result<(), RuleError>;

    /// A page of rules in pattern-key order.
    ///
    /// # Errors
    /// [`RuleError::InvalidCursor`] for a cursor this store did not hand out.
    async fn list(&self, query: &RuleQuery) -> Result<RulePage, RuleError>;

    /// Creates or replaces many rules at once, all or nothing. Returns how many were written.
    ///
    /// # Errors
    /// [`RuleError::Storage`] if the batch could not be written; then none of it was.
    async fn upsert_many(&self, rules: Vec<Rule>) -> Result<u64, RuleError>;

    /// The rule that applies to a recipient, by the precedence of
    /// [`RecipientPattern::candidate_keys`]; `None` when the recipient is not ours.
    ///
    /// # Errors
    /// [`RuleError::Storage`] only.
    async fn resolve(&self, recipient: &EmailAddress) -> Result<Option<Rule>, RuleError>;
}

/// A change to the rules made outside this process (by another instance on a shared
/// database), as cross-instance invalidation reports it to caches of `resolve`.
///
/// A store adapter produces these (PostgreSQL: `LISTEN/NOTIFY`); the rule cache
/// consumes them. It lives here so that neither has to depend on the other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Invalidation {
    /// The rule for this pattern key ([`RecipientPattern::key`]) was created, replaced
    /// or deleted. A catch-all key (`*@domain`) may change the answer for every
    /// address at its domain; an exact key, for the address and its subaddresses.
    Key(String),
    /// Anything may have changed (a bulk import, or notifications that may have been
    /// lost): forget everything.
    All,
}

/// Cursors are the last key of a page, hex-encoded so they are opaque and URL-safe.
/// Every store uses these two functions, so a cursor means the same thing everywhere.
#[must_use]
pub fn encode_cursor(last_key: &str) -> String {
    last_key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a cursor made by [`encode_cursor`].
///
/// # Errors
/// [`RuleError::InvalidCursor`] for anything else.
pub fn decode_cursor(cursor: &str) -> Result<String, RuleError> {
    if !cursor.len().is_multiple_of(2) {
        return Err(RuleError::InvalidCursor);
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(RuleError::InvalidCursor)?;
    String::from_utf8(bytes).map_err(|_| RuleError::InvalidCursor)
}

/// Whether `rules` holds any rule for an address of `domain`: one lookup of one row.
///
/// # Errors
/// [`RuleError::Storage`] if the rules cannot be read.
pub async fn has_rules_for(rules: &dyn RuleStore, domain: &Domain) -> Result<bool, RuleError> {
    let query = RuleQuery {
        domain: Some(domain.clone()),
        limit: 1,
        cursor: None,
    };
    Ok(!rules.list(&query).await?.rules.is_empty())
}
