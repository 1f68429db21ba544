//! The cache's own promises, observed through a wrapped store that counts lookups, can
//! fail one, and can hold one open until the test lets it finish.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use mailfwd_domain::memory::MemoryRuleStore;
use tokio::sync::oneshot;

use super::*;

mod invalidation;

/// A [`MemoryRuleStore`] with instruments on `resolve`.
#[derive(Default)]
struct ProbeStore {
    rules: MemoryRuleStore,
    resolves: AtomicUsize,
    fail_next: AtomicBool,
    hold: Mutex<Option<Hold>>,
}

/// One held lookup: it signals `read` once it has its answer, then waits for `release`.
struct Hold {
    read: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

impl ProbeStore {
    fn resolves(&self) -> usize {
        self.resolves.load(Ordering::SeqCst)
    }

    fn fail_next_resolve(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }

    /// Holds the next `resolve` after it has read the rules. Returns the signal that it
    /// has, and the sender that lets it return what it read.
    fn hold_next_resolve(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (read, has_read) = oneshot::channel();
        let (release, released) = oneshot::channel();
        *self.hold.lock().expect("not poisoned") = Some(Hold {
            read,
            release: released,
        });
        (has_read, release)
    }
}

#[async_trait]
impl RuleStore for ProbeStore {
    async fn create(&self, rule: Rule) -> Result<Rule, RuleError> {
        self.rules.create(rule).await
    }
    async fn get(&self, pattern: &RecipientPattern) -> Result<Rule, RuleError> {
        self.rules.get(pattern).await
    }
    async fn delete(&self, pattern: &RecipientPattern) -> Result<(), RuleError> {
        self.rules.delete(pattern).await
    }
    async fn list(&self, query: &RuleQuery) -> Result<RulePage, RuleError> {
        self.rules.list(query).await
    }
    async fn upsert_many(&self, rules: Vec<Rule>) -> Result<u64, RuleError> {
        self.rules.upsert_many(rules).await
    }
    async fn resolve(&self, recipient: &EmailAddress) -> Result<Option<Rule>, RuleError> {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(RuleError::storage(std::io::Error::other("disk on fire")));
        }
        let answer = self.rules.resolve(recipient).await;
        let hold = self.hold.lock().expect("not poisoned").take();
        if let Some(hold) = hold {
            let _ = hold.read.send(());
            let _ = hold.release.await;
        }
        answer
    }
}

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("valid test address")
}

fn pattern(s: &str) -> RecipientPattern {
    RecipientPattern::parse(s).expect("valid test pattern")
}

fn rule(p: &str, destination: &str) -> Rule {
    Rule::new(pattern(p), vec![addr(destination)], 10).expect("valid test rule")
}

/// Where mail for `recipient` goes, according to `store`: its rule's first
/// destination, or `nowhere`.
async fn forwards(store: &CachedRuleStore, recipient: &str) -> String {
    match store
        .resolve(&addr(recipient))
        .await
        .expect("resolve succeeds")
    {
        Some(rule) => rule.destinations()[0].to_string(),
        None => "nowhere".to_owned(),
    }
}

fn layer(config: RuleCacheConfig) -> (Arc<ProbeStore>, CachedRuleStore) {
    let probe = Arc::new(ProbeStore::default());
    let cached = CachedRuleStore::new(probe.clone(), config);
    (probe, cached)
}

fn cached_layer() -> (Arc<ProbeStore>, CachedRuleStore) {
    layer(RuleCacheConfig::default())
}

#[tokio::test]
async fn a_second_resolve_of_a_recipient_is_served_from_the_cache() {
    let (probe, cached) = cached_layer();
    cached
        .create(rule("sales@acme.test", "alice@dest.test"))
        .await
        .expect("created");

    assert_eq!(
        forwards(&cached, "sales@acme.test").await,
        "alice@dest.test"
    );
    assert_eq!(
        forwards(&cached, "sales@acme.test").await,
        "alice@dest.test"
    );
    assert_eq!(
        forwards(&cached, "SALES@Acme.test").await,
        "alice@dest.test",
        "same match key, same entry"
    );
    assert_eq!(probe.resolves(), 1);

    assert_eq!(
        forwards(&cached, "sales+tag@acme.test").await,
        "alice@dest.test"
    );
    assert_eq!(probe.resolves(), 2, "a subaddress is a key of its own");
}

