//! Hearing about rule changes made by other instances, for their rule caches.
//!
//! Every rule write notifies [`payload::CHANNEL`] in its own transaction; a
//! [`RuleChangeListener`] listens there on a connection of its own and reports each
//! change as an [`Invalidation`]. Notifications sent while nobody listens are gone
//! for good (sqlx's `PgListener::recv` even reconnects without saying so), so the
//! listener uses `try_recv`, which does say, and reports [`Invalidation::All`] once it
//! listens again: after every (re)connection, the first one included.

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

/// A background task that reports rule changes made through any instance on the
/// database (this one included) to a callback, until it is stopped or dropped.
///
/// The callback runs on the listener's task, so it must be quick (a cache
/// invalidation); it gets [`Invalidation::All`] whenever notifications may have been
/// missed: when the listener (re)connects, when it loses its connection, and after
/// every failed attempt to connect (so while it cannot listen, a cache it feeds holds
/// nothing older than [`ListenerSettings::retry_delay`] and an attempt).
#[derive(Debug)]
pub struct RuleChangeListener {
    stop: watch::Sender<bool>,
    listening: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl RuleChangeListener {
    /// Starts listening on `database` with a connection of its own (outside the pool,
    /// which it leaves whole; its `application_name` ends in "rule listener"). Never
    /// fails: while the database cannot be reached it keeps retrying, and logs why.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn(
        database: &PgDatabase,
        settings: ListenerSettings,
        on_change: impl Fn(Invalidation) + Send + Sync + 'static,
    ) -> RuleChangeListener {
        let options = listener_options(&database.pool().connect_options());
        let (stop, stopped) = watch::channel(false);
        let (listening_tx, listening) = watch::channel(false);
        let task = tokio::spawn(async move {
            run(options, settings, on_change, stopped, &listening_tx).await;
            listening_tx.send_replace(false);
        });
        RuleChangeListener {
            stop,
            listening,
            task,
        }
    }

    /// Whether the listener is connected and listening right now (for health checks:
    /// while it is not, other instances' changes reach this one's cache only through
    /// flushes).
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
            tracing::warn!(%error, "the rule-change listener ended abnormally");
        }
    }
}

/// The pool's connection settings, named so the listener's session can be told apart.
fn listener_options(pool_options: &PgConnectOptions) -> PgConnectOptions {
    let name = match pool_options.get_application_name() {
        Some(name) => format!("{name} rule listener"),
        None => "mailfwd rule listener".to_owned(),
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
    on_change: impl Fn(Invalidation),
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
                on_change(Invalidation::All);
                listening.send_replace(true);
                failing = false;
                tracing::info!("listening for rule changes made by other instances");
                let lost = tokio::select! {
                    () = stopped(&mut stop) => return,
                    lost = receive(&mut listener, &settings, &on_change) => lost,
                };
                listening.send_replace(false);
                // Dropping it rather than letting sqlx reconnect: a new listener starts
                // from a known state, whatever the old one was doing when it failed.
                drop(listener);
                on_change(Invalidation::All);
                tracing::warn!(
                    "the rule-change listener lost its connection ({lost}): flushed the \
                     rule cache, reconnecting"
                );
            }
            Err(error) => {
                on_change(Invalidation::All);
                if failing {
                    tracing::debug!(%error, "still cannot listen for rule changes");
                } else {
                    tracing::warn!(
                        %error,
                        "cannot listen for rule changes made by other instances (the rule \
                         cache is flushed at every attempt meanwhile); retrying every {:?}",
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

/// A listener on a connection of its own, listening on the rules channel.
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
        listener.listen(payload::CHANNEL).await?;
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
    on_change: &impl Fn(Invalidation),
) -> String {
    loop {
        // `try_recv` may be cancelled here: it only reads whole messages, and with
        // `eager_reconnect(false)` it never awaits anything else on a live connection.
        match tokio::time::timeout(settings.ping_interval, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => on_change(payload::parse(notification.payload())),
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
