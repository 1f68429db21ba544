//! Starts the real gRPC server on port 0 on the testkit's real stores (SQLite and
//! files in a temporary directory), and gives tests a connected client.

use std::sync::Arc;

use mailfwd_domain::delivery::ForwardEvaluator;
use mailfwd_domain::email::{EmailId, EmailStore};
use mailfwd_domain::{Ingest, IngestLimits, RuleStore};
use mailfwd_grpc::pb::forwarding_client::ForwardingClient;
use mailfwd_grpc::pb::{self, Envelope, IngestEmailRequest, ingest_email_request::Part};
use mailfwd_grpc::{GrpcServices, router, serve};
use mailfwd_testkit::Stores;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// One running server on fresh stores.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub rules: Arc<dyn RuleStore>,
    pub emails: Arc<dyn EmailStore>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    stores: Stores,
}

impl TestApp {
    /// Default limits, no token (loopback clients only).
    pub async fn spawn() -> Self {
        Self::with(IngestLimits::default(), None).await
    }

    /// A server with these ingest limits and API token.
    pub async fn with(limits: IngestLimits, api_token: Option<String>) -> Self {
        let stores = Stores::real().await;
        let (rules, emails, queue) = (
            Arc::clone(&stores.rules),
            Arc::clone(&stores.emails),
            Arc::clone(&stores.queue),
        );
        let services = GrpcServices {
            ingest: Ingest::new(Arc::clone(&rules), emails.clone(), limits),
            emails: emails.clone(),
            evaluator: ForwardEvaluator::new(Arc::clone(&rules), queue.clone()),
            queue,
            api_token,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(services).await.unwrap();
        let server = tokio::spawn(serve(listener, app, async {
            let _ = rx.await;
        }));
        TestApp {
            url,
            rules,
            emails,
            shutdown: Some(tx),
            server: Some(server),
            stores,
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> ForwardingClient<Channel> {
        ForwardingClient::new(self.channel().await)
    }

    /// Adds the rule `pattern` → `destinations`.
    pub async fn rule(&self, pattern: &str, destinations: &[&str]) {
        self.stores.add_rule(pattern, destinations).await;
    }

    /// Sends one email whose body is `body` cut into `chunk`-sized messages.
    pub async fn ingest(
        &self,
        sender: &str,
        recipients: &[&str],
        body: &[u8],
        chunk: usize,
    ) -> Result<pb::IngestEmailResponse, Status> {
        let stream = ingest_stream(sender, recipients, body, chunk);
        let mut client = self.client().await;
        client
            .ingest_email(Request::new(stream))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The stored body of `id`, read back from the store.
    pub async fn body(&self, id: &str) -> Vec<u8> {
        mailfwd_testkit::stores::body(self.emails.as_ref(), &EmailId::parse(id).unwrap()).await
    }

    /// Stops the server gracefully and checks that it stopped cleanly.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().unwrap().await.unwrap().unwrap();
    }
}

/// The IngestEmail messages for one email: the envelope, then the body in chunks.
pub fn ingest_stream(
    sender: &str,
    recipients: &[&str],
    body: &[u8],
    chunk: usize,
) -> impl tokio_stream::Stream<Item = IngestEmailRequest> + Send + 'static {
    let envelope = Envelope {
        sender: sender.to_owned(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
    };
    let mut messages = vec![IngestEmailRequest {
        part: Some(Part::Envelope(envelope)),
    }];
    messages.extend(body.chunks(chunk).map(|c| IngestEmailRequest {
        part: Some(Part::Chunk(c.to_vec())),
    }));
    tokio_stream::iter(messages)
}

/// A small RFC 5322 message.
pub fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: someone@example.org\r\nTo: sales@acme.test\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    )
    .into_bytes()
}

/// Checks that `result` failed with `code` and returns the message.
pub fn status<T: std::fmt::Debug>(result: Result<T, Status>, code: tonic::Code) -> String {
    let status = result.unwrap_err();
    assert_eq!(status.code(), code, "{status:?}");
    status.message().to_owned()
}
