//! In-memory implementations of the ports, for tests and for embedding the domain.

pub use crate::memory_bodies::MemoryBodyStore;
pub use crate::memory_queue::MemoryDeliveryQueue;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use crate::address::EmailAddress;
use crate::email::{
    EmailId, EmailLog, EmailPage, EmailQuery, ReceivedEmail, StoreError, UnevaluatedStats,
    parse_email_cursor,
};
use crate::rule::{RecipientPattern, Rule};
use crate::rule_store::{RuleError, RulePage, RuleQuery, RuleStore, decode_cursor};

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
        let page: Vec<Rule> = rules
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
        Ok(RulePage::from_overfetch(page, limit))
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

/// An [`EmailLog`] in a `BTreeMap` ordered by id.
#[derive(Debug, Default)]
pub struct MemoryEmailLog {
    records: Mutex<BTreeMap<EmailId, ReceivedEmail>>,
    evaluated: Mutex<HashSet<EmailId>>,
    inline_limit: usize,
    inline_bodies: Mutex<HashMap<EmailId, Bytes>>,
}

impl MemoryEmailLog {
    /// An empty log that keeps no bodies.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log that keeps bodies of up to `limit` bytes in their records.
    #[must_use]
    pub fn with_inline_limit(limit: usize) -> Self {
        MemoryEmailLog {
            inline_limit: limit,
            ..Self::default()
        }
    }
}

#[async_trait]
impl EmailLog for MemoryEmailLog {
    async fn record(&self, email: &ReceivedEmail) -> Result<(), StoreError> {
        lock(&self.records).insert(email.id, email.clone());
        lock(&self.evaluated).remove(&email.id);
        Ok(())
    }

    fn inline_limit(&self) -> usize {
        self.inline_limit
    }

    async fn record_with_body(&self, email: &ReceivedEmail, body: Bytes) -> Result<(), StoreError> {
        lock(&self.inline_bodies).insert(email.id, body);
        self.record(email).await
    }

    async fn inline_body(&self, id: &EmailId) -> Result<Option<Bytes>, StoreError> {
        Ok(lock(&self.inline_bodies).get(id).cloned())
    }

    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError> {
        lock(&self.evaluated).insert(*id);
        Ok(())
    }

    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError> {
        let mut records = lock(&self.records);
        if records.contains_key(id) && !lock(&self.evaluated).contains(id) {
            return Ok(false);
        }
        records.remove(id);
        lock(&self.evaluated).remove(id);
        lock(&self.inline_bodies).remove(id);
        Ok(true)
    }

    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError> {
        let evaluated = lock(&self.evaluated);
        let records = lock(&self.records);
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(records
            .range((from, Bound::Unbounded))
            .map(|(_, email)| email)
            .filter(|email| !evaluated.contains(&email.id))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError> {
        let evaluated = lock(&self.evaluated);
        let records = lock(&self.records);
        let mut stats = UnevaluatedStats::default();
        for email in records.values().filter(|e| !evaluated.contains(&e.id)) {
            stats.count += 1;
            stats.oldest_received_at = Some(
                stats
                    .oldest_received_at
                    .map_or(email.received_at, |oldest| oldest.min(email.received_at)),
            );
        }
        Ok(stats)
    }

    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError> {
        lock(&self.records)
            .get(id)
            .cloned()
            .ok_or(StoreError::NotFound(*id))
    }

    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError> {
        let limit = query.limit.max(1);
        let after = query
            .cursor
            .as_deref()
            .map(parse_email_cursor)
            .transpose()?;
        let records = lock(&self.records);
        let emails: Vec<ReceivedEmail> = records
            .values()
            .filter(|e| after.is_none_or(|after| e.id > after))
            .filter(|e| query.since.is_none_or(|since| e.received_at >= since))
            .filter(|e| query.until.is_none_or(|until| e.received_at < until))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(EmailPage::from_overfetch(emails, limit))
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section above is one map operation: a panic cannot leave it torn.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
