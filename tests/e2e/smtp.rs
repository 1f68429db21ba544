//! Receiving mail: swaks and a raw client against `mailfwd serve`, the stored body
//! compared byte for byte, and a SIGKILL right after a `250`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::harness::Server;
use mailfwd_domain::email::EmailLog;
use mailfwd_testkit::Client;
use mailfwd_testkit::client::queued_id_in;

async fn email_record(server: &Server, id: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{}/v1/emails/{id}", server.http))
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// The stored body of `id`, wherever the default stores keep it under the data
/// directory: in its record in `mailfwd.db` (a small one), or a file under `emails/`.
async fn stored_body(data_dir: &Path, id: &str) -> Vec<u8> {
    let url = format!("sqlite://{}", data_dir.join("mailfwd.db").display());
    let log = mailfwd_sqlite::Database::open(&url)
        .await
        .unwrap()
        .email_log();
    let email = mailfwd_domain::EmailId::parse(id).unwrap();
    if let Some(body) = log.inline_body(&email).await.unwrap() {
        return body.to_vec();
    }
    file_body(data_dir, id)
}

/// The body of `id` in a file under the data directory's `emails/`.
fn file_body(data_dir: &Path, id: &str) -> Vec<u8> {
    fn find(dir: &Path, name: &str) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if let Some(found) = find(&path, name) {
                    return Some(found);
                }
            } else if path.file_name().is_some_and(|n| n == name) {
                return Some(path);
            }
        }
        None
    }
    let path = find(&data_dir.join("emails"), &format!("{id}.eml"))
        .unwrap_or_else(|| panic!("no stored body {id}.eml under {}", data_dir.display()));
    std::fs::read(path).unwrap()
}

/// swaks from Debian, installed on first use if missing (these machines run tests as
/// root with the Debian mirror reachable); otherwise the test fails saying so.
fn ensure_swaks() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        if Command::new("swaks").arg("--version").output().is_ok() {
            return Ok(());
        }
        let install =
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swaks";
        match Command::new("sh").args(["-c", install]).status() {
            Ok(status) if status.success() => Ok(()),
            other => Err(format!(
                "swaks is missing and `{install}` failed ({other:?}); install swaks"
            )),
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

fn swaks(server: &Server, to: &str, data: &Path) -> (i32, String) {
    ensure_swaks();
    let (host, port) = server.smtp.rsplit_once(':').unwrap();
    let output = Command::new("swaks")
        .args([
            "--server",
            host,
            "--port",
            port,
            "--from",
            "sender@example.org",
            "--to",
            to,
        ])
        .args(["--helo", "swaks.example.org", "--data"])
        .arg(format!("@{}", data.display()))
        .output()
        .unwrap_or_else(|e| panic!("swaks is needed for this test (apt-get install swaks): {e}"));
    let transcript = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), transcript)
}

#[tokio::test]
async fn swaks_delivers_to_a_rule_and_is_refused_for_an_unknown_address() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    server
        .create_rule("sales@acme.test", json!("alice@gmail.test"))
        .await;

    let message =
        b"From: Sender <sender@example.org>\r\nTo: sales@acme.test\r\nSubject: dots\r\n\r\n\
        .a line starting with a dot\r\n..two dots\r\n.\r\nlast line\r\n";
    let file = data.path().join("message.eml");
    std::fs::write(&file, message).unwrap();

    let (status, transcript) = swaks(&server, "sales@acme.test", &file);
    assert_eq!(status, 0, "{transcript}");
    let id = queued_id_in(&transcript).unwrap_or_else(|| panic!("no queued id in: {transcript}"));
    // swaks sends the file, dot-stuffed, then CRLF and the final dot: what it put on the
    // wire between DATA and the dot, unstuffed, is the file plus that CRLF.
    let sent = [&message[..], b"\r\n"].concat();
    assert_eq!(
        stored_body(data.path(), &id).await,
        sent,
        "the stored body is the message as sent"
    );

    let (status, record) = email_record(&server, &id).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["sender"], "sender@example.org");
    assert_eq!(record["recipients"], json!(["sales@acme.test"]));
    assert_eq!(record["helo"], "swaks.example.org");
    assert_eq!(record["size"], sent.len());

    let (status, transcript) = swaks(&server, "nobody@acme.test", &file);
    assert_ne!(status, 0, "{transcript}");
    assert!(transcript.contains("550 5.1.1"), "{transcript}");
}

#[tokio::test]
async fn a_message_answered_250_survives_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    server
        .create_rule("sales@acme.test", json!("alice@gmail.test"))
        .await;

    let mut sent = Vec::new();
    let mut client = Client::connect(&server.smtp).await;
    for n in 0..6 {
        // Small ones are kept in their records, larger ones (over 64 KiB) in files.
        let filler = "x".repeat(70) + "\r\n";
        let lines = if n % 2 == 0 { 1 } else { 1_000 };
        let message = format!(
            "Subject: crash {n}\r\n\r\nbody {n}\r\n.dot line\r\n{}",
            filler.repeat(lines)
        )
        .into_bytes();
        let id = client
            .send_mail("a@example.org", "sales@acme.test", &message)
            .await;
        sent.push((id, message));
        assert_eq!(client.command("RSET").await.code, 250);
    }
    // The last 250 has just been read; kill before anything else can happen.
    server.kill();

    let server = Server::start(data.path(), &[]);
    for (id, message) in &sent {
        let (status, record) = email_record(&server, id).await;
        assert_eq!(status, 200, "email {id} after SIGKILL: {record}");
        assert_eq!(record["size"], message.len());
        assert_eq!(&stored_body(data.path(), id).await, message);
    }
    let listed: Value = reqwest::get(format!("{}/v1/emails", server.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Those, and the notifications to their sender of the deliveries that failed
    // meanwhile (no route to the destinations here), which have the null sender.
    let ours = listed["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|email| email["sender"] == "a@example.org")
        .count();
    assert_eq!(ours, sent.len(), "{listed}");
}
