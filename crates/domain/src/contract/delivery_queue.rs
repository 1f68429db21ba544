//! The `DeliveryQueue` contract.

use std::time::{Duration, SystemTime};

use crate::EmailAddress;
use crate::delivery::{DeliveryQueue, EnqueueOutcome, JobState, QueueError};
use crate::email::{EmailId, now_millis};

const LEASE: Duration = Duration::from_secs(60);

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn later(t: SystemTime, secs: u64) -> SystemTime {
    t + Duration::from_secs(secs)
}

pub async fn enqueue_is_idempotent_unless_forced(queue: &dyn DeliveryQueue) {
    let now = now_millis();
    let email = EmailId::new();
    let dests = [addr("a@x.test"), addr("b@x.test")];
    use EnqueueOutcome::*;
    assert_eq!(
        queue.enqueue(email, &dests, false, now).await.unwrap(),
        vec![Enqueued, Enqueued]
    );
    assert_eq!(
        queue.enqueue(email, &dests, false, now).await.unwrap(),
        vec![AlreadyPending, AlreadyPending]
    );
    let claimed = queue.claim(now, LEASE, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    queue.delivered(&claimed[0], "250 ok", now).await.unwrap();
    let again = queue
        .enqueue(email, &[addr("A@x.test"), addr("b@x.test")], false, now)
        .await
        .unwrap();
    assert_eq!(again, vec![AlreadyDelivered, AlreadyPending]);
    assert_eq!(
        queue.enqueue(email, &dests, true, now).await.unwrap(),
        vec![Requeued, Requeued]
    );
    let jobs = queue.jobs_of(email).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(
        jobs.iter()
            .all(|j| j.state == JobState::Pending && j.attempts == 0)
    );
    assert!(queue.jobs_of(EmailId::new()).await.unwrap().is_empty());
}

pub async fn enqueue_claimed_holds_new_jobs_for_the_caller(queue: &dyn DeliveryQueue) {
    let now = now_millis();
    let email = EmailId::new();
    let dests = [addr("a@x.test"), addr("b@x.test")];
    let first = queue
        .enqueue_claimed(email, &dests, now, LEASE)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    for ((outcome, claimed), destination) in first.iter().zip(&dests) {
        assert_eq!(*outcome, EnqueueOutcome::Enqueued);
        let claimed = claimed.as_ref().expect("a new job is claimed");
        assert_eq!(&claimed.job.destination, destination);
        assert_eq!(claimed.job.state, JobState::Pending);
        assert_eq!(claimed.job.attempts, 1, "the claim counts the attempt");
    }
    let (a, b) = (first[0].1.clone().unwrap(), first[1].1.clone().unwrap());
    assert!(
        queue.claim(now, LEASE, 10).await.unwrap().is_empty(),
        "nobody else claims a held job"
    );
    queue.delivered(&a, "250 ok", now).await.unwrap();

    let again = queue
        .enqueue_claimed(email, &dests, now, LEASE)
        .await
        .unwrap();
    use EnqueueOutcome::*;
    assert_eq!(
        again,
        vec![(AlreadyDelivered, None), (AlreadyPending, None)]
    );

    let taken = queue.claim(later(now, 61), LEASE, 10).await.unwrap();
    assert_eq!(taken.len(), 1, "a lapsed lease is claimed by anyone");
    assert_eq!(taken[0].job.destination, dests[1]);
    assert_eq!(taken[0].job.attempts, 2);
    assert!(matches!(
        queue.failed(&b, "too late", now).await,
        Err(QueueError::LeaseLost { .. })
    ));
}

pub async fn a_released_claim_is_due_at_once_and_uncounted(queue: &dyn DeliveryQueue) {
    let now = now_millis();
    let email = EmailId::new();
    let claimed = queue
        .enqueue_claimed(email, &[addr("a@x.test")], now, LEASE)
        .await
        .unwrap();
    let held = claimed[0].1.clone().unwrap();
    queue.release(&held, now).await.unwrap();
    let again = queue.claim(now, LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1, "due at once");
    assert_eq!(
        again[0].job.attempts, 1,
        "the released claim's attempt was taken back"
    );
    assert!(
        matches!(
            queue.release(&held, now).await,
            Err(QueueError::LeaseLost { .. })
        ),
        "an old claim cannot release the new one"
    );
    queue.delivered(&again[0], "250 ok", now).await.unwrap();
}

pub async fn claims_are_exclusive_until_the_lease_expires(queue: &dyn DeliveryQueue) {
    let now = now_millis();
    let email = EmailId::new();
    queue
        .enqueue(email, &[addr("a@x.test")], false, now)
        .await
        .unwrap();
    let first = queue.claim(now, LEASE, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].job.attempts, 1);
    assert!(
        queue.claim(now, LEASE, 10).await.unwrap().is_empty(),
        "a leased job is not claimed twice"
    );
    let expired = later(now, 61);
    let second = queue.claim(expired, LEASE, 10).await.unwrap();
    assert_eq!(second.len(), 1, "an expired lease is claimed again");
    assert_eq!(second[0].job.attempts, 2);
    assert_ne!(second[0].lease, first[0].lease);
    assert!(matches!(
        queue.delivered(&first[0], "250 late", expired).await,
        Err(QueueError::LeaseLost { .. })
    ));
    queue
        .delivered(&second[0], "250 2.0.0 ok", expired)
        .await
        .unwrap();
    let job = &queue.jobs_of(email).await.unwrap()[0];
    assert_eq!(
        job.state,
        JobState::Delivered {
            reply: "250 2.0.0 ok".to_owned()
        }
    );
    assert!(
        queue
            .claim(later(now, 3600), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "final jobs are never claimed"
    );
}

pub async fn retries_come_back_when_due_and_failures_are_final(queue: &dyn DeliveryQueue) {
    let now = now_millis();
    let email = EmailId::new();
    queue
        .enqueue(email, &[addr("a@x.test"), addr("b@x.test")], false, now)
        .await
        .unwrap();
    let claimed = queue.claim(now, LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    queue
        .retry_later(&claimed[0], "451 4.3.0 try later", later(now, 300))
        .await
        .unwrap();
    queue
        .failed(&claimed[1], "550 5.1.1 no such user", now)
        .await
        .unwrap();

    assert!(
        queue
            .claim(later(now, 299), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let stats = queue.stats(later(now, 299)).await.unwrap();
    assert_eq!((stats.pending, stats.due), (1, 0));
    assert!(
        stats.oldest_pending_age >= Duration::from_secs(298),
        "enqueued at `now`, retried since: {:?}",
        stats.oldest_pending_age
    );
    let stats = queue.stats(later(now, 310)).await.unwrap();
    assert_eq!((stats.pending, stats.due), (1, 1));
    assert!(
        stats.oldest_due_age >= Duration::from_secs(9)
            && stats.oldest_due_age <= Duration::from_secs(11)
    );

    let jobs = queue.jobs_of(email).await.unwrap();
    let retried = jobs
        .iter()
        .find(|j| j.destination == addr("a@x.test"))
        .unwrap();
    assert_eq!(retried.state, JobState::Pending);
    assert_eq!(retried.last_reply.as_deref(), Some("451 4.3.0 try later"));
    assert_eq!(retried.next_attempt_at, later(now, 300));
    let failed = jobs
        .iter()
        .find(|j| j.destination == addr("b@x.test"))
        .unwrap();
    assert_eq!(
        failed.state,
        JobState::Failed {
            reason: "550 5.1.1 no such user".to_owned()
        }
    );

    let again = queue.claim(later(now, 301), LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job.attempts, 2);
}

pub async fn claim_respects_the_limit_and_hands_out_distinct_jobs(queue: &dyn DeliveryQueue) {
    let now = now_millis();
    for _ in 0..5 {
        queue
            .enqueue(
                EmailId::new(),
                &[addr("a@x.test"), addr("b@x.test")],
                false,
                now,
            )
            .await
            .unwrap();
    }
    let first = queue.claim(now, LEASE, 4).await.unwrap();
    let second = queue.claim(now, LEASE, 100).await.unwrap();
    assert_eq!((first.len(), second.len()), (4, 6));
    let mut keys: Vec<_> = first
        .iter()
        .chain(&second)
        .map(|c| (c.job.email, c.job.destination.to_string()))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 10);
}

pub async fn release_all_leases_makes_held_jobs_due_at_once_and_keeps_their_attempts(
    queue: &dyn DeliveryQueue,
) {
    let now = now_millis();
    let (held, waiting, done) = (EmailId::new(), EmailId::new(), EmailId::new());
    let fresh = queue
        .enqueue_claimed(held, &[addr("a@x.test")], now, LEASE)
        .await
        .unwrap();
    let fresh = fresh[0].1.clone().unwrap();
    queue
        .enqueue(done, &[addr("b@x.test")], false, now)
        .await
        .unwrap();
    let finished = queue.claim(now, LEASE, 10).await.unwrap();
    assert_eq!(finished.len(), 1);
    queue.delivered(&finished[0], "250 ok", now).await.unwrap();
    queue
        .enqueue(waiting, &[addr("c@x.test")], false, now)
        .await
        .unwrap();
    let claimed = queue.claim(now, LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let retry_at = later(now, 3600);
    queue
        .retry_later(&claimed[0], "451 later", retry_at)
        .await
        .unwrap();
    let held_again = queue.claim(later(now, 61), LEASE, 10).await.unwrap();
    assert_eq!(held_again.len(), 1, "the lapsed fresh lease is taken over");

    assert_eq!(
        queue.release_all_leases(later(now, 62)).await.unwrap(),
        1,
        "one job is held; the delivered one and the one waiting for its retry are not"
    );
    let due = queue.claim(later(now, 62), LEASE, 10).await.unwrap();
    assert_eq!(due.len(), 1, "the released job is due at once");
    assert_eq!(due[0].job.email, held);
    assert_eq!(
        due[0].job.attempts, 3,
        "the released attempts stay counted: they may have reached the destination"
    );
    for old in [&fresh, &held_again[0]] {
        assert!(matches!(
            queue.delivered(old, "250 late", later(now, 62)).await,
            Err(QueueError::LeaseLost { .. })
        ));
    }
    let jobs = queue.jobs_of(waiting).await.unwrap();
    assert_eq!(jobs[0].next_attempt_at, retry_at, "a retry keeps its time");
    assert!(matches!(
        queue.jobs_of(done).await.unwrap()[0].state,
        JobState::Delivered { .. }
    ));
    assert_eq!(queue.release_all_leases(later(now, 63)).await.unwrap(), 1);
    assert_eq!(
        queue.release_all_leases(later(now, 63)).await.unwrap(),
        0,
        "nothing is held any more"
    );
}

pub async fn a_release_may_postpone_the_job(queue: &dyn DeliveryQueue) {
    let now = now_millis();
    let email = EmailId::new();
    queue
        .enqueue(email, &[addr("a@x.test")], false, now)
        .await
        .unwrap();
    let held = queue.claim(now, LEASE, 10).await.unwrap().remove(0);
    // Its destination is busy: back in the queue, due in 30 s, unattempted.
    queue.release(&held, later(now, 30)).await.unwrap();
    assert!(
        queue
            .claim(later(now, 29), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = queue.claim(later(now, 30), LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1, "due when asked");
    assert_eq!(
        again[0].job.attempts, 1,
        "the postponed claim was not counted"
    );
}

pub async fn a_lost_lease_records_nothing_and_leaves_the_new_lease_alone(
    queue: &dyn DeliveryQueue,
) {
    let now = now_millis();
    let email = EmailId::new();
    queue
        .enqueue(email, &[addr("a@x.test")], false, now)
        .await
        .unwrap();
    let slow = queue.claim(now, LEASE, 10).await.unwrap().remove(0);
    let expired = later(now, 61);
    let current = queue.claim(expired, LEASE, 10).await.unwrap().remove(0);
    // The slow worker's attempt ends at last; none of what it says may stick.
    let far = later(now, 86_400);
    let lost = |result: Result<(), QueueError>| matches!(result, Err(QueueError::LeaseLost { .. }));
    assert!(lost(queue.retry_later(&slow, "451 slow", far).await));
    assert!(lost(queue.failed(&slow, "550 slow", expired).await));
    assert!(lost(queue.release(&slow, far).await));
    assert!(lost(queue.delivered(&slow, "250 slow", expired).await));
    let job = &queue.jobs_of(email).await.unwrap()[0];
    assert_eq!(
        (&job.state, job.attempts, job.last_reply.as_deref()),
        (&JobState::Pending, 2, None)
    );
    assert!(
        queue
            .claim(later(expired, 59), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "the current lease holds until it ends, neither shortened nor given away"
    );
    let after = queue.claim(later(expired, 61), LEASE, 10).await.unwrap();
    assert_eq!(after.len(), 1, "nor extended: it ends when it was meant to");
    assert!(lost(
        queue
            .delivered(&current, "250 late", later(expired, 61))
            .await
    ));
}

pub async fn an_email_is_forgotten_only_once_every_job_is_final(queue: &dyn DeliveryQueue) {
    let now = now_millis();
    let (email, other) = (EmailId::new(), EmailId::new());
    queue
        .enqueue(email, &[addr("a@x.test"), addr("b@x.test")], false, now)
        .await
        .unwrap();
    queue
        .enqueue(other, &[addr("c@x.test")], false, now)
        .await
        .unwrap();
    assert!(!queue.forget(email).await.unwrap(), "both jobs pending");
    let mut claimed = queue.claim(now, LEASE, 3).await.unwrap();
    claimed.retain(|job| job.job.email == email);
    queue.delivered(&claimed[0], "250 ok", now).await.unwrap();
    assert!(!queue.forget(email).await.unwrap(), "one job still pending");
    assert_eq!(queue.jobs_of(email).await.unwrap().len(), 2);
    queue.failed(&claimed[1], "550 no", now).await.unwrap();
    assert!(queue.forget(email).await.unwrap());
    assert!(queue.jobs_of(email).await.unwrap().is_empty());
    assert!(queue.forget(email).await.unwrap(), "nothing left to forget");
    assert!(
        queue.forget(EmailId::new()).await.unwrap(),
        "no jobs at all"
    );
    assert_eq!(
        queue.jobs_of(other).await.unwrap().len(),
        1,
        "others untouched"
    );
}
