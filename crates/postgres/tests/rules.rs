//! What the `RuleStore` contract does not cover but PostgreSQL makes different.

mod common;

use mailfwd_domain::{EmailAddress, RecipientPattern, Rule, RuleQuery, RuleStore};

fn rule(pattern: &str, destination: &str) -> Rule {
    Rule::new(
        RecipientPattern::parse(pattern).expect("a pattern"),
        vec![EmailAddress::parse(destination).expect("an address")],
        10,
    )
    .expect("a rule")
}

/// One statement may not upsert a key twice in PostgreSQL; an import that repeats a
/// pattern keeps its last rule, as a row-by-row import would.
#[tokio::test]
async fn an_import_that_repeats_a_pattern_keeps_the_last_rule() {
    let (name, database) = common::fresh_named_database().await;
    let rules = database.rules();
    let batch = vec![
        rule("dup@x.test", "first@y.test"),
        rule("other@x.test", "o@y.test"),
        rule("DUP@x.test", "last@y.test"),
    ];
    assert_eq!(rules.upsert_many(batch).await.expect("upsert"), 3);
    let stored = rules
        .get(&RecipientPattern::parse("dup@x.test").expect("a pattern"))
        .await
        .expect("stored");
    assert_eq!(stored.destinations()[0].to_string(), "last@y.test");
    common::drop_test_database(&name, database).await;
}

/// Keys compare byte by byte (`COLLATE "C"`), whatever the server's locale: pages
/// follow the order the cursors assume, as on SQLite. (The test server's own locale is
/// C.UTF-8, where the order alone would not show it, hence the collation check.)
#[tokio::test]
async fn listing_follows_byte_order_not_the_locale() {
    let (name, database) = common::fresh_named_database().await;
    let (collation,): (String,) = sqlx::query_as(
        "SELECT collation_name::text FROM information_schema.columns
         WHERE table_name = 'rules' AND column_name = 'pattern_key'",
    )
    .fetch_one(database.pool())
    .await
    .expect("the key column's collation");
    assert_eq!(collation, "C");
    let rules = database.rules();
    for pattern in [
        "a-b@x.test",
        "ab@x.test",
        "a_b@x.test",
        "a.b@x.test",
        "*@x.test",
    ] {
        rules
            .create(rule(pattern, "d@y.test"))
            .await
            .expect("create");
    }
    let page = rules
        .list(&RuleQuery {
            domain: None,
            limit: 100,
            cursor: None,
        })
        .await
        .expect("list");
    let keys: Vec<String> = page.rules.iter().map(|r| r.pattern().key()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    common::drop_test_database(&name, database).await;
}
