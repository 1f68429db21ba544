use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::delivery::{DeliveryQueue, ForwardEvaluator};
use mailfwd_domain::email::SplitEmailStore;
use mailfwd_domain::memory::{
    MemoryBodyStore, MemoryDeliveryQueue, MemoryEmailLog, MemoryRuleStore,
};
use mailfwd_domain::{EmailStore, IngestLimits, RuleStore};
use mailfwd_http::MetricsSource;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

use super::*;

struct NoMetrics;

#[async_trait]
impl MetricsSource for NoMetrics {
    async fn render(&self) -> String {
        String::new()
    }
}

struct Memory {
    rules: Arc<dyn RuleStore>,
    emails: Arc<dyn EmailStore>,
    queue: Arc<dyn DeliveryQueue>,
}

impl Memory {
    fn new() -> Memory {
        Memory {
            rules: Arc::new(MemoryRuleStore::new()),
            emails: Arc::new(SplitEmailStore::new(
                Arc::new(MemoryBodyStore::new()),
                Arc::new(MemoryEmailLog::new()),
            )),
            queue: Arc::new(MemoryDeliveryQueue::new()),
        }
    }

    fn ingest(&self) -> Ingest {
        Ingest::new(
            Arc::clone(&self.rules),
            Arc::clone(&self.emails),
            IngestLimits::default(),
        )
    }
}

/// Every listener on a free loopback port.
fn config() -> Config {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    Config {
        smtp_listen: any_port,
        http_listen: any_port,
        grpc_listen: any_port,
        hostname: Some("mx.listeners.test".to_owned()),
        ..Config::default()
    }
}

#[tokio::test]
async fn the_listeners_serve_where_they_say_and_stop_when_told() {
    let config = config();
    let memory = Memory::new();
    let smtp = SmtpListener::bind(&config, memory.ingest()).await.unwrap();
    let http = HttpListener::bind(
        &config,
        Services {
            rules: Arc::clone(&memory.rules),
            emails: Arc::clone(&memory.emails),
            deliveries: Arc::clone(&memory.queue),
            metrics: Arc::new(NoMetrics),
        },
    )
    .await
    .unwrap();
    let grpc = GrpcListener::bind(
        &config,
        GrpcServices {
            ingest: memory.ingest(),
            emails: Arc::clone(&memory.emails),
            evaluator: ForwardEvaluator::new(Arc::clone(&memory.rules), Arc::clone(&memory.queue)),
            queue: Arc::clone(&memory.queue),
            api_token: None,
        },
    )
    .await
    .unwrap();
    let (smtp_at, http_at, grpc_at) = (smtp.local_addr(), http.local_addr(), grpc.local_addr());
    assert!(smtp_at.port() != 0 && http_at.port() != 0 && grpc_at.port() != 0);

    let mut listeners = Listeners::start(smtp, http, grpc);
    let mut greeting = String::new();
    BufReader::new(TcpStream::connect(smtp_at).await.unwrap())
        .read_line(&mut greeting)
        .await
        .unwrap();
    assert!(
        greeting.starts_with("220 mx.listeners.test "),
        "{greeting:?}"
    );
    let health = reqwest::get(format!("http://{http_at}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    TcpStream::connect(grpc_at).await.unwrap();
    let still_serving = tokio::time::timeout(Duration::from_millis(200), listeners.failure()).await;
    assert!(still_serving.is_err(), "a listener stopped on its own");

    listeners.stop().await.unwrap();
    for address in [smtp_at, http_at, grpc_at] {
        assert!(
            TcpStream::connect(address).await.is_err(),
            "{address} still accepts connections"
        );
    }
}

#[tokio::test]
async fn a_taken_port_is_named_with_its_listener() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let config = Config {
        smtp_listen: address,
        ..config()
    };
    let Err(error) = SmtpListener::bind(&config, Memory::new().ingest()).await else {
        panic!("bound a port that is taken");
    };
    assert!(
        matches!(error, AppError::Bind { protocol: Protocol::Smtp, address: at, .. } if at == address),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot listen for SMTP on {address}: ")),
        "{error}"
    );
    assert_eq!(error.exit_code(), std::process::ExitCode::FAILURE);
}
