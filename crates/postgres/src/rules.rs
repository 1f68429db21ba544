//! `RuleStore` on PostgreSQL.

use std::collections::HashMap;

use async_trait::async_trait;
use mailfwd_domain::rule_store::decode_cursor;
use mailfwd_domain::{
    AddressError, EmailAddress, RecipientPattern, Rule, RuleError, RulePage, RuleQuery, RuleStore,
};
use sqlx::postgres::PgPool;
use thiserror::Error;

use crate::changes::payload;

/// Rules in the `rules` table, keyed by [`RecipientPattern::key`].
///
/// Every write call that changes something sends one notification with it, which a
/// [`ChangeListener`](crate::ChangeListener) on any instance hears.
#[derive(Debug, Clone)]
pub struct PgRuleStore {
    pool: PgPool,
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
    destinations: Vec<String>,
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
            .iter()
            .map(|d| EmailAddress::parse(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        // The destination limit applies when a rule is written; a stored rule stays
        // readable even if the limit was lowered since.
        Ok(Rule::new(pattern, destinations, usize::MAX)?)
    }
}

/// Rules per `INSERT … SELECT FROM UNNEST`: the whole chunk travels as four array
/// parameters, so the only limit is memory; chunks keep each statement's arrays small.
const UPSERT_CHUNK: usize = 10_000;

fn destinations(rule: &Rule) -> Vec<String> {
    rule.destinations()
        .iter()
        .map(ToString::to_string)
        .collect()
}

impl PgRuleStore {
    /// A store on an open pool whose migrations have run.
    #[must_use]
    pub(crate) fn new(pool: PgPool) -> Self {
        PgRuleStore { pool }
    }
}

/// One rule per pattern key, the last one given winning, as a row-by-row upsert would
/// leave it: PostgreSQL refuses an `ON CONFLICT DO UPDATE` that meets the same key twice
/// in one statement ("cannot affect row a second time").
fn last_per_key(rules: &[Rule]) -> Vec<&Rule> {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(rules.len());
    let mut unique: Vec<&Rule> = Vec::with_capacity(rules.len());
    for rule in rules {
        match index.get(&rule.pattern().key()) {
            Some(&at) => unique[at] = rule,
            None => {
                index.insert(rule.pattern().key(), unique.len());
                unique.push(rule);
            }
        }
    }
    unique
}

#[async_trait]
impl RuleStore for PgRuleStore {
    async fn create(&self, rule: Rule) -> Result<Rule, RuleError> {
        // The notification is part of the statement, so of its transaction: sent if and
        // only if the row is, when it commits.
        let inserted = sqlx::query(
            "WITH inserted AS (
                 INSERT INTO rules (pattern_key, domain, pattern, destinations)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (pattern_key) DO NOTHING RETURNING pattern_key)
             SELECT pattern_key, pg_notify($5, $6) FROM inserted",
        )
        .bind(rule.pattern().key())
        .bind(rule.pattern().domain().as_str())
        .bind(rule.pattern().to_string())
        .bind(destinations(&rule))
        .bind(payload::CHANNEL)
        .bind(payload::for_key(rule.pattern().key()))
        .fetch_optional(&self.pool)
        .await
        .map_err(RuleError::storage)?;
        if inserted.is_none() {
            return Err(RuleError::AlreadyExists(rule.pattern().clone()));
        }
        Ok(rule)
    }

    async fn get(&self, pattern: &RecipientPattern) -> Result<Rule, RuleError> {
        let row: Option<RuleRow> = sqlx::query_as(
            "SELECT pattern_key, pattern, destinations FROM rules WHERE pattern_key = $1",
        )
        .bind(pattern.key())
        .fetch_optional(&self.pool)
        .await
        .map_err(RuleError::storage)?;
        row.ok_or_else(|| RuleError::NotFound(pattern.clone()))?
            .into_rule()
    }

