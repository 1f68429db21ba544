//! Rule changes made through one instance reach every other instance's rule cache:
//! each write notifies once, a listener per instance invalidates its cache, and a
//! listener that lost its connection flushes it.
//!
//! Two `PgDatabase`s (two pools) on one test database stand for two instances. Caches
//! keep the default 30 s TTL, far longer than any wait here: only an invalidation can
//! make a change seen in time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailfwd_domain::{EmailAddress, Invalidation, RecipientPattern, Rule, RuleStore};
use mailfwd_layers::{CachedRuleStore, RuleCacheConfig};
use mailfwd_postgres::{Change, ChangeListener, ListenerSettings, PgDatabase};
use sqlx::Connection;
use sqlx::postgres::PgListener;

/// How long a change may take to reach another instance's cache.
const PROPAGATION: Duration = Duration::from_secs(2);

fn rule(pattern: &str, destination: &str) -> Rule {
    Rule::new(
        RecipientPattern::parse(pattern).expect("a pattern"),
        vec![EmailAddress::parse(destination).expect("an address")],
        10,
    )
    .expect("a rule")
}

/// One instance: a cache in front of the database's rules, fed by a listener that also
/// records what it heard.
struct Instance {
    cache: Arc<CachedRuleStore>,
    listener: ChangeListener,
    heard: Arc<Mutex<Vec<Invalidation>>>,
}

fn cache_on(database: &PgDatabase) -> Arc<CachedRuleStore> {
    Arc::new(CachedRuleStore::new(
        Arc::new(database.rules()),
        RuleCacheConfig::default(),
    ))
}

async fn instance(database: &PgDatabase) -> Instance {
    let settings = ListenerSettings {
        retry_delay: Duration::from_millis(200),
        ..ListenerSettings::default()
    };
    instance_with(database, settings).await
}

async fn instance_with(database: &PgDatabase, settings: ListenerSettings) -> Instance {
    let cache = cache_on(database);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let invalidate = cache.invalidator();
    let record = Arc::clone(&heard);
    let listener = ChangeListener::spawn(database, settings, move |change| {
        if let Change::Rules(change) = change {
            record.lock().expect("not poisoned").push(change.clone());
            invalidate(change);
        }
    });
    tokio::time::timeout(Duration::from_secs(5), listener.listening())
        .await
        .expect("the listener connects");
    Instance {
        cache,
        listener,
        heard,
    }
}

impl Instance {
    fn flushes_heard(&self) -> usize {
        let heard = self.heard.lock().expect("not poisoned");
        heard.iter().filter(|c| **c == Invalidation::All).count()
    }
}

/// Where `store` forwards mail for `recipient`: its rule's first destination, or
/// `nowhere`.
async fn forwards(store: &CachedRuleStore, recipient: &str) -> String {
    let recipient = EmailAddress::parse(recipient).expect("an address");
    match store.resolve(&recipient).await.expect("resolve") {
        Some(rule) => rule.destinations()[0].to_string(),
        None => "nowhere".to_owned(),
    }
}

