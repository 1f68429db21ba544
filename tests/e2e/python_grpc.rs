//! A gRPC client not written in Rust (Python grpcio, stubs generated from the same
//! proto) ingests an email and reprocesses it.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::harness::Server;

/// grpcio and grpcio-tools from PyPI, installed on first use if missing; otherwise the
/// test fails saying so.
fn ensure_grpcio() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let present = |module: &str| {
            Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .status()
        };
        if present("grpc_tools").is_ok_and(|s| s.success()) {
            return Ok(());
        }
        let install = ["-m", "pip", "install", "--quiet", "grpcio", "grpcio-tools"];
        match Command::new("python3").args(install).status() {
            Ok(status) if status.success() => Ok(()),
            other => Err(format!(
                "Python grpcio is missing and `python3 {}` failed ({other:?})",
                install.join(" ")
            )),
        }
    });
    if let Err(message) = ready {
        panic!("{message}");
    }
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
    let created = reqwest::Client::new()
        .post(format!("{}/v1/forwards", server.http))
        .json(&json!({"email": "sales@acme.test", "forward": "alice@dest.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);

    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/python/grpc_client.py");
    let address = server.grpc.trim_start_matches("http://");
    let output = Command::new("python3")
        .arg(script)
        .arg(stubs.path())
        .args([address, "sales@acme.test"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();

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
