//! Starts the real server on port 0 with its own database, and small helpers to read
//! what came back.

use std::io;
use std::sync::Arc;

use mailfwd_domain::RuleStore;
use mailfwd_http::{HttpConfig, router, serve};
use mailfwd_sqlite::SqliteRuleStore;
use reqwest::{Response, StatusCode, header};
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One running server and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn RuleStore>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<io::Result<()>>>,
    _dir: Option<TempDir>,
}

impl TestApp {
    /// Default configuration: no token, so loopback clients only.
    pub async fn spawn() -> Self {
        Self::with_config(HttpConfig::default()).await
    }

    /// A server with `config` on a fresh SQLite database in a temporary directory.
    pub async fn with_config(config: HttpConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("mailfwd.db").display());
        let store = Arc::new(SqliteRuleStore::connect(&url).await.unwrap());
        Self::with_store(store, config, Some(dir)).await
    }

    /// A server on any store.
    pub async fn with_store(
        store: Arc<dyn RuleStore>,
        config: HttpConfig,
        dir: Option<TempDir>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(store.clone(), config);
        let server = tokio::spawn(serve(listener, app, async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            client: reqwest::Client::new(),
            store,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_csv(&self, path: &str, csv: impl Into<reqwest::Body>) -> Response {
        let request = self
            .client
            .post(self.url(path))
            .header(header::CONTENT_TYPE, "text/csv");
        request.body(csv).send().await.unwrap()
    }

    /// Creates a rule and checks that it was created.
    pub async fn create(&self, email: &str, forward: Value) -> Value {
        let response = self
            .post_json(
                "/v1/forwards",
                &serde_json::json!({"email": email, "forward": forward}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "creating {email}");
        response.json().await.unwrap()
    }

    /// Stops the server gracefully and returns what `serve` returned.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().unwrap().await.unwrap()
    }
}

/// Checks that `response` is a problem document with `status` and returns its detail.
pub async fn problem(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["title"], status.canonical_reason().unwrap());
    body["detail"].as_str().unwrap().to_owned()
}
