//! Health, the OpenAPI document and graceful shutdown.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::TestApp;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn openapi_document_lists_the_routes() {
    let app = TestApp::spawn().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/v1/forwards", &["get", "post"][..]),
        ("/v1/forwards/{email}", &["get", "delete"][..]),
        ("/v1/forwards/import", &["post"][..]),
        ("/healthz", &["get"][..]),
    ] {
        for method in methods {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} is missing from the document"
            );
        }
    }
    let create = &paths["/v1/forwards"]["post"];
    assert!(create["responses"]["201"].is_object());
    assert!(create["responses"]["422"]["content"]["application/problem+json"].is_object());
    assert!(paths["/v1/forwards/import"]["post"]["requestBody"]["content"]["text/csv"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn serve_returns_after_graceful_shutdown() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let base = app.base.clone();
    app.stop().await.unwrap();
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "the listener is closed"
    );
}
