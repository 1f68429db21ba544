//! CSV import over HTTP.

use std::time::Instant;

use mailfwd_domain::EmailAddress;
use mailfwd_http::HttpConfig;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::harness::{TestApp, problem};

const MIXED: &str = "email,forward\n\
                     sales@acme.test,alice@gmail.test\n\
                     bad address@acme.test,bob@corp.test\n\
                     info@acme.test,not-an-address\n\
                     \n\
                     support@acme.test,carol@corp.test;dave@corp.test\n";

#[tokio::test]
async fn bad_rows_are_reported_and_good_ones_imported() {
    let app = TestApp::spawn().await;
    let response = app.post_csv("/v1/forwards/import", MIXED).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["rows"], 4);
    assert_eq!(report["imported_rows"], 2);
    assert_eq!(report["rejected_rows"], 2);
    assert_eq!(report["rules_written"], 2);
    assert_eq!(report["errors_truncated"], false);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        (errors[0]["line"].clone(), errors[0]["column"].clone()),
        (json!(3), json!("email"))
    );
    assert!(
        errors[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not allowed outside quotes")
    );
    assert_eq!(
        (errors[1]["line"].clone(), errors[1]["column"].clone()),
        (json!(4), json!("forward"))
    );

    let rule: Value = app
        .get("/v1/forwards/support@acme.test")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rule["forward"],
        json!(["carol@corp.test", "dave@corp.test"])
    );
    problem(
        app.get("/v1/forwards/info@acme.test").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn an_atomic_import_with_a_bad_row_imports_nothing() {
    let app = TestApp::spawn().await;
    let response = app.post_csv("/v1/forwards/import?atomic=true", MIXED).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        (report["rows"].clone(), report["imported_rows"].clone()),
        (json!(4), json!(0))
    );
    assert_eq!(
        (
            report["rejected_rows"].clone(),
            report["rules_written"].clone()
        ),
        (json!(2), json!(0))
    );
    assert_eq!(report["errors"][0]["line"], 3);
    problem(
        app.get("/v1/forwards/sales@acme.test").await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let response = app
        .post_csv(
            "/v1/forwards/import?atomic=true",
            "email,forward\na@x.test,b@y.test\n",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["rules_written"], 1);
    let detail = problem(
        app.post_csv("/v1/forwards/import?atomic=maybe", "email,forward\n")
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(detail.contains("atomic"), "{detail}");
}

#[tokio::test]
async fn a_bad_header_or_empty_file_is_400() {
    let app = TestApp::spawn().await;
    let detail = problem(
        app.post_csv("/v1/forwards/import", "name,target\na@x.test,b@y.test\n")
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        detail,
        "line 1 must be the header 'email,forward'; found 'name,target'"
    );
    let detail = problem(
        app.post_csv("/v1/forwards/import", "").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        detail,
        "line 1 must be the header 'email,forward'; the file is empty"
    );
}

#[tokio::test]
async fn import_content_types() {
    let app = TestApp::spawn().await;
    let csv = "email,forward\na@x.test,b@y.test\n";
    let response = app
        .client
        .post(app.url("/v1/forwards/import"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await,
        "this endpoint needs 'Content-Type: text/csv'"
    );
    let response = app
        .client
        .post(app.url("/v1/forwards/import"))
        .body(csv)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    for content_type in ["application/octet-stream", "text/csv; charset=utf-8"] {
        let request = app
            .client
            .post(app.url("/v1/forwards/import"))
            .header(header::CONTENT_TYPE, content_type);
        assert_eq!(
            request.body(csv).send().await.unwrap().status(),
            StatusCode::OK,
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn an_oversized_import_is_413() {
    let app = TestApp::with_config(HttpConfig {
        import_body_limit: 1024,
        ..HttpConfig::default()
    })
    .await;
    let mut csv = "email,forward\n".to_owned();
    for i in 0..100 {
        csv.push_str(&format!("user{i}@x.test,dest{i}@y.test\n"));
    }
    let detail = problem(
        app.post_csv("/v1/forwards/import", csv.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(
        detail,
        "the request body is larger than the limit of 1024 bytes"
    );

    // Chunked, so the server only finds out while reading.
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(csv)];
    let response = app
        .post_csv(
            "/v1/forwards/import?atomic=true",
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        )
        .await;
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    problem(
        app.get("/v1/forwards/user0@x.test").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

const BIG: usize = 100_000;
const ROWS_PER_CHUNK: usize = 1_000;

/// The CSV is generated chunk by chunk as it is sent (chunked transfer encoding), as a
/// client streaming a large file would; the server never sees a Content-Length.
#[tokio::test]
async fn a_100k_row_streamed_import_succeeds_and_every_rule_resolves() {
    let app = TestApp::spawn().await;
    let chunks = (0..BIG / ROWS_PER_CHUNK).map(|chunk| {
        let mut text = if chunk == 0 {
            "email,forward\n".to_owned()
        } else {
            String::new()
        };
        for i in chunk * ROWS_PER_CHUNK..(chunk + 1) * ROWS_PER_CHUNK {
            text.push_str(&format!("user{i}@bulk.test,dest{i}@gmail.test\n"));
        }
        Ok::<_, std::io::Error>(text)
    });
    let started = Instant::now();
    let response = app
        .post_csv(
            "/v1/forwards/import",
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    eprintln!("imported {BIG} rows in {:?}", started.elapsed());
    assert_eq!(
        report,
        json!({"rows": BIG, "imported_rows": BIG, "rejected_rows": 0, "rules_written": BIG, "errors": [], "errors_truncated": false})
    );

    let started = Instant::now();
    for i in 0..BIG {
        let recipient = EmailAddress::parse(&format!("user{i}@bulk.test")).unwrap();
        let rule = app
            .store
            .resolve(&recipient)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("user{i} does not resolve"));
        assert_eq!(
            rule.destinations()[0].to_string(),
            format!("dest{i}@gmail.test")
        );
    }
    eprintln!("resolved {BIG} recipients in {:?}", started.elapsed());
    let rule: Value = app
        .get("/v1/forwards/user99999@bulk.test")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rule["forward"], json!(["dest99999@gmail.test"]));
}

#[tokio::test]
async fn an_atomic_import_over_the_row_limit_is_413_and_writes_nothing() {
    let app = TestApp::with_config(HttpConfig {
        import_atomic_max_rows: 10,
        ..HttpConfig::default()
    })
    .await;
    let mut csv = "email,forward\n".to_owned();
    for i in 0..11 {
        csv.push_str(&format!("user{i}@x.test,dest{i}@y.test\n"));
    }
    let detail = problem(
        app.post_csv("/v1/forwards/import?atomic=true", csv.clone())
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(detail.contains("at most 10 rows"), "{detail}");
    problem(
        app.get("/v1/forwards/user0@x.test").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // The same file imported plainly is not limited.
    let response = app.post_csv("/v1/forwards/import", csv).await;
    assert_eq!(response.status(), StatusCode::OK);
}