/// Polls `store` until it forwards `recipient` to `expected`; how long that took.
async fn eventually(store: &CachedRuleStore, recipient: &str, expected: &str) -> Duration {
    let start = Instant::now();
    loop {
        let now = forwards(store, recipient).await;
        if now == expected {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < PROPAGATION,
            "{recipient} still forwards to {now}, not {expected}, after {PROPAGATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn changes_made_through_one_instance_reach_another_instances_cache() {
    let (name, database_a) = common::fresh_named_database().await;
    let database_b = common::open_again(&name).await;
    let a = instance(&database_a).await;
    let b = instance(&database_b).await;
    // B's rules behind a cache nobody invalidates: shows what B would serve without.
    let deaf = cache_on(&database_b);
    let mut took = Vec::new();

    // Created: B and the deaf cache have cached "no rule".
    assert_eq!(forwards(&b.cache, "sales@acme.test").await, "nowhere");
    assert_eq!(forwards(&deaf, "sales@acme.test").await, "nowhere");
    a.cache
        .create(rule("sales@acme.test", "one@dest.test"))
        .await
        .expect("created");
    took.push(eventually(&b.cache, "sales@acme.test", "one@dest.test").await);
    assert_eq!(
        forwards(&deaf, "sales@acme.test").await,
        "nowhere",
        "without invalidation the old answer would stay"
    );

    // Changed (a one-rule import): B has the old rule cached.
    a.cache
        .upsert_many(vec![rule("sales@acme.test", "two@dest.test")])
        .await
        .expect("replaced");
    took.push(eventually(&b.cache, "sales@acme.test", "two@dest.test").await);

    // A catch-all changes the answer for addresses B cached as unknown.
    assert_eq!(forwards(&b.cache, "bob+tag@acme.test").await, "nowhere");
    a.cache
        .create(rule("*@acme.test", "all@dest.test"))
        .await
        .expect("created");
    took.push(eventually(&b.cache, "bob+tag@acme.test", "all@dest.test").await);

    // Deleted: the catch-all takes over.
    a.cache
        .delete(&RecipientPattern::parse("sales@acme.test").expect("a pattern"))
        .await
        .expect("deleted");
    took.push(eventually(&b.cache, "sales@acme.test", "all@dest.test").await);

    // Imported, across domains and within one.
    for recipient in ["p@one.test", "q@two.test", "r@three.test", "s@three.test"] {
        assert_eq!(forwards(&b.cache, recipient).await, "nowhere");
    }
    a.cache
        .upsert_many(vec![
            rule("p@one.test", "p@dest.test"),
            rule("q@two.test", "q@dest.test"),
        ])
        .await
        .expect("imported");
    took.push(eventually(&b.cache, "p@one.test", "p@dest.test").await);
    took.push(eventually(&b.cache, "q@two.test", "q@dest.test").await);
    a.cache
        .upsert_many(vec![
            rule("r@three.test", "r@dest.test"),
            rule("s@three.test", "s@dest.test"),
        ])
        .await
        .expect("imported");
    took.push(eventually(&b.cache, "r@three.test", "r@dest.test").await);
    took.push(eventually(&b.cache, "s@three.test", "s@dest.test").await);
    eprintln!("changes reached the other instance after {took:?}");

    a.listener.stop().await;
    b.listener.stop().await;
    drop(database_b);
    common::drop_test_database(&name, database_a).await;
}

/// The next notification on `listener` within a second, if any.
async fn next_payload(listener: &mut PgListener) -> Option<String> {
    let next = tokio::time::timeout(Duration::from_secs(1), listener.recv()).await;
    next.ok()
        .map(|n| n.expect("a notification").payload().to_owned())
}

#[tokio::test]
async fn each_write_notifies_once_and_a_write_that_changed_nothing_not_at_all() {
    let (name, database) = common::fresh_named_database().await;
    let mut listener = PgListener::connect_with(database.pool())
        .await
        .expect("a listener");
    listener.listen("mailfwd_rules").await.expect("listening");
    let rules = database.rules();
    let key = RecipientPattern::parse("a@x.test").expect("a pattern");

    rules
        .create(rule("A@x.test", "d@dest.test"))
        .await
        .expect("created");
    assert!(rules.create(rule("a@x.test", "d@dest.test")).await.is_err());
    let import: Vec<Rule> = (0..1000)
        .map(|i| rule(&format!("u{i}@d{}.test", i % 7), "d@dest.test"))
        .collect();
    rules.upsert_many(import).await.expect("imported");
    rules
        .upsert_many(vec![
            rule("a@one.test", "d@dest.test"),
            rule("b@one.test", "d@dest.test"),
        ])
        .await
        .expect("imported");
    rules
        .upsert_many(Vec::new())
        .await
        .expect("imported nothing");
    rules.delete(&key).await.expect("deleted");
    assert!(rules.delete(&key).await.is_err());
    sqlx::query("SELECT pg_notify('mailfwd_rules', 'the end')")
        .execute(database.pool())
        .await
        .expect("notified");

    let mut payloads = Vec::new();
    while let Some(payload) = next_payload(&mut listener).await {
        let end = payload == "the end";
        payloads.push(payload);
        if end {
            break;
        }
    }
    assert_eq!(
        payloads,
        ["a@x.test", "all", "*@one.test", "a@x.test", "the end"]
    );
    drop(listener);
    common::drop_test_database(&name, database).await;
}

/// Ends the sessions of the rule listeners on `database`; how many there were.
async fn kill_rule_listeners(database: &PgDatabase) -> usize {
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE '%change listener'",
    )
    .fetch_all(database.pool())
    .await
    .expect("terminate the listeners");
    killed.len()
}

async fn rule_listener_sessions(database: &PgDatabase) -> i64 {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE '%change listener'",
    )
    .fetch_one(database.pool())
    .await
    .expect("count the listeners");
    count
}

