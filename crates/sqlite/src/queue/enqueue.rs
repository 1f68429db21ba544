//! New jobs of many emails in one `INSERT … RETURNING` (see [`crate::coalesce`]): every
//! evaluated email enqueues its jobs, so under load the writer's batch held one
//! `INSERT` per email.

use std::collections::HashSet;

use futures_util::future::BoxFuture;
use mailfwd_domain::delivery::EnqueueOutcome;
use sqlx::QueryBuilder;
use sqlx::sqlite::SqliteConnection;

use super::{NewLease, ROWS_PER_INSERT};

/// The new jobs of one enqueue call: (match key, address) for one email.
pub(super) struct NewJobs {
    pub(super) email: String,
    pub(super) jobs: Vec<(String, String)>,
    pub(super) now: i64,
    pub(super) lease: Option<NewLease>,
}

/// Inserts the jobs of every item that are not there yet, and says for each item what
/// happened to each of its jobs.
///
/// `RETURNING` names the rows inserted, not the call that inserted them, so one
/// statement holds each email once: a second call for one email goes in a later
/// statement (and finds its jobs there). A statement holds at most
/// [`ROWS_PER_INSERT`] jobs; a write of several statements runs under a savepoint, so
/// that it lands all or none.
pub(super) fn enqueue_all<'c>(
    conn: &'c mut SqliteConnection,
    items: &'c [NewJobs],
) -> BoxFuture<'c, Result<Vec<Vec<EnqueueOutcome>>, sqlx::Error>> {
    Box::pin(async move {
        let statements = statements(items);
        if statements.len() == 1 {
            return enqueue_in(conn, items, &statements).await;
        }
        sqlx::query("SAVEPOINT enqueue").execute(&mut *conn).await?;
        match enqueue_in(conn, items, &statements).await {
            Ok(outcomes) => {
                sqlx::query("RELEASE enqueue").execute(&mut *conn).await?;
                Ok(outcomes)
            }
            Err(error) => {
                sqlx::query("ROLLBACK TO enqueue")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("RELEASE enqueue").execute(&mut *conn).await?;
                Err(error)
            }
        }
    })
}

/// The items (by index) of each statement, in order: each email at most once, and at
/// most [`ROWS_PER_INSERT`] jobs, unless one item alone has more (the caller sends no
/// such item here).
fn statements(items: &[NewJobs]) -> Vec<Vec<usize>> {
    let mut statements: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let (mut emails, mut rows) = (HashSet::new(), 0);
    for (index, item) in items.iter().enumerate() {
        let full = rows + item.jobs.len() > ROWS_PER_INSERT;
        if !current.is_empty() && (full || emails.contains(&item.email)) {
            statements.push(std::mem::take(&mut current));
            emails.clear();
            rows = 0;
        }
        emails.insert(&item.email);
        rows += item.jobs.len();
        current.push(index);
    }
    if !current.is_empty() {
        statements.push(current);
    }
    statements
}

async fn enqueue_in(
    conn: &mut SqliteConnection,
    items: &[NewJobs],
    statements: &[Vec<usize>],
) -> Result<Vec<Vec<EnqueueOutcome>>, sqlx::Error> {
    let mut outcomes = vec![Vec::new(); items.len()];
    for statement in statements {
        let inserted = insert(conn, items, statement).await?;
        for &index in statement {
            outcomes[index] = outcomes_of(conn, &items[index], &inserted).await?;
        }
    }
    Ok(outcomes)
}

/// One `INSERT` of the jobs of `items` at `indexes`; the (email, key) of those inserted.
async fn insert(
    conn: &mut SqliteConnection,
    items: &[NewJobs],
    indexes: &[usize],
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO delivery_jobs (email_id, destination_key, destination, state, attempts,
           next_attempt_at, lease, created_at) ",
    );
    let rows = indexes.iter().flat_map(|&index| {
        let item = &items[index];
        item.jobs.iter().map(move |job| (item, job))
    });
    insert.push_values(rows, |mut row, (item, (key, address))| {
        row.push_bind(item.email.clone())
            .push_bind(key.clone())
            .push_bind(address.clone())
            .push("'pending'")
            .push_bind(i64::from(item.lease.is_some()))
            .push_bind(item.lease.map_or(item.now, |l| l.until))
            .push_bind(item.lease.map(|l| l.token))
            .push_bind(item.now);
    });
    insert.push(" ON CONFLICT DO NOTHING RETURNING email_id, destination_key");
    let inserted: Vec<(String, String)> = insert.build_query_as().fetch_all(conn).await?;
    Ok(inserted.into_iter().collect())
}

/// What happened to each job of `item`: inserted, or found there in some state (read
/// only when some were not inserted, which fresh mail never meets).
async fn outcomes_of(
    conn: &mut SqliteConnection,
    item: &NewJobs,
    inserted: &HashSet<(String, String)>,
) -> Result<Vec<EnqueueOutcome>, sqlx::Error> {
    let was_inserted = |key: &String| inserted.contains(&(item.email.clone(), key.clone()));
    if item.jobs.iter().all(|(key, _)| was_inserted(key)) {
        return Ok(vec![EnqueueOutcome::Enqueued; item.jobs.len()]);
    }
    let existing: Vec<(String, String)> =
        sqlx::query_as("SELECT destination_key, state FROM delivery_jobs WHERE email_id = ?1")
            .bind(&item.email)
            .fetch_all(&mut *conn)
            .await?;
    Ok(item
        .jobs
        .iter()
        .map(|(key, _)| {
            if was_inserted(key) {
                return EnqueueOutcome::Enqueued;
            }
            let state = existing
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, s)| s.as_str());
            match state {
                Some("delivered") => EnqueueOutcome::AlreadyDelivered,
                Some("failed") => EnqueueOutcome::AlreadyFailed,
                _ => EnqueueOutcome::AlreadyPending,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(email: &str, jobs: usize) -> NewJobs {
        NewJobs {
            email: email.to_owned(),
            jobs: (0..jobs)
                .map(|n| (format!("k{n}"), format!("a{n}@x.test")))
                .collect(),
            now: 0,
            lease: None,
        }
    }

    #[test]
    fn statements_hold_each_email_once_and_at_most_the_row_limit() {
        let items = [
            item("a", 1),
            item("b", 2),
            item("a", 1),
            item("c", ROWS_PER_INSERT - 1),
            item("d", 2),
        ];
        assert_eq!(
            statements(&items),
            [vec![0, 1], vec![2, 3], vec![4]],
            "a second call for one email, then a full statement, start new ones"
        );
    }
}
