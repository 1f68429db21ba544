//! The `RuleStore` contract, as plain async functions over a fresh store.

use crate::{EmailAddress, RecipientPattern, Rule, RuleError, RuleQuery, RuleStore};

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn pattern(s: &str) -> RecipientPattern {
    RecipientPattern::parse(s).unwrap()
}

fn rule(p: &str, destinations: &[&str]) -> Rule {
    Rule::new(
        pattern(p),
        destinations.iter().map(|d| addr(d)).collect(),
        10,
    )
    .unwrap()
}

async fn resolved(store: &dyn RuleStore, recipient: &str) -> Option<Vec<String>> {
    let rule = store.resolve(&addr(recipient)).await.unwrap()?;
    Some(
        rule.destinations()
            .iter()
            .map(ToString::to_string)
            .collect(),
    )
}

pub async fn create_get_delete(store: &dyn RuleStore) {
    let created = store
        .create(rule(
            "sales@acme.test",
            &["alice@gmail.test", "bob@corp.test"],
        ))
        .await
        .unwrap();
    assert_eq!(
        store.get(&pattern("sales@acme.test")).await.unwrap(),
        created
    );
    assert!(matches!(
        store.create(rule("sales@acme.test", &["x@y.test"])).await,
        Err(RuleError::AlreadyExists(p)) if p == pattern("sales@acme.test")
    ));
    store.delete(&pattern("sales@acme.test")).await.unwrap();
    assert!(matches!(
        store.get(&pattern("sales@acme.test")).await,
        Err(RuleError::NotFound(_))
    ));
    assert!(matches!(
        store.delete(&pattern("sales@acme.test")).await,
        Err(RuleError::NotFound(_))
    ));
}

pub async fn patterns_match_case_insensitively(store: &dyn RuleStore) {
    store
        .create(rule("Sales@Acme.test", &["a@b.test"]))
        .await
        .unwrap();
    assert!(store.get(&pattern("SALES@acme.TEST")).await.is_ok());
    assert!(matches!(
        store.create(rule("sales@acme.test", &["c@d.test"])).await,
        Err(RuleError::AlreadyExists(_))
    ));
    assert_eq!(
        resolved(store, "sAlEs@acme.test").await,
        Some(vec!["a@b.test".to_owned()])
    );
}

pub async fn addresses_round_trip_exactly(store: &dyn RuleStore) {
    let original = rule(
        "\"john doe\"@acme.test",
        &["José@Bücher.example", "Z@x.test", "\"a\\\"b\"@x.test"],
    );
    store.create(original.clone()).await.unwrap();
    assert_eq!(
        store.get(&pattern("\"john doe\"@acme.test")).await.unwrap(),
        original
    );
}

pub async fn resolve_follows_precedence(store: &dyn RuleStore) {
    store
        .create(rule("user@acme.test", &["base@dest.test"]))
        .await
        .unwrap();
    store
        .create(rule("user+vip@acme.test", &["vip@dest.test"]))
        .await
        .unwrap();
    store
        .create(rule("*@acme.test", &["catchall@dest.test"]))
        .await
        .unwrap();
    let one = |s: &str| Some(vec![s.to_owned()]);
    assert_eq!(
        resolved(store, "user@acme.test").await,
        one("base@dest.test")
    );
    assert_eq!(
        resolved(store, "user+vip@acme.test").await,
        one("vip@dest.test")
    );
    assert_eq!(
        resolved(store, "user+other@acme.test").await,
        one("base@dest.test")
    );
    assert_eq!(
        resolved(store, "someone@acme.test").await,
        one("catchall@dest.test")
    );
    assert_eq!(resolved(store, "user@other.test").await, None);
    store.delete(&pattern("*@acme.test")).await.unwrap();
    assert_eq!(resolved(store, "someone@acme.test").await, None);
}

pub async fn list_pages_in_key_order_with_domain_filter(store: &dyn RuleStore) {
    for i in 0..12 {
        store
            .create(rule(&format!("u{i:02}@a.test"), &["d@x.test"]))
            .await
            .unwrap();
        store
            .create(rule(&format!("u{i:02}@b.test"), &["d@x.test"]))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list(&RuleQuery {
                domain: None,
                limit: 5,
                cursor,
            })
            .await
            .unwrap();
        assert!(page.rules.len() <= 5);
        seen.extend(page.rules.iter().map(|r| r.pattern().key()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen.len(), 24);
    assert_eq!(seen, sorted);

    let query = RuleQuery {
        domain: Some(crate::Domain::parse("B.test").unwrap()),
        limit: 100,
        cursor: None,
    };
    let page = store.list(&query).await.unwrap();
    assert_eq!(page.rules.len(), 12);
    assert!(
        page.rules
            .iter()
            .all(|r| r.pattern().domain().as_str() == "b.test")
    );
    assert_eq!(page.next_cursor, None);

    let bad = RuleQuery {
        domain: None,
        limit: 5,
        cursor: Some("zz-not-a-cursor".to_owned()),
    };
    assert!(matches!(
        store.list(&bad).await,
        Err(RuleError::InvalidCursor)
    ));
}

pub async fn upsert_many_creates_and_replaces(store: &dyn RuleStore) {
    store
        .create(rule("a@x.test", &["old@y.test"]))
        .await
        .unwrap();
    let batch: Vec<Rule> = (0..3000)
        .map(|i| rule(&format!("n{i}@x.test"), &["d@y.test"]))
        .chain([rule("a@x.test", &["new@y.test", "second@y.test"])])
        .collect();
    assert_eq!(store.upsert_many(batch).await.unwrap(), 3001);
    assert_eq!(
        resolved(store, "a@x.test").await,
        Some(vec!["new@y.test".to_owned(), "second@y.test".to_owned()])
    );
    assert_eq!(
        resolved(store, "n2999@x.test").await,
        Some(vec!["d@y.test".to_owned()])
    );
    assert_eq!(store.upsert_many(Vec::new()).await.unwrap(), 0);
}
