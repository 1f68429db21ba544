//! gRPC clients not written in Rust: Python grpcio (stubs generated from the same
//! proto) ingests an email and reprocesses it; Python grpcio-reflection, which speaks
//! only reflection v1alpha, discovers the API without the proto.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::Server;

/// grpcio, grpcio-tools and grpcio-reflection from PyPI, installed on first use if
/// missing; otherwise the test fails saying so.
fn ensure_grpcio() {
    crate::harness::ensure_python_modules(
        &["grpc_tools", "grpc_reflection"],
        &["grpcio", "grpcio-tools", "grpcio-reflection"],
    );
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/e2e/python")
        .join(name)
}

/// Runs `tests/e2e/python/NAME` with `args`; it must succeed and print one JSON value.
fn run_script(name: &str, args: &[&str]) -> Value {
    let output = Command::new("python3")
        .arg(script(name))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn generate_stubs(out: &Path) {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let status = Command::new("python3")
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&proto)
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--grpc_python_out={}", out.display()))
        .arg(proto.join("mailfwd/v1/forwarding.proto"))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "grpc_tools.protoc failed on proto/mailfwd/v1/forwarding.proto"
    );
}

#[tokio::test]
async fn python_grpcio_ingests_and_reprocesses() {
    ensure_grpcio();
    let stubs = tempfile::tempdir().unwrap();
    generate_stubs(stubs.path());

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("MAILFWD_RELAY", "127.0.0.1:9")]);
    server
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;

    let address = server.grpc.trim_start_matches("http://");
    let stubs_dir = stubs.path().to_string_lossy().into_owned();
    let answer = run_script("grpc_client.py", &[&stubs_dir, address, "sales@acme.test"]);

    assert_eq!(answer["accepted"], json!(["sales@acme.test"]));
    assert_eq!(answer["refused"], json!(["nobody@nowhere.test"]));
    assert_eq!(
        answer["size"],
        "Subject: from python\r\n\r\n".len() + "line of the body\r\n".len() * 5000
    );
    let plain = answer["reprocess"]["plain"][0].as_str().unwrap();
    assert!(
        [
            "REPROCESS_OUTCOME_ENQUEUED",
            "REPROCESS_OUTCOME_ALREADY_PENDING"
        ]
        .contains(&plain),
        "without force an existing delivery is left alone: {answer}"
    );
    assert_eq!(
        answer["reprocess"]["forced"],
        json!(["REPROCESS_OUTCOME_REQUEUED"])
    );

    let id = answer["email_id"].as_str().unwrap();
    let record: Value = reqwest::get(format!("{}/v1/emails/{id}", server.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(record["sender"], "py@example.org");
    assert_eq!(record["deliveries"][0]["destination"], "alice@dest.test");
}

#[tokio::test]
async fn python_grpcio_reflection_discovers_the_api_over_v1alpha() {
    ensure_grpcio();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("MAILFWD_RELAY", "127.0.0.1:9")]);
    let answer = run_script(
        "reflection_client.py",
        &[server.grpc.trim_start_matches("http://")],
    );
    let services = answer["services"].as_array().unwrap();
    for expected in ["mailfwd.v1.Forwarding", "grpc.health.v1.Health"] {
        assert!(
            services.contains(&json!(expected)),
            "{expected} in {answer}"
        );
    }
    let methods = answer["forwarding_methods"].as_array().unwrap();
    for expected in [
        "IngestEmail",
        "ReprocessEmail",
        "GetEmail",
        "ListReceivedEmails",
    ] {
        assert!(methods.contains(&json!(expected)), "{expected} in {answer}");
    }
}
