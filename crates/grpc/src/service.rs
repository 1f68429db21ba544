//! The `mailfwd.v1.Forwarding` service: each method turns its request into domain
//! types, calls the domain, and turns the result into a reply.

use std::sync::Arc;

use mailfwd_domain::Ingest;
use mailfwd_domain::delivery::{DeliveryQueue, ForwardEvaluator};
use mailfwd_domain::email::{EmailQuery, EmailStore, now_millis};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::GrpcError;
use crate::pb::forwarding_server::Forwarding;
use crate::{convert, ingest, pb};

/// Records read from the store per page while streaming the received log.
const LIST_PAGE: usize = 500;
/// Records buffered ahead of a slow client before reading stops.
const LIST_BUFFER: usize = 64;

/// The Forwarding service over the domain's ports.
pub(crate) struct ForwardingApi {
    pub(crate) ingest: Ingest,
    pub(crate) emails: Arc<dyn EmailStore>,
    pub(crate) evaluator: ForwardEvaluator,
    pub(crate) queue: Arc<dyn DeliveryQueue>,
}

#[tonic::async_trait]
impl Forwarding for ForwardingApi {
    async fn ingest_email(
        &self,
        request: Request<Streaming<pb::IngestEmailRequest>>,
    ) -> Result<Response<pb::IngestEmailResponse>, Status> {
        ingest::ingest_email(&self.ingest, request)
            .await
            .map(Response::new)
    }

    async fn reprocess_email(
        &self,
        request: Request<pb::ReprocessEmailRequest>,
    ) -> Result<Response<pb::ReprocessEmailResponse>, Status> {
        let request = request.into_inner();
        let id = convert::email_id(&request.email_id)?;
        let email = self.emails.get(&id).await.map_err(GrpcError::from)?;
        let evaluation = self
            .evaluator
            .evaluate(&email, request.force, now_millis())
            .await
            .map_err(GrpcError::from)?;
        Ok(Response::new(convert::reprocess_response(id, &evaluation)))
    }

    async fn get_email(
        &self,
        request: Request<pb::GetEmailRequest>,
    ) -> Result<Response<pb::GetEmailResponse>, Status> {
        let id = convert::email_id(&request.into_inner().email_id)?;
        let email = self.emails.get(&id).await.map_err(GrpcError::from)?;
        let jobs = self.queue.jobs_of(id).await.map_err(GrpcError::from)?;
        Ok(Response::new(pb::GetEmailResponse {
            email: Some((&email).into()),
            deliveries: jobs.iter().map(pb::Delivery::from).collect(),
        }))
    }

    type ListReceivedEmailsStream = ReceiverStream<Result<pb::ReceivedEmail, Status>>;

    async fn list_received_emails(
        &self,
        request: Request<pb::ListReceivedEmailsRequest>,
    ) -> Result<Response<Self::ListReceivedEmailsStream>, Status> {
        let query = EmailQuery::try_from(request.into_inner())?;
        let (tx, rx) = mpsc::channel(LIST_BUFFER);
        tokio::spawn(stream_log(Arc::clone(&self.emails), query, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Pages through the received log into `tx`, which holds only a few records at a
/// time: reading waits for the client. Stops when the client goes away.
async fn stream_log(
    emails: Arc<dyn EmailStore>,
    mut query: EmailQuery,
    tx: mpsc::Sender<Result<pb::ReceivedEmail, Status>>,
) {
    query.limit = LIST_PAGE;
    loop {
        let page = match emails.list(&query).await {
            Ok(page) => page,
            Err(error) => {
                let _ = tx.send(Err(GrpcError::from(error).into())).await;
                return;
            }
        };
        for email in &page.emails {
            if tx.send(Ok(email.into())).await.is_err() {
                return;
            }
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return,
        }
    }
}
