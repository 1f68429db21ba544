//! Starts the real server on port 0 on the testkit's stores (real ones in a temporary
//! directory, unless a test brings its own), and small helpers to read what came back.

use std::io;
use std::sync::Arc;

use mailfwd_domain::RuleStore;
use mailfwd_http::{HttpConfig, Services, router, serve};
use mailfwd_testkit::Stores;
use reqwest::{Response, StatusCode, header};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One running server and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn RuleStore>,
    pub emails: Arc<dyn mailfwd_domain::EmailStore>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<io::Result<()>>>,
    _stores: Option<Stores>,
}

impl TestApp {
    /// Default configuration: no token, so loopback clients only.
    pub async fn spawn() -> Self {
        Self::with_config(HttpConfig::default()).await
    }

    /// A server with `config` on fresh real stores in a temporary directory.
    pub async fn with_config(config: HttpConfig) -> Self {
        let stores = Stores::real().await;
        Self::with_services(services(&stores), config, Some(stores)).await
    }

    /// A server on any rule store, with in-memory emails.
    pub async fn with_store(
        store: Arc<dyn RuleStore>,
        config: HttpConfig,
        keep: Option<Stores>,
    ) -> Self {
        Self::with_services(memory_services(store), config, keep).await
    }

    /// A server on these services; `keep` holds the stores they live in, if any.
    pub async fn with_services(
        services: Services,
        config: HttpConfig,
        keep: Option<Stores>,
    ) -> Self {
        let store = Arc::clone(&services.rules);
        let emails = Arc::clone(&services.emails);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(services, config);
        let server = tokio::spawn(serve(listener, app, async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            client: reqwest::Client::new(),
            store,
            emails,
            shutdown: Some(tx),
            server: Some(server),
            _stores: keep,
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

/// Services around `rules` for tests that do not look at emails: in-memory emails and
/// queue, no metrics.
pub fn memory_services(rules: Arc<dyn RuleStore>) -> Services {
    services(&Stores::memory_with_rules(rules))
}

/// Services on `stores`, with fixed metrics.
pub fn services(stores: &Stores) -> Services {
    Services {
        rules: Arc::clone(&stores.rules),
        emails: Arc::clone(&stores.emails),
        deliveries: Arc::clone(&stores.queue),
        metrics: Arc::new(FixedMetrics),
    }
}

/// Metrics text that says where it came from, so tests can see it was served.
pub struct FixedMetrics;

#[async_trait::async_trait]
impl mailfwd_http::MetricsSource for FixedMetrics {
    async fn render(&self) -> String {
        "# mailfwd test metrics\nmailfwd_test 1\n".to_owned()
    }
}