#[tokio::test]
async fn unknown_recipients_are_cached_too() {
    let (probe, cached) = cached_layer();
    for _ in 0..3 {
        assert_eq!(forwards(&cached, "nobody@acme.test").await, "nowhere");
    }
    assert_eq!(probe.resolves(), 1);
}

#[tokio::test]
async fn every_write_through_the_layer_is_seen_by_the_next_resolve() {
    let (probe, cached) = cached_layer();
    cached
        .create(rule("a@x.test", "one@dest.test"))
        .await
        .expect("created");
    assert_eq!(forwards(&cached, "a@x.test").await, "one@dest.test");

    cached.delete(&pattern("a@x.test")).await.expect("deleted");
    assert_eq!(forwards(&cached, "a@x.test").await, "nowhere");

    cached
        .create(rule("a@x.test", "two@dest.test"))
        .await
        .expect("created");
    assert_eq!(forwards(&cached, "a@x.test").await, "two@dest.test");

    cached
        .upsert_many(vec![rule("a@x.test", "three@dest.test")])
        .await
        .expect("upserted");
    assert_eq!(forwards(&cached, "a@x.test").await, "three@dest.test");

    // One rule, many keys: a new catch-all changes the answer for every cached unknown.
    assert_eq!(forwards(&cached, "b@x.test").await, "nowhere");
    assert_eq!(forwards(&cached, "c+tag@x.test").await, "nowhere");
    cached
        .create(rule("*@x.test", "all@dest.test"))
        .await
        .expect("created");
    assert_eq!(forwards(&cached, "b@x.test").await, "all@dest.test");
    assert_eq!(forwards(&cached, "c+tag@x.test").await, "all@dest.test");
    assert_eq!(
        probe.resolves(),
        8,
        "each resolve after a write looked again"
    );
}

#[tokio::test]
async fn a_failed_lookup_is_not_cached() {
    let (probe, cached) = cached_layer();
    cached
        .create(rule("a@x.test", "one@dest.test"))
        .await
        .expect("created");

    probe.fail_next_resolve();
    let failed = cached.resolve(&addr("a@x.test")).await;
    assert!(
        matches!(&failed, Err(RuleError::Storage(e)) if e.to_string() == "disk on fire"),
        "{failed:?}"
    );
    assert_eq!(forwards(&cached, "a@x.test").await, "one@dest.test");
    assert_eq!(probe.resolves(), 2);
}

#[tokio::test]
async fn concurrent_misses_for_one_recipient_share_one_lookup() {
    let (probe, cached) = cached_layer();
    cached
        .create(rule("a@x.test", "one@dest.test"))
        .await
        .expect("created");
    let (has_read, release) = probe.hold_next_resolve();

    // All ten resolves are polled (and miss) before the held lookup may finish.
    let resolves = join_all((0..10).map(|_| forwards(&cached, "a@x.test")));
    let releaser = async {
        has_read.await.expect("the first lookup reads");
        release.send(()).expect("the lookup waits");
    };
    let (answers, ()) = futures_util::join!(resolves, releaser);

    assert_eq!(answers, vec!["one@dest.test"; 10]);
    assert_eq!(probe.resolves(), 1);
}

/// Starts a resolve of `a@x.test`, lets it read the store, runs `write` through the
/// layer while that lookup is still in flight, then lets the lookup finish.
async fn overtake_a_lookup_with<F: Future<Output = ()>>(
    probe: &ProbeStore,
    cached: &CachedRuleStore,
    write: F,
) {
    let (has_read, release) = probe.hold_next_resolve();
    let recipient = addr("a@x.test");
    let in_flight = cached.resolve(&recipient);
    let writer = async {
        has_read.await.expect("the lookup reads");
        write.await;
        release.send(()).expect("the lookup waits");
    };
    let (answer, ()) = futures_util::join!(in_flight, writer);
    // The in-flight resolve overlapped the write: either answer would be right for it.
    assert!(answer.is_ok(), "{answer:?}");
}

