//! Failures on demand: a service in front of s3s that answers chosen requests with a
//! 500, drops their connection half-way through the body, or stalls them.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::service::S3Service;
use s3s::{Body, HttpResponse};

/// Which S3 requests a [`FaultRule`] hits, told apart by method and query as S3 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A plain `PUT` of a whole object.
    PutObject,
    /// `POST ?uploads`: starting a multipart upload.
    CreateUpload,
    /// `PUT ?partNumber=…&uploadId=…`: one part.
    UploadPart,
    /// `POST ?uploadId=…`: completing a multipart upload.
    CompleteUpload,
    /// `DELETE ?uploadId=…`: aborting a multipart upload.
    AbortUpload,
    /// A `DELETE` of an object.
    DeleteObject,
    /// `POST ?delete`: deleting objects in bulk, which is how object_store deletes
    /// even one object. The keys are in the body, so a rule's key never matches it.
    DeleteObjects,
    /// A `GET` or `HEAD`: reads and listings.
    Read,
    /// Every request.
    Any,
}

impl Operation {
    fn of(method: &Method, query: &str) -> Operation {
        let has = |name: &str| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(name))
        };
        match *method {
            Method::PUT if has("partNumber") => Operation::UploadPart,
            Method::PUT => Operation::PutObject,
            Method::POST if has("uploads") => Operation::CreateUpload,
            Method::POST if has("delete") => Operation::DeleteObjects,
            Method::POST => Operation::CompleteUpload,
            Method::DELETE if has("uploadId") => Operation::AbortUpload,
            Method::DELETE => Operation::DeleteObject,
            _ => Operation::Read,
        }
    }
}

/// What a faulty request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `500 InternalError`, as S3 answers when it should be retried.
    InternalError,
    /// The server reads about half of the request body, then drops the connection
    /// without an answer.
    Disconnect,
    /// The request is served after this delay, past a client's timeout.
    Stall(Duration),
}

/// Which requests fail, how, and how often.
#[derive(Debug, Clone)]
pub struct FaultRule {
    operation: Operation,
    fault: Fault,
    key_contains: Option<String>,
    skip: usize,
    times: usize,
}

impl FaultRule {
    /// Every request of `operation` fails with `fault`.
    #[must_use]
    pub fn new(operation: Operation, fault: Fault) -> FaultRule {
        FaultRule {
            operation,
            fault,
            key_contains: None,
            skip: 0,
            times: usize::MAX,
        }
    }

    /// Only requests whose path contains `part` (`.eml`, `/pending/`).
    #[must_use]
    pub fn key_containing(mut self, part: &str) -> FaultRule {
        self.key_contains = Some(part.to_owned());
        self
    }

    /// The first `count` matching requests pass untouched.
    #[must_use]
    pub fn after(mut self, count: usize) -> FaultRule {
        self.skip = count;
        self
    }

    /// Only `count` matching requests fail; later ones pass.
    #[must_use]
    pub fn times(mut self, count: usize) -> FaultRule {
        self.times = count;
        self
    }
}

/// The faults of one server, shared with the test that sets them.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<FaultRule>,
    injected: usize,
}

impl Faults {
    /// Adds a rule; the first rule that matches a request decides its fate.
    pub fn inject(&self, rule: FaultRule) {
        self.state().rules.push(rule);
    }

    /// Removes every rule: the server works again.
    pub fn clear(&self) {
        self.state().rules.clear();
    }

    /// How many requests got a fault so far.
    #[must_use]
    pub fn injected(&self) -> usize {
        self.state().injected
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fault for a request, counting it against the rule that matches.
    fn take(&self, method: &Method, path: &str, query: &str) -> Option<Fault> {
        let operation = Operation::of(method, query);
        let mut state = self.state();
        let rule = state.rules.iter_mut().find(|rule| {
            (rule.operation == operation || rule.operation == Operation::Any)
                && rule
                    .key_contains
                    .as_deref()
                    .is_none_or(|k| path.contains(k))
                && rule.times > 0
        })?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        rule.times -= 1;
        let fault = rule.fault;
        state.injected += 1;
        Some(fault)
    }
}

type BoxError = Box<dyn Error + Send + Sync>;

/// s3s behind the faults.
#[derive(Clone)]
pub(super) struct FaultyService {
    inner: S3Service,
    faults: Faults,
}

impl FaultyService {
    pub(super) fn new(inner: S3Service, faults: Faults) -> Self {
        FaultyService { inner, faults }
    }
}

impl hyper::service::Service<Request<Incoming>> for FaultyService {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let uri = request.uri();
        let fault = self.faults.take(
            request.method(),
            uri.path(),
            uri.query().unwrap_or_default(),
        );
        let inner = self.inner.clone();
        Box::pin(async move {
            match fault {
                None => {}
                Some(Fault::InternalError) => return Ok(internal_error()),
                Some(Fault::Disconnect) => return Err(disconnect_half_way(request).await),
                Some(Fault::Stall(delay)) => tokio::time::sleep(delay).await,
            }
            hyper::service::Service::call(&inner, request)
                .await
                .map_err(BoxError::from)
        })
    }
}

fn internal_error() -> HttpResponse {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <Error><Code>InternalError</Code><Message>injected by the test</Message></Error>";
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// Reads about half of the body, then fails, which makes hyper drop the connection.
async fn disconnect_half_way(request: Request<Incoming>) -> BoxError {
    let length: usize = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let mut body = request.into_body();
    let mut read = 0;
    while read < length / 2 {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len()),
            _ => break,
        }
    }
    BoxError::from(format!("connection dropped after {read} of {length} bytes"))
}
