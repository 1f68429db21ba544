//! The standard way to tell a gRPC client when to retry: a `google.rpc.RetryInfo` in
//! the status details (`grpc-status-details-bin`), which gRPC client libraries and
//! gateways read, beside the plain `retry-after` metadata for everyone else.
//!
//! The two messages are declared here by hand (their field numbers are fixed by
//! `google/rpc/status.proto` and `google/rpc/error_details.proto`): `tonic-types`,
//! which has them, is not among the dependencies, and two small messages do not
//! justify it.

use std::time::Duration;

use prost::Message;
use tonic::codegen::Bytes;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    /// How long the client should wait before retrying.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<prost_types::Duration>,
}

/// `google.rpc.Status`, the envelope of status details.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    /// The status code, as in the `grpc-status` header.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The status message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// The details, each an `Any`.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// The type URL of [`RetryInfo`] in an `Any`.
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// A status of `code` asking the client to retry after `secs` seconds: the delay in
/// the `retry-after` metadata and in a `google.rpc.RetryInfo` detail.
pub(crate) fn retry_status(code: Code, message: String, secs: u64) -> Status {
    let delay = Duration::from_secs(secs);
    let info = RetryInfo {
        retry_delay: prost_types::Duration::try_from(delay).ok(),
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: RETRY_INFO_TYPE.to_owned(),
            value: info.encode_to_vec(),
        }],
    };
    let mut metadata = MetadataMap::new();
    metadata.insert("retry-after", MetadataValue::from(secs));
    Status::with_details_and_metadata(
        code,
        message,
        Bytes::from(details.encode_to_vec()),
        metadata,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_is_in_the_metadata_and_in_retry_info() {
        let status = retry_status(Code::ResourceExhausted, "slow down".into(), 3);
        assert_eq!(
            status
                .metadata()
                .get("retry-after")
                .map(|v| v.to_str().ok()),
            Some(Some("3"))
        );
        let Ok(details) = RpcStatus::decode(status.details()) else {
            panic!("details are a google.rpc.Status");
        };
        assert_eq!(details.code, Code::ResourceExhausted as i32);
        assert_eq!(details.details[0].type_url, RETRY_INFO_TYPE);
        let info = RetryInfo::decode(details.details[0].value.as_slice()).ok();
        let delay = info.and_then(|info| info.retry_delay);
        assert_eq!(delay.map(|d| d.seconds), Some(3));
    }
}
