//! The one writer: the received log and the queue share its transactions, and rule
//! changes written through the pool at the same time wait their turn.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mailfwd_domain::delivery::{DeliveryQueue, QueueError};
use mailfwd_domain::email::{EmailLog, now_millis};
use mailfwd_domain::rule::{RecipientPattern, Rule};
use mailfwd_domain::{EmailAddress, EmailId, Envelope, NewEmail, ReceivedEmail, RuleStore};
use mailfwd_sqlite::{Database, SqliteDeliveryQueue, SqliteEmailLog};

fn address(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("a valid address")
}

fn received() -> ReceivedEmail {
    ReceivedEmail {
        id: EmailId::new(),
        email: NewEmail {
            envelope: Envelope {
                sender: Some(address("sender@example.test")),
                recipients: vec![address("sales@acme.test")],
            },
            peer: None,
            helo: None,
            tls: false,
            encoding: mailfwd_domain::Encoding::default(),
        },
        size: 10,
        received_at: now_millis(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_jobs_and_rule_changes_at_once_all_succeed_and_share_commits() {
    let database = Database::open(&common::fresh_url("writer"))
        .await
        .expect("open a fresh database");
    let log = Arc::new(database.email_log());
    let queue = Arc::new(database.queue());
    let rules = Arc::new(database.rules());
    let destinations = [address("a@dest.test"), address("b@dest.test")];

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..100 {
        let (log, queue, rules) = (Arc::clone(&log), Arc::clone(&queue), Arc::clone(&rules));
        let destinations = destinations.clone();
        tasks.spawn(async move {
            // What one email costs the mail path: its record, its jobs claimed at
            // evaluation, the evaluated flag, and each delivery's outcome.
            let email = received();
            log.record(&email).await.map_err(|e| e.to_string())?;
            let now = SystemTime::now();
            let claimed = queue
                .enqueue_claimed(email.id, &destinations, now, Duration::from_secs(60))
                .await
                .map_err(|e| e.to_string())?;
            log.mark_evaluated(&email.id)
                .await
                .map_err(|e| e.to_string())?;
            for (_, job) in claimed {
                let job = job.ok_or("a new job is claimed")?;
                queue
                    .delivered(&job, "250 ok", now)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if n % 10 == 0 {
                // A rule change through the pool, colliding with the writer's batches.
                let pattern = RecipientPattern::parse(&format!("user{n}@acme.test")).unwrap();
                let rule = Rule::new(pattern, vec![address("x@dest.test")], 10).unwrap();
                rules.create(rule).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("the task ran")
            .expect("no write fails under concurrency");
    }

    let writes = 100 * (1 + 1 + 1 + destinations.len() as u64);
    let commits = log.commits();
    eprintln!("{writes} writes took {commits} commits");
    assert!(commits < writes, "writes share commits: {commits}");
    assert!(log.unevaluated(None, 10).await.unwrap().is_empty());
    let stats = queue.stats(SystemTime::now()).await.unwrap();
    assert_eq!(stats.pending, 0, "every job is delivered");
}

/// A log and a queue sharing one writer, on a database whose trigger fails every job
/// inserted for `destination` with `RAISE(raise)`.
async fn stores_refusing(destination: &str, raise: &str) -> (SqliteEmailLog, SqliteDeliveryQueue) {
    let url = common::fresh_url("writer");
    let database = Database::open(&url).await.expect("open a fresh database");
    let trigger = format!(
        "CREATE TRIGGER refuse BEFORE INSERT ON delivery_jobs
         WHEN NEW.destination_key = '{destination}' BEGIN SELECT RAISE({raise}); END"
    );
    // Through a connection of the test's own: the adapter hands out no SQL access.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect to the database");
    sqlx::query(sqlx::AssertSqlSafe(trigger))
        .execute(&mut conn)
        .await
        .expect("create the trigger");
    (database.email_log(), database.queue())
}

#[tokio::test]
async fn a_failed_statement_fails_only_its_own_write() {
    // A statement failure provoked on purpose: a trigger refusing one destination.
    let (log, queue) = stores_refusing("bad@dest.test", "ABORT, 'refused by the test'").await;
    let (email, bad) = (received(), [address("bad@dest.test")]);
    let (recorded, refused) = tokio::join!(
        log.record(&email),
        queue.enqueue(email.id, &bad, false, SystemTime::now()),
    );
    recorded.expect("the record commits");
    let refused = refused.expect_err("the refused insert fails");
    assert!(
        refused.to_string().contains("refused by the test"),
        "{refused}"
    );
    assert_eq!(log.get(&email.id).await.unwrap(), email);
    assert!(queue.jobs_of(email.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_write_that_rolls_back_the_transaction_takes_nothing_else_down_unreported() {
    // RAISE(ROLLBACK) ends the whole transaction, as a full disk or an I/O error would.
    let (log, queue) =
        stores_refusing("doom@dest.test", "ROLLBACK, 'rolled back by the test'").await;
    let (before, after, doom) = (received(), received(), [address("doom@dest.test")]);
    let (recorded_before, doomed, recorded_after) = tokio::join!(
        log.record(&before),
        queue.enqueue(before.id, &doom, false, SystemTime::now()),
        log.record(&after),
    );
    let doomed = doomed.expect_err("the doomed insert fails");
    assert!(
        doomed.to_string().contains("rolled back by the test"),
        "{doomed}"
    );
    // Whatever shared its transaction: answered Ok exactly when it is stored.
    for (email, recorded) in [(&before, recorded_before), (&after, recorded_after)] {
        let stored = log.get(&email.id).await.is_ok();
        assert_eq!(recorded.is_ok(), stored, "{recorded:?}");
    }
    // And the writer goes on.
    let next = received();
    log.record(&next).await.expect("the next record commits");
    assert_eq!(log.get(&next.id).await.unwrap(), next);
}

#[tokio::test]
async fn two_outcomes_of_one_job_in_one_batch_are_told_by_lease() {
    // A worker's lease lapsed and the job was claimed again; the stale outcome and the
    // current one may share one batch, and only the current lease settles the job.
    let database = Database::open(&common::fresh_url("writer"))
        .await
        .expect("open a fresh database");
    let queue = database.queue();
    let email = received();
    let start = SystemTime::now();
    let lease = Duration::from_secs(60);
    queue
        .enqueue(email.id, &[address("a@dest.test")], false, start)
        .await
        .unwrap();
    let stale = queue.claim(start, lease, 1).await.unwrap().remove(0);
    let later = start + lease + Duration::from_secs(1);
    let current = queue.claim(later, lease, 1).await.unwrap().remove(0);

    let (stale_outcome, current_outcome) = tokio::join!(
        queue.failed(&stale, "550 from a stale attempt", later),
        queue.delivered(&current, "250 ok", later),
    );
    assert!(
        matches!(stale_outcome, Err(QueueError::LeaseLost { .. })),
        "{stale_outcome:?}"
    );
    current_outcome.expect("the current lease settles the job");
    let jobs = queue.jobs_of(email.id).await.unwrap();
    assert_eq!(jobs[0].last_reply.as_deref(), Some("250 ok"), "{jobs:?}");
}

#[tokio::test]
async fn records_that_share_a_statement_are_answered_as_it_went() {
    // Records that arrive together share one INSERT: a record refused by a trigger
    // fails with it whatever shared it, each caller hears why, and an answer of Ok
    // means the record is stored.
    let url = common::fresh_url("writer");
    let database = Database::open(&url).await.expect("open a fresh database");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect to the database");
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON emails WHEN NEW.helo = 'refused.test'
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(&mut conn)
    .await
    .expect("create the trigger");
    let log = database.email_log();
    let mut refused = received();
    refused.email.helo = Some("refused.test".to_owned());
    let (good, other) = (received(), received());
    let (good_recorded, refused_recorded, other_recorded) =
        tokio::join!(log.record(&good), log.record(&refused), log.record(&other),);
    let error = refused_recorded.expect_err("the refused record fails");
    assert!(error.to_string().contains("refused by the test"), "{error}");
    assert!(log.get(&refused.id).await.is_err());
    for (email, recorded) in [(&good, good_recorded), (&other, other_recorded)] {
        let stored = log.get(&email.id).await.is_ok();
        assert_eq!(recorded.is_ok(), stored, "{recorded:?}");
        if let Err(error) = recorded {
            assert!(error.to_string().contains("refused by the test"), "{error}");
        }
    }
    // And the writer goes on.
    let next = received();
    log.record(&next).await.expect("the next record commits");
}

#[tokio::test]
async fn jobs_of_many_emails_share_one_insert_and_one_email_is_claimed_once() {
    // New jobs that arrive together share one INSERT … RETURNING; two enqueues of one
    // email in the same batch (an evaluation and a reprocess) must not both claim it.
    let database = Database::open(&common::fresh_url("writer"))
        .await
        .expect("open a fresh database");
    let queue = database.queue();
    let (first, second) = (received(), received());
    let now = SystemTime::now();
    let lease = Duration::from_secs(60);
    let to = [address("a@dest.test"), address("b@dest.test")];
    let (a, b, again) = tokio::join!(
        queue.enqueue_claimed(first.id, &to, now, lease),
        queue.enqueue_claimed(second.id, &to, now, lease),
        queue.enqueue_claimed(first.id, &to, now, lease),
    );
    let claimed = |outcomes: Vec<(mailfwd_domain::delivery::EnqueueOutcome, Option<_>)>| {
        outcomes
            .into_iter()
            .filter(|(_, claimed)| claimed.is_some())
            .count()
    };
    assert_eq!(
        claimed(a.unwrap()) + claimed(again.unwrap()),
        2,
        "each job of one email claimed once"
    );
    assert_eq!(claimed(b.unwrap()), 2);
    assert_eq!(queue.jobs_of(first.id).await.unwrap().len(), 2);
    assert_eq!(queue.jobs_of(second.id).await.unwrap().len(), 2);
}
