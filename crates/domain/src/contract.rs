//! Contract suites: the behaviour every implementation of a port must show.
//!
//! An adapter runs a suite with one macro call, giving an async expression that builds
//! a fresh, empty store. The in-memory store runs the same suite in this crate's tests.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, missing_docs)]

/// The `RuleStore` contract, as plain async functions over a fresh store.
pub mod rule_store {
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
}

/// The `BodyStore` contract.
pub mod body_store {
    use crate::email::{BodyReader, BodyStore, EmailId, StoreError};

    async fn read_all(mut reader: Box<dyn BodyReader>) -> Vec<u8> {
        let mut bytes = Vec::new();
        while let Some(chunk) = reader.next_chunk().await.unwrap() {
            bytes.extend_from_slice(&chunk);
        }
        bytes
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    pub async fn bodies_round_trip_byte_for_byte(store: &dyn BodyStore) {
        let id = EmailId::new();
        let body = pattern(3 * 1024 * 1024 + 17, 7);
        let mut writer = store.create(&id).await.unwrap();
        writer.write(b"").await.unwrap();
        for chunk in body.chunks(64 * 1024 + 3) {
            writer.write(chunk).await.unwrap();
        }
        assert_eq!(writer.commit().await.unwrap(), body.len() as u64);
        assert_eq!(read_all(store.open(&id).await.unwrap()).await, body);

        let empty = EmailId::new();
        assert_eq!(
            store.create(&empty).await.unwrap().commit().await.unwrap(),
            0
        );
        assert_eq!(
            read_all(store.open(&empty).await.unwrap()).await,
            Vec::<u8>::new()
        );
    }

    pub async fn uncommitted_and_aborted_bodies_do_not_exist(store: &dyn BodyStore) {
        let unknown = EmailId::new();
        assert!(
            matches!(store.open(&unknown).await, Err(StoreError::NotFound(id)) if id == unknown)
        );
        let id = EmailId::new();
        let mut writer = store.create(&id).await.unwrap();
        writer.write(b"partial").await.unwrap();
        assert!(matches!(
            store.open(&id).await,
            Err(StoreError::NotFound(_))
        ));
        writer.abort().await;
        assert!(matches!(
            store.open(&id).await,
            Err(StoreError::NotFound(_))
        ));
    }

    pub async fn interleaved_writers_keep_their_bodies_apart(store: &dyn BodyStore) {
        let ids: Vec<EmailId> = (0..3).map(|_| EmailId::new()).collect();
        let mut writers = Vec::new();
        for id in &ids {
            writers.push(store.create(id).await.unwrap());
        }
        for round in 0..4u8 {
            for (n, writer) in writers.iter_mut().enumerate() {
                writer.write(&pattern(1000, round ^ n as u8)).await.unwrap();
            }
        }
        for writer in writers.into_iter().rev() {
            writer.commit().await.unwrap();
        }
        for (n, id) in ids.iter().enumerate() {
            let expected: Vec<u8> = (0..4u8)
                .flat_map(|round| pattern(1000, round ^ n as u8))
                .collect();
            assert_eq!(read_all(store.open(id).await.unwrap()).await, expected);
        }
    }
}

/// The `EmailLog` contract.
pub mod email_log {
    use std::time::{Duration, SystemTime};

    use crate::EmailAddress;
    use crate::email::{
        EmailId, EmailLog, EmailQuery, Envelope, NewEmail, ReceivedEmail, StoreError, now_millis,
    };

    fn record(received_at: SystemTime, sender: Option<&str>) -> ReceivedEmail {
        ReceivedEmail {
            id: EmailId::new(),
            email: NewEmail {
                envelope: Envelope {
                    sender: sender.map(|s| EmailAddress::parse(s).unwrap()),
                    recipients: vec![
                        EmailAddress::parse("Sales@acme.test").unwrap(),
                        EmailAddress::parse("\"john doe\"@acme.test").unwrap(),
                    ],
                },
                peer: Some("[2001:db8::1]:2525".to_owned()),
                helo: Some("client.example".to_owned()),
                tls: true,
            },
            size: 25 * 1024 * 1024,
            received_at,
        }
    }

