//! Forgetting an email's jobs for retention: all of them, and only if none is pending.

use mailfwd_domain::delivery::QueueError;
use mailfwd_domain::email::EmailId;

use super::{SqliteDeliveryQueue, queue_error};

impl SqliteDeliveryQueue {
    /// See `DeliveryQueue::forget`. One statement in the writer's batch: the check and
    /// the delete see the same state, so a job made pending again by a reprocess that
    /// committed first keeps every job of the email.
    pub(super) async fn forget_jobs(&self, email: EmailId) -> Result<bool, QueueError> {
        let email = email.to_string();
        self.writer
            .write(false, move |conn| {
                Box::pin(async move {
                    let pending: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM delivery_jobs
                         WHERE email_id = ?1 AND state = 'pending'",
                    )
                    .bind(&email)
                    .fetch_one(&mut *conn)
                    .await?;
                    if pending > 0 {
                        return Ok(false);
                    }
                    sqlx::query("DELETE FROM delivery_jobs WHERE email_id = ?1")
                        .bind(&email)
                        .execute(&mut *conn)
                        .await?;
                    Ok(true)
                })
            })
            .await
            .map_err(queue_error)
    }
}
