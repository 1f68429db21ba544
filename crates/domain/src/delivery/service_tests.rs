use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;
use crate::delivery::{
    Attempt, Deliverer, DeliveryOutcome, JobState, Mailer, Outgoing, RetryPolicy,
};
use crate::email::{EmailStore, Envelope, NewEmail, SplitEmailStore};
use crate::memory::{MemoryBodyStore, MemoryDeliveryQueue, MemoryEmailLog, MemoryRuleStore};
use crate::{RecipientPattern, Rule};

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

/// A mailer that records what it was given (the recipients, comma-separated, and the
/// bytes) and answers each recipient from a script, in order.
struct ScriptedMailer {
    answers: Mutex<Vec<DeliveryOutcome>>,
    sent: Mutex<Vec<(String, Vec<u8>)>>,
}

#[async_trait]
impl Mailer for ScriptedMailer {
    async fn send(&self, mut message: Outgoing) -> Vec<DeliveryOutcome> {
        let mut bytes = Vec::new();
        while let Some(chunk) = message.body.next_chunk().await.unwrap() {
            bytes.extend_from_slice(&chunk);
        }
        assert_eq!(bytes.len() as u64, message.size);
        let recipients: Vec<String> = message.recipients.iter().map(ToString::to_string).collect();
        self.sent
            .lock()
            .unwrap()
            .push((recipients.join(","), bytes));
        let mut answers = self.answers.lock().unwrap();
        answers.drain(..message.recipients.len()).collect()
    }
}

struct World {
    emails: Arc<dyn EmailStore>,
    queue: Arc<MemoryDeliveryQueue>,
    evaluator: ForwardEvaluator,
}

async fn world() -> World {
    let rules = Arc::new(MemoryRuleStore::new());
    let rule = |p: &str, d: &[&str]| {
        Rule::new(
            RecipientPattern::parse(p).unwrap(),
            d.iter().map(|a| addr(a)).collect(),
            10,
        )
        .unwrap()
    };
    rules
        .create(rule(
            "sales@acme.test",
            &["alice@gmail.test", "bob@corp.test"],
        ))
        .await
        .unwrap();
    rules
        .create(rule("*@acme.test", &["bob@corp.test"]))
        .await
        .unwrap();
    let emails: Arc<dyn EmailStore> = Arc::new(SplitEmailStore::new(
        Arc::new(MemoryBodyStore::new()),
        Arc::new(MemoryEmailLog::new()),
    ));
    let queue = Arc::new(MemoryDeliveryQueue::new());
    let evaluator = ForwardEvaluator::new(rules, queue.clone());
    World {
        emails,
        queue,
        evaluator,
    }
}

async fn store(world: &World, recipients: &[&str], body: &[u8]) -> ReceivedEmail {
    store_from(world, Some("x@sender.test"), recipients, body).await
}

/// Stores an email from `sender` (`None`: the null sender) to `recipients`, which may
/// be SRS addresses longer than a plain address may be.
async fn store_from(
    world: &World,
    sender: Option<&str>,
    recipients: &[&str],
    body: &[u8],
) -> ReceivedEmail {
    let mut writer = world.emails.begin().await.unwrap();
    writer.write(body).await.unwrap();
    let email = NewEmail {
        envelope: Envelope {
            sender: sender.map(addr),
            recipients: recipients
                .iter()
                .map(|r| EmailAddress::parse_rewritten(r).unwrap())
                .collect(),
        },
        peer: Some("192.0.2.1:5000".into()),
        helo: Some("sender.test".into()),
        tls: false,
        encoding: crate::email::Encoding::default(),
    };
    writer.commit(email).await.unwrap()
}

#[tokio::test]
async fn evaluation_merges_destinations_and_is_idempotent() {
    let world = world().await;
    let email = store(
        &world,
        &["sales@acme.test", "other@acme.test", "gone@else.test"],
        b"body",
    )
    .await;
    let now = SystemTime::now();
    let evaluation = world.evaluator.evaluate(&email, false, now).await.unwrap();
    assert_eq!(
        evaluation.destinations,
        vec![
            (addr("alice@gmail.test"), EnqueueOutcome::Enqueued),
            (addr("bob@corp.test"), EnqueueOutcome::Enqueued)
        ]
    );
    assert_eq!(evaluation.unmatched, vec![addr("gone@else.test")]);
    let again = world.evaluator.evaluate(&email, false, now).await.unwrap();
    assert!(
        again
            .destinations
            .iter()
            .all(|(_, o)| *o == EnqueueOutcome::AlreadyPending)
    );
}

