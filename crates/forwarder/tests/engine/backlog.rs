//! Backlogs: what a restart left unevaluated, and what overflows the hand-off.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mailfwd_domain::email::{EmailLog, UnevaluatedStats};
use mailfwd_forwarder::ForwarderConfig;
use tokio::time::Instant;

use crate::world::{LEASE, World};

#[tokio::test(start_paused = true)]
async fn a_backlog_larger_than_the_handoff_is_delivered_without_waiting_for_scans() {
    const LEFT_BY_A_RESTART: usize = 40;
    const BURST: usize = 60;
    let world = World::new();
    world.rule("*@acme.test", "alice@dest.test").await;
    let mut expected = HashSet::new();
    for n in 0..LEFT_BY_A_RESTART {
        expected.insert(world.receive(&format!("old{n}@acme.test")).await.id);
    }
    let stats = world.log.unevaluated_stats().await.unwrap();
    assert_eq!(stats.count, LEFT_BY_A_RESTART as u64);

    let started = Instant::now();
    let running = world
        .start(ForwarderConfig {
            workers: 4,
            lease: LEASE,
            handoff: 4,
            evaluating: 8,
            backlog_page: 16,
            ..ForwarderConfig::default()
        })
        .await;
    for n in 0..BURST {
        let email = world.receive(&format!("new{n}@acme.test")).await;
        // All at once: most of them overflow the hand-off of 4.
        running.handoff.accepted(&email);
        expected.insert(email.id);
    }

    let sent = world.mailer.wait_for(LEFT_BY_A_RESTART + BURST).await;
    let took = started.elapsed();
    eprintln!(
        "backlog: {} emails through a hand-off of 4 delivered in {took:?} (paused clock)",
        sent.len()
    );
    assert!(
        took < Duration::from_secs(1),
        "no wait for a periodic scan: {took:?}"
    );
    let delivered: HashSet<_> = sent.iter().map(|s| s.email).collect();
    assert_eq!(delivered, expected, "every email once");
    assert_eq!(sent.len(), expected.len(), "no email twice");
    // Two lookups per evaluation: the recipient, and its destination (which could
    // have a rule of its own, to be expanded).
    assert_eq!(
        world.rules.resolved.load(Ordering::SeqCst),
        2 * expected.len(),
        "each email evaluated once: none read while it was being evaluated"
    );
    world
        .until("every email is marked evaluated", async || {
            world.log.unevaluated_stats().await.unwrap() == UnevaluatedStats::default()
        })
        .await;
    running.stop();
    running.stopped().await;
}

#[tokio::test(start_paused = true)]
async fn emails_accepted_before_the_start_wait_for_it_and_are_not_lost() {
    let world = World::new();
    world.rule("*@acme.test", "alice@dest.test").await;
    let config = ForwarderConfig {
        workers: 2,
        lease: LEASE,
        handoff: 2,
        ..ForwarderConfig::default()
    };
    let forwarder = world.forwarder(config);
    let handoff = forwarder.handoff();
    let mut expected = HashSet::new();
    for n in 0..5 {
        let email = world.receive(&format!("early{n}@acme.test")).await;
        handoff.accepted(&email);
        expected.insert(email.id);
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = forwarder.start(stopped).await;
    let sent = world.mailer.wait_for(5).await;
    let delivered: HashSet<_> = sent.iter().map(|s| s.email).collect();
    assert_eq!(delivered, expected);
    assert_eq!(sent.len(), 5, "no email twice");
    stop.send_replace(true);
    tasks.join_all().await;
}

#[tokio::test(start_paused = true)]
async fn an_email_whose_evaluation_failed_is_evaluated_again_shortly() {
    let world = World::new();
    world.rule("sales@acme.test", "alice@dest.test").await;
    let running = world.start(crate::world::config(2)).await;
    world.rules.fail_next.store(1, Ordering::SeqCst);
    let started = Instant::now();
    let email = world.receive("sales@acme.test").await;
    running.handoff.accepted(&email);

    let sent = world.mailer.wait_for(1).await;
    let took = sent[0].at - started;
    assert_eq!(sent[0].email, email.id);
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "tried again after 5 s, not in a loop and not never: {took:?}"
    );
    // The failed lookup of the recipient, then the recipient and its destination.
    assert_eq!(world.rules.resolved.load(Ordering::SeqCst), 3);
    running.stop();
    running.stopped().await;
}
