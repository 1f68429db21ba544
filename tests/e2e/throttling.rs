//! The email store protects itself (ADR 0023): a flood from one client is told to slow
//! down while another client is served, gRPC hears `RESOURCE_EXHAUSTED` with the
//! delay, and a disk under the free-space floor (a configured floor, or a small
//! filesystem that really fills up) or a backlog over its maximum refuses new mail at
//! `MAIL FROM` and says why on `/healthz` and `/metrics`, and takes it again by itself
//! once space frees or the backlog drains. Whatever was accepted is delivered.

use std::time::{Duration, Instant};

use mailfwd_grpc::pb::forwarding_client::ForwardingClient;
use mailfwd_grpc::pb::ingest_email_request::Part;
use mailfwd_grpc::pb::{Envelope, IngestEmailRequest};
use mailfwd_grpc::retry_info::{RETRY_INFO_TYPE, RetryInfo, RpcStatus};
use mailfwd_testkit::Client;
use mailfwd_testkit::client::{dot_stuffed, queued_id};
use mailfwd_testkit::sink::{Mode, Options, Sink};
use prost::Message;
use serde_json::json;
use tokio::net::TcpSocket;
use tonic::Code;

use crate::harness::Server;

const MESSAGE: &[u8] = b"From: a@example.org\r\nSubject: flood\r\n\r\nHello.\r\n";

/// An SMTP client whose connection comes from `source` (any 127.0.0.0/8 address is
/// this machine's on Linux), so the server sees a different client.
async fn connect_from(source: [u8; 4], server: &Server) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    let stream = socket.connect(server.smtp.parse().unwrap()).await.unwrap();
    let mut client = Client::new(Box::new(stream), None);
    client.expect_reply(220).await;
    client.ehlo().await;
    client
}

/// One email over `client`: the id if it was accepted, else the refusal at MAIL FROM.
async fn try_send(client: &mut Client) -> Result<String, String> {
    let mail = client.command("MAIL FROM:<a@example.org>").await;
    if mail.code != 250 {
        return Err(mail.line().to_owned());
    }
    client.cmd("RCPT TO:<sales@acme.test>", 250).await;
    let done = client.data(&dot_stuffed(MESSAGE)).await;
    assert_eq!(done.code, 250, "{done:?}");
    Ok(queued_id(&done))
}

async fn status_of(url: String) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_flood_from_one_client_is_slowed_down_while_another_is_served() {
    let data = tempfile::tempdir().unwrap();
    let env = [("MAILFWD_THROTTLE_CLIENT_MESSAGES_PER_SECOND", "2")];
    let server = Server::start(data.path(), &env);
    server
        .create_rule("sales@acme.test", json!("alice@gmail.test"))
        .await;

    let mut flood = connect_from([127, 0, 0, 1], &server).await;
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        match try_send(&mut flood).await {
            Ok(id) => accepted.push(id),
            Err(line) => refused.push(line),
        }
    }
    assert!(!refused.is_empty(), "no refusal in a flood of 10");
    assert!(accepted.len() >= 2, "{accepted:?}");
    for line in &refused {
        assert!(
            line.starts_with("451 4.7.1 ") && line.contains("try again in 1 second"),
            "{line}"
        );
    }

    // Another client is served meanwhile, and the flooding client after the delay.
    let mut other = connect_from([127, 0, 0, 2], &server).await;
    accepted.push(try_send(&mut other).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    accepted.push(try_send(&mut flood).await.unwrap());

    for id in &accepted {
        let url = format!("{}/v1/emails/{id}", server.http);
        assert_eq!(status_of(url).await, 200, "accepted email {id} is gone");
    }
    let metrics = server.metrics().await;
    let line = format!(
        "mailfwd_throttled_total{{reason=\"client_messages\"}} {}",
        refused.len()
    );
    assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
}

fn ingest_request() -> tokio_stream::Iter<std::vec::IntoIter<IngestEmailRequest>> {
    let envelope = Envelope {
        sender: "a@example.org".into(),
        recipients: vec!["sales@acme.test".into()],
    };
    tokio_stream::iter(vec![
        IngestEmailRequest {
            part: Some(Part::Envelope(envelope)),
        },
        IngestEmailRequest {
            part: Some(Part::Chunk(MESSAGE.to_vec())),
        },
    ])
}