#[tokio::test]
async fn delivery_prepends_one_received_header_and_records_outcomes() {
    let world = world().await;
    let body = b"Subject: hi\r\n\r\nhello\r\n";
    let email = store(&world, &["sales@acme.test"], body).await;
    world
        .evaluator
        .evaluate(&email, false, SystemTime::now())
        .await
        .unwrap();
    let mailer = Arc::new(ScriptedMailer {
        answers: Mutex::new(vec![
            DeliveryOutcome::Delivered("250 2.0.0 ok".into()),
            DeliveryOutcome::Transient("451 4.3.0 later".into()),
        ]),
        sent: Mutex::new(Vec::new()),
    });
    let deliverer = Deliverer::new(
        world.emails.clone(),
        world.queue.clone(),
        mailer.clone(),
        RetryPolicy::default(),
        "mx.test".into(),
    );
    let claimed = deliverer.claim(Duration::from_secs(60), 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(matches!(
        deliverer.deliver(&claimed[0]).await.unwrap(),
        Attempt::Delivered(_)
    ));
    assert!(matches!(
        deliverer.deliver(&claimed[1]).await.unwrap(),
        Attempt::Deferred(_, _)
    ));

    let (recipient, bytes) = mailer.sent.lock().unwrap()[0].clone();
    assert_eq!(recipient, "alice@gmail.test");
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with(
        "Received: from sender.test ([192.0.2.1])\r\n\tby mx.test (mailfwd) with ESMTP id "
    ));
    assert!(bytes.ends_with(body), "the original follows unchanged");
    assert_eq!(text.matches("Received:").count(), 1);

    let jobs = world.queue.jobs_of(email.id).await.unwrap();
    assert_eq!(
        jobs[0].state,
        JobState::Delivered {
            reply: "250 2.0.0 ok".into()
        }
    );
    assert_eq!(jobs[1].state, JobState::Pending);
    assert_eq!(jobs[1].last_reply.as_deref(), Some("451 4.3.0 later"));
}

#[tokio::test]
async fn a_fresh_email_is_claimed_at_evaluation_and_delivered_without_a_claim() {
    let world = world().await;
    let body = b"Subject: fresh\r\n\r\nhello\r\n";
    let email = store(&world, &["sales@acme.test"], body).await;
    let lease = Duration::from_secs(60);
    let (evaluation, claimed) = world
        .evaluator
        .evaluate_and_claim(&email, SystemTime::now(), lease)
        .await
        .unwrap();
    assert_eq!(evaluation.destinations.len(), 2);
    assert_eq!(claimed.len(), 2, "both new jobs are held for the caller");
    let (_, again) = world
        .evaluator
        .evaluate_and_claim(&email, SystemTime::now(), lease)
        .await
        .unwrap();
    assert!(again.is_empty(), "existing jobs are not claimed twice");

    let mailer = Arc::new(ScriptedMailer {
        answers: Mutex::new(vec![
            DeliveryOutcome::Delivered("250 2.0.0 ok".into()),
            DeliveryOutcome::Delivered("250 2.0.0 ok".into()),
        ]),
        sent: Mutex::new(Vec::new()),
    });
    let deliverer = Deliverer::new(
        world.emails.clone(),
        world.queue.clone(),
        mailer.clone(),
        RetryPolicy::default(),
        "mx.test".into(),
    );
    assert!(
        deliverer.claim(lease, 10).await.unwrap().is_empty(),
        "no worker can claim them meanwhile"
    );
    for job in &claimed {
        let attempt = deliverer.deliver_email(job, &email).await.unwrap();
        assert!(matches!(attempt, Attempt::Delivered(_)));
    }
    let sent = mailer.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(_, bytes)| bytes.ends_with(body)));
    let jobs = world.queue.jobs_of(email.id).await.unwrap();
    assert!(
        jobs.iter()
            .all(|job| job.state.is_final() && job.attempts == 1)
    );
}

