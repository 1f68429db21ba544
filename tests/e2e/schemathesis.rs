//! Schemathesis (PyPI) fuzzes the real server from its own `/openapi.json`, with
//! `tests/schemathesis/schemathesis.toml`: every check, so no answer may be a 5xx, have a
//! status, content type, header or body the document does not give, accept a request the
//! document calls invalid, or let through a missing or wrong token. Twice: with
//! `MAILFWD_API_TOKEN` set (and sent), and without one (a loopback client).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use mailfwd_testkit::Client;
use mailfwd_testkit::sink::{Options, Sink};
use serde_json::json;

use crate::harness::Server;

/// Test cases per operation and phase. 40 keeps both runs near half a minute each on a
/// 2-core machine; `MAILFWD_SCHEMATHESIS_EXAMPLES` raises it for a deeper local run.
const EXAMPLES: &str = "40";

/// Schemathesis from PyPI, installed on first use if missing; otherwise the test fails
/// saying so.
fn ensure_schemathesis() {
    crate::harness::ensure_python_modules(&["schemathesis"], &["schemathesis"]);
}

fn config_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/schemathesis/schemathesis.toml")
}

/// One rule and one received email, so that the listings have something to show and
/// their response schemas are checked on real records, not only on empty pages.
async fn seed(server: &Server, token: Option<&str>) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/forwards", server.http))
        .json(&json!({"email": "seed@acme.test", "forward": ["a@dest.test", "b@dest.test"]}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("POST /v1/forwards");
    assert_eq!(response.status().as_u16(), 201, "creating the seed rule");
    let mut client = Client::connect(&server.smtp).await;
    client
        .send_mail(
            "someone@example.org",
            "seed@acme.test",
            b"Subject: seed\r\n\r\nfor the fuzzer\r\n",
        )
        .await;
}

/// Runs schemathesis against `server`; panics with its report unless every check passed.
fn fuzz(server: &Server, token: Option<&str>, report: &Path) {
    let examples =
        std::env::var("MAILFWD_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| EXAMPLES.to_owned());
    let mut command = Command::new("python3");
    command
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(config_file())
        .arg("run")
        .arg(format!("{}/openapi.json", server.http))
        .args(["--checks", "all", "--max-examples", &examples])
        .args(["--no-color", "--report-dir"])
        .arg(report)
        // Schemathesis keeps examples it found in a database in the working directory
        // by default; a test must leave the tree as it found it.
        .args(["--generation-database", "none"]);
    if let Some(token) = token {
        command.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let started = Instant::now();
    let output = command.output().expect("run python3 -m schemathesis.cli");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mode = if token.is_some() {
        "with a token"
    } else {
        "without a token"
    };
    assert!(
        output.status.success(),
        "schemathesis found answers that contradict /openapi.json ({mode}):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("passed"),
        "schemathesis ran no test ({mode}):\n{stdout}\n{stderr}"
    );
    eprintln!(
        "schemathesis {mode}: passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_with_a_token() {
    ensure_schemathesis();
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let token = "e2e-schemathesis-token";
    let server = Server::start(
        data.path(),
        &[
            ("MAILFWD_API_TOKEN", token),
            ("MAILFWD_RELAY", &sink.addr.to_string()),
        ],
    );
    seed(&server, Some(token)).await;
    let report = tempfile::tempdir().unwrap();
    let server = tokio::task::spawn_blocking(move || {
        fuzz(&server, Some(token), report.path());
        server
    })
    .await
    .unwrap();
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_without_a_token() {
    ensure_schemathesis();
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("MAILFWD_RELAY", &sink.addr.to_string())]);
    seed(&server, None).await;
    let report = tempfile::tempdir().unwrap();
    let server = tokio::task::spawn_blocking(move || {
        fuzz(&server, None, report.path());
        server
    })
    .await
    .unwrap();
    assert!(server.terminate().success());
}
