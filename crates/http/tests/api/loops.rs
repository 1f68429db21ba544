//! Rules that would forward in a loop are refused, over the API and in an import,
//! naming the loop.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, problem};

#[tokio::test]
async fn a_rule_that_closes_a_loop_is_422_naming_it() {
    let app = TestApp::spawn().await;
    app.create("a@loop.test", json!(["b@loop.test", "c@loop.test"]))
        .await;
    let detail = problem(
        app.post_json(
            "/v1/forwards",
            &json!({"email": "b@loop.test", "forward": ["a@loop.test"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        detail.contains("forwarding loop: b@loop.test → a@loop.test → b@loop.test"),
        "{detail}"
    );
    problem(
        app.get("/v1/forwards/b@loop.test").await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // A catch-all that would catch its own destination loops too…
    let detail = problem(
        app.post_json(
            "/v1/forwards",
            &json!({"email": "*@self.test", "forward": ["inbox@self.test"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(detail.contains("*@self.test → inbox@self.test"), "{detail}");
    // …unless the destination has a rule of its own that leads out.
    app.create("inbox@self.test", json!(["owner@gmail.test"]))
        .await;
    app.create("*@self.test", json!(["inbox@self.test"])).await;
    // A chain that leads out is fine.
    app.create("b@loop.test", json!(["out@gmail.test"])).await;
}

#[tokio::test]
async fn an_import_rejects_the_rows_of_a_loop_and_keeps_the_rest() {
    let app = TestApp::spawn().await;
    let csv = "email,forward\n\
               a@loop.test,b@loop.test;c@loop.test\n\
               b@loop.test,a@loop.test\n\
               c@loop.test,out@gmail.test\n\
               d@loop.test,d+tag@loop.test\n";
    let response = app.post_csv("/v1/forwards/import", csv).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["imported_rows"], 1, "{report}");
    assert_eq!(report["rejected_rows"], 3, "{report}");
    let errors = report["errors"].as_array().unwrap();
    let by_line = |line: u64| {
        errors
            .iter()
            .find(|e| e["line"] == line)
            .map(|e| e["reason"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        by_line(2),
        "forwarding loop: a@loop.test → b@loop.test → a@loop.test"
    );
    assert_eq!(
        by_line(3),
        "forwarding loop: b@loop.test → a@loop.test → b@loop.test"
    );
    assert_eq!(by_line(5), "forwarding loop: d@loop.test → d+tag@loop.test");
    app.get("/v1/forwards/c@loop.test")
        .await
        .error_for_status()
        .expect("the rule that leads out was imported");

    // Atomic: a loop anywhere imports nothing.
    let csv = "email,forward\nx@atomic.test,y@atomic.test\ny@atomic.test,x@atomic.test\n";
    let response = app.post_csv("/v1/forwards/import?atomic=true", csv).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    problem(
        app.get("/v1/forwards/x@atomic.test").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}
