//! GetEmail and ListReceivedEmails.

use std::time::{Duration, SystemTime};

use mailfwd_grpc::pb::{GetEmailRequest, ListReceivedEmailsRequest};
use tonic::Code;

use super::harness::{TestApp, message, status};

#[tokio::test]
async fn get_email_needs_a_valid_known_id() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let bad = client
        .get_email(GetEmailRequest {
            email_id: "nope".into(),
        })
        .await;
    let message = status(bad, Code::InvalidArgument);
    assert!(message.starts_with("email_id:"), "{message}");

    let unknown = "0192e4c2-7b1a-7cde-8f00-112233445566".to_owned();
    let missing = client
        .get_email(GetEmailRequest {
            email_id: unknown.clone(),
        })
        .await;
    assert_eq!(
        status(missing, Code::NotFound),
        format!("no email with id {unknown}")
    );
    app.stop().await;
}

async fn list(app: &TestApp, since: Option<SystemTime>, until: Option<SystemTime>) -> Vec<String> {
    let request = ListReceivedEmailsRequest {
        since: since.map(Into::into),
        until: until.map(Into::into),
    };
    let mut stream = app
        .client()
        .await
        .list_received_emails(request)
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    while let Some(email) = stream.message().await.unwrap() {
        ids.push(email.email_id);
    }
    ids
}

#[tokio::test]
async fn the_received_log_streams_a_time_window() {
    let app = TestApp::spawn().await;
    app.rule("sales@acme.test", &["alice@gmail.test"]).await;
    let mut ids = Vec::new();
    let mut cuts = Vec::new();
    for subject in ["one", "two", "three"] {
        tokio::time::sleep(Duration::from_millis(20)).await;
        cuts.push(SystemTime::now());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let reply = app
            .ingest("", &["sales@acme.test"], &message(subject), 8)
            .await
            .unwrap();
        ids.push(reply.email_id);
    }

    assert_eq!(list(&app, None, None).await, ids);
    assert_eq!(list(&app, Some(cuts[1]), None).await, ids[1..]);
    assert_eq!(list(&app, None, Some(cuts[1])).await, ids[..1]);
    assert_eq!(list(&app, Some(cuts[1]), Some(cuts[2])).await, ids[1..2]);

    let backwards = ListReceivedEmailsRequest {
        since: Some(cuts[2].into()),
        until: Some(cuts[1].into()),
    };
    let result = app.client().await.list_received_emails(backwards).await;
    let message = status(result, Code::InvalidArgument);
    assert!(message.starts_with("until:"), "{message}");
    app.stop().await;
}
