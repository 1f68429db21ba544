//! `mailfwd migrate-emails --from URL --to URL`: moves every stored body from one email
//! store to another while `serve` keeps running (configured with the new store as
//! `MAILFWD_EMAIL_STORE` and the old one as `MAILFWD_EMAIL_STORE_OLD`).
//!
//! It walks the received log in id order, a page at a time (no long transaction), and
//! moves each body with [`BodyMover`]: copied, read back and compared (size and
//! SHA-256), the source deleted only with `--delete-source` and only after. Bodies
//! move a few at a time (`--concurrency`) but are finished in id order, so a
//! checkpoint file can say "everything up to this id is done": a run killed and started
//! again skips that far, and finds the few it had copied past it already in the target,
//! which it checks rather than copies again.

mod checkpoint;
mod progress;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt, stream};
use mailfwd_domain::EmailId;
use mailfwd_domain::email::BodyStore;
use mailfwd_domain::email::{EmailLog, EmailQuery, ReceivedEmail, StoreError};
use mailfwd_layers::{BodyMover, MoveError, Moved};

use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::storage::{Opening, open_body_store, open_database};
use checkpoint::Checkpoint;
use progress::{Progress, Tally};

/// Records read from the log per page.
const PAGE: usize = 500;

/// Runs the migration and prints a summary; exit status 0 when every body was moved
/// (or already was), 1 otherwise.
pub async fn run(config: Config, args: MigrateArgs) -> ExitCode {
    match migrate(&config, &args).await {
        Ok(tally) => {
            println!("{}", tally.summary());
            if tally.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("mailfwd migrate-emails: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: &Config, args: &MigrateArgs) -> Result<Tally, Box<dyn std::error::Error>> {
    if args.from == args.to {
        return Err("--from and --to name the same store".into());
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let database = open_database(
        &config.database_url(),
        &config.pool_settings(),
        &config.instance_id(),
        Opening::AtOnce,
    )
    .await?;
    let from = open_body_store("--from", &args.from, &database.bodies)?;
    let to = open_body_store("--to", &args.to, &database.bodies)?;
    if same_store(from.as_ref(), to.as_ref()).await? {
        // Two spellings of one store (a trailing slash, a symlink, a relative path):
        // every body would look copied already, and --delete-source delete it.
        return Err(
            "--from and --to are the same store: a body written to --to is read back from --from"
                .into(),
        );
    }
    let mut mover = BodyMover::new(from, to, args.delete_source);
    if let Some(rate) = args.rate_limit {
        mover = mover.with_rate_limit(rate);
    }
    let log = database.log;
    let mut checkpoint =
        Checkpoint::open(&config.data_dir, &args.from, &args.to, args.delete_source)?;
    let resumed_after = checkpoint.done_up_to();
    let (emails, bytes) = count(log.as_ref(), resumed_after).await?;
    let progress = Progress::start(emails, bytes, resumed_after.is_some());

    let mover = Arc::new(mover);
    let mut moves = std::pin::pin!(
        records(Arc::clone(&log), resumed_after)
            .map_ok(|email| {
                let mover = Arc::clone(&mover);
                async move {
                    let outcome = mover.move_body(&email.id).await;
                    Ok::<_, StoreError>((email, outcome))
                }
            })
            .try_buffered(usize::from(args.concurrency.get()))
    );
    let started = Instant::now();
    let mut tally = Tally::default();
    while let Some(next) = moves.next().await {
        let (email, outcome) = next?;
        match &outcome {
            Ok(moved) => tally.count(*moved),
            // Retention (or an operator) deleted the email after this page was read:
            // nothing left to move, and no reason to stop the checkpoint for good.
            Err(MoveError::Missing(id)) if gone(log.as_ref(), id).await? => tally.gone += 1,
            // A small body kept in its record (MAILFWD_INLINE_BODY_LIMIT): it stays
            // there, in the database, whichever body store is configured.
            Err(MoveError::Missing(id)) if log.inline_body(id).await?.is_some() => {
                tally.in_record += 1;
            }
            Err(error) => {
                tally.failed += 1;
                progress.error(&format!("email {}: {error}", email.id));
            }
        }
        progress.advance(email.size, &tally);
        // In order: every email up to this one is done (failures are retried by the
        // next run only if the checkpoint stops before them).
        if tally.failed == 0 {
            checkpoint.done(email.id)?;
        }
    }
    checkpoint.flush()?;
    tally.elapsed = started.elapsed();
    progress.finish(&tally);
    Ok(tally)
}

impl Tally {
    fn count(&mut self, moved: Moved) {
        match moved {
            Moved::Copied { bytes } => {
                self.copied += 1;
                self.copied_bytes += bytes;
            }
            Moved::AlreadyThere { .. } => self.already_there += 1,
            Moved::OnlyInTarget => self.only_in_target += 1,
        }
    }
}

/// Whether `from` sees what is written to `to`: then both name one store.
async fn same_store(from: &dyn BodyStore, to: &dyn BodyStore) -> Result<bool, StoreError> {
    let probe = EmailId::new();
    let mut writer = to.create(&probe).await?;
    writer
        .write(b"mailfwd migrate-emails: same store?\r\n")
        .await?;
    writer.commit().await?;
    let seen = from.open(&probe).await.is_ok();
    to.delete(&probe).await?;
    Ok(seen)
}

/// Whether the record of `id` is gone from the log.
async fn gone(log: &dyn EmailLog, id: &EmailId) -> Result<bool, StoreError> {
    match log.get(id).await {
        Ok(_) => Ok(false),
        Err(StoreError::NotFound(_)) => Ok(true),
        Err(other) => Err(other),
    }
}

/// How many records follow `after` in the log, and their bodies' total size.
async fn count(log: &dyn EmailLog, after: Option<EmailId>) -> Result<(u64, u64), StoreError> {
    let (mut emails, mut bytes) = (0, 0);
    let mut cursor = after.map(|id| id.to_string());
    loop {
        let page = log.list(&page_after(cursor)).await?;
        emails += page.emails.len() as u64;
        bytes += page.emails.iter().map(|email| email.size).sum::<u64>();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok((emails, bytes)),
        }
    }
}

/// Every record after `after` (from the first when `None`), in id order, read a page
/// at a time as the stream is consumed.
fn records(
    log: Arc<dyn EmailLog>,
    after: Option<EmailId>,
) -> impl futures_util::Stream<Item = Result<ReceivedEmail, StoreError>> {
    let start = Some(after.map(|id| id.to_string()));
    stream::try_unfold(start, move |cursor| {
        let log = Arc::clone(&log);
        async move {
            let Some(cursor) = cursor else {
                return Ok(None);
            };
            let page = log.list(&page_after(cursor)).await?;
            let next = page.next_cursor.map(Some);
            Ok(Some((stream::iter(page.emails.into_iter().map(Ok)), next)))
        }
    })
    .try_flatten()
}

/// A page of the whole log (all time), after `cursor`.
fn page_after(cursor: Option<String>) -> EmailQuery {
    EmailQuery {
        since: None,
        until: None,
        limit: PAGE,
        cursor,
    }
}
