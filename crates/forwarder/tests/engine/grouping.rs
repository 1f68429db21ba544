//! Recipients grouped per destination (ADR 0017): one email's jobs for one next hop go
//! in one transaction, up to the recipient limit, and each is recorded on its own.

use mailfwd_domain::ReceivedEmail;
use mailfwd_domain::delivery::{DeliveryQueue, JobState};
use mailfwd_forwarder::ForwarderConfig;

use crate::world::{Answer, World, config};

/// `count` addresses `user0@domain` … at one domain.
fn at(domain: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("user{n}@{domain}")).collect()
}

async fn states(world: &World, email: &ReceivedEmail) -> Vec<(String, String)> {
    let jobs = world.queue.jobs_of(email.id).await.unwrap();
    jobs.into_iter()
        .map(|job| (job.destination.to_string(), job.state.name().to_owned()))
        .collect()
}

async fn until_final(world: &World, emails: &[ReceivedEmail]) {
    world
        .until("every job is final", async || {
            for email in emails {
                let jobs = world.queue.jobs_of(email.id).await.unwrap();
                if jobs.is_empty() || !jobs.iter().all(|job| job.state.is_final()) {
                    return false;
                }
            }
            true
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_rule_of_ten_destinations_at_one_domain_makes_one_send_per_message() {
    let world = World::new();
    let ten = at("dest.test", 10);
    let refs: Vec<&str> = ten.iter().map(String::as_str).collect();
    world.rule_to_all("sales@acme.test", &refs).await;
    let running = world.start(config(4)).await;

    let mut emails = Vec::new();
    for _ in 0..3 {
        let email = world.receive("sales@acme.test").await;
        running.handoff.accepted(&email);
        emails.push(email);
    }
    until_final(&world, &emails).await;

    let transactions = world.mailer.transactions();
    assert_eq!(
        transactions.len(),
        3,
        "one send per message: {transactions:?}"
    );
    for recipients in &transactions {
        let mut recipients = recipients.clone();
        recipients.sort();
        let mut expected = ten.clone();
        expected.sort();
        assert_eq!(recipients, expected);
    }
    for email in &emails {
        let states = states(&world, email).await;
        assert_eq!(states.len(), 10);
        assert!(
            states.iter().all(|(_, state)| state == "delivered"),
            "{states:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn recipients_beyond_the_limit_go_in_further_transactions_and_other_domains_apart() {
    let world = World::new();
    let mut destinations = at("dest.test", 8);
    destinations.extend(at("other.test", 2));
    let refs: Vec<&str> = destinations.iter().map(String::as_str).collect();
    world.rule_to_all("sales@acme.test", &refs).await;
    let mut config: ForwarderConfig = config(4);
    config.destinations.recipient_limit = 3;
    let running = world.start(config).await;

    let email = world.receive("sales@acme.test").await;
    running.handoff.accepted(&email);
    until_final(&world, std::slice::from_ref(&email)).await;

    let mut sizes: Vec<(String, usize)> = world
        .mailer
        .transactions()
        .iter()
        .map(|recipients| {
            let domain = recipients[0].split('@').nth(1).unwrap().to_owned();
            assert!(
                recipients.iter().all(|r| r.ends_with(&domain)),
                "{recipients:?}"
            );
            (domain, recipients.len())
        })
        .collect();
    sizes.sort();
    assert_eq!(
        sizes,
        [
            ("dest.test".to_owned(), 2),
            ("dest.test".to_owned(), 3),
            ("dest.test".to_owned(), 3),
            ("other.test".to_owned(), 2),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn each_job_of_a_group_is_recorded_on_its_own() {
    let world = World::new();
    world
        .rule_to_all(
            "sales@acme.test",
            &["ok@dest.test", "no@dest.test", "later@dest.test"],
        )
        .await;
    world.mailer.script("no@dest.test", Answer::Refuse);
    world.mailer.script("later@dest.test", Answer::Defer);
    let running = world.start(config(4)).await;

    let email = world.receive("sales@acme.test").await;
    running.handoff.accepted(&email);
    world
        .until("every job is recorded", async || {
            let jobs = world.queue.jobs_of(email.id).await.unwrap();
            jobs.len() == 3
                && jobs
                    .iter()
                    .all(|job| job.state.is_final() || job.last_reply.is_some())
        })
        .await;

    assert_eq!(world.mailer.transactions().len(), 1);
    let jobs = world.queue.jobs_of(email.id).await.unwrap();
    let by_destination = |destination: &str| {
        jobs.iter()
            .find(|job| job.destination.to_string() == destination)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_destination("ok@dest.test").state,
        JobState::Delivered {
            reply: "250 2.0.0 ok".into()
        }
    );
    assert_eq!(
        by_destination("no@dest.test").state,
        JobState::Failed {
            reason: "550 5.1.1 no such user".into()
        }
    );
    let later = by_destination("later@dest.test");
    assert_eq!(later.state, JobState::Pending);
    assert_eq!(later.last_reply.as_deref(), Some("451 4.3.0 try later"));
    assert!(later.next_attempt_at > world.now());
}
