//! `/v1/emails`: the record of one email and the received log, over the real stores.

use mailfwd_domain::EmailAddress;
use mailfwd_domain::email::{EmailId, Envelope, NewEmail, ReceivedEmail};
use serde_json::Value;

use crate::harness::TestApp;

async fn receive(app: &TestApp, sender: Option<&str>, body: &[u8]) -> ReceivedEmail {
    let mut writer = app.emails.begin().await.unwrap();
    writer.write(body).await.unwrap();
    writer
        .commit(NewEmail {
            envelope: Envelope {
                sender: sender.map(|s| EmailAddress::parse(s).unwrap()),
                recipients: vec![EmailAddress::parse("sales@acme.test").unwrap()],
            },
            peer: Some("192.0.2.9:41000".to_owned()),
            helo: Some("client.example".to_owned()),
            tls: false,
            encoding: mailfwd_domain::Encoding::default(),
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn one_email_shows_its_envelope_and_deliveries() {
    let app = TestApp::spawn().await;
    let email = receive(
        &app,
        Some("someone@example.org"),
        b"Subject: x\r\n\r\nhi\r\n",
    )
    .await;
    let response = app.get(&format!("/v1/emails/{}", email.id)).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], email.id.to_string());
    assert_eq!(body["sender"], "someone@example.org");
    assert_eq!(body["recipients"][0], "sales@acme.test");
    assert_eq!(body["size"], email.size);
    assert_eq!(email.size, 18);
    assert_eq!(body["peer"], "192.0.2.9:41000");
    assert_eq!(body["helo"], "client.example");
    assert_eq!(body["tls"], false);
    assert_eq!(body["deliveries"], serde_json::json!([]));
    assert!(body["received_at"].as_str().unwrap().ends_with('Z'));

    let unknown = app.get(&format!("/v1/emails/{}", EmailId::new())).await;
    assert_eq!(unknown.status().as_u16(), 404);
    let bad = app.get("/v1/emails/not-an-id").await;
    assert_eq!(bad.status().as_u16(), 400);
    let problem: Value = bad.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("'not-an-id' is not an email id"),
        "{problem}"
    );
}

#[tokio::test]
async fn the_received_log_pages_through_a_time_window() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            receive(&app, None, format!("n {n}\r\n").as_bytes())
                .await
                .id
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut path = "/v1/emails?since=2000-01-01T00:00:00Z&limit=2".to_owned();
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        for email in page["emails"].as_array().unwrap() {
            assert!(
                email.get("deliveries").is_none(),
                "lists leave deliveries out"
            );
            assert_eq!(email["sender"], Value::Null);
            seen.push(email["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/v1/emails?since=2000-01-01T00:00:00Z&limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let none: Value = app
        .get("/v1/emails?until=2000-01-01T00:00:00Z")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["emails"], serde_json::json!([]));
    let bad = app.get("/v1/emails?since=yesterday").await;
    assert_eq!(bad.status().as_u16(), 400);
    let problem: Value = bad.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("'since'"),
        "{problem}"
    );
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text() {
    let app = TestApp::spawn().await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(response.text().await.unwrap().contains("mailfwd_test 1"));
}
