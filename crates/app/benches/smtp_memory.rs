//! Peak resident memory of `mailfwd serve` while it receives 20 messages of 25 MB at
//! once over SMTP, then 20 more at once over gRPC (IngestEmail in 64 KiB chunks).
//! Bodies must stream to the store, so the peak should stay far below 20 × 25 MB.
//! Target: under 128 MB. Run with `cargo bench -p mailfwd --bench smtp_memory`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/e2e/harness.rs"]
mod harness;

use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CLIENTS: usize = 20;
const MESSAGE_BYTES: usize = 25 * 1024 * 1024;

async fn expect(reader: &mut BufReader<TcpStream>, code: &str) -> String {
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).await.unwrap() > 0,
            "connection closed waiting for {code}"
        );
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

async fn send_one(address: String, n: usize) -> String {
    let mut stream = BufReader::new(TcpStream::connect(&address).await.unwrap());
    expect(&mut stream, "220").await;
    for (command, code) in [
        ("EHLO bench.test\r\n".to_owned(), "250"),
        ("MAIL FROM:<bench@example.org>\r\n".to_owned(), "250"),
        ("RCPT TO:<big@acme.test>\r\n".to_owned(), "250"),
        ("DATA\r\n".to_owned(), "354"),
    ] {
        stream
            .get_mut()
            .write_all(command.as_bytes())
            .await
            .unwrap();
        expect(&mut stream, code).await;
    }
    let header = format!("Subject: large message {n}\r\n\r\n");
    stream.get_mut().write_all(header.as_bytes()).await.unwrap();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n";
    let block: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * 900)
        .collect();
    let mut sent = header.len();
    while sent < MESSAGE_BYTES {
        stream.get_mut().write_all(&block).await.unwrap();
        sent += block.len();
    }
    stream.get_mut().write_all(b".\r\n").await.unwrap();
    expect(&mut stream, "250").await
}

async fn ingest_one(grpc: String, n: usize) -> String {
    use mailfwd_grpc::pb::forwarding_client::ForwardingClient;
    use mailfwd_grpc::pb::{Envelope, IngestEmailRequest, ingest_email_request::Part};
    let mut client = ForwardingClient::connect(grpc).await.unwrap();
    let envelope = Envelope {
        sender: "bench@example.org".into(),
        recipients: vec!["big@acme.test".into()],
    };
    let header = format!("Subject: large gRPC message {n}\r\n\r\n").into_bytes();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n";
    let block: Vec<u8> = line.iter().copied().cycle().take(64 * 1024).collect();
    let chunks = MESSAGE_BYTES / block.len();
    let parts = std::iter::once(Part::Envelope(envelope))
        .chain(std::iter::once(Part::Chunk(header)))
        .chain((0..chunks).map(move |_| Part::Chunk(block.clone())))
        .map(|part| IngestEmailRequest { part: Some(part) });
    let reply = client
        .ingest_email(tokio_stream::iter(parts))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted_recipients, vec!["big@acme.test".to_owned()]);
    reply.email_id
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

#[tokio::main]
async fn main() {
    let data = tempfile::tempdir().unwrap();
    let size = (MESSAGE_BYTES + 1024 * 1024).to_string();
    let server = harness::Server::start(data.path(), &[("MAILFWD_MAX_MESSAGE_SIZE", &size)]);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/forwards", server.http))
        .json(&serde_json::json!({"email": "big@acme.test", "forward": "dest@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let idle = peak_rss_kib(server.pid());

    let started = Instant::now();
    let sends: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(send_one(server.smtp.clone(), n)))
        .collect();
    for send in sends {
        send.await.unwrap();
    }
    let elapsed = started.elapsed();
    let peak = peak_rss_kib(server.pid());
    let total_mib = (CLIENTS * MESSAGE_BYTES) as f64 / (1024.0 * 1024.0);

    let grpc_started = Instant::now();
    let ingests: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(ingest_one(server.grpc.clone(), n)))
        .collect();
    for ingest in ingests {
        ingest.await.unwrap();
    }
    let grpc_elapsed = grpc_started.elapsed();
    let grpc_peak = peak_rss_kib(server.pid());
    println!(
        "smtp_memory: {CLIENTS} concurrent messages of {} MiB accepted in {:.1} s ({:.0} MiB/s); \
         peak RSS of mailfwd: {:.1} MiB (idle peak before: {:.1} MiB; target < 128 MiB)",
        MESSAGE_BYTES / (1024 * 1024),
        elapsed.as_secs_f64(),
        total_mib / elapsed.as_secs_f64(),
        peak as f64 / 1024.0,
        idle as f64 / 1024.0,
    );
    println!(
        "grpc_memory: {CLIENTS} concurrent IngestEmail streams of {} MiB accepted in {:.1} s; \
         peak RSS of mailfwd after SMTP and gRPC: {:.1} MiB (target < 128 MiB)",
        MESSAGE_BYTES / (1024 * 1024),
        grpc_elapsed.as_secs_f64(),
        grpc_peak as f64 / 1024.0,
    );
}