#[tokio::test]
async fn a_group_goes_as_one_message_and_each_job_is_recorded_on_its_own() {
    let world = world().await;
    let body = b"Subject: group\r\n\r\nhello\r\n";
    let email = store(&world, &["sales@acme.test"], body).await;
    let lease = Duration::from_secs(60);
    let (_, claimed) = world
        .evaluator
        .evaluate_and_claim(&email, SystemTime::now(), lease)
        .await
        .unwrap();
    let mailer = Arc::new(ScriptedMailer {
        answers: Mutex::new(vec![
            DeliveryOutcome::Delivered("250 2.0.0 ok".into()),
            DeliveryOutcome::Permanent("550 5.1.1 no such user".into()),
        ]),
        sent: Mutex::new(Vec::new()),
    });
    let deliverer = Deliverer::new(
        world.emails.clone(),
        world.queue.clone(),
        mailer.clone(),
        RetryPolicy::default(),
        "mx.test".into(),
    );

    let attempted = deliverer
        .attempt(&claimed, Some(&email), std::future::pending())
        .await;
    assert_eq!(attempted.contact, crate::delivery::Contact::Delivered);
    let recorded: Vec<Attempt> = attempted.recorded.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        recorded,
        vec![
            Attempt::Delivered("250 2.0.0 ok".into()),
            Attempt::Failed("550 5.1.1 no such user".into())
        ]
    );
    let sent = mailer.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one message for both");
    assert_eq!(sent[0].0, "alice@gmail.test,bob@corp.test");
    let text = String::from_utf8(sent[0].1.clone()).unwrap();
    let header = text.split("Subject:").next().unwrap();
    assert!(
        !header.contains("for <"),
        "a copy for two names neither: {header}"
    );
    let jobs = world.queue.jobs_of(email.id).await.unwrap();
    let states: Vec<&str> = jobs.iter().map(|job| job.state.name()).collect();
    assert_eq!(states, ["delivered", "failed"]);
}

/// Counts what an evaluator reports to its listener.
#[derive(Default)]
struct Counting(Mutex<Vec<(EmailId, usize)>>);

impl EnqueueListener for Counting {
    fn enqueued(&self, email: EmailId, jobs: usize) {
        self.0.lock().unwrap().push((email, jobs));
    }
}

#[tokio::test]
async fn the_listener_hears_of_new_and_forced_jobs_only() {
    let world = world().await;
    let heard = Arc::new(Counting::default());
    let evaluator = world.evaluator.clone().with_listener(heard.clone());
    let email = store(&world, &["sales@acme.test"], b"body").await;
    let now = SystemTime::now();
    evaluator.evaluate(&email, false, now).await.unwrap();
    evaluator.evaluate(&email, false, now).await.unwrap();
    evaluator.evaluate(&email, true, now).await.unwrap();
    let fresh = store(&world, &["other@acme.test"], b"body").await;
    let (_, claimed) = evaluator
        .evaluate_and_claim(&fresh, now, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the caller holds the fresh job");
    assert_eq!(
        *heard.0.lock().unwrap(),
        vec![(email.id, 2), (email.id, 2)],
        "told of the two new jobs and of the two forced again; not of pending or claimed ones"
    );
}

#[tokio::test]
async fn bounces_go_to_the_reversed_address_and_postmaster_to_its_mailbox_unless_a_rule_says_otherwise()
 {
    let mut world = world().await;
    let srs = crate::Srs::new(
        crate::Domain::parse("fwd.test").unwrap(),
        vec!["k".into()],
        21,
    )
    .unwrap();
    let own = Arc::new(crate::OwnAddresses::new(
        srs,
        crate::Domain::parse("mx.fwd.test").unwrap(),
        Some(addr("admin@sales.test")),
    ));
    world.evaluator = world.evaluator.with_own_addresses(Arc::clone(&own));
    let now = SystemTime::now();
    let alice = addr("alice@sender.test");
    let fresh = own.srs().forward(Some(&alice), now).unwrap().to_string();
    let expired = own
        .srs()
        .forward(
            Some(&addr("old@sender.test")),
            now - Duration::from_secs(86_400 * 30),
        )
        .unwrap()
        .to_string();
    let recipients = [
        fresh.as_str(),
        expired.as_str(),
        "postmaster@mx.fwd.test",
        "postmaster@acme.test",
    ];
    let email = store_from(&world, None, &recipients, b"x").await;
    let evaluation = world.evaluator.evaluate(&email, false, now).await.unwrap();
    let destinations: Vec<String> = evaluation
        .destinations
        .iter()
        .map(|(address, _)| address.to_string())
        .collect();
    // The catch-all of acme.test takes its postmaster: a rule wins.
    assert_eq!(
        destinations,
        ["alice@sender.test", "admin@sales.test", "bob@corp.test"]
    );
    assert_eq!(
        evaluation.unmatched,
        [EmailAddress::parse_rewritten(&expired).unwrap()]
    );
}
