//! Creating, reading, listing and deleting rules.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::harness::{TestApp, problem};

#[tokio::test]
async fn create_get_delete_round_trip() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/v1/forwards",
            &json!({"email": "Sales@ACME.test", "forward": ["alice@gmail.test", "bob@corp.test"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/v1/forwards/Sales@acme.test"
    );
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        created,
        json!({"email": "Sales@acme.test", "forward": ["alice@gmail.test", "bob@corp.test"]})
    );

    // Lookups are case-insensitive, like mail routing.
    let response = app.get("/v1/forwards/sales@acme.test").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), created);

    let response = app.delete("/v1/forwards/sales@acme.test").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.text().await.unwrap(), "");

    let detail = problem(
        app.get("/v1/forwards/sales@acme.test").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(detail, "no rule for 'sales@acme.test' exists");
    problem(
        app.delete("/v1/forwards/sales@acme.test").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn single_forward_and_duplicates_are_normalized() {
    let app = TestApp::spawn().await;
    let created = app
        .create("info@acme.test", json!("alice@gmail.test"))
        .await;
    assert_eq!(
        created,
        json!({"email": "info@acme.test", "forward": ["alice@gmail.test"]})
    );
    let created = app
        .create(
            "team@acme.test",
            json!(["a@x.test", "A@X.TEST", "b@x.test"]),
        )
        .await;
    assert_eq!(created["forward"], json!(["a@x.test", "b@x.test"]));
}

#[tokio::test]
async fn catch_all_and_quoted_patterns_in_the_path() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/v1/forwards",
            &json!({"email": "*@Acme.test", "forward": "inbox@gmail.test"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/v1/forwards/*@acme.test"
    );
    for path in [
        "/v1/forwards/*@acme.test",
        "/v1/forwards/%2A@acme.test",
        "/v1/forwards/%2a%40ACME.test",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["email"],
            "*@acme.test"
        );
    }

    let response = app
        .post_json(
            "/v1/forwards",
            &json!({"email": "\"john doe\"@acme.test", "forward": "j@gmail.test"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/v1/forwards/%22john%20doe%22@acme.test"
    );
    let response = app.get("/v1/forwards/%22john%20doe%22@acme.test").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["email"],
        "\"john doe\"@acme.test"
    );

    let response = app.delete("/v1/forwards/%2A@acme.test").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    problem(
        app.get("/v1/forwards/*@acme.test").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_bad_path_parameter_is_400() {
    let app = TestApp::spawn().await;
    let detail = problem(
        app.get("/v1/forwards/no-at-sign").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        detail,
        "the path parameter 'email' is invalid: the address has no '@' between a local part and a domain"
    );
    let detail = problem(
        app.delete("/v1/forwards/*@bad..domain").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        detail.starts_with("the path parameter 'email' is invalid: the domain 'bad..domain'"),
        "{detail}"
    );
}

#[tokio::test]
async fn duplicate_is_409() {
    let app = TestApp::spawn().await;
    app.create("sales@acme.test", json!("alice@gmail.test"))
        .await;
    let response = app
        .post_json(
            "/v1/forwards",
            &json!({"email": "SALES@acme.test", "forward": "bob@corp.test"}),
        )
        .await;
    let detail = problem(response, StatusCode::CONFLICT).await;
    assert!(
        detail.starts_with("a rule for 'SALES@acme.test' already exists"),
        "{detail}"
    );
    // The first rule is untouched.
    let rule: Value = app
        .get("/v1/forwards/sales@acme.test")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rule["forward"], json!(["alice@gmail.test"]));
}

async fn list(app: &TestApp, query: &str) -> (Vec<String>, Option<String>) {
    let response = app.get(&format!("/v1/forwards{query}")).await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    let page: Value = response.json().await.unwrap();
    let emails = page["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["email"].as_str().unwrap().to_owned())
        .collect();
    (emails, page["next_cursor"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn list_pages_with_a_cursor_and_filters_by_domain() {
    let app = TestApp::spawn().await;
    for name in ["e", "a", "d", "b", "c"] {
        app.create(&format!("{name}@acme.test"), json!("x@gmail.test"))
            .await;
    }
    app.create("*@acme.test", json!("x@gmail.test")).await;
    app.create("a@other.test", json!("x@gmail.test")).await;

    let (all, next) = list(&app, "").await;
    assert_eq!(all.len(), 7);
    assert_eq!(next, None);

    let mut seen = Vec::new();
    let mut query = "?domain=ACME.test&limit=4".to_owned();
    let mut pages = 0;
    loop {
        let (emails, next) = list(&app, &query).await;
        assert!(emails.len() <= 4);
        seen.extend(emails);
        pages += 1;
        match next {
            Some(cursor) => query = format!("?domain=acme.test&limit=4&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(
        seen,
        [
            "*@acme.test",
            "a@acme.test",
            "b@acme.test",
            "c@acme.test",
            "d@acme.test",
            "e@acme.test"
        ]
    );

    let (other, _) = list(&app, "?domain=other.test").await;
    assert_eq!(other, ["a@other.test"]);
    let (none, next) = list(&app, "?domain=nobody.test").await;
    assert!(none.is_empty());
    assert_eq!(next, None);
}

#[tokio::test]
async fn bad_list_parameters_are_400() {
    let app = TestApp::spawn().await;
    let detail = problem(
        app.get("/v1/forwards?domain=bad..domain").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        detail.starts_with("the query parameter 'domain' is invalid:"),
        "{detail}"
    );
    let detail = problem(
        app.get("/v1/forwards?cursor=zz").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        detail,
        "the query parameter 'cursor' is invalid: the cursor is not one this server handed out"
    );
    for (limit, shown) in [
        ("1001", "1001"),
        ("0", "0"),
        ("ten", "ten"),
        // Values serde's integer parser would have answered with "invalid digit found in
        // string" or "number too large to fit in target type".
        ("-1", "-1"),
        ("1e3", "1e3"),
        ("%2B5", "+5"),
        ("", ""),
        ("99999999999999999999999", "99999999999999999999999"),
    ] {
        for list in ["/v1/forwards", "/v1/emails"] {
            let detail = problem(
                app.get(&format!("{list}?limit={limit}")).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert_eq!(
                detail,
                format!(
                    "the query parameter 'limit' must be a whole number between 1 and 1000; it is '{shown}'"
                ),
                "{list}?limit={limit}"
            );
        }
    }
    for limit in ["1", "1000"] {
        assert_eq!(
            app.get(&format!("/v1/forwards?limit={limit}"))
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            app.get(&format!("/v1/emails?limit={limit}")).await.status(),
            StatusCode::OK
        );
    }
}

/// SMTP cannot receive mail for `user@[192.0.2.1]` (ADR 0011), so no rule may name an
/// address literal: the API says so instead of storing a rule that never matches.
#[tokio::test]
async fn a_rule_for_an_address_literal_is_400() {
    let app = TestApp::spawn().await;
    for email in ["user@[192.0.2.1]", "*@[192.0.2.1]"] {
        let response = app
            .client
            .post(app.url("/v1/forwards"))
            .json(&serde_json::json!({"email": email, "forward": "a@b.test"}))
            .send()
            .await
            .unwrap();
        let detail = problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            detail.starts_with("the field 'email' is invalid: '[192.0.2.1]' is an address literal"),
            "{email}: {detail}"
        );
    }
}
