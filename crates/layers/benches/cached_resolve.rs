//! `resolve` through the rule cache once the answer is cached: a hit for an address
//! with a rule, and a cached "no rule" (the answer a flood of unknown recipients
//! gets). Target: under 1 µs. Run with `cargo bench -p mailfwd-layers`.

#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use mailfwd_domain::memory::MemoryRuleStore;
use mailfwd_domain::{EmailAddress, RecipientPattern, Rule, RuleStore};
use mailfwd_layers::{CachedRuleStore, RuleCacheConfig};

const RULES: usize = 100_000;

fn address(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("valid bench address")
}

fn cached_resolve(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let inner = Arc::new(MemoryRuleStore::new());
    runtime.block_on(async {
        let rules = (0..RULES)
            .map(|i| {
                let pattern =
                    RecipientPattern::parse(&format!("user{i}@d{}.test", i % 1000)).expect("valid");
                Rule::new(pattern, vec![address(&format!("dest{i}@example.org"))], 10)
                    .expect("valid rule")
            })
            .collect();
        inner.upsert_many(rules).await.expect("bench insert");
    });
    let cache = CachedRuleStore::new(inner, RuleCacheConfig::default());
    let mut group = c.benchmark_group("cached_resolve");
    for (name, recipient, expected) in [
        ("hit", "user77777@d777.test", Some("dest77777@example.org")),
        ("cached_miss", "nobody@unknown.test", None),
    ] {
        let recipient = address(recipient);
        // The first lookup fills the cache; every measured one is answered from it.
        let found = runtime
            .block_on(cache.resolve(&recipient))
            .expect("resolve");
        let first = found.map(|rule| rule.destinations()[0].to_string());
        assert_eq!(first.as_deref(), expected, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| cache.resolve(&recipient));
        });
    }
    group.finish();
}

criterion_group!(benches, cached_resolve);
criterion_main!(benches);
