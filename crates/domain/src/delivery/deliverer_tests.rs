use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::EmailAddress;
use crate::delivery::JobState;
use crate::delivery::{DeliveryOutcome, Mailer, Outgoing};
use crate::email::ReceivedEmail;
use crate::email::{Envelope, NewEmail, SplitEmailStore};
use crate::memory::{MemoryBodyStore, MemoryDeliveryQueue, MemoryEmailLog};

const DAY: Duration = Duration::from_secs(24 * 3600);
const LEASE: Duration = Duration::from_secs(60);

/// A destination that never answers, counting the messages it was given.
#[derive(Default)]
struct Silent(AtomicUsize);

#[async_trait]
impl Mailer for Silent {
    async fn send(&self, _message: Outgoing) -> Vec<DeliveryOutcome> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
}

/// A clock fixed at a time.
struct Fixed(SystemTime);

impl Clock for Fixed {
    fn now(&self) -> SystemTime {
        self.0
    }
}

struct World {
    queue: Arc<MemoryDeliveryQueue>,
    mailer: Arc<Silent>,
    deliverer: Deliverer,
    email: ReceivedEmail,
}

/// One stored email with one job, enqueued at `enqueued`; the deliverer's clock reads
/// `now`.
async fn world(enqueued: SystemTime, now: SystemTime) -> World {
    let emails: Arc<dyn EmailStore> = Arc::new(SplitEmailStore::new(
        Arc::new(MemoryBodyStore::new()),
        Arc::new(MemoryEmailLog::new()),
    ));
    let mut writer = emails.begin().await.unwrap();
    writer.write(b"Subject: hi\r\n\r\nhello\r\n").await.unwrap();
    let email = writer
        .commit(NewEmail {
            envelope: Envelope {
                sender: None,
                recipients: vec![EmailAddress::parse("sales@acme.test").unwrap()],
            },
            peer: None,
            helo: None,
            tls: false,
            encoding: crate::email::Encoding::default(),
        })
        .await
        .unwrap();
    let queue = Arc::new(MemoryDeliveryQueue::new());
    let destination = EmailAddress::parse("alice@dest.test").unwrap();
    queue
        .enqueue(email.id, &[destination], false, enqueued)
        .await
        .unwrap();
    let mailer = Arc::new(Silent::default());
    let deliverer = Deliverer::new(
        emails,
        queue.clone(),
        mailer.clone(),
        RetryPolicy::default(),
        "mx.test".into(),
    )
    .with_clock(Arc::new(Fixed(now)));
    World {
        queue,
        mailer,
        deliverer,
        email,
    }
}

impl World {
    async fn claim(&self) -> ClaimedJob {
        self.deliverer.claim(LEASE, 1).await.unwrap().remove(0)
    }

    async fn job(&self) -> DeliveryJob {
        self.queue.jobs_of(self.email.id).await.unwrap().remove(0)
    }
}

#[tokio::test]
async fn a_job_past_its_give_up_time_fails_without_an_attempt() {
    let enqueued = SystemTime::UNIX_EPOCH + 1000 * DAY;
    let world = world(enqueued, enqueued + 5 * DAY + Duration::from_secs(1)).await;
    let claimed = world.claim().await;
    assert!(world.deliverer.is_past_give_up(&claimed.job));

    let mut attempted = world
        .deliverer
        .attempt(std::slice::from_ref(&claimed), None, std::future::pending())
        .await;
    let reason = "gave up after 0 attempts over 5d; last: no attempt was made";
    assert_eq!(
        attempted.recorded.remove(0).unwrap(),
        Attempt::Failed(reason.into())
    );
    assert_eq!(attempted.contact, Contact::None);
    assert_eq!(world.mailer.0.load(Ordering::SeqCst), 0, "never sent");
    assert_eq!(
        world.job().await.state,
        JobState::Failed {
            reason: reason.into()
        }
    );
}

#[tokio::test]
async fn an_attempt_cut_short_by_its_deadline_is_deferred_as_unreachable() {
    let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
    let world = world(now, now).await;
    let claimed = world.claim().await;
    let deadline = async { Interruption::Deadline(Duration::from_secs(600)) };

    let attempted = world
        .deliverer
        .attempt(std::slice::from_ref(&claimed), None, deadline)
        .await;
    assert_eq!(attempted.contact, Contact::Unreachable);
    let reply = "attempt deadline of 600 s exceeded";
    assert!(
        matches!(attempted.recorded[0], Ok(Attempt::Deferred(at, ref r)) if r == reply && at > now)
    );
    assert_eq!(world.mailer.0.load(Ordering::SeqCst), 1);
    let job = world.job().await;
    assert_eq!(
        (job.state, job.attempts, job.last_reply.as_deref()),
        (JobState::Pending, 1, Some(reply))
    );
    assert!(
        world.queue.claim(now, LEASE, 1).await.unwrap().is_empty(),
        "recorded, not left under a lease that runs out into a repeat"
    );
}

#[tokio::test]
async fn an_attempt_stopped_half_way_is_given_back_due_at_once_and_uncounted() {
    let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
    let world = world(now, now).await;
    let claimed = world.claim().await;

    let mut attempted = world
        .deliverer
        .attempt(std::slice::from_ref(&claimed), None, async {
            Interruption::Stop
        })
        .await;
    assert_eq!(attempted.recorded.remove(0).unwrap(), Attempt::GivenBack);
    let job = world.job().await;
    assert_eq!((job.state, job.attempts), (JobState::Pending, 0));
    assert_eq!(world.queue.claim(now, LEASE, 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_job_for_an_unreachable_destination_is_deferred_untried() {
    let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
    let world = world(now, now).await;
    let claimed = world.claim().await;
    let revived = now + Duration::from_secs(600);

    let reason = "destination dest.test is unreachable, not tried: connection refused";
    let attempt = world
        .deliverer
        .defer_untried(&claimed, reason, revived)
        .await
        .unwrap();
    assert_eq!(attempt, Attempt::Deferred(revived, reason.into()));
    assert_eq!(world.mailer.0.load(Ordering::SeqCst), 0);

    let postponed = world.claim_at(revived).await;
    world
        .deliverer
        .postpone(&postponed, Duration::from_secs(5))
        .await
        .unwrap();
    let job = world.job().await;
    assert_eq!(job.attempts, 1, "a postponement is not an attempt");
    assert_eq!(job.next_attempt_at, now + Duration::from_secs(5));
}

impl World {
    async fn claim_at(&self, at: SystemTime) -> ClaimedJob {
        self.queue.claim(at, LEASE, 1).await.unwrap().remove(0)
    }
}

#[test]
fn give_up_periods_read_as_written() {
    assert_eq!(span(5 * DAY), "5d");
    assert_eq!(span(Duration::from_secs(36 * 3600)), "36h");
    assert_eq!(span(Duration::from_secs(90 * 60)), "90m");
    assert_eq!(span(Duration::from_secs(45)), "45s");
}
