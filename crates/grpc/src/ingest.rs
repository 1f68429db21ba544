//! `IngestEmail`: the envelope first, then the body streamed chunk by chunk into the
//! email store; the reply comes only once the email is durable.

use mailfwd_domain::email::{Envelope, NewEmail};
use mailfwd_domain::{EmailAddress, Ingest, IngestError};
use tonic::{Request, Status, Streaming};

use crate::convert;
use crate::error::GrpcError;
use crate::pb;
use crate::pb::ingest_email_request::Part;

/// Recipients sorted into accepted and refused.
struct Checked {
    accepted: Vec<EmailAddress>,
    refused: Vec<pb::RefusedRecipient>,
}

/// Runs one IngestEmail call.
///
/// # Errors
/// The statuses listed for `IngestEmail` in the proto, or the client's own stream error.
pub(crate) async fn ingest_email(
    ingest: &Ingest,
    request: Request<Streaming<pb::IngestEmailRequest>>,
) -> Result<pb::IngestEmailResponse, Status> {
    let peer = request.remote_addr().map(|addr| addr.to_string());
    let mut stream = request.into_inner();
    let envelope = match stream.message().await? {
        Some(pb::IngestEmailRequest {
            part: Some(Part::Envelope(envelope)),
        }) => envelope,
        Some(_) => {
            return Err(GrpcError::invalid(
                "envelope",
                "the first message must carry the envelope",
            )
            .into());
        }
        None => {
            return Err(
                GrpcError::invalid("envelope", "the stream ended before the envelope").into(),
            );
        }
    };
    let sender = convert::sender(&envelope.sender)?;
    let checked = check_recipients(ingest, &envelope.recipients).await?;
    if checked.accepted.is_empty() {
        let reasons: Vec<&str> = checked.refused.iter().map(|r| r.message.as_str()).collect();
        return Err(GrpcError::AllRecipientsRefused(reasons.join("; ")).into());
    }

    let mut incoming = ingest.begin().await.map_err(GrpcError::from)?;
    loop {
        let part = match stream.message().await {
            Ok(Some(message)) => message.part,
            Ok(None) => break,
            Err(status) => {
                incoming.abort().await;
                return Err(status);
            }
        };
        let written = match part {
            Some(Part::Chunk(chunk)) => incoming.write(&chunk).await.map_err(GrpcError::from),
            Some(Part::Envelope(_)) => Err(GrpcError::invalid(
                "envelope",
                "only the first message may carry the envelope",
            )),
            None => Ok(()),
        };
        if let Err(error) = written {
            incoming.abort().await;
            return Err(error.into());
        }
    }

    let email = NewEmail {
        envelope: Envelope {
            sender,
            recipients: checked.accepted.clone(),
        },
        peer,
        helo: None,
        tls: false,
    };
    let received = incoming.commit(email).await.map_err(GrpcError::from)?;
    Ok(pb::IngestEmailResponse {
        email_id: received.id.to_string(),
        accepted_recipients: checked.accepted.iter().map(ToString::to_string).collect(),
        refused_recipients: checked.refused,
    })
}

/// Parses every recipient (a malformed one fails the call, naming it) and asks the
/// rules about each, as SMTP does at RCPT time.
async fn check_recipients(ingest: &Ingest, recipients: &[String]) -> Result<Checked, GrpcError> {
    if recipients.is_empty() {
        return Err(GrpcError::invalid(
            "envelope.recipients",
            "at least one recipient is needed",
        ));
    }
    let parsed = recipients
        .iter()
        .enumerate()
        .map(|(i, r)| convert::address(format!("envelope.recipients[{i}]"), r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut checked = Checked {
        accepted: Vec::new(),
        refused: Vec::new(),
    };
    for (recipient, given) in parsed.into_iter().zip(recipients) {
        let reason = match ingest
            .check_recipient(&recipient, checked.accepted.len())
            .await
        {
            Ok(()) => {
                checked.accepted.push(recipient);
                continue;
            }
            Err(error @ IngestError::UnknownRecipient(_)) => {
                (pb::RefusalReason::UnknownRecipient, error)
            }
            Err(error @ IngestError::TooManyRecipients(_)) => {
                (pb::RefusalReason::TooManyRecipients, error)
            }
            Err(other) => return Err(other.into()),
        };
        checked.refused.push(pb::RefusedRecipient {
            recipient: given.clone(),
            reason: reason.0.into(),
            message: reason.1.to_string(),
        });
    }
    Ok(checked)
}
