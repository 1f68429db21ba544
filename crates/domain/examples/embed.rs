//! Using `mailfwd-domain` inside another service: parse addresses the way mailfwd does,
//! and resolve recipients against forwarding rules kept in the service's own store.
//!
//! Run with `cargo run -p mailfwd-domain --example embed`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use mailfwd_domain::rule_store::{RuleError, RulePage, RuleQuery, RuleStore};
use mailfwd_domain::{EmailAddress, RecipientPattern, Rule};

/// The host service's own storage: here a plain map; it could be any database. Only
/// `resolve` matters to this service, so the rest answers as a read-only store would.
struct DirectoryRules {
    by_key: Mutex<HashMap<String, Rule>>,
}

#[async_trait]
impl RuleStore for DirectoryRules {
    async fn create(&self, rule: Rule) -> Result<Rule, RuleError> {
        let mut rules = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        rules.insert(rule.pattern().key(), rule.clone());
        Ok(rule)
    }

    async fn get(&self, pattern: &RecipientPattern) -> Result<Rule, RuleError> {
        let rules = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        rules
            .get(&pattern.key())
            .cloned()
            .ok_or_else(|| RuleError::NotFound(pattern.clone()))
    }

    async fn delete(&self, pattern: &RecipientPattern) -> Result<(), RuleError> {
        Err(RuleError::NotFound(pattern.clone()))
    }

    async fn list(&self, _query: &RuleQuery) -> Result<RulePage, RuleError> {
        Ok(RulePage {
            rules: Vec::new(),
            next_cursor: None,
        })
    }

    async fn upsert_many(&self, rules: Vec<Rule>) -> Result<u64, RuleError> {
        let count = rules.len() as u64;
        for rule in rules {
            self.create(rule).await?;
        }
        Ok(count)
    }

    /// Precedence (exact, then `user+tag` → `user`, then `*@domain`) comes from the
    /// domain's `candidate_keys`, so this store resolves exactly as mailfwd does.
    async fn resolve(&self, recipient: &EmailAddress) -> Result<Option<Rule>, RuleError> {
        let rules = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(RecipientPattern::candidate_keys(recipient)
            .iter()
            .find_map(|key| rules.get(key))
            .cloned())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Addresses: parsed once, normalized, with errors that say what is wrong.
    let address = EmailAddress::parse("José.Núñez@Bücher.Example")?;
    println!("parsed: {address} (domain in ASCII: {})", address.domain());
    if let Err(error) = EmailAddress::parse("bob smith@corp.example") {
        println!("rejected: {error}");
    }

    let store = DirectoryRules {
        by_key: Mutex::new(HashMap::new()),
    };
    let rule = |pattern: &str, to: &[&str]| -> Result<Rule, Box<dyn std::error::Error>> {
        let destinations = to
            .iter()
            .map(|a| EmailAddress::parse(a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rule::new(
            RecipientPattern::parse(pattern)?,
            destinations,
            10,
        )?)
    };
    store
        .create(rule(
            "sales@acme.example",
            &["alice@gmail.example", "bob@corp.example"],
        )?)
        .await?;
    store
        .create(rule("*@acme.example", &["inbox@corp.example"])?)
        .await?;

    for recipient in [
        "sales@acme.example",
        "Sales+q4@ACME.example",
        "anyone@acme.example",
        "x@other.example",
    ] {
        let resolved = store.resolve(&EmailAddress::parse(recipient)?).await?;
        let destinations = resolved.map_or_else(
            || "not ours".to_owned(),
            |rule| {
                rule.destinations()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        println!("{recipient:>24} -> {destinations}");
    }
    Ok(())
}