#[tokio::test]
async fn a_lost_listener_connection_flushes_the_cache_and_listening_resumes() {
    let (name, database_a) = common::fresh_named_database().await;
    let database_b = common::open_again(&name).await;
    let b = instance(&database_b).await;
    assert_eq!(forwards(&b.cache, "a@x.test").await, "nowhere");

    // A change B is never told about: a notification lost while it was not listening.
    sqlx::query(
        "INSERT INTO rules (pattern_key, domain, pattern, destinations)
         VALUES ('a@x.test', 'x.test', 'a@x.test', ARRAY['one@dest.test'])",
    )
    .execute(database_a.pool())
    .await
    .expect("written behind the listener's back");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(forwards(&b.cache, "a@x.test").await, "nowhere", "not told");

    let flushes = b.flushes_heard();
    assert_eq!(kill_rule_listeners(&database_b).await, 1);
    let took = eventually(&b.cache, "a@x.test", "one@dest.test").await;
    eprintln!("a lost connection flushed the cache after {took:?}");
    assert!(b.flushes_heard() > flushes);

    // Listening again: a change made through A right after the loss (while B is
    // reconnecting or already back) is not served stale either.
    tokio::time::timeout(Duration::from_secs(5), b.listener.listening())
        .await
        .expect("listening again");
    assert_eq!(forwards(&b.cache, "b@x.test").await, "nowhere");
    assert_eq!(kill_rule_listeners(&database_b).await, 1);
    database_a
        .rules()
        .create(rule("b@x.test", "two@dest.test"))
        .await
        .expect("created");
    eventually(&b.cache, "b@x.test", "two@dest.test").await;
    tokio::time::timeout(Duration::from_secs(5), b.listener.listening())
        .await
        .expect("listening again");
    assert_eq!(forwards(&b.cache, "c@y.test").await, "nowhere");
    database_a
        .rules()
        .create(rule("c@y.test", "three@dest.test"))
        .await
        .expect("created");
    let took = eventually(&b.cache, "c@y.test", "three@dest.test").await;
    eprintln!("after reconnecting, a change arrived after {took:?}");

    b.listener.stop().await;
    drop(database_b);
    common::drop_test_database(&name, database_a).await;
}

#[tokio::test]
async fn a_stopped_or_dropped_listener_leaves_the_database() {
    let (name, database) = common::fresh_named_database().await;
    for stop in [true, false] {
        let b = instance(&database).await;
        assert_eq!(rule_listener_sessions(&database).await, 1);
        let heard = b.heard.lock().expect("not poisoned").len();
        if stop {
            b.listener.stop().await;
        } else {
            drop(b.listener);
        }
        let start = Instant::now();
        while rule_listener_sessions(&database).await > 0 {
            assert!(start.elapsed() < PROPAGATION, "the session is still open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        database
            .rules()
            .create(rule(&format!("stop-{stop}@x.test"), "d@dest.test"))
            .await
            .expect("created");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            b.heard.lock().expect("not poisoned").len(),
            heard,
            "stop={stop}"
        );
    }
    common::drop_test_database(&name, database).await;
}

#[tokio::test]
async fn a_listener_that_pings_all_the_time_still_hears_every_change() {
    let (name, database) = common::fresh_named_database().await;
    let settings = ListenerSettings {
        ping_interval: Duration::from_millis(2),
        ..ListenerSettings::default()
    };
    let b = instance_with(&database, settings).await;
    let flushes = b.flushes_heard();
    let writer = database.rules();
    for i in 0..20 {
        let recipient = format!("u{i}@x{i}.test");
        assert_eq!(forwards(&b.cache, &recipient).await, "nowhere");
        writer
            .create(rule(&recipient, "d@dest.test"))
            .await
            .expect("created");
        eventually(&b.cache, &recipient, "d@dest.test").await;
    }
    assert_eq!(
        b.flushes_heard(),
        flushes,
        "no ping took the connection for lost"
    );
    assert!(b.listener.is_listening());
    b.listener.stop().await;
    common::drop_test_database(&name, database).await;
}

/// Lets new sessions into the test database `name`, or not (open ones stay). Said from
/// another database: PostgreSQL refuses it from a session on the database itself.
async fn allow_connections(name: &str, allow: bool) {
    let sql = format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allow}");
    let mut admin = common::admin().await;
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut admin)
        .await
        .expect("alter the test database");
    let _ = admin.close().await;
}

#[tokio::test]
async fn a_listener_that_cannot_reconnect_keeps_flushing_until_it_can() {
    let (name, database_a) = common::fresh_named_database().await;
    let database_b = common::open_again(&name).await;
    let b = instance(&database_b).await;
    assert_eq!(forwards(&b.cache, "a@x.test").await, "nowhere");

    // Both pools keep the sessions they have; the listener cannot get a new one.
    allow_connections(&name, false).await;
    assert_eq!(kill_rule_listeners(&database_b).await, 1);
    let start = Instant::now();
    while b.listener.is_listening() {
        assert!(start.elapsed() < PROPAGATION, "the loss goes unnoticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Cached again after the flush for the loss: only a later flush can drop it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(forwards(&b.cache, "a@x.test").await, "nowhere");
    database_a
        .rules()
        .create(rule("a@x.test", "one@dest.test"))
        .await
        .expect("created");
    let took = eventually(&b.cache, "a@x.test", "one@dest.test").await;
    eprintln!("while reconnecting failed, a change was seen after {took:?}");
    assert!(!b.listener.is_listening(), "still cannot connect");

    allow_connections(&name, true).await;
    tokio::time::timeout(Duration::from_secs(5), b.listener.listening())
        .await
        .expect("listening again");
    assert_eq!(forwards(&b.cache, "b@x.test").await, "nowhere");
    database_a
        .rules()
        .create(rule("b@x.test", "two@dest.test"))
        .await
        .expect("created");
    eventually(&b.cache, "b@x.test", "two@dest.test").await;

    b.listener.stop().await;
    drop(database_b);
    common::drop_test_database(&name, database_a).await;
}