#[tokio::test]
async fn grpc_is_told_resource_exhausted_with_the_delay() {
    let data = tempfile::tempdir().unwrap();
    let env = [("MAILFWD_THROTTLE_CLIENT_MESSAGES_PER_SECOND", "1")];
    let server = Server::start(data.path(), &env);
    server
        .create_rule("sales@acme.test", json!("alice@gmail.test"))
        .await;
    let mut client = ForwardingClient::connect(server.grpc.clone())
        .await
        .unwrap();

    let first = client.ingest_email(ingest_request()).await.unwrap();
    let id = first.into_inner().email_id;
    // One a second: one of the next few, sent at once, is refused.
    let mut refusal = None;
    for _ in 0..5 {
        if let Err(status) = client.ingest_email(ingest_request()).await {
            refusal = Some(status);
            break;
        }
    }
    let status = refusal.expect("a refusal among 6 emails sent at once");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry_after = status.metadata().get("retry-after").unwrap();
    assert_eq!(retry_after.to_str().unwrap(), "1");
    assert!(status.message().contains("try again in 1 s"), "{status:?}");
    // The same delay as the standard google.rpc.RetryInfo detail.
    let details = RpcStatus::decode(status.details()).unwrap();
    assert_eq!(details.details[0].type_url, RETRY_INFO_TYPE);
    let info = RetryInfo::decode(details.details[0].value.as_slice()).unwrap();
    assert_eq!(info.retry_delay.unwrap().seconds, 1);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    client.ingest_email(ingest_request()).await.unwrap();
    let url = format!("{}/v1/emails/{id}", server.http);
    assert_eq!(status_of(url).await, 200);
}

#[tokio::test]
async fn a_disk_floor_above_the_free_space_refuses_new_mail_at_mail_from_and_recovers() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    server
        .create_rule("sales@acme.test", json!("alice@gmail.test"))
        .await;
    let mut client = Client::connect(&server.smtp).await;
    let kept = client
        .send_mail("a@example.org", "sales@acme.test", MESSAGE)
        .await;
    assert!(server.terminate().success());

    // A floor no disk can meet: new mail is refused before its body is sent.
    let floor = [("MAILFWD_DISK_FREE_FLOOR", "1000000000000000000")];
    let server = Server::start(data.path(), &floor);
    let mut client = Client::connect(&server.smtp).await;
    client.ehlo().await;
    let refused = client.command("MAIL FROM:<a@example.org>").await;
    assert_eq!(refused.line(), "452 4.3.1 Insufficient system storage");
    client.cmd("QUIT", 221).await;

    let health = reqwest::get(format!("{}/healthz", server.http))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    assert!(health.headers().contains_key("retry-after"));
    let detail = health.text().await.unwrap();
    assert!(
        detail.contains("refusing new mail") && detail.contains("under the floor"),
        "{detail}"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("mailfwd_shedding{reason=\"disk\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mailfwd_shed_total{reason=\"disk\"} 1"),
        "{metrics}"
    );
    // What was accepted before is still there.
    let url = format!("{}/v1/emails/{kept}", server.http);
    assert_eq!(status_of(url.clone()).await, 200);
    assert!(server.terminate().success());

    // The floor lowered: mail is taken again, and nothing was lost.
    let server = Server::start(data.path(), &[]);
    assert_eq!(status_of(format!("{}/healthz", server.http)).await, 200);
    let mut client = Client::connect(&server.smtp).await;
    client
        .send_mail("a@example.org", "sales@acme.test", MESSAGE)
        .await;
    let url = format!("{}/v1/emails/{kept}", server.http);
    assert_eq!(status_of(url).await, 200);
}

#[tokio::test]
async fn a_body_over_the_byte_rate_arrives_at_that_rate_and_is_accepted() {
    let data = tempfile::tempdir().unwrap();
    let env = [("MAILFWD_THROTTLE_CLIENT_BYTES_PER_SECOND", "20000")];
    let server = Server::start(data.path(), &env);
    server
        .create_rule("sales@acme.test", json!("alice@gmail.test"))
        .await;
    let mut client = Client::connect(&server.smtp).await;
    client.envelope("a@example.org", &["sales@acme.test"]).await;
    // 84 KB: a second's worth (20 KB) at once, the rest at 20 KB a second.
    let mut big = MESSAGE.to_vec();
    big.extend(b"0123456789012345678901234567890123456789\r\n".repeat(2000));
    let started = Instant::now();
    let reply = client.data(&dot_stuffed(&big)).await;
    let took = started.elapsed();
    assert_eq!(reply.code, 250, "{reply:?}");
    assert!(
        took >= Duration::from_millis(2500),
        "slowed to the rate: {took:?}"
    );
    // Not refused half-way, and the next message is taken too.
    client.cmd("RSET", 250).await;
    client
        .send_mail("a@example.org", "sales@acme.test", MESSAGE)
        .await;
}

