//! Authentication, health and reflection.

use mailfwd_domain::IngestLimits;
use mailfwd_grpc::pb::GetEmailRequest;
use prost::Message as _;
use tokio_stream::StreamExt;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use super::harness::{TestApp, status};

const UNKNOWN_ID: &str = "0192e4c2-7b1a-7cde-8f00-112233445566";

fn get(token: Option<&str>) -> Request<GetEmailRequest> {
    let mut request = Request::new(GetEmailRequest {
        email_id: UNKNOWN_ID.into(),
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", token.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let app = TestApp::with(IngestLimits::default(), Some("s3cret-token".into())).await;
    let mut client = app.client().await;

    let message = status(client.get_email(get(None)).await, Code::Unauthenticated);
    assert!(message.contains("authorization: Bearer"), "{message}");
    let message = status(
        client.get_email(get(Some("Bearer wrong"))).await,
        Code::Unauthenticated,
    );
    assert!(message.contains("not valid"), "{message}");
    // The right token gets through to the service, which answers for itself.
    status(
        client.get_email(get(Some("Bearer s3cret-token"))).await,
        Code::NotFound,
    );

    // Health needs no token: probes must work.
    let mut health = HealthClient::new(app.channel().await);
    let reply = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
    app.stop().await;
}

#[tokio::test]
async fn loopback_clients_need_no_token_when_none_is_configured() {
    let app = TestApp::spawn().await;
    status(
        app.client().await.get_email(get(None)).await,
        Code::NotFound,
    );
    app.stop().await;
}

#[tokio::test]
async fn health_reports_the_forwarding_service_serving() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.channel().await);
    let request = HealthCheckRequest {
        service: "mailfwd.v1.Forwarding".into(),
    };
    let reply = health.check(request).await.unwrap().into_inner();
    assert_eq!(reply.status(), ServingStatus::Serving);
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.Service".into(),
        })
        .await;
    status(unknown, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_services() {
    let app = TestApp::spawn().await;
    let mut reflection = ServerReflectionClient::new(app.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("not a service list: {reply:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"mailfwd.v1.Forwarding"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    assert!(
        names.contains(&"grpc.reflection.v1alpha.ServerReflection"),
        "{names:?}"
    );
    app.stop().await;
}

/// Python grpcio-reflection, Postman and older grpcurl speak only v1alpha.
#[tokio::test]
async fn reflection_v1alpha_lists_and_describes_the_services() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::{ServerReflectionRequest, ServerReflectionResponse};

    let app = TestApp::spawn().await;
    let mut reflection = ServerReflectionClient::new(app.channel().await);
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "mailfwd.v1.Forwarding".into(),
        )),
    ];
    let replies: Vec<ServerReflectionResponse> = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(replies.len(), 2);

    let Some(MessageResponse::ListServicesResponse(list)) = &replies[0].message_response else {
        panic!("not a service list: {:?}", replies[0]);
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "mailfwd.v1.Forwarding",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }

    let Some(MessageResponse::FileDescriptorResponse(files)) = &replies[1].message_response else {
        panic!("not a file descriptor: {:?}", replies[1]);
    };
    let file =
        prost_types::FileDescriptorProto::decode(&files.file_descriptor_proto[0][..]).unwrap();
    assert_eq!(file.package(), "mailfwd.v1");
    let methods: Vec<_> = file.service[0].method.iter().map(|m| m.name()).collect();
    assert!(methods.contains(&"IngestEmail"), "{methods:?}");
    app.stop().await;
}