#[tokio::test]
async fn a_lookup_overtaken_by_a_delete_does_not_bring_the_rule_back() {
    let (probe, cached) = cached_layer();
    cached
        .create(rule("a@x.test", "old@dest.test"))
        .await
        .expect("created");

    overtake_a_lookup_with(&probe, &cached, async {
        cached.delete(&pattern("a@x.test")).await.expect("deleted");
    })
    .await;

    assert_eq!(forwards(&cached, "a@x.test").await, "nowhere");
    assert_eq!(forwards(&cached, "a@x.test").await, "nowhere");
}

#[tokio::test]
async fn a_lookup_overtaken_by_a_replace_does_not_bring_the_old_rule_back() {
    let (probe, cached) = cached_layer();
    cached
        .create(rule("a@x.test", "old@dest.test"))
        .await
        .expect("created");

    overtake_a_lookup_with(&probe, &cached, async {
        cached
            .upsert_many(vec![rule("a@x.test", "new@dest.test")])
            .await
            .expect("upserted");
    })
    .await;

    assert_eq!(forwards(&cached, "a@x.test").await, "new@dest.test");
    let before = probe.resolves();
    assert_eq!(forwards(&cached, "a@x.test").await, "new@dest.test");
    assert_eq!(probe.resolves(), before, "the fresh answer is cached");
}

#[tokio::test]
async fn the_ttl_bounds_how_long_a_change_made_elsewhere_goes_unseen() {
    let (probe, cached) = layer(RuleCacheConfig {
        ttl: Duration::from_millis(100),
        ..RuleCacheConfig::default()
    });
    // Written straight to the wrapped store, as another instance would.
    probe
        .create(rule("a@x.test", "one@dest.test"))
        .await
        .expect("created");
    assert_eq!(forwards(&cached, "a@x.test").await, "one@dest.test");
    probe.delete(&pattern("a@x.test")).await.expect("deleted");
    assert_eq!(
        forwards(&cached, "a@x.test").await,
        "one@dest.test",
        "still cached"
    );

    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(forwards(&cached, "a@x.test").await, "nowhere");
}

#[tokio::test]
async fn invalidate_all_forgets_changes_made_elsewhere_at_once() {
    let (probe, cached) = cached_layer();
    assert_eq!(forwards(&cached, "a@x.test").await, "nowhere");
    probe
        .create(rule("a@x.test", "one@dest.test"))
        .await
        .expect("created");
    assert_eq!(
        forwards(&cached, "a@x.test").await,
        "nowhere",
        "still cached"
    );

    cached.invalidate_all();
    assert_eq!(forwards(&cached, "a@x.test").await, "one@dest.test");
}

#[tokio::test]
async fn a_zero_capacity_or_ttl_turns_the_cache_off() {
    for config in [
        RuleCacheConfig {
            capacity: 0,
            ..RuleCacheConfig::default()
        },
        RuleCacheConfig {
            ttl: Duration::ZERO,
            ..RuleCacheConfig::default()
        },
    ] {
        assert!(!config.is_enabled());
        let (probe, cached) = layer(config);
        for _ in 0..3 {
            assert_eq!(forwards(&cached, "a@x.test").await, "nowhere");
        }
        assert_eq!(probe.resolves(), 3, "{config:?}");
    }
}

#[test]
fn the_defaults_are_documented_ones() {
    let config = RuleCacheConfig::default();
    assert_eq!(config.capacity, 100_000);
    assert_eq!(config.ttl, Duration::from_secs(30));
    assert!(config.is_enabled());
}

#[test]
fn a_shared_storage_error_reads_like_the_original() {
    let original = Arc::new(RuleError::storage(std::io::Error::other("disk on fire")));
    let _other_waiter = Arc::clone(&original);
    let error = unshare(original);
    assert!(matches!(error, RuleError::Storage(_)));
    assert_eq!(error.to_string(), "rule storage failed: disk on fire");

    let not_found = Arc::new(RuleError::NotFound(pattern("a@x.test")));
    let _other_waiter = Arc::clone(&not_found);
    assert!(matches!(unshare(not_found), RuleError::NotFound(p) if p == pattern("a@x.test")));
}
