//! Hearing what other instances did: rule changes, for the rule caches, and delivery
//! jobs made due, for the idle workers.
//!
//! Every rule write notifies [`payload::CHANNEL`] in its own transaction, and every
//! queue write that leaves jobs due for any instance notifies [`jobs::CHANNEL`] (see
//! there). A [`ChangeListener`] listens on both on a connection of its own and reports
//! each notification as a [`Change`]. Notifications sent while nobody listens are gone
//! for good (sqlx's `PgListener::recv` even reconnects without saying so), so the
//! listener uses `try_recv`, which does say, and once it listens again reports
//! [`Invalidation::All`] and [`Change::JobsDue`] with an unknown count: after every
//! (re)connection, the first one included.

pub(crate) mod jobs;
pub(crate) mod payload;

use std::time::Duration;

use mailfwd_domain::Invalidation;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::PgDatabase;

/// How the listener keeps its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// After this long without a notification, the connection is checked with a
    /// query: a connection that died without closing (a network partition) would
    /// otherwise look like a quiet one for as long as TCP takes to notice.
    pub ping_interval: Duration,
    /// How long that check may take before the connection counts as lost.
    pub ping_timeout: Duration,
    /// How long connecting (and starting to listen) may take.
    pub connect_timeout: Duration,
    /// How long to wait after a failed attempt to connect before the next one. A lost
    /// connection is replaced at once; only failures wait.
    pub retry_delay: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// What a notification said another instance (or this one) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Rules changed: what a rule cache must forget.
    Rules(Invalidation),
    /// About this many delivery jobs became due for any instance to claim (jobs given
    /// back, taken over from a silent instance, or reprocessed); `None` when unknown
    /// (notifications may have been missed).
    JobsDue(Option<u64>),
}

/// A background task that reports the changes made through any instance on the
/// database (this one included) to a callback, until it is stopped or dropped.
///
/// The callback runs on the listener's task, so it must be quick (a cache
/// invalidation, waking workers). It gets `Change::Rules(Invalidation::All)` whenever
/// notifications may have been missed: when the listener (re)connects, when it loses
/// its connection, and after every failed attempt to connect (so while it cannot
/// listen, a cache it feeds holds nothing older than [`ListenerSettings::retry_delay`]
/// and an attempt); and `Change::JobsDue(None)` whenever it (re)connects, for the jobs
/// whose notifications it missed (until then, workers find them by polling).
#[derive(Debug)]
pub struct ChangeListener {
    stop: watch::Sender<bool>,
    listening: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl ChangeListener {
    /// Starts listening on `database` with a connection of its own (outside the pool,
    /// which it leaves whole; its `application_name` ends in "change listener"). Never
    /// fails: while the database cannot be reached it keeps retrying, and logs why.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn(
        database: &PgDatabase,
        settings: ListenerSettings,
        on_change: impl Fn(Change) + Send + Sync + 'static,
    ) -> ChangeListener {
        let options = listener_options(&database.pool().connect_options());
        let (stop, stopped) = watch::channel(false);
        let (listening_tx, listening) = watch::channel(false);
        let task = tokio::spawn(async move {
            run(options, settings, on_change, stopped, &listening_tx).await;
            listening_tx.send_replace(false);
        });
        ChangeListener {
            stop,
            listening,
            task,
        }
    }

    /// Whether the listener is connected and listening right now (for health checks:
    /// while it is not, other instances' changes reach this one's cache only through
    /// flushes, and their due jobs its workers only through polling).
    #[must_use]
    pub fn is_listening(&self) -> bool {
        // A task that ended by a panic (in the callback) never said it stopped.
        *self.listening.borrow() && !self.task.is_finished()
    }

    /// Waits until the listener is connected and listening (at once if it is).
    pub async fn listening(&self) {
        let mut listening = self.listening.clone();
        // Only fails once the task has ended, when there is nothing left to wait for.
        let _ = listening.wait_for(|listening| *listening).await;
    }

    /// Stops listening and waits until the task has ended. Dropping the listener stops
    /// it too, without waiting.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the change listener ended abnormally");
        }
    }
}

/// The pool's connection settings, named so the listener's session can be told apart.
fn listener_options(pool_options: &PgConnectOptions) -> PgConnectOptions {
    let name = match pool_options.get_application_name() {
        Some(name) => format!("{name} change listener"),
        None => "mailfwd change listener".to_owned(),
    };
    pool_options.clone().application_name(&name)
}

