//! Fresh mail, leases, graceful stop, reprocess and restart.

use std::time::Duration;

use mailfwd_domain::delivery::{DeliveryQueue, JobState};
use mailfwd_domain::email::{EmailLog, UnevaluatedStats};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::world::{Answer, LEASE, World, addr, config};

#[tokio::test(start_paused = true)]
async fn fresh_emails_are_attempted_and_their_outcomes_recorded() {
    let world = World::new();
    world.rule("ok@acme.test", "ok@dest.test").await;
    world.rule("later@acme.test", "later@dest.test").await;
    world.rule("no@acme.test", "no@dest.test").await;
    world.mailer.script("later@dest.test", Answer::Defer);
    world.mailer.script("no@dest.test", Answer::Refuse);
    let running = world.start(config(4)).await;

    let started = Instant::now();
    let mut emails = Vec::new();
    for recipient in ["ok@acme.test", "later@acme.test", "no@acme.test"] {
        let email = world.receive(recipient).await;
        running.handoff.accepted(&email);
        emails.push(email);
    }
    let sent = world.mailer.wait_for(3).await;
    assert!(
        sent.iter()
            .all(|s| s.at - started < Duration::from_millis(100)),
        "fresh mail is attempted at once: {sent:?}"
    );
    world
        .until("every outcome is recorded", async || {
            let mut final_or_retried = 0;
            for email in &emails {
                let job = world.find_job(email).await;
                final_or_retried += usize::from(
                    job.is_some_and(|job| job.state.is_final() || job.last_reply.is_some()),
                );
            }
            final_or_retried == 3
        })
        .await;
    let (ok, later, no) = (
        world.job(&emails[0]).await,
        world.job(&emails[1]).await,
        world.job(&emails[2]).await,
    );
    assert_eq!(
        ok.state,
        JobState::Delivered {
            reply: "250 2.0.0 ok".into()
        }
    );
    assert_eq!(later.state, JobState::Pending);
    assert_eq!(later.last_reply.as_deref(), Some("451 4.3.0 try later"));
    assert!(later.next_attempt_at > world.now() + Duration::from_secs(30));
    assert!(matches!(no.state, JobState::Failed { ref reason } if reason.contains("550")));
    assert_eq!(
        world.log.unevaluated_stats().await.unwrap(),
        UnevaluatedStats::default(),
        "every email is marked evaluated"
    );
    running.stop();
    running.stopped().await;
}

