//! The `EmailLog` contract.

use std::time::{Duration, SystemTime};

use crate::EmailAddress;
use crate::email::{
    EmailId, EmailLog, EmailQuery, Envelope, NewEmail, ReceivedEmail, StoreError, UnevaluatedStats,
    now_millis,
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
            encoding: crate::email::Encoding {
                eight_bit: true,
                smtputf8: true,
                utf8_headers: false,
            },
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
            encoding: crate::email::Encoding::default(),
            ..with_sender.email.clone()
        },
        ..record(now_millis(), None)
    };
    for email in [&with_sender, &bounce] {
        store.record(email).await.unwrap();
        assert_eq!(&store.get(&email.id).await.unwrap(), email);
    }
    let unknown = EmailId::new();
    assert!(matches!(store.get(&unknown).await, Err(StoreError::NotFound(id)) if id == unknown));
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

pub async fn records_stay_unevaluated_until_marked(store: &dyn EmailLog) {
    let first = record(now_millis(), Some("a@b.test"));
    let second = record(now_millis(), None);
    store.record(&first).await.unwrap();
    store.record(&second).await.unwrap();
    assert_eq!(
        store.unevaluated(None, 10).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(
        store.unevaluated(None, 1).await.unwrap(),
        vec![first.clone()]
    );
    store.mark_evaluated(&first.id).await.unwrap();
    assert_eq!(
        store.unevaluated(None, 10).await.unwrap(),
        vec![second.clone()]
    );
    store.mark_evaluated(&second.id).await.unwrap();
    assert!(store.unevaluated(None, 10).await.unwrap().is_empty());
}

pub async fn unevaluated_records_page_after_a_cursor(store: &dyn EmailLog) {
    let mut all = Vec::new();
    for _ in 0..7 {
        let email = record(now_millis(), Some("a@b.test"));
        store.record(&email).await.unwrap();
        all.push(email);
    }
    store.mark_evaluated(&all[2].id).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.unevaluated(after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page);
    }
    let expected: Vec<_> = all
        .iter()
        .enumerate()
        .filter(|(n, _)| *n != 2)
        .map(|(_, email)| email.clone())
        .collect();
    assert_eq!(seen, expected, "every unevaluated record once, in id order");
    assert!(
        store
            .unevaluated(Some(all[6].id), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn unevaluated_stats_count_and_date_the_backlog(store: &dyn EmailLog) {
    assert_eq!(
        store.unevaluated_stats().await.unwrap(),
        UnevaluatedStats::default()
    );
    let now = now_millis();
    // Received in another order than their ids: the oldest is the one received first.
    let late = record(now, None);
    let early = record(now - Duration::from_secs(90), None);
    let middle = record(now - Duration::from_secs(30), None);
    for email in [&late, &early, &middle] {
        store.record(email).await.unwrap();
    }
    let stats = store.unevaluated_stats().await.unwrap();
    assert_eq!(stats.count, 3);
    assert_eq!(stats.oldest_received_at, Some(early.received_at));
    store.mark_evaluated(&early.id).await.unwrap();
    let stats = store.unevaluated_stats().await.unwrap();
    assert_eq!(
        (stats.count, stats.oldest_received_at),
        (2, Some(middle.received_at))
    );
    store.mark_evaluated(&late.id).await.unwrap();
    store.mark_evaluated(&middle.id).await.unwrap();
    assert_eq!(
        store.unevaluated_stats().await.unwrap(),
        UnevaluatedStats::default()
    );
}

pub async fn only_evaluated_records_are_forgotten(store: &dyn EmailLog) {
    let (kept, forgotten) = (record(now_millis(), None), record(now_millis(), None));
    store.record(&kept).await.unwrap();
    store.record(&forgotten).await.unwrap();
    assert!(
        !store.forget(&forgotten.id).await.unwrap(),
        "not evaluated yet: still work to do"
    );
    assert_eq!(store.get(&forgotten.id).await.unwrap(), forgotten);
    store.mark_evaluated(&forgotten.id).await.unwrap();
    assert!(store.forget(&forgotten.id).await.unwrap());
    assert!(matches!(
        store.get(&forgotten.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.forget(&forgotten.id).await.unwrap(), "gone already");
    assert_eq!(store.get(&kept.id).await.unwrap(), kept);
}
