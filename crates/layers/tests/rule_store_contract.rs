//! The `RuleStore` contract suite on `CachedRuleStore` over the in-memory store: with
//! the cache in front, every promise of the port still holds.

use std::sync::Arc;

use mailfwd_domain::memory::MemoryRuleStore;
use mailfwd_domain::rule_store_contract_tests;
use mailfwd_layers::{CachedRuleStore, RuleCacheConfig};

async fn fresh_store() -> CachedRuleStore {
    CachedRuleStore::new(Arc::new(MemoryRuleStore::new()), RuleCacheConfig::default())
}

rule_store_contract_tests!(fresh_store());