#[tokio::test]
async fn a_body_that_would_wait_minutes_for_the_byte_rate_is_refused_after_data_and_nothing_is_stored()
 {
    let data = tempfile::tempdir().unwrap();
    // 16 KB reads at 1 byte a second: hours; refused at once rather than held.
    let env = [("MAILFWD_THROTTLE_CLIENT_BYTES_PER_SECOND", "1")];
    let server = Server::start(data.path(), &env);
    server
        .create_rule("sales@acme.test", json!("alice@gmail.test"))
        .await;
    let mut client = Client::connect(&server.smtp).await;
    client.envelope("a@example.org", &["sales@acme.test"]).await;
    let mut big = MESSAGE.to_vec();
    big.extend(b"0123456789012345678901234567890123456789\r\n".repeat(2000));
    let reply = client.data(&dot_stuffed(&big)).await;
    assert!(reply.line().starts_with("451 4.7.1 "), "{reply:?}");
    client.cmd("QUIT", 221).await;

    let list: serde_json::Value = reqwest::get(format!("{}/v1/emails", server.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["emails"], json!([]), "{list}");
}

/// What `MAIL FROM` gets on a new connection.
async fn mail_from_reply(server: &Server) -> String {
    let mut client = Client::connect(&server.smtp).await;
    client.ehlo().await;
    let reply = client.command("MAIL FROM:<a@example.org>").await;
    client.command("QUIT").await;
    reply.line().to_owned()
}

/// Polls `MAIL FROM` on new connections until its reply starts with `code`, for at most
/// `within`; the reply.
async fn mail_from_until(server: &Server, code: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let line = mail_from_reply(server).await;
        if line.starts_with(code) {
            return line;
        }
        assert!(
            start.elapsed() < within,
            "MAIL FROM still answered {line:?} after {within:?}, waiting for {code}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A destination that answers 451 to every recipient until told otherwise.
struct DownDestination {
    sink: Sink,
    relay: String,
}

impl DownDestination {
    async fn start() -> DownDestination {
        let sink = Sink::start(Options::destination()).await;
        sink.set_mode(Mode::TempFail);
        let relay = sink.addr.to_string();
        DownDestination { sink, relay }
    }

    /// mailfwd's settings relaying to it, retrying every second, with `extra`.
    fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("MAILFWD_RELAY", self.relay.as_str()),
            ("MAILFWD_RETRY_SCHEDULE", "1s"),
            ("MAILFWD_RETRY_EVERY", "1s"),
        ];
        env.extend_from_slice(extra);
        env
    }

    fn comes_back(&self) {
        self.sink.set_mode(Mode::Accept);
    }
}

#[tokio::test]
async fn a_backlog_over_its_maximum_refuses_new_mail_until_it_drains_by_itself() {
    let destination = DownDestination::start().await;
    let data = tempfile::tempdir().unwrap();
    let env = destination.env(&[("MAILFWD_MAX_BACKLOG", "2")]);
    let server = Server::start(data.path(), &env);
    let sink = &destination.sink;
    server
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;

    // Three deliveries pending at a destination that answers 451: over the maximum.
    let mut client = Client::connect(&server.smtp).await;
    let mut accepted = Vec::new();
    for _ in 0..3 {
        accepted.push(
            client
                .send_mail("a@example.org", "sales@acme.test", MESSAGE)
                .await,
        );
        client.cmd("RSET", 250).await;
    }
    client.cmd("QUIT", 221).await;
    let refused = mail_from_until(&server, "452", Duration::from_secs(10)).await;
    assert_eq!(refused, "452 4.3.1 Insufficient system storage");
    let health = reqwest::get(format!("{}/healthz", server.http))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    let detail = health.text().await.unwrap();
    assert!(
        detail.contains("refusing new mail") && detail.contains("over the maximum of 2"),
        "{detail}"
    );

    // The destination comes back: the backlog drains, and new mail is taken again
    // without anybody touching mailfwd.
    destination.comes_back();
    mail_from_until(&server, "250", Duration::from_secs(30)).await;
    assert_eq!(status_of(format!("{}/healthz", server.http)).await, 200);
    let mut client = Client::connect(&server.smtp).await;
    accepted.push(
        client
            .send_mail("a@example.org", "sales@acme.test", MESSAGE)
            .await,
    );
    client.cmd("QUIT", 221).await;

    // Nothing accepted was lost: all four reach the destination.
    let start = Instant::now();
    while sink.received().len() < accepted.len() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} of {} delivered",
            sink.received().len(),
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("mailfwd_shedding{reason=\"backlog\"} 0"),
        "{metrics}"
    );
}

