//! Idle connections kept per host for the next message, so a burst of mail to one
//! destination (or through one relay) does not pay for TCP, greeting, EHLO and TLS
//! every time.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::connect::Session;
use crate::tls::Stream;

/// An idle session and when it went idle.
struct Idle {
    session: Session<Stream>,
    since: Instant,
}

/// Idle sessions by host key (`host:port`), newest last.
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    max_per_host: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(max_per_host: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_per_host,
            idle_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Idle>>> {
        // The map stays consistent whatever panicked while holding the lock.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle session for `key`, if one has not expired, and the
    /// expired ones of that key, which the caller closes.
    pub(crate) fn take(&self, key: &str) -> (Option<Session<Stream>>, Vec<Session<Stream>>) {
        let mut idle = self.lock();
        let Some(sessions) = idle.get_mut(key) else {
            return (None, Vec::new());
        };
        let now = Instant::now();
        let (fresh, expired): (Vec<Idle>, Vec<Idle>) = sessions
            .drain(..)
            .partition(|entry| now.duration_since(entry.since) < self.idle_timeout);
        *sessions = fresh;
        let session = sessions.pop().map(|entry| entry.session);
        if sessions.is_empty() {
            idle.remove(key);
        }
        (
            session,
            expired.into_iter().map(|entry| entry.session).collect(),
        )
    }

    /// Keeps `session` for reuse; gives it back if the host already has as many idle
    /// sessions as allowed (the caller closes it).
    pub(crate) fn put(&self, key: &str, session: Session<Stream>) -> Option<Session<Stream>> {
        if self.max_per_host == 0 {
            return Some(session);
        }
        let mut idle = self.lock();
        let sessions = idle.entry(key.to_owned()).or_default();
        if sessions.len() >= self.max_per_host {
            return Some(session);
        }
        sessions.push(Idle {
            session,
            since: Instant::now(),
        });
        None
    }

    /// Removes and returns every session idle for longer than the idle timeout.
    pub(crate) fn expired(&self) -> Vec<Session<Stream>> {
        let now = Instant::now();
        let mut idle = self.lock();
        let mut expired = Vec::new();
        idle.retain(|_, sessions| {
            let (fresh, old): (Vec<Idle>, Vec<Idle>) = sessions
                .drain(..)
                .partition(|entry| now.duration_since(entry.since) < self.idle_timeout);
            *sessions = fresh;
            expired.extend(old.into_iter().map(|entry| entry.session));
            !sessions.is_empty()
        });
        expired
    }

    /// Removes and returns every idle session.
    pub(crate) fn drain(&self) -> Vec<Session<Stream>> {
        self.lock()
            .drain()
            .flat_map(|(_, sessions)| sessions.into_iter().map(|entry| entry.session))
            .collect()
    }
}
