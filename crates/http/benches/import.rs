//! `POST /v1/forwards/import` of 100,000 CSV rows over a real socket into SQLite.
//!
//! Every iteration gets a fresh database in a temporary directory and its own server,
//! so each one measures 100,000 inserts (not replacements). Only the request is timed:
//! from sending the first byte to reading the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_main};
use mailfwd_http::{HttpConfig, router, serve};
use mailfwd_sqlite::Database;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const ROWS: usize = 100_000;

fn csv() -> Bytes {
    let mut text = String::from("email,forward\n");
    for i in 0..ROWS {
        text.push_str(&format!(
            "user{i}@bulk{}.test,dest{i}@gmail.test;copy{i}@corp.test\n",
            i % 100
        ));
    }
    Bytes::from(text)
}

/// A server on a fresh database; dropping `_dir` deletes the database.
struct Server {
    url: String,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Database::open(&db).await.expect("open bench db").rules();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/v1/forwards/import",
        listener.local_addr().expect("local addr")
    );
    let (shutdown, stopped) = oneshot::channel::<()>();
    let services = mailfwd_http::Services {
        rules: Arc::new(store),
        emails: Arc::new(mailfwd_domain::email::SplitEmailStore::new(
            Arc::new(mailfwd_domain::memory::MemoryBodyStore::new()),
            Arc::new(mailfwd_domain::memory::MemoryEmailLog::new()),
        )),
        deliveries: Arc::new(mailfwd_domain::memory::MemoryDeliveryQueue::new()),
        metrics: Arc::new(NoMetrics),
    };
    let app = router(services, HttpConfig::default());
    let task = tokio::spawn(serve(listener, app, async {
        let _ = stopped.await;
    }));
    Server {
        url,
        shutdown,
        task,
        _dir: dir,
    }
}

async fn import_once(client: &reqwest::Client, body: Bytes) -> Duration {
    let server = start().await;
    let started = Instant::now();
    let response = client
        .post(&server.url)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let report: serde_json::Value = response.json().await.expect("JSON report");
    let elapsed = started.elapsed();
    assert_eq!(status, reqwest::StatusCode::OK, "{report}");
    assert_eq!(report["rules_written"], ROWS, "{report}");
    let _ = server.shutdown.send(());
    server
        .task
        .await
        .expect("server task")
        .expect("server stopped cleanly");
    elapsed
}

fn import(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let body = csv();
    let client = reqwest::Client::new();
    let mut group = c.benchmark_group("http_import_sqlite");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(30))
        .throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("100k_rows_fresh_db", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let (client, body) = (client.clone(), body.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    total += import_once(&client, body.clone()).await;
                }
                total
            }
        });
    });
    group.finish();
}

#[allow(missing_docs)] // `criterion_group!` defines an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::import);
}
criterion_main!(group::benches);

/// The import bench does not read metrics.
struct NoMetrics;

#[async_trait::async_trait]
impl mailfwd_http::MetricsSource for NoMetrics {
    async fn render(&self) -> String {
        String::new()
    }
}
