//! `resolve` against one million rules in SQLite: exact hit, subaddress fallback,
//! catch-all fallback and a miss. The database is built once under target/tmp and
//! reused by later runs.

#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use mailfwd_domain::{EmailAddress, RecipientPattern, Rule, RuleQuery, RuleStore};
use mailfwd_sqlite::{Database, SqliteRuleStore};

const RULES: usize = 1_000_000;
const BATCH: usize = 20_000;

fn address(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("valid bench address")
}

async fn store_with_a_million_rules() -> SqliteRuleStore {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("resolve-1m.db");
    let store = Database::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("open bench db")
        .rules();
    let last = RecipientPattern::parse(&format!("user{}@d{}.test", RULES - 1, (RULES - 1) % 1000))
        .expect("valid");
    if store.get(&last).await.is_ok() {
        return store;
    }
    let started = Instant::now();
    for start in (0..RULES).step_by(BATCH) {
        let batch = (start..start + BATCH)
            .map(|i| {
                let pattern =
                    RecipientPattern::parse(&format!("user{i}@d{}.test", i % 1000)).expect("valid");
                Rule::new(pattern, vec![address(&format!("dest{i}@example.org"))], 10)
                    .expect("valid rule")
            })
            .collect();
        store.upsert_many(batch).await.expect("bench insert");
    }
    for d in 0..1000 {
        let pattern = RecipientPattern::parse(&format!("*@d{d}.test")).expect("valid");
        let rule =
            Rule::new(pattern, vec![address("catchall@example.org")], 10).expect("valid rule");
        store.upsert_many(vec![rule]).await.expect("bench insert");
    }
    eprintln!("built {RULES} rules in {:.1?}", started.elapsed());
    store
}

fn resolve(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let store = runtime.block_on(store_with_a_million_rules());
    let page = runtime
        .block_on(store.list(&RuleQuery {
            domain: None,
            limit: 1,
            cursor: None,
        }))
        .expect("list");
    assert_eq!(page.rules.len(), 1, "the bench database has rules");

    let cases = [
        (
            "exact",
            "user777777@d777.test",
            Some("dest777777@example.org"),
        ),
        (
            "subaddress",
            "user777777+news@d777.test",
            Some("dest777777@example.org"),
        ),
        (
            "catch_all",
            "nobody@d777.test",
            Some("catchall@example.org"),
        ),
        ("miss", "user1@unknown.test", None),
    ];
    let mut group = c.benchmark_group("resolve_1m_rules_sqlite");
    for (name, recipient, expected) in cases {
        let recipient = address(recipient);
        let found = runtime
            .block_on(store.resolve(&recipient))
            .expect("resolve");
        let first = found
            .as_ref()
            .map(|rule| rule.destinations()[0].to_string());
        assert_eq!(first.as_deref(), expected, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| store.resolve(&recipient))
        });
    }
    group.finish();
}

criterion_group!(benches, resolve);
criterion_main!(benches);
