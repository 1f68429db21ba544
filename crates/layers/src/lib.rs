//! mailfwd's layers: decorators that wrap a port and implement the same port, so the
//! app can stack them around any adapter without the adapter or the services knowing.

mod rule_cache;

pub use rule_cache::{CachedRuleStore, RuleCacheConfig};
