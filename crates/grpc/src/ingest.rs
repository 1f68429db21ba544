//! `IngestEmail`: the envelope first, then the body streamed chunk by chunk into the
//! domain's ingest transaction; the reply comes only once the email is durable. The
//! recipient and message policies are the domain's; this file only translates.

use mailfwd_domain::Ingest;
use mailfwd_domain::email::Client;
use mailfwd_domain::ingest::Origin;
use tonic::{Request, Status, Streaming};

use crate::convert;
use crate::error::{GrpcError, refusal_reason};
use crate::pb;
use crate::pb::ingest_email_request::Part;

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
    let recipients = convert::recipients(&envelope.recipients)?;

    // The peer's address is the client: every holder of the API token shares one
    // identity, so the token cannot tell clients apart.
    let client = peer
        .as_deref()
        .map_or_else(|| Client::Named("grpc".into()), Client::from_peer);
    let origin = Origin {
        peer,
        helo: None,
        tls: false,
        // No MAIL FROM parameters over gRPC: the data and the addresses decide.
        declared: mailfwd_domain::Encoding::default(),
        client,
    };
    let mut tx = ingest
        .begin(sender, origin)
        .await
        .map_err(GrpcError::from)?;
    let mut refused = Vec::new();
    for (recipient, given) in recipients.iter().zip(&envelope.recipients) {
        let Err(error) = tx.add_recipient(recipient).await else {
            continue;
        };
        let Some(reason) = refusal_reason(&error) else {
            return Err(GrpcError::from(error).into());
        };
        refused.push(pb::RefusedRecipient {
            recipient: given.clone(),
            reason: reason.into(),
            message: error.to_string(),
        });
    }
    let Ok(addressed) = tx.addressed() else {
        let reasons: Vec<&str> = refused.iter().map(|r| r.message.as_str()).collect();
        return Err(GrpcError::AllRecipientsRefused(reasons.join("; ")).into());
    };
    let accepted = addressed
        .recipients()
        .iter()
        .map(ToString::to_string)
        .collect();

    let mut incoming = addressed
        .start_body()
        .await
        .map_err(|not_started| GrpcError::from(not_started.error))?;
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
    let received = incoming.commit().await.map_err(GrpcError::from)?;
    Ok(pb::IngestEmailResponse {
        email_id: received.id.to_string(),
        accepted_recipients: accepted,
        refused_recipients: refused,
    })
}
