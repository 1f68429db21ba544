//! PostgreSQL stopped under mailfwd, and not yet started when mailfwd starts: nothing
//! answered `250` is lost, every interface says "not now" meanwhile (SMTP `451 4.3.0`,
//! HTTP `503` with `Retry-After`, gRPC `UNAVAILABLE`, `/healthz` `503`), and all of it
//! recovers by itself when the server is back.
//!
//! Each test stops and starts a server of its own (see [`PrivateCluster`]).

use std::time::{Duration, Instant};

use mailfwd_grpc::pb::forwarding_client::ForwardingClient;
use mailfwd_grpc::pb::{Envelope, IngestEmailRequest, ingest_email_request::Part};
use mailfwd_testkit::Client;
use mailfwd_testkit::sink::{Options, Sink};
use serde_json::json;

use crate::harness::Server;
use crate::postgres::copies;
use crate::private_postgres::PrivateCluster;

/// mailfwd on `cluster`, relaying to `sink`, giving up on a connection after 1 s.
fn serve_on(cluster: &PrivateCluster, data: &std::path::Path, sink: &Sink) -> Server {
    let (url, relay) = (cluster.url(), sink.addr.to_string());
    Server::start(
        data,
        &[
            ("MAILFWD_DATABASE_URL", url.as_str()),
            ("MAILFWD_RELAY", relay.as_str()),
            ("MAILFWD_DATABASE_ACQUIRE_TIMEOUT", "1"),
        ],
    )
}

/// Sends one message to sales@acme.test with `subject`; the code of the reply that
/// decided it (RCPT's if it was refused, else the final one).
async fn send_one(smtp: &str, subject: &str) -> u16 {
    let mut client = Client::connect(smtp).await;
    client.ehlo().await;
    client.cmd("MAIL FROM:<someone@example.org>", 250).await;
    let rcpt = client.command("RCPT TO:<sales@acme.test>").await;
    if rcpt.code != 250 {
        return rcpt.code;
    }
    let body = format!("Subject: {subject}\r\n\r\nx\r\n.\r\n");
    client.data(body.as_bytes()).await.code
}

/// Ingests one message over gRPC; the status code it got.
async fn ingest_over_grpc(grpc: &str) -> tonic::Code {
    let mut client = ForwardingClient::connect(grpc.to_owned())
        .await
        .expect("connect to the gRPC API");
    let parts = vec![
        IngestEmailRequest {
            part: Some(Part::Envelope(Envelope {
                sender: "someone@example.org".into(),
                recipients: vec!["sales@acme.test".into()],
            })),
        },
        IngestEmailRequest {
            part: Some(Part::Chunk(b"Subject: grpc\r\n\r\nx\r\n".to_vec())),
        },
    ];
    match client.ingest_email(tokio_stream::iter(parts)).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

async fn http_status(url: String) -> (u16, Option<String>) {
    let response = reqwest::get(url).await.expect("HTTP answers");
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap_or_default().to_owned());
    (response.status().as_u16(), retry_after)
}

/// Waits until every subject in `accepted` reached `sink`.
async fn all_delivered(sink: &Sink, accepted: &[String], within: Duration) {
    let started = Instant::now();
    loop {
        let copies = copies(sink);
        let missing: Vec<_> = accepted
            .iter()
            .filter(|s| !copies.contains_key(*s))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{} of {} messages answered 250 never arrived: {missing:?}",
            missing.len(),
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_stopped_for_10_s_under_load_loses_nothing_answered_250() {
    let cluster = PrivateCluster::create();
    cluster.start();
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = serve_on(&cluster, data.path(), &sink);
    server
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;

    // Four senders, one message after another each, for the whole test.
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..4 {
        let smtp = server.smtp.clone();
        senders.spawn(async move {
            let (mut accepted, mut deferred) = (Vec::new(), 0);
            let started = Instant::now();
            let mut n = 0;
            while started.elapsed() < Duration::from_secs(18) {
                n += 1;
                let subject = format!("steady-{sender}-{n}");
                match send_one(&smtp, &subject).await {
                    250 => accepted.push(subject),
                    451 => deferred += 1,
                    other => panic!("{subject} got {other}, neither 250 nor 451"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (accepted, deferred)
        });
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.stop();
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(http_status(format!("{}/healthz", server.http)).await.0, 503);
    assert_eq!(
        http_status(format!("{}/v1/forwards", server.http)).await,
        (503, Some("5".to_owned()))
    );
    assert_eq!(
        ingest_over_grpc(&server.grpc).await,
        tonic::Code::Unavailable
    );
    let mut client = Client::connect(&server.smtp).await;
    client.ehlo().await;
    client.cmd("MAIL FROM:<someone@example.org>", 250).await;
    let refused = client.command("RCPT TO:<sales@acme.test>").await;
    assert_eq!(refused.code, 451, "{refused:?}");
    assert!(refused.line().contains("4.3.0"), "{refused:?}");
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed())).await;
    cluster.start();

    let (mut accepted, mut deferred) = (Vec::new(), 0);
    while let Some(sent) = senders.join_next().await {
        let (sent, refused) = sent.unwrap();
        accepted.extend(sent);
        deferred += refused;
    }
    assert!(deferred > 0, "no 451 while the database was stopped");
    all_delivered(&sink, &accepted, Duration::from_secs(60)).await;
    eprintln!(
        "PostgreSQL stopped for 10 s: {} messages answered 250 (all delivered), {deferred} \
         answered 451",
        accepted.len()
    );
    assert_eq!(http_status(format!("{}/healthz", server.http)).await.0, 200);
    assert_eq!(ingest_over_grpc(&server.grpc).await, tonic::Code::Ok);
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_down_at_start_gets_451_until_it_is_up_then_mail_flows() {
    let cluster = PrivateCluster::create();
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    // It starts, although it can neither connect nor create its tables.
    let server = serve_on(&cluster, data.path(), &sink);
    let mut client = Client::connect(&server.smtp).await;
    client.ehlo().await;
    client.cmd("MAIL FROM:<someone@example.org>", 250).await;
    let refused = client.command("RCPT TO:<sales@acme.test>").await;
    assert_eq!(refused.code, 451, "{refused:?}");
    assert!(refused.line().contains("4.3.0"), "{refused:?}");
    assert_eq!(http_status(format!("{}/healthz", server.http)).await.0, 503);
    assert_eq!(
        ingest_over_grpc(&server.grpc).await,
        tonic::Code::Unavailable
    );

    cluster.start();
    // Its tables are made as soon as the database answers; then everything works.
    let back = Instant::now();
    loop {
        let (status, _) = http_status(format!("{}/healthz", server.http)).await;
        if status == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "still {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;
    assert_eq!(send_one(&server.smtp, "after").await, 250);
    let received = sink.wait_for_messages(1, Duration::from_secs(20)).await;
    assert_eq!(received[0].recipients, ["alice@dest.test"]);
    eprintln!(
        "PostgreSQL down at start: 451 meanwhile, healthy {:?} after it started",
        back.elapsed()
    );
    server.terminate();
}
