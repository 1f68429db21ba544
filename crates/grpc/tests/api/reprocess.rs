//! ReprocessEmail: idempotent without force, a new round with it; GetEmail shows the
//! deliveries it made.

use mailfwd_domain::RecipientPattern;
use mailfwd_grpc::pb::{
    self, DeliveryState, GetEmailRequest, ReprocessEmailRequest, ReprocessOutcome,
};
use tonic::Code;

use super::harness::{TestApp, message, status};

async fn reprocess(app: &TestApp, id: &str, force: bool) -> Vec<(String, ReprocessOutcome)> {
    let request = ReprocessEmailRequest {
        email_id: id.to_owned(),
        force,
    };
    let reply = app
        .client()
        .await
        .reprocess_email(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.email_id, id);
    reply
        .results
        .iter()
        .map(|r: &pb::ReprocessResult| (r.address.clone(), r.outcome()))
        .collect()
}

#[tokio::test]
async fn reprocessing_is_idempotent_unless_forced() {
    let app = TestApp::spawn().await;
    app.rule("sales@acme.test", &["alice@gmail.test", "bob@corp.test"])
        .await;
    app.rule("info@acme.test", &["carol@gmail.test"]).await;
    let reply = app
        .ingest(
            "",
            &["sales@acme.test", "info@acme.test"],
            &message("hi"),
            64,
        )
        .await
        .unwrap();
    let id = reply.email_id;

    let all = |outcome| {
        vec![
            ("alice@gmail.test".to_owned(), outcome),
            ("bob@corp.test".to_owned(), outcome),
            ("carol@gmail.test".to_owned(), outcome),
        ]
    };
    assert_eq!(
        reprocess(&app, &id, false).await,
        all(ReprocessOutcome::Enqueued)
    );
    assert_eq!(
        reprocess(&app, &id, false).await,
        all(ReprocessOutcome::AlreadyPending)
    );
    assert_eq!(
        reprocess(&app, &id, true).await,
        all(ReprocessOutcome::Requeued)
    );

    let got = app
        .client()
        .await
        .get_email(GetEmailRequest {
            email_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let deliveries: Vec<_> = got
        .deliveries
        .iter()
        .map(|d| {
            (
                d.destination.as_str(),
                d.state(),
                d.next_attempt_at.is_some(),
            )
        })
        .collect();
    assert_eq!(
        deliveries,
        [
            ("alice@gmail.test", DeliveryState::Pending, true),
            ("bob@corp.test", DeliveryState::Pending, true),
            ("carol@gmail.test", DeliveryState::Pending, true),
        ]
    );

    app.rules
        .delete(&RecipientPattern::parse("info@acme.test").unwrap())
        .await
        .unwrap();
    let after = reprocess(&app, &id, false).await;
    assert_eq!(
        after,
        [
            (
                "alice@gmail.test".to_owned(),
                ReprocessOutcome::AlreadyPending
            ),
            ("bob@corp.test".to_owned(), ReprocessOutcome::AlreadyPending),
            (
                "info@acme.test".to_owned(),
                ReprocessOutcome::NoLongerMatched
            ),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn reprocessing_needs_a_known_id() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let request = ReprocessEmailRequest {
        email_id: "42".into(),
        force: false,
    };
    let message = status(client.reprocess_email(request).await, Code::InvalidArgument);
    assert!(message.starts_with("email_id:"), "{message}");
    let request = ReprocessEmailRequest {
        email_id: "0192e4c2-7b1a-7cde-8f00-112233445566".into(),
        force: true,
    };
    status(client.reprocess_email(request).await, Code::NotFound);
    app.stop().await;
}
