//! Health, the OpenAPI document and graceful shutdown.

use reqwest::StatusCode;
use serde_json::{Value, json};

use mailfwd_http::HttpConfig;

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
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

/// The document served by `config`'s server.
async fn document(config: HttpConfig) -> Value {
    let app = TestApp::with_config(config).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Every operation of the document: (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    all
}

/// With a token, `/v1/*` and `/metrics` declare the bearer scheme (and may answer 401);
/// without one the server takes no credentials, so the document declares none either.
#[tokio::test]
async fn the_document_declares_the_security_the_server_enforces() {
    let with_token = document(HttpConfig {
        api_token: Some("s3cret".to_owned()),
        ..HttpConfig::default()
    })
    .await;
    assert_eq!(
        with_token["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, method, operation) in operations(&with_token) {
        if path == "/healthz" {
            assert!(operation.get("security").is_none(), "{method} {path}");
            continue;
        }
        assert_eq!(
            operation["security"],
            json!([{"bearer": []}]),
            "{method} {path}"
        );
    }

    let tokenless = document(HttpConfig::default()).await;
    assert!(
        tokenless["components"]["securitySchemes"]
            .get("bearer")
            .is_none()
    );
    for (path, method, operation) in operations(&tokenless) {
        assert!(operation.get("security").is_none(), "{method} {path}");
    }
}

/// Each protected operation lists the refusals of the authorization layer, as problem
/// documents: 401 (no or a wrong token, or a remote peer) and 403 (a foreign `Host`).
#[tokio::test]
async fn every_protected_operation_documents_401_and_403() {
    let doc = document(HttpConfig::default()).await;
    for (path, method, operation) in operations(&doc) {
        if path == "/healthz" {
            continue;
        }
        for status in ["401", "403"] {
            assert!(
                operation["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"]
                    == "#/components/schemas/Problem",
                "{method} {path} does not document {status}"
            );
        }
    }
}

/// The constraints the server enforces are in the document, so a client (or a fuzzer)
/// can tell a valid request from an invalid one without trying it.
#[tokio::test]
async fn the_document_states_the_servers_constraints() {
    let doc = document(HttpConfig::default()).await;
    let paths = &doc["paths"];
    for list in ["/v1/forwards", "/v1/emails"] {
        let parameters = paths[list]["get"]["parameters"].as_array().unwrap();
        let limit = parameters.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["type"], "integer", "{list}");
        assert_eq!(limit["schema"]["minimum"], 1, "{list}");
        assert_eq!(limit["schema"]["maximum"], 1000, "{list}");
    }

    let id = &paths["/v1/emails/{id}"]["get"]["parameters"][0];
    assert_eq!(id["name"], "id");
    assert_eq!(id["schema"]["format"], "uuid");

    let rule = &doc["components"]["schemas"]["CreateRuleBody"];
    assert_eq!(rule["required"], json!(["email", "forward"]));
    assert_eq!(rule["properties"]["email"]["format"], "idn-email");
    assert_eq!(rule["properties"]["email"]["minLength"], 1);
    assert_eq!(rule["properties"]["email"]["maxLength"], 254);
    let forward = rule["properties"]["forward"]["oneOf"].as_array().unwrap();
    let address =
        json!({"type": "string", "format": "idn-email", "minLength": 1, "maxLength": 254});
    let one = forward.iter().find(|s| s["type"] == "string").unwrap();
    let many = forward.iter().find(|s| s["type"] == "array").unwrap();
    for (key, value) in address.as_object().unwrap() {
        assert_eq!(&one[key], value, "forward (one) {key}");
        assert_eq!(&many["items"][key], value, "forward[] {key}");
    }
    assert_eq!(many["minItems"], 1);

    let import = &paths["/v1/forwards/import"]["post"];
    assert_eq!(import["requestBody"]["required"], true);
    for media in ["text/csv", "application/octet-stream"] {
        assert_eq!(
            import["requestBody"]["content"][media]["schema"]["type"], "string",
            "{media}"
        );
    }
    for status in ["400", "401", "403", "413", "415", "500"] {
        assert!(
            import["responses"][status].is_object(),
            "import does not document {status}"
        );
    }
    assert!(import["responses"]["422"]["content"]["application/json"].is_object());

    let create = &paths["/v1/forwards"]["post"];
    for status in [
        "400", "401", "403", "409", "413", "415", "422", "500", "503",
    ] {
        assert!(
            create["responses"][status]["content"]["application/problem+json"].is_object(),
            "create does not document {status}"
        );
    }
    let metrics = &paths["/metrics"]["get"];
    assert!(metrics["responses"]["200"]["content"]["text/plain"].is_object());
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
