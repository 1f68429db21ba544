//! Conversions at the edge: proto messages into domain types (failing with the field
//! named), and domain records into proto messages.

use std::time::SystemTime;

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{DeliveryJob, EnqueueOutcome, Evaluation, JobState};
use mailfwd_domain::email::{EmailId, EmailQuery, ReceivedEmail};

use crate::error::GrpcError;
use crate::pb;

/// Parses the `email_id` field.
pub(crate) fn email_id(value: &str) -> Result<EmailId, GrpcError> {
    EmailId::parse(value).map_err(|e| GrpcError::invalid("email_id", e))
}

/// Parses an address held in `field`.
pub(crate) fn address(field: impl Into<String>, value: &str) -> Result<EmailAddress, GrpcError> {
    EmailAddress::parse(value).map_err(|e| GrpcError::invalid(field, e))
}

/// The `envelope.recipients` field: at least one, each an address (a malformed one
/// fails the call, naming it).
pub(crate) fn recipients(values: &[String]) -> Result<Vec<EmailAddress>, GrpcError> {
    if values.is_empty() {
        return Err(GrpcError::invalid(
            "envelope.recipients",
            "at least one recipient is needed",
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, value)| address(format!("envelope.recipients[{i}]"), value))
        .collect()
}

/// The sender: empty is the null reverse path.
pub(crate) fn sender(value: &str) -> Result<Option<EmailAddress>, GrpcError> {
    if value.is_empty() {
        return Ok(None);
    }
    address("envelope.sender", value).map(Some)
}

fn time(
    field: &str,
    value: Option<prost_types::Timestamp>,
) -> Result<Option<SystemTime>, GrpcError> {
    value
        .map(|t| SystemTime::try_from(t).map_err(|e| GrpcError::invalid(field, e)))
        .transpose()
}

impl TryFrom<pb::ListReceivedEmailsRequest> for EmailQuery {
    type Error = GrpcError;

    fn try_from(request: pb::ListReceivedEmailsRequest) -> Result<Self, GrpcError> {
        let since = time("since", request.since)?;
        let until = time("until", request.until)?;
        if let (Some(since), Some(until)) = (since, until)
            && until <= since
        {
            return Err(GrpcError::invalid("until", "must be after 'since'"));
        }
        Ok(EmailQuery {
            since,
            until,
            limit: 0,
            cursor: None,
        })
    }
}

impl From<&ReceivedEmail> for pb::ReceivedEmail {
    fn from(email: &ReceivedEmail) -> Self {
        let envelope = &email.email.envelope;
        pb::ReceivedEmail {
            email_id: email.id.to_string(),
            received_at: Some(email.received_at.into()),
            sender: envelope
                .sender
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            recipients: envelope
                .recipients
                .iter()
                .map(ToString::to_string)
                .collect(),
            size: email.size,
            peer: email.email.peer.clone(),
            helo: email.email.helo.clone(),
            tls: email.email.tls,
        }
    }
}

impl From<&DeliveryJob> for pb::Delivery {
    fn from(job: &DeliveryJob) -> Self {
        let state = match job.state {
            JobState::Pending => pb::DeliveryState::Pending,
            JobState::Delivered { .. } => pb::DeliveryState::Delivered,
            JobState::Failed { .. } => pb::DeliveryState::Failed,
        };
        pb::Delivery {
            destination: job.destination.to_string(),
            state: state.into(),
            attempts: job.attempts,
            next_attempt_at: (!job.state.is_final()).then(|| job.next_attempt_at.into()),
            last_reply: job.last_reply.clone(),
        }
    }
}

fn outcome(outcome: EnqueueOutcome) -> pb::ReprocessOutcome {
    match outcome {
        EnqueueOutcome::Enqueued => pb::ReprocessOutcome::Enqueued,
        EnqueueOutcome::Requeued => pb::ReprocessOutcome::Requeued,
        EnqueueOutcome::AlreadyDelivered => pb::ReprocessOutcome::AlreadyDelivered,
        EnqueueOutcome::AlreadyPending => pb::ReprocessOutcome::AlreadyPending,
        EnqueueOutcome::AlreadyFailed => pb::ReprocessOutcome::AlreadyFailed,
    }
}

/// The ReprocessEmail reply for what evaluating `id` did.
pub(crate) fn reprocess_response(
    id: EmailId,
    evaluation: &Evaluation,
) -> pb::ReprocessEmailResponse {
    let destinations = evaluation
        .destinations
        .iter()
        .map(|(address, done)| pb::ReprocessResult {
            address: address.to_string(),
            outcome: outcome(*done).into(),
            detail: String::new(),
        });
    let unmatched = evaluation
        .unmatched
        .iter()
        .map(|address| pb::ReprocessResult {
            address: address.to_string(),
            outcome: pb::ReprocessOutcome::NoLongerMatched.into(),
            detail: String::new(),
        });
    let not_followed = evaluation.cuts.iter().map(|cut| pb::ReprocessResult {
        address: cut.path.last().cloned().unwrap_or_default(),
        outcome: pb::ReprocessOutcome::NotFollowed.into(),
        detail: cut.to_string(),
    });
    pb::ReprocessEmailResponse {
        email_id: id.to_string(),
        results: destinations.chain(unmatched).chain(not_followed).collect(),
    }
}
