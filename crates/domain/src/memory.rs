//! In-memory implementations of the ports, for tests and for embedding the domain.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::address::EmailAddress;
use crate::rule::{RecipientPattern, Rule};
use crate::rule_store::{RuleError, RulePage, RuleQuery, RuleStore, decode_cursor, encode_cursor};

/// A [`RuleStore`] in a `BTreeMap`, keyed like every other store by the pattern key.
#[derive(Debug, Default)]
pub struct MemoryRuleStore {
    rules: Mutex<BTreeMap<String, Rule>>,
}

impl MemoryRuleStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn rules(&self) -> MutexGuard<'_, BTreeMap<String, Rule>> {
        // A panic while holding the lock cannot leave a map half-updated: every
        // operation below is a single insert or remove.
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl RuleStore for MemoryRuleStore {
    async fn create(&self, rule: Rule) -> Result<Rule, RuleError> {
        let mut rules = self.rules();
        let key = rule.pattern().key();
        if rules.contains_key(&key) {
            return Err(RuleError::AlreadyExists(rule.pattern().clone()));
        }
        rules.insert(key, rule.clone());
        Ok(rule)
    }

    async fn get(&self, pattern: &RecipientPattern) -> Result<Rule, RuleError> {
        self.rules()
            .get(&pattern.key())
            .cloned()
            .ok_or_else(|| RuleError::NotFound(pattern.clone()))
    }

    async fn delete(&self, pattern: &RecipientPattern) -> Result<(), RuleError> {
        match self.rules().remove(&pattern.key()) {
            Some(_) => Ok(()),
            None => Err(RuleError::NotFound(pattern.clone())),
        }
    }

    async fn list(&self, query: &RuleQuery) -> Result<RulePage, RuleError> {
        let limit = query.limit.max(1);
        let rules = self.rules();
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let mut page: Vec<Rule> = rules
            .iter()
            .filter(|(key, _)| after.as_deref().is_none_or(|after| key.as_str() > after))
            .filter(|(_, rule)| {
                query
                    .domain
                    .as_ref()
                    .is_none_or(|d| rule.pattern().domain() == d)
            })
            .take(limit + 1)
            .map(|(_, rule)| rule.clone())
            .collect();
        let next_cursor = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|rule| encode_cursor(&rule.pattern().key()))
        } else {
            None
        };
        Ok(RulePage {
            rules: page,
            next_cursor,
        })
    }

    async fn upsert_many(&self, batch: Vec<Rule>) -> Result<u64, RuleError> {
        let mut rules = self.rules();
        let count = batch.len() as u64;
        for rule in batch {
            rules.insert(rule.pattern().key(), rule);
        }
        Ok(count)
    }

    async fn resolve(&self, recipient: &EmailAddress) -> Result<Option<Rule>, RuleError> {
        let rules = self.rules();
        Ok(RecipientPattern::candidate_keys(recipient)
            .iter()
            .find_map(|key| rules.get(key))
            .cloned())
    }
}
