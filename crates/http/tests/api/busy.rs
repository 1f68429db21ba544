//! The email store's "slow down" and "no new mail for now" reach HTTP as `503` with
//! `Retry-After`, never `500`; `/healthz` says why the store sheds load.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{StatusCode, header};
use mailfwd_domain::email::{
    BodyReader, EmailId, EmailPage, EmailQuery, EmailWriter, Shedding, StoreError, UnevaluatedStats,
};
use mailfwd_domain::{EmailStore, ReceivedEmail};
use mailfwd_http::HttpConfig;
use mailfwd_testkit::Stores;

use crate::harness::{TestApp, problem, services};

/// An email store that sheds load and answers every read "slow down".
struct Busy;

fn slow_down() -> StoreError {
    StoreError::Overloaded {
        retry_after: Duration::from_millis(2500),
    }
}

#[async_trait]
impl EmailStore for Busy {
    async fn begin(&self) -> Result<Box<dyn EmailWriter>, StoreError> {
        Err(slow_down())
    }
    async fn shedding(&self) -> Option<Shedding> {
        Some(Shedding::Backlog {
            pending: 11,
            max: 10,
        })
    }
    async fn get(&self, _: &EmailId) -> Result<ReceivedEmail, StoreError> {
        Err(slow_down())
    }
    async fn open_body(&self, _: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        Err(slow_down())
    }
    async fn list(&self, _: &EmailQuery) -> Result<EmailPage, StoreError> {
        Err(slow_down())
    }
    async fn mark_evaluated(&self, _: &EmailId) -> Result<(), StoreError> {
        Err(slow_down())
    }
    async fn unevaluated(
        &self,
        _: Option<EmailId>,
        _: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError> {
        Err(slow_down())
    }
    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError> {
        Err(slow_down())
    }
    async fn forget(&self, _: &EmailId) -> Result<bool, StoreError> {
        Err(slow_down())
    }
}

async fn busy_app() -> TestApp {
    let stores = Stores::memory();
    let mut services = services(&stores);
    services.emails = Arc::new(Busy);
    TestApp::with_services(services, HttpConfig::default(), Some(stores)).await
}

fn retry_after(response: &reqwest::Response) -> String {
    let value = response.headers().get(header::RETRY_AFTER).unwrap();
    value.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_store_asking_to_slow_down_is_503_with_its_delay() {
    let app = busy_app().await;
    let response = app.get("/v1/emails").await;
    assert_eq!(retry_after(&response), "3");
    let detail = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(detail.contains("try again in 3 s"), "{detail}");
}

#[tokio::test]
async fn healthz_is_503_saying_why_while_the_store_sheds_load() {
    let app = busy_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(retry_after(&response), "60");
    let detail = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        detail,
        "refusing new mail: 11 deliveries pending, over the maximum of 10"
    );
}
