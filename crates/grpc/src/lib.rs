//! mailfwd's gRPC API: the `mailfwd.v1.Forwarding` service (ingest, reprocess, the
//! received log), with the standard health and reflection (v1 and v1alpha) services beside it.
//!
//! The contract is `proto/mailfwd/v1/forwarding.proto`; this crate is the adapter that
//! turns its messages into domain calls. Statuses are chosen in one place,
//! [`GrpcError`].

mod auth;
mod convert;
mod error;
mod ingest;
pub mod retry_info;
mod service;

use std::future::Future;
use std::sync::Arc;

use mailfwd_domain::Ingest;
use mailfwd_domain::delivery::{DeliveryQueue, ForwardEvaluator};
use mailfwd_domain::email::EmailStore;
use thiserror::Error;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::{Router, TcpIncoming};

pub use auth::Authorize;
pub use error::GrpcError;

/// The messages, client and server generated from the proto.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("mailfwd.v1");

    /// The encoded file descriptor set of the proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("mailfwd_descriptor");
}

/// What the gRPC API needs from the rest of mailfwd.
#[derive(Clone)]
pub struct GrpcServices {
    /// Receives emails (IngestEmail).
    pub ingest: Ingest,
    /// The stored emails and the received log (GetEmail, ListReceivedEmails).
    pub emails: Arc<dyn EmailStore>,
    /// Runs a stored email through the rules again (ReprocessEmail).
    pub evaluator: ForwardEvaluator,
    /// Where each delivery stands (GetEmail).
    pub queue: Arc<dyn DeliveryQueue>,
    /// The bearer token callers must send; `None` lets only loopback clients in.
    pub api_token: Option<String>,
}

/// The server could not be put together.
#[derive(Debug, Error)]
#[error("the gRPC reflection service could not be built: {0}")]
pub struct SetupError(#[from] tonic_reflection::server::Error);

/// A tonic router serving Forwarding (behind [`Authorize`]), health and reflection
/// (`grpc.reflection.v1` and `v1alpha`).
/// Health reports `mailfwd.v1.Forwarding` and the whole server (`""`) as serving.
/// Health and reflection need no token: probes must work, and the contract is public.
///
/// # Errors
/// [`SetupError`] if the embedded file descriptor set does not decode (a build bug).
pub async fn router(services: GrpcServices) -> Result<Router, SetupError> {
    let api = service::ForwardingApi {
        ingest: services.ingest,
        emails: services.emails,
        evaluator: services.evaluator,
        queue: services.queue,
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::forwarding_server::ForwardingServer<service::ForwardingApi>>()
        .await;
    let reflection_v1 = reflection_contents().build_v1()?;
    let reflection_v1alpha = reflection_contents().build_v1alpha()?;
    let forwarding = pb::forwarding_server::ForwardingServer::with_interceptor(
        api,
        Authorize::new(services.api_token),
    );
    Ok(Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(forwarding))
}

/// The reflection contents, the same for both protocol versions: Python
/// grpcio-reflection, Postman and older grpcurl speak only `grpc.reflection.v1alpha`,
/// newer tools `v1`. Each lists both reflection services, so whichever a tool asks
/// sees everything the server offers.
fn reflection_contents() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes the calls
/// in flight.
///
/// # Errors
/// The transport's error if serving fails.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    router
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}