    pub async fn records_round_trip(store: &dyn EmailLog) {
        let with_sender = record(now_millis(), Some("José@bücher.example"));
        let bounce = ReceivedEmail {
            email: NewEmail {
                peer: None,
                helo: None,
                tls: false,
                ..with_sender.email.clone()
            },
            ..record(now_millis(), None)
        };
        for email in [&with_sender, &bounce] {
            store.record(email).await.unwrap();
            assert_eq!(&store.get(&email.id).await.unwrap(), email);
        }
        let unknown = EmailId::new();
        assert!(
            matches!(store.get(&unknown).await, Err(StoreError::NotFound(id)) if id == unknown)
        );
    }

    pub async fn list_by_time_window_in_pages(store: &dyn EmailLog) {
        let start = now_millis() - Duration::from_secs(3600);
        let mut all = Vec::new();
        for minute in 0..30 {
            let email = record(start + Duration::from_secs(60 * minute), Some("a@b.test"));
            store.record(&email).await.unwrap();
            all.push(email);
        }
        let window = EmailQuery {
            since: Some(start + Duration::from_secs(60 * 5)),
            until: Some(start + Duration::from_secs(60 * 25)),
            limit: 7,
            cursor: None,
        };
        let mut seen = Vec::new();
        let mut query = window.clone();
        loop {
            let page = store.list(&query).await.unwrap();
            assert!(page.emails.len() <= 7);
            seen.extend(page.emails);
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, all[5..25].to_vec());
        let bad = EmailQuery {
            cursor: Some("not-a-cursor".to_owned()),
            ..window
        };
        assert!(matches!(
            store.list(&bad).await,
            Err(StoreError::InvalidCursor)
        ));
    }
}

/// Generates one `#[tokio::test]` per `RuleStore` contract case. `$make` is an async
/// expression that builds a fresh, empty store (anything implementing `RuleStore`).
#[macro_export]
macro_rules! rule_store_contract_tests {
    ($make:expr) => {
        $crate::rule_store_contract_tests!(@cases $make;
            create_get_delete,
            patterns_match_case_insensitively,
            addresses_round_trip_exactly,
            resolve_follows_precedence,
            list_pages_in_key_order_with_domain_filter,
            upsert_many_creates_and_replaces);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $crate::contract_cases!(rule_store, $make; $($case),*);
    };
}

/// Generates one `#[tokio::test]` per `BodyStore` contract case; `$make` builds a fresh store.
#[macro_export]
macro_rules! body_store_contract_tests {
    ($make:expr) => {
        $crate::contract_cases!(body_store, $make; bodies_round_trip_byte_for_byte,
            uncommitted_and_aborted_bodies_do_not_exist, interleaved_writers_keep_their_bodies_apart);
    };
}

/// Generates one `#[tokio::test]` per `EmailLog` contract case; `$make` builds a fresh log.
#[macro_export]
macro_rules! email_log_contract_tests {
    ($make:expr) => {
        $crate::contract_cases!(email_log, $make; records_round_trip, list_by_time_window_in_pages);
    };
}

/// One `#[tokio::test]` per case of a contract module.
#[doc(hidden)]
#[macro_export]
macro_rules! contract_cases {
    ($module:ident, $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::contract::$module::$case(&store).await;
            }
        )*
    };
}

#[cfg(test)]
mod memory_runs_the_contracts {
    mod rules {
        use crate::memory::MemoryRuleStore;
        rule_store_contract_tests!(async { MemoryRuleStore::new() });
    }
    mod bodies {
        use crate::memory::MemoryBodyStore;
        body_store_contract_tests!(async { MemoryBodyStore::new() });
    }
    mod log {
        use crate::memory::MemoryEmailLog;
        email_log_contract_tests!(async { MemoryEmailLog::new() });
    }
}