/// Resolves once the listener is told to stop (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The listener's task: connect, report, and start over whenever the connection is lost.
async fn run(
    options: PgConnectOptions,
    settings: ListenerSettings,
    on_change: impl Fn(Change),
    mut stop: watch::Receiver<bool>,
    listening: &watch::Sender<bool>,
) {
    // Whether the last attempt failed too: one warning per outage, not one per attempt.
    let mut failing = false;
    loop {
        let connected = tokio::select! {
            () = stopped(&mut stop) => return,
            connected = connect(&options, &settings) => connected,
        };
        match connected {
            Ok(mut listener) => {
                // Only now that new changes will be heard: what changed while nobody
                // listened (before the first connection or since the last) is unknown.
                on_change(Change::Rules(Invalidation::All));
                on_change(Change::JobsDue(None));
                listening.send_replace(true);
                failing = false;
                tracing::info!("listening for rule changes and due jobs of other instances");
                let lost = tokio::select! {
                    () = stopped(&mut stop) => return,
                    lost = receive(&mut listener, &settings, &on_change) => lost,
                };
                listening.send_replace(false);
                // Dropping it rather than letting sqlx reconnect: a new listener starts
                // from a known state, whatever the old one was doing when it failed.
                drop(listener);
                on_change(Change::Rules(Invalidation::All));
                tracing::warn!(
                    "the change listener lost its connection ({lost}): flushed the rule \
                     cache, reconnecting"
                );
            }
            Err(error) => {
                on_change(Change::Rules(Invalidation::All));
                if failing {
                    tracing::debug!(%error, "still cannot listen for changes");
                } else {
                    tracing::warn!(
                        %error,
                        "cannot listen for the changes of other instances (the rule cache \
                         is flushed at every attempt meanwhile); retrying every {:?}",
                        settings.retry_delay
                    );
                }
                failing = true;
                tokio::select! {
                    () = stopped(&mut stop) => return,
                    () = tokio::time::sleep(settings.retry_delay) => {}
                }
            }
        }
    }
}

/// A listener on a connection of its own, listening on the rules and jobs channels.
async fn connect(
    options: &PgConnectOptions,
    settings: &ListenerSettings,
) -> Result<PgListener, sqlx::Error> {
    // A pool of one, only because `PgListener` takes a pool; a new one per connection,
    // so a dead connection the old listener is still closing never holds its place.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(settings.connect_timeout)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options.clone());
    let listen = async {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.ignore_pool_close_event(true);
        // A lost connection makes `try_recv` return `Ok(None)` at once, without awaiting
        // a reconnection that `receive`'s ping timer could cancel half-way (and so hide).
        listener.eager_reconnect(false);
        listener
            .listen_all([payload::CHANNEL, jobs::CHANNEL])
            .await?;
        Ok(listener)
    };
    tokio::time::timeout(settings.connect_timeout, listen)
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting took over {:?}", settings.connect_timeout),
            )))
        })
}

/// Reports notifications until the connection is lost; returns why it was.
async fn receive(
    listener: &mut PgListener,
    settings: &ListenerSettings,
    on_change: &impl Fn(Change),
) -> String {
    loop {
        // `try_recv` may be cancelled here: it only reads whole messages, and with
        // `eager_reconnect(false)` it never awaits anything else on a live connection.
        match tokio::time::timeout(settings.ping_interval, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => on_change(if notification.channel() == jobs::CHANNEL {
                Change::JobsDue(jobs::parse(notification.payload()))
            } else {
                Change::Rules(payload::parse(notification.payload()))
            }),
            Ok(Ok(None)) => return "the connection closed".to_owned(),
            Ok(Err(error)) => return error.to_string(),
            Err(_quiet) => {
                // Notifications arriving meanwhile are buffered for the next `try_recv`.
                let ping = sqlx::query("SELECT 1").execute(&mut *listener);
                match tokio::time::timeout(settings.ping_timeout, ping).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return format!("a ping failed: {error}"),
                    Err(_) => {
                        return format!("no answer to a ping in {:?}", settings.ping_timeout);
                    }
                }
            }
        }
    }
}
