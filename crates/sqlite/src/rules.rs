//! `RuleStore` on SQLite.

use async_trait::async_trait;
use mailfwd_domain::rule_store::decode_cursor;
use mailfwd_domain::{
    AddressError, EmailAddress, RecipientPattern, Rule, RuleError, RulePage, RuleQuery, RuleStore,
};
use sqlx::QueryBuilder;
use sqlx::sqlite::SqlitePool;
use thiserror::Error;

/// Rules in the `rules` table, keyed by [`RecipientPattern::key`].
#[derive(Debug, Clone)]
pub struct SqliteRuleStore {
    pool: SqlitePool,
}

/// A stored row that no longer parses: someone edited the database by hand.
#[derive(Debug, Error)]
#[error("the stored rule '{key}' is corrupt: {source}")]
struct CorruptRow {
    key: String,
    source: AddressError,
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    pattern_key: String,
    pattern: String,
    destinations: String,
}

impl RuleRow {
    fn into_rule(self) -> Result<Rule, RuleError> {
        let corrupt = |source| {
            RuleError::storage(CorruptRow {
                key: self.pattern_key.clone(),
                source,
            })
        };
        let pattern = RecipientPattern::parse(&self.pattern).map_err(corrupt)?;
        let destinations = self
            .destinations
            .lines()
            .map(EmailAddress::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        // The destination limit applies when a rule is written; a stored rule stays
        // readable even if the limit was lowered since.
        Ok(Rule::new(pattern, destinations, usize::MAX)?)
    }
}

/// Rules per INSERT statement (4 parameters each; SQLite allows 32,766).
const UPSERT_CHUNK: usize = 1_000;

fn destinations_column(rule: &Rule) -> String {
    rule.destinations()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl SqliteRuleStore {
    /// A store on an open pool whose migrations have run.
    #[must_use]
    pub(crate) fn new(pool: SqlitePool) -> Self {
        SqliteRuleStore { pool }
    }
}

#[async_trait]
impl RuleStore for SqliteRuleStore {
    async fn create(&self, rule: Rule) -> Result<Rule, RuleError> {
        let result = sqlx::query(
            "INSERT INTO rules (pattern_key, domain, pattern, destinations) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (pattern_key) DO NOTHING",
        )
        .bind(rule.pattern().key())
        .bind(rule.pattern().domain().as_str())
        .bind(rule.pattern().to_string())
        .bind(destinations_column(&rule))
        .execute(&self.pool)
        .await
        .map_err(RuleError::storage)?;
        if result.rows_affected() == 0 {
            return Err(RuleError::AlreadyExists(rule.pattern().clone()));
        }
        Ok(rule)
    }

    async fn get(&self, pattern: &RecipientPattern) -> Result<Rule, RuleError> {
        let row: Option<RuleRow> = sqlx::query_as(
            "SELECT pattern_key, pattern, destinations FROM rules WHERE pattern_key = ?1",
        )
        .bind(pattern.key())
        .fetch_optional(&self.pool)
        .await
        .map_err(RuleError::storage)?;
        row.ok_or_else(|| RuleError::NotFound(pattern.clone()))?
            .into_rule()
    }

    async fn delete(&self, pattern: &RecipientPattern) -> Result<(), RuleError> {
        let result = sqlx::query("DELETE FROM rules WHERE pattern_key = ?1")
            .bind(pattern.key())
            .execute(&self.pool)
            .await
            .map_err(RuleError::storage)?;
        if result.rows_affected() == 0 {
            return Err(RuleError::NotFound(pattern.clone()));
        }
        Ok(())
    }

    async fn list(&self, query: &RuleQuery) -> Result<RulePage, RuleError> {
        let limit = query.limit.max(1);
        let after = query
            .cursor
            .as_deref()
            .map(decode_cursor)
            .transpose()?
            .unwrap_or_default();
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let rows: Vec<RuleRow> = match &query.domain {
            Some(domain) => {
                sqlx::query_as(
                    "SELECT pattern_key, pattern, destinations FROM rules
                 WHERE domain = ?1 AND pattern_key > ?2 ORDER BY pattern_key LIMIT ?3",
                )
                .bind(domain.as_str())
                .bind(&after)
                .bind(fetch)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query_as(
                    "SELECT pattern_key, pattern, destinations FROM rules
                 WHERE pattern_key > ?1 ORDER BY pattern_key LIMIT ?2",
                )
                .bind(&after)
                .bind(fetch)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(RuleError::storage)?;
        let rules = rows
            .into_iter()
            .map(RuleRow::into_rule)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RulePage::from_overfetch(rules, limit))
    }

    async fn upsert_many(&self, rules: Vec<Rule>) -> Result<u64, RuleError> {
        let mut tx = self.pool.begin().await.map_err(RuleError::storage)?;
        // Many rows per statement: one round trip to SQLite's thread per chunk instead of
        // per rule is what makes a 100,000-row import take a second instead of ten.
        for chunk in rules.chunks(UPSERT_CHUNK) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO rules (pattern_key, domain, pattern, destinations) ",
            );
            insert.push_values(chunk, |mut row, rule| {
                row.push_bind(rule.pattern().key())
                    .push_bind(rule.pattern().domain().as_str().to_owned())
                    .push_bind(rule.pattern().to_string())
                    .push_bind(destinations_column(rule));
            });
            insert.push(
                " ON CONFLICT (pattern_key) DO UPDATE SET pattern = excluded.pattern, \
                 destinations = excluded.destinations, updated_at = unixepoch()",
            );
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(RuleError::storage)?;
        }
        tx.commit().await.map_err(RuleError::storage)?;
        Ok(rules.len() as u64)
    }

    async fn resolve(&self, recipient: &EmailAddress) -> Result<Option<Rule>, RuleError> {
        let candidates = RecipientPattern::candidate_keys(recipient);
        // At most three candidates; unused slots repeat the last so the SQL is fixed.
        let slot = |i: usize| {
            candidates
                .get(i)
                .or(candidates.last())
                .cloned()
                .unwrap_or_default()
        };
        let rows: Vec<RuleRow> = sqlx::query_as(
            "SELECT pattern_key, pattern, destinations FROM rules WHERE pattern_key IN (?1, ?2, ?3)",
        )
        .bind(slot(0))
        .bind(slot(1))
        .bind(slot(2))
        .fetch_all(&self.pool)
        .await
        .map_err(RuleError::storage)?;
        let best = candidates
            .iter()
            .find_map(|key| rows.iter().position(|row| &row.pattern_key == key));
        match best {
            Some(index) => rows
                .into_iter()
                .nth(index)
                .map(RuleRow::into_rule)
                .transpose(),
            None => Ok(None),
        }
    }
}
