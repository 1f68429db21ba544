//! Bearer-token authentication, and the loopback-only default.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use mailfwd_domain::memory::MemoryRuleStore;
use mailfwd_http::{HttpConfig, router};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::harness::{TestApp, problem};

fn with_token() -> HttpConfig {
    HttpConfig {
        api_token: Some("s3cret-token".to_owned()),
        ..HttpConfig::default()
    }
}

#[tokio::test]
async fn the_token_is_required_when_configured() {
    let app = TestApp::with_config(with_token()).await;
    let body = json!({"email": "a@x.test", "forward": "b@y.test"});

    let response = app
        .client
        .post(app.url("/v1/forwards"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let detail = problem(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        detail,
        "this API needs an 'Authorization: Bearer <token>' header"
    );

    for wrong in ["Bearer s3cret-tokeN", "Bearer s3cret", "Basic s3cret-token"] {
        let response = app
            .client
            .get(app.url("/v1/forwards"))
            .header(header::AUTHORIZATION, wrong)
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        problem(response, StatusCode::UNAUTHORIZED).await;
    }

    let response = app
        .client
        .post(app.url("/v1/forwards"))
        .bearer_auth("s3cret-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app
        .client
        .get(app.url("/v1/forwards/a@x.test"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["forward"],
        json!(["b@y.test"])
    );
}

#[tokio::test]
async fn health_and_openapi_are_public() {
    let app = TestApp::with_config(with_token()).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/openapi.json").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_a_token_loopback_peers_are_served() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/v1/forwards").await.status(), StatusCode::OK);
}

/// A remote peer cannot be made over loopback, so this one drives the router in-process
/// with the peer address a real connection would have put there.
#[tokio::test]
async fn without_a_token_remote_peers_are_refused() {
    let remote: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let app = router(
        crate::harness::memory_services(Arc::new(MemoryRuleStore::new())),
        HttpConfig::default(),
    )
    .layer(MockConnectInfo(remote));
    let request = Request::get("/v1/forwards").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("set MAILFWD_API_TOKEN"),
        "{body}"
    );

    let loopback: SocketAddr = "[::ffff:127.0.0.1]:40000".parse().unwrap();
    let app = router(
        crate::harness::memory_services(Arc::new(MemoryRuleStore::new())),
        HttpConfig::default(),
    )
    .layer(MockConnectInfo(loopback));
    let request = Request::get("/v1/forwards").body(Body::empty()).unwrap();
    assert_eq!(app.oneshot(request).await.unwrap().status(), StatusCode::OK);
}

/// DNS rebinding: a page in a browser on this machine points its own name at
/// 127.0.0.1 and calls the tokenless API from a loopback address. Its requests carry
/// its name in `Host`, so they are refused; loopback names and configured ones pass.
#[tokio::test]
async fn without_a_token_a_foreign_host_name_is_refused() {
    let app = TestApp::with_config(HttpConfig {
        allowed_hosts: vec!["admin.example".to_owned()],
        ..HttpConfig::default()
    })
    .await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let body = json!({"email": "*@victim.test", "forward": "thief@attacker.test"});
    for host in [
        "attacker.example",
        &format!("attacker.example:{port}"),
        "192.0.2.7",
    ] {
        let response = app
            .client
            .post(app.url("/v1/forwards"))
            .header(header::HOST, host)
            .json(&body)
            .send()
            .await
            .unwrap();
        let detail = problem(response, StatusCode::FORBIDDEN).await;
        assert!(
            detail.contains("MAILFWD_API_ALLOWED_HOSTS"),
            "{host}: {detail}"
        );
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("admin.example:{port}"),
    ] {
        let response = app
            .client
            .get(app.url("/v1/forwards"))
            .header(header::HOST, &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }
    // Health stays public whatever the host.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header(header::HOST, "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_a_token_the_host_name_does_not_matter() {
    let app = TestApp::with_config(with_token()).await;
    let response = app
        .client
        .get(app.url("/v1/forwards"))
        .header(header::HOST, "mx.example")
        .header(header::AUTHORIZATION, "Bearer s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
