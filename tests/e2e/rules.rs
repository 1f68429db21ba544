//! Forwarding rules over HTTP and `mailfwd import`, against `mailfwd serve` on its
//! embedded default (SQLite in a fresh data directory), across a restart.

use crate::harness::{Server, run};
use serde_json::{Value, json};

async fn post_rule(http: &reqwest::Client, base: &str, body: Value) -> (u16, Value) {
    let response = http
        .post(format!("{base}/v1/forwards"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rules_survive_a_restart_and_the_cli_import_shares_the_store() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let http = reqwest::Client::new();
    let base = server.http.clone();

    let (status, rule) = post_rule(
        &http,
        &base,
        json!({"email": "Sales@Acme.test", "forward": ["alice@gmail.test", "bob@corp.test"]}),
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["email"], "Sales@acme.test");
    assert_eq!(
        rule["forward"],
        json!(["alice@gmail.test", "bob@corp.test"])
    );

    let (status, problem) = post_rule(
        &http,
        &base,
        json!({"email": "sales@acme.test", "forward": "x@y.test"}),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    let (status, problem) = post_rule(
        &http,
        &base,
        json!({"email": "bad address@acme.test", "forward": "x@y.test"}),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("email"),
        "{problem}"
    );

    let csv = data.path().join("rules.csv");
    std::fs::write(&csv, "email,forward\ninfo@acme.test,a@b.test;c@d.test\nnot-an-address,x@y.test\n*@acme.test,all@b.test\n")
        .unwrap();
    let import = run(data.path(), &["import", csv.to_str().unwrap()], &[]);
    let stdout = String::from_utf8_lossy(&import.stdout);
    assert_eq!(
        import.status.code(),
        Some(2),
        "some rows were rejected: {stdout}"
    );
    assert!(
        stdout.contains("3 rows read: 2 imported into 2 rules, 1 rejected"),
        "{stdout}"
    );
    assert!(stdout.contains("line 3 (email)"), "{stdout}");

    let got: Value = http
        .get(format!("{base}/v1/forwards/info@acme.test"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["forward"], json!(["a@b.test", "c@d.test"]));

    let status = server.terminate();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status}");

    let server = Server::start(data.path(), &[]);
    let listed: Value = http
        .get(format!("{}/v1/forwards?domain=acme.test", server.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = listed["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        vec!["*@acme.test", "info@acme.test", "Sales@acme.test"]
    );
    let deleted = http
        .delete(format!("{}/v1/forwards/sales@acme.test", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    let gone = http
        .get(format!("{}/v1/forwards/sales@acme.test", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 404);
}

#[tokio::test]
async fn the_api_token_is_enforced() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("MAILFWD_API_TOKEN", "12345")]);
    let http = reqwest::Client::new();
    let url = format!("{}/v1/forwards", server.http);
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let right = http.get(&url).bearer_auth("12345").send().await.unwrap();
    assert_eq!(right.status().as_u16(), 200);
}

#[test]
fn bad_configuration_is_refused_with_the_setting_named() {
    let data = tempfile::tempdir().unwrap();
    let output = run(
        data.path(),
        &["serve"],
        &[("MAILFWD_HTTP_LISTEN", "not-an-address")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.to_lowercase().contains("http_listen"), "{stderr}");
    let output = run(
        data.path(),
        &["serve"],
        &[("MAILFWD_DATABASE_URL", "mysql://x")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("MAILFWD_DATABASE_URL"), "{stderr}");
}
