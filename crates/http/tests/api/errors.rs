//! What a client sees when its request is wrong, or the server is.

use std::sync::Arc;

use async_trait::async_trait;
use mailfwd_domain::{
    EmailAddress, RecipientPattern, Rule, RuleError, RulePage, RuleQuery, RuleStore,
};
use mailfwd_http::HttpConfig;
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::harness::{TestApp, problem};

#[tokio::test]
async fn an_invalid_address_names_its_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"email": "sales@acme.test", "forward": ["ok@x.test", "bad address@x.test"]}),
            "forward[1]",
            "the local part contains ' ', which is not allowed outside quotes",
        ),
        (
            json!({"email": "sales@acme.test", "forward": "nobody"}),
            "forward",
            "the address has no '@' between a local part and a domain",
        ),
        (
            json!({"email": "sales@", "forward": "a@x.test"}),
            "email",
            "the domain (after '@') is empty",
        ),
    ];
    for (body, field, reason) in cases {
        let detail = problem(
            app.post_json("/v1/forwards", &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(detail, format!("the field '{field}' is invalid: {reason}"));
    }
}

#[tokio::test]
async fn a_rule_invalid_as_a_whole_is_422() {
    let app = TestApp::with_config(HttpConfig {
        max_destinations: 2,
        ..HttpConfig::default()
    })
    .await;
    let cases = [
        (
            json!({"email": "a@x.test", "forward": []}),
            "a rule needs at least one destination",
        ),
        (
            json!({"email": "a@x.test", "forward": "A@X.test"}),
            "'A@x.test' cannot forward to itself",
        ),
        (
            json!({"email": "a@x.test", "forward": ["b@y.test", "c@y.test", "d@y.test"]}),
            "a rule may have at most 2 destinations; this one has 3",
        ),
    ];
    for (body, expected) in cases {
        let detail = problem(
            app.post_json("/v1/forwards", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(detail, expected);
    }
    problem(
        app.get("/v1/forwards/a@x.test").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn bad_json_is_400_and_says_where() {
    let app = TestApp::spawn().await;
    let post = |body: &'static str| {
        app.client
            .post(app.url("/v1/forwards"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };
    let detail = problem(
        post("{\"email\": \"a@x.test\",\n \"forward\": }")
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        detail,
        "the JSON body is invalid: expected value at line 2 column 13"
    );
    let detail = problem(
        post("{\"email\": \"a@x.test\"}").await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        detail,
        "the JSON body is invalid: missing field `forward` at line 1 column 21"
    );
    let detail = problem(
        post("{\"email\": \"a@x.test\", \"forwards\": []}")
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        detail.contains("unknown field `forwards`, expected `email` or `forward`"),
        "{detail}"
    );
    let detail = problem(
        post("{\"email\": \"a@x.test\", \"forward\": 5}")
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        detail.contains("'forward' must be an email address or a list of email addresses"),
        "{detail}"
    );
}

#[tokio::test]
async fn json_routes_need_the_json_content_type() {
    let app = TestApp::spawn().await;
    let body = r#"{"email": "a@x.test", "forward": "b@x.test"}"#;
    let response = app
        .client
        .post(app.url("/v1/forwards"))
        .body(body)
        .send()
        .await
        .unwrap();
    let detail = problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(
        detail,
        "this endpoint needs 'Content-Type: application/json'"
    );
    let response = app
        .client
        .post(app.url("/v1/forwards"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let response = app
        .client
        .post(app.url("/v1/forwards"))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_oversized_json_body_is_413() {
    let app = TestApp::with_config(HttpConfig {
        json_body_limit: 1024,
        ..HttpConfig::default()
    })
    .await;
    let many: Vec<String> = (0..200).map(|i| format!("user{i}@example.test")).collect();
    let response = app
        .post_json(
            "/v1/forwards",
            &json!({"email": "a@x.test", "forward": many}),
        )
        .await;
    let detail = problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(
        detail,
        "the request body is larger than the limit of 1024 bytes"
    );

    // Without Content-Length the limit is enforced while reading.
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(format!(
        "{{\"email\": \"a@x.test\", \"forward\": \"{}",
        "a".repeat(2000)
    ))];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app
        .client
        .post(app.url("/v1/forwards"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    let detail = problem(app.get("/v2/nothing").await, StatusCode::NOT_FOUND).await;
    assert!(detail.contains("/openapi.json"), "{detail}");
    let response = app
        .client
        .put(app.url("/v1/forwards"))
        .send()
        .await
        .unwrap();
    let mut allowed: Vec<&str> = response.headers()[header::ALLOW]
        .to_str()
        .unwrap()
        .split(',')
        .collect();
    allowed.sort_unstable();
    assert_eq!(allowed, ["GET", "HEAD", "POST"]);
    problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
    let response = app
        .client
        .patch(app.url("/v1/forwards/a@x.test"))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
}

/// A store whose every call fails, as a broken disk would.
struct BrokenStore;

fn broken() -> RuleError {
    RuleError::storage(std::io::Error::other(
        "disk I/O error at /var/lib/secret.db",
    ))
}

#[async_trait]
impl RuleStore for BrokenStore {
    async fn create(&self, _: Rule) -> Result<Rule, RuleError> {
        Err(broken())
    }
    async fn get(&self, _: &RecipientPattern) -> Result<Rule, RuleError> {
        Err(broken())
    }
    async fn delete(&self, _: &RecipientPattern) -> Result<(), RuleError> {
        Err(broken())
    }
    async fn list(&self, _: &RuleQuery) -> Result<RulePage, RuleError> {
        Err(broken())
    }
    async fn upsert_many(&self, _: Vec<Rule>) -> Result<u64, RuleError> {
        Err(broken())
    }
    async fn resolve(&self, _: &EmailAddress) -> Result<Option<Rule>, RuleError> {
        Err(broken())
    }
}

#[tokio::test]
async fn storage_failures_are_503_with_retry_after_and_without_internals() {
    let app = TestApp::with_store(Arc::new(BrokenStore), HttpConfig::default(), None).await;
    let response = app
        .post_json(
            "/v1/forwards",
            &json!({"email": "a@x.test", "forward": "b@x.test"}),
        )
        .await;
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5")
    );
    let detail = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        detail,
        "the database or the email store is not answering; try again shortly"
    );
    let detail = problem(
        app.get("/v1/forwards").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(!detail.contains("secret"), "{detail}");

    let detail = problem(
        app.post_csv("/v1/forwards/import", "email,forward\na@x.test,b@x.test\n")
            .await,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert_eq!(
        detail,
        "the import stopped after 0 rules were written because of an internal error"
    );

    let detail = problem(app.get("/healthz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(!detail.contains("secret"), "{detail}");
}
