//! An attempt never outlasts its lease, and a job past its give-up time is not tried.

use std::time::Duration;

use mailfwd_domain::delivery::{DeliveryQueue, JobState};
use mailfwd_domain::email::EmailLog;
use mailfwd_forwarder::ForwarderConfig;
use tokio::time::Instant;

use crate::world::{Answer, World, addr};

/// The destination that answers a byte a second: one attempt would take ten
/// minutes against a one-minute lease.
#[tokio::test(start_paused = true)]
async fn an_attempt_slower_than_its_lease_is_made_once_and_recorded() {
    let world = World::new();
    world.rule("sales@acme.test", "crawl@slow.test").await;
    world
        .mailer
        .script("crawl@slow.test", Answer::Slow(Duration::from_secs(600)));
    let lease = Duration::from_secs(60);
    let running = world
        .start(ForwarderConfig {
            workers: 4,
            lease,
            attempt_timeout: Duration::from_secs(45),
            ..ForwarderConfig::default()
        })
        .await;
    let email = world.receive("sales@acme.test").await;
    let started = Instant::now();
    running.handoff.accepted(&email);

    // Past the lease and the next look of an idle worker at the queue (which would
    // take over a lapsed lease at 65 s), short of the first retry (at 45 + 60 ± 6 s).
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert_eq!(
        world.mailer.sent_to("crawl@slow.test"),
        1,
        "the destination received the message once"
    );
    assert_eq!(
        world.mailer.most_at_once("slow.test"),
        1,
        "never twice at once"
    );
    let job = world.job(&email).await;
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(job.attempts, 1);
    assert_eq!(
        job.last_reply.as_deref(),
        Some("attempt deadline of 45 s exceeded"),
        "the outcome was recorded"
    );
    let retry_in = job.next_attempt_at.duration_since(world.now()).unwrap();
    eprintln!(
        "attempt cut at 45 s of a 60 s lease, recorded; retry in {retry_in:?} ({:?} in)",
        started.elapsed()
    );
    assert!(
        world
            .queue
            .claim(world.now(), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "no lease left to run out"
    );
    running.stop();
    running.stopped().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_past_its_give_up_time_fails_instead_of_being_attempted() {
    let world = World::new();
    let email = world.receive("sales@acme.test").await;
    let enqueued = world.now() - Duration::from_secs(5 * 24 * 3600 + 60);
    world
        .queue
        .enqueue(email.id, &[addr("alice@dest.test")], false, enqueued)
        .await
        .unwrap();
    world.log.mark_evaluated(&email.id).await.unwrap();

    let running = world.start(crate::world::config(2)).await;
    world
        .until("the job is final", async || {
            world.job(&email).await.state.is_final()
        })
        .await;
    assert_eq!(
        world.job(&email).await.state,
        JobState::Failed {
            reason: "gave up after 0 attempts over 5d; last: no attempt was made".into()
        }
    );
    assert!(world.mailer.sent().is_empty(), "never attempted");
    running.stop();
    running.stopped().await;
}