/// A message of about `size` bytes, told apart by `n` in its subject.
fn large_message(n: usize, size: usize) -> Vec<u8> {
    let mut message = format!("From: a@example.org\r\nSubject: large {n}\r\n\r\n").into_bytes();
    while message.len() < size {
        message.extend_from_slice(&[b'x'; 76]);
        message.extend_from_slice(b"\r\n");
    }
    message
}

#[tokio::test]
async fn a_small_disk_that_fills_up_refuses_new_mail_and_takes_it_again_once_space_frees() {
    let destination = DownDestination::start().await;
    let data = tempfile::tempdir().unwrap();
    let env = destination.env(&[
        ("MAILFWD_DISK_FREE_FLOOR", "8000000"),
        ("MAILFWD_RETENTION", "1s"),
    ]);
    let sink = &destination.sink;
    // 24 MiB, of which 8 MB are the floor: about thirty 500 KB messages fit above it.
    let server = Server::start_on_small_disk(data.path(), 24 << 20, &env);
    server
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;

    // The destination answers 451, so every message stays on the disk until it fills.
    let mut accepted = Vec::new();
    let refused = loop {
        let mut client = Client::connect(&server.smtp).await;
        client.ehlo().await;
        let mail = client.command("MAIL FROM:<a@example.org>").await;
        if mail.code != 250 {
            break mail.line().to_owned();
        }
        client.cmd("RCPT TO:<sales@acme.test>", 250).await;
        let message = large_message(accepted.len(), 500_000);
        let done = client.data(&dot_stuffed(&message)).await;
        assert_eq!(done.code, 250, "refused after DATA, not at MAIL: {done:?}");
        accepted.push(queued_id(&done));
        client.cmd("QUIT", 221).await;
        // As fast as the client can: the disk is measured once a second, and what is
        // written in between counts against the floor.
        assert!(accepted.len() < 100, "24 MiB never came under the floor");
    };
    assert_eq!(refused, "452 4.3.1 Insufficient system storage");
    assert!(accepted.len() >= 10, "only {} accepted", accepted.len());
    let health = reqwest::get(format!("{}/healthz", server.http))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    let detail = health.text().await.unwrap();
    assert!(detail.contains("under the floor"), "{detail}");

    // The destination comes back: what is delivered is deleted by the retention, the
    // space comes back, and new mail is taken again without anybody touching mailfwd.
    destination.comes_back();
    let back = Instant::now();
    mail_from_until(&server, "250", Duration::from_secs(60)).await;
    eprintln!(
        "small disk: {} messages of 500 KB accepted before 452 4.3.1; new mail taken again {:?} after the destination came back",
        accepted.len(),
        back.elapsed()
    );
    assert_eq!(status_of(format!("{}/healthz", server.http)).await, 200);
    let mut client = Client::connect(&server.smtp).await;
    let last = large_message(accepted.len(), 500_000);
    accepted.push(
        client
            .send_mail("a@example.org", "sales@acme.test", &last)
            .await,
    );
    client.cmd("QUIT", 221).await;

    // Nothing accepted was lost: every message reached the destination, once.
    let start = Instant::now();
    loop {
        let mut subjects: Vec<String> = sink
            .received()
            .iter()
            .filter_map(|m| {
                let text = String::from_utf8_lossy(&m.data);
                let line = text.lines().find(|l| l.starts_with("Subject: large "))?;
                Some(line.to_owned())
            })
            .collect();
        subjects.sort();
        subjects.dedup();
        if subjects.len() == accepted.len() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} of {} messages delivered",
            subjects.len(),
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
