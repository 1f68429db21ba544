use std::sync::Arc;
use std::time::Duration;

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::DeliveryQueue;
use mailfwd_domain::email::{
    EmailStore, Envelope, NewEmail, ReceivedEmail, SplitEmailStore, StoreError, now_millis,
};
use mailfwd_domain::memory::{MemoryBodyStore, MemoryDeliveryQueue, MemoryEmailLog};

use super::{Retention, RetentionPass};

const DAY: Duration = Duration::from_secs(24 * 3600);

struct Stores {
    emails: Arc<dyn EmailStore>,
    queue: Arc<dyn DeliveryQueue>,
}

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

impl Stores {
    fn new() -> Stores {
        Stores {
            emails: Arc::new(SplitEmailStore::new(
                Arc::new(MemoryBodyStore::new()),
                Arc::new(MemoryEmailLog::new()),
            )),
            queue: Arc::new(MemoryDeliveryQueue::new()),
        }
    }

    /// An email with one delivery to `to`: evaluated and in the state `outcome` says
    /// (`None`: pending); unevaluated, without a job, if `evaluated` is false.
    async fn email(&self, evaluated: bool, outcome: Option<&str>) -> ReceivedEmail {
        let mut writer = self.emails.begin().await.unwrap();
        writer.write(b"Subject: old\r\n\r\nx\r\n").await.unwrap();
        let email = writer
            .commit(NewEmail {
                envelope: Envelope {
                    sender: Some(addr("someone@example.org")),
                    recipients: vec![addr("sales@acme.test")],
                },
                peer: None,
                helo: None,
                tls: false,
                encoding: mailfwd_domain::Encoding::default(),
            })
            .await
            .unwrap();
        if !evaluated {
            return email;
        }
        let now = now_millis();
        let claimed = self
            .queue
            .enqueue_claimed(email.id, &[addr("alice@dest.test")], now, DAY)
            .await
            .unwrap();
        let job = claimed[0].1.clone().unwrap();
        match outcome {
            Some("delivered") => self.queue.delivered(&job, "250 ok", now).await.unwrap(),
            Some(_) => self.queue.failed(&job, "550 no", now).await.unwrap(),
            None => {}
        }
        self.emails.mark_evaluated(&email.id).await.unwrap();
        email
    }

    async fn exists(&self, email: &ReceivedEmail) -> bool {
        match self.emails.get(&email.id).await {
            Ok(_) => {
                self.emails.open_body(&email.id).await.unwrap();
                true
            }
            Err(StoreError::NotFound(_)) => {
                assert!(matches!(
                    self.emails.open_body(&email.id).await,
                    Err(StoreError::NotFound(_))
                ));
                assert!(self.queue.jobs_of(email.id).await.unwrap().is_empty());
                false
            }
            Err(other) => panic!("{other}"),
        }
    }
}

#[tokio::test]
async fn old_finished_emails_go_and_pending_or_unevaluated_or_recent_ones_stay() {
    let stores = Stores::new();
    let retention = Retention::new(
        Arc::clone(&stores.emails),
        Arc::clone(&stores.queue),
        30 * DAY,
    );
    let delivered = stores.email(true, Some("delivered")).await;
    let failed = stores.email(true, Some("failed")).await;
    let pending = stores.email(true, None).await;
    let unevaluated = stores.email(false, None).await;

    // Nothing is 30 days old yet.
    let pass = retention.pass(now_millis()).await.unwrap();
    assert_eq!(pass, RetentionPass::default());

    let later = now_millis() + 31 * DAY;
    let pass = retention.pass(later).await.unwrap();
    assert_eq!(
        pass,
        RetentionPass {
            deleted: 2,
            kept_pending: 1,
            kept_unevaluated: 1,
            failed: 0
        }
    );
    assert!(!stores.exists(&delivered).await);
    assert!(!stores.exists(&failed).await);
    assert!(stores.exists(&pending).await);
    assert!(stores.exists(&unevaluated).await);
    assert_eq!(stores.queue.jobs_of(pending.id).await.unwrap().len(), 1);
    assert_eq!(
        retention.interval(),
        Duration::from_secs(3600),
        "at most hourly"
    );
}