    async fn delete(&self, pattern: &RecipientPattern) -> Result<(), RuleError> {
        let deleted = sqlx::query(
            "WITH deleted AS (DELETE FROM rules WHERE pattern_key = $1 RETURNING pattern_key)
             SELECT pattern_key, pg_notify($2, $3) FROM deleted",
        )
        .bind(pattern.key())
        .bind(payload::CHANNEL)
        .bind(payload::for_key(pattern.key()))
        .fetch_optional(&self.pool)
        .await
        .map_err(RuleError::storage)?;
        if deleted.is_none() {
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
        // Two statements rather than one with `$1 IS NULL OR domain = $1`: a prepared
        // statement's generic plan cannot pick the domain index for such an OR.
        let rows: Vec<RuleRow> = match &query.domain {
            Some(domain) => {
                sqlx::query_as(
                    "SELECT pattern_key, pattern, destinations FROM rules
                     WHERE domain = $1 AND pattern_key > $2 ORDER BY pattern_key LIMIT $3",
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
                     WHERE pattern_key > $1 ORDER BY pattern_key LIMIT $2",
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
        let unique = last_per_key(&rules);
        let mut tx = self.pool.begin().await.map_err(RuleError::storage)?;
        for chunk in unique.chunks(UPSERT_CHUNK) {
            // Arrays of arrays must be rectangular in PostgreSQL, so each rule's
            // destinations travel as one newline-joined string (addresses cannot hold
            // control characters) and are split back into an array by the server.
            let (mut keys, mut domains, mut patterns, mut joined) = (
                Vec::with_capacity(chunk.len()),
                Vec::with_capacity(chunk.len()),
                Vec::with_capacity(chunk.len()),
                Vec::with_capacity(chunk.len()),
            );
            for rule in chunk {
                keys.push(rule.pattern().key());
                domains.push(rule.pattern().domain().as_str().to_owned());
                patterns.push(rule.pattern().to_string());
                joined.push(destinations(rule).join("\n"));
            }
            sqlx::query(
                "INSERT INTO rules (pattern_key, domain, pattern, destinations)
                 SELECT k, d, p, string_to_array(j, E'\\n')
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS t(k, d, p, j)
                 ON CONFLICT (pattern_key) DO UPDATE SET pattern = excluded.pattern,
                     destinations = excluded.destinations, updated_at = now()",
            )
            .bind(keys)
            .bind(domains)
            .bind(patterns)
            .bind(joined)
            .execute(&mut *tx)
            .await
            .map_err(RuleError::storage)?;
        }
        // One notification for the whole import, however many rows: each `NOTIFY`
        // takes a global lock at commit.
        if let Some(payload) = payload::for_import(&unique) {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(payload::CHANNEL)
                .bind(payload)
                .execute(&mut *tx)
                .await
                .map_err(RuleError::storage)?;
        }
        tx.commit().await.map_err(RuleError::storage)?;
        Ok(rules.len() as u64)
    }

    async fn resolve(&self, recipient: &EmailAddress) -> Result<Option<Rule>, RuleError> {
        let candidates = RecipientPattern::candidate_keys(recipient);
        let rows: Vec<RuleRow> = sqlx::query_as(
            "SELECT pattern_key, pattern, destinations FROM rules WHERE pattern_key = ANY($1)",
        )
        .bind(&candidates)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, destination: &str) -> Rule {
        let pattern = RecipientPattern::parse(pattern).expect("a pattern");
        let destination = EmailAddress::parse(destination).expect("an address");
        Rule::new(pattern, vec![destination], 10).expect("a rule")
    }

    #[test]
    fn the_last_rule_for_a_key_wins_in_first_seen_order() {
        let rules = [
            rule("a@x.test", "1@y.test"),
            rule("b@x.test", "2@y.test"),
            rule("A@x.test", "3@y.test"),
        ];
        let unique: Vec<String> = last_per_key(&rules)
            .iter()
            .map(|r| r.destinations()[0].to_string())
            .collect();
        assert_eq!(unique, ["3@y.test", "2@y.test"]);
    }
}
