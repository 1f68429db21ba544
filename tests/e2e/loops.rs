//! Mail loops end to end: destinations that mailfwd itself forwards are expanded inside
//! it, and mailfwd never sends to itself, even with the relay pointed back at it.

use std::time::{Duration, Instant};

use mailfwd_domain::{EmailAddress, RecipientPattern, Rule, RuleStore};
use mailfwd_sqlite::Database;
use mailfwd_testkit::Client;
use mailfwd_testkit::sink::{Options, Sink};
use serde_json::Value;

use crate::harness::Server;

/// A port nothing listens on now, for a server that must know its own address before
/// it starts.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Starts a server whose relay host is its own SMTP listener: every message it sends
/// comes straight back to it, as when a destination's MX is mailfwd.
fn start_relaying_to_itself(data: &std::path::Path) -> Server {
    let own = format!("127.0.0.1:{}", free_port());
    Server::start(
        data,
        &[
            ("MAILFWD_SMTP_LISTEN", own.as_str()),
            ("MAILFWD_RELAY", own.as_str()),
            ("MAILFWD_HOSTNAME", "mx.loop.test"),
        ],
    )
}

/// Writes rules straight into the database, past the API's loop check, as a rule set
/// written before the check existed (or by hand) would be.
async fn seed(data: &std::path::Path, rules: &[(&str, &[&str])]) {
    let url = format!("sqlite://{}", data.join("mailfwd.db").display());
    let database = Database::open(&url).await.expect("open the database");
    let rules = rules
        .iter()
        .map(|(pattern, destinations)| {
            Rule::new(
                RecipientPattern::parse(pattern).unwrap(),
                destinations
                    .iter()
                    .map(|d| EmailAddress::parse(d).unwrap())
                    .collect(),
                10,
            )
            .unwrap()
        })
        .collect();
    database
        .rules()
        .upsert_many(rules)
        .await
        .expect("seed rules");
}

async fn get(server: &Server, path: &str) -> String {
    reqwest::get(format!("{}{path}", server.http))
        .await
        .expect(path)
        .text()
        .await
        .expect("a body")
}

async fn received_count(server: &Server) -> usize {
    let page: Value = serde_json::from_str(&get(server, "/v1/emails?limit=1000").await).unwrap();
    page["emails"].as_array().map_or(0, Vec::len)
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_issue_loop_with_the_relay_pointed_at_itself_stays_one_message() {
    let data = tempfile::tempdir().unwrap();
    // a → [b, c], b → a, c → a: this once became 22,842 messages in 16 s.
    seed(
        data.path(),
        &[
            ("a@loop.test", &["b@loop.test", "c@loop.test"]),
            ("b@loop.test", &["a@loop.test"]),
            ("c@loop.test", &["a@loop.test"]),
        ],
    )
    .await;
    let server = start_relaying_to_itself(data.path());
    let mut client = Client::connect(&server.smtp).await;
    let id = client
        .send_mail(
            "sender@example.org",
            "a@loop.test",
            b"Subject: round and round\r\n\r\nbody\r\n",
        )
        .await;

    let started = Instant::now();
    let metrics = loop {
        let metrics = get(&server, "/metrics").await;
        if metric(&metrics, "mailfwd_expansion_cuts_total{reason=\"loop\"}") >= 2.0 {
            break metrics;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the loops were never cut:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Give a copy that went out anyway the time to come back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(received_count(&server).await, 1, "one message, no copies");
    assert!(server.deliveries(&id).await.is_empty(), "nothing to send");
    assert_eq!(
        metric(&metrics, "mailfwd_expansion_cuts_total{reason=\"loop\"}"),
        2.0
    );
    server.terminate();
}

#[tokio::test]
async fn a_delivery_to_its_own_listen_address_fails_with_5_4_6() {
    let data = tempfile::tempdir().unwrap();
    let server = start_relaying_to_itself(data.path());
    server
        .create_rule("a@self.test", serde_json::json!("z@elsewhere.test"))
        .await;
    let mut client = Client::connect(&server.smtp).await;
    let id = client
        .send_mail(
            "sender@example.org",
            "a@self.test",
            b"Subject: to myself\r\n\r\nbody\r\n",
        )
        .await;
    let started = Instant::now();
    let delivery = loop {
        let deliveries = server.deliveries(&id).await;
        if let Some(done) = deliveries.iter().find(|d| d["state"] == "failed") {
            break done.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the delivery never failed: {deliveries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = delivery.to_string();
    assert!(
        reason.contains("5.4.6 mail loops back to myself"),
        "{delivery}"
    );
    // Nothing came back but the notification to the sender, which, sent to itself
    // too, fails in turn and is reported to no one (it has the null sender).
    let started = Instant::now();
    while received_count(&server).await < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no notification"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(received_count(&server).await, 2, "nothing else came back");
    server.terminate();
}

#[tokio::test]
async fn a_chain_of_rules_is_expanded_inside_and_each_destination_gets_one_copy() {
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = Server::relaying_to(data.path(), sink.addr);
    server
        .create_rule(
            "b@chain.test",
            serde_json::json!(["y@dest.test", "x@dest.test"]),
        )
        .await;
    server
        .create_rule(
            "a@chain.test",
            serde_json::json!(["b@chain.test", "x@dest.test"]),
        )
        .await;
    let mut client = Client::connect(&server.smtp).await;
    client
        .send_mail(
            "sender@example.org",
            "a@chain.test",
            b"Subject: chain\r\n\r\nbody\r\n",
        )
        .await;
    let started = Instant::now();
    let rcpts = || -> usize { sink.messages().iter().map(|m| m.rcpt_to.len()).sum() };
    while rcpts() < 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut recipients: Vec<String> = sink
        .messages()
        .into_iter()
        .flat_map(|m| m.rcpt_to)
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["RCPT TO:<x@dest.test>", "RCPT TO:<y@dest.test>"],
        "b@chain.test was expanded here, x@dest.test got one copy"
    );
    assert_eq!(received_count(&server).await, 1);
    server.terminate();
}