/// Real time: the lease in the queue runs on the wall clock.
#[tokio::test]
async fn a_job_that_waited_half_its_lease_is_given_back_and_claimed_afresh() {
    let lease = Duration::from_secs(2);
    let world = World::new();
    world.rule("first@acme.test", "hang@dest.test").await;
    world.rule("second@acme.test", "second@dest.test").await;
    let (open, gate) = watch::channel(false);
    world.mailer.script("hang@dest.test", Answer::Hang(gate));
    let (open_second, second_gate) = watch::channel(false);
    world
        .mailer
        .script("second@dest.test", Answer::Hang(second_gate));
    let mut one_worker = config(1);
    one_worker.lease = lease;
    let running = world.start(one_worker).await;

    let first = world.receive("first@acme.test").await;
    running.handoff.accepted(&first);
    world.mailer.wait_for(1).await;
    let second = world.receive("second@acme.test").await;
    running.handoff.accepted(&second);
    world
        .until("the second job is claimed at evaluation", async || {
            world
                .find_job(&second)
                .await
                .is_some_and(|job| job.attempts == 1)
        })
        .await;
    // The only worker is busy for more than half the second job's lease.
    tokio::time::sleep(lease * 6 / 10).await;
    open.send_replace(true);

    let sent = world.mailer.wait_for(2).await;
    assert_eq!(sent[1].destination, "second@dest.test");
    // Attempted under a claim made just now, not under the one that had less than half
    // its lease left: that one would be claimable by anyone before this attempt ends.
    let original_lease_over = world.now() + lease / 2;
    assert!(
        world
            .queue
            .claim(original_lease_over, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "the attempt holds a fresh lease"
    );
    open_second.send_replace(true);
    world
        .until("the second job is delivered", async || {
            world
                .find_job(&second)
                .await
                .is_some_and(|job| job.state.is_final())
        })
        .await;
    assert_eq!(
        world.job(&second).await.attempts,
        1,
        "the claim given back was not counted"
    );
    running.stop();
    running.stopped().await;
}

/// SIGTERM while a destination hangs: the attempt is cut short, not waited out.
#[tokio::test(start_paused = true)]
async fn a_stop_cuts_attempts_short_and_gives_every_claim_back() {
    let world = World::new();
    let (_never, gate) = watch::channel(false);
    world.mailer.script("hang@dest.test", Answer::Hang(gate));
    world.rule("first@acme.test", "hang@dest.test").await;
    world.rule("*@acme.test", "waiting@dest.test").await;
    let running = world.start(config(1)).await;

    let first = world.receive("first@acme.test").await;
    running.handoff.accepted(&first);
    world.mailer.wait_for(1).await;
    let mut waiting = Vec::new();
    for n in 0..3 {
        let email = world.receive(&format!("w{n}@acme.test")).await;
        running.handoff.accepted(&email);
        waiting.push(email);
    }
    world
        .until("the waiting jobs are claimed at evaluation", async || {
            let mut claimed = 0;
            for email in &waiting {
                claimed += usize::from(world.queue.jobs_of(email.id).await.unwrap().len() == 1);
            }
            claimed == waiting.len()
        })
        .await;

    let asked = Instant::now();
    running.stop();
    running.stopped().await;
    let took = asked.elapsed();
    eprintln!(
        "stopped {took:?} after the stop was asked for, a destination hanging (paused clock)"
    );
    assert!(
        took < Duration::from_secs(1),
        "the hanging attempt is cut short, not waited out: {took:?}"
    );

    assert_eq!(world.mailer.sent().len(), 1, "nothing new is attempted");
    for email in waiting.iter().chain([&first]) {
        let job = world.job(email).await;
        assert_eq!(
            (job.state, job.attempts),
            (JobState::Pending, 0),
            "given back uncounted"
        );
    }
    let due = world.queue.claim(world.now(), LEASE, 10).await.unwrap();
    assert_eq!(
        due.len(),
        4,
        "due at once for the next start, not after the lease"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reprocessed_email_is_attempted_at_once() {
    let world = World::new();
    world.rule("sales@acme.test", "alice@dest.test").await;
    world.mailer.script("alice@dest.test", Answer::Refuse);
    let running = world.start(config(4)).await;
    let email = world.receive("sales@acme.test").await;
    running.handoff.accepted(&email);
    world
        .until("the refused delivery fails", async || {
            world
                .find_job(&email)
                .await
                .is_some_and(|job| job.state.is_final())
        })
        .await;
    // Idle workers look in the queue every 5 s; let them settle into that wait.
    tokio::time::sleep(Duration::from_millis(500)).await;

    world.mailer.script("alice@dest.test", Answer::Deliver);
    let reprocessed = Instant::now();
    let evaluation = running
        .evaluator
        .evaluate(&email, true, world.now())
        .await
        .unwrap();
    assert_eq!(evaluation.destinations[0].0, addr("alice@dest.test"));
    let sent = world.mailer.wait_for(2).await;
    let waited = sent[1].at - reprocessed;
    eprintln!("reprocessed email attempted {waited:?} after ReprocessEmail (paused clock)");
    assert!(
        waited < Duration::from_millis(100),
        "attempted at once, not at the next look at the queue: {waited:?}"
    );
    world
        .until("the reprocessed delivery is recorded", async || {
            matches!(world.job(&email).await.state, JobState::Delivered { .. })
        })
        .await;
    running.stop();
    running.stopped().await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_releases_the_leases_of_the_previous_run() {
    let world = World::new();
    world.rule("sales@acme.test", "alice@dest.test").await;
    let email = world.receive("sales@acme.test").await;
    // The previous run evaluated the email, claimed its job for 15 minutes and died.
    world
        .queue
        .enqueue_claimed(email.id, &[addr("alice@dest.test")], world.now(), LEASE)
        .await
        .unwrap();
    world.log.mark_evaluated(&email.id).await.unwrap();

    let started = Instant::now();
    let running = world.start(config(2)).await;
    let sent = world.mailer.wait_for(1).await;
    assert!(sent[0].at - started < Duration::from_secs(1), "{sent:?}");
    world
        .until("the delivery is recorded", async || {
            world
                .find_job(&email)
                .await
                .is_some_and(|job| job.state.is_final())
        })
        .await;
    let job = world.job(&email).await;
    assert!(matches!(job.state, JobState::Delivered { .. }));
    assert_eq!(
        job.attempts, 2,
        "the killed attempt stays counted: it may have reached the destination"
    );
    running.stop();
    running.stopped().await;
}
