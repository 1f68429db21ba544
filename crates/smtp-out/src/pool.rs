//! Idle connections kept per host for the next message, so a burst of mail to one
//! destination (or through one relay) does not pay for TCP, greeting, EHLO and TLS
//! every time.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::client::Client;
use crate::connect::Session;
use crate::tls::Stream;

/// A session idle for longer than this is asked NOOP before it is reused.
///
/// The check without a round trip ([`Client::is_idle`]) sees a server that closed the
/// connection or announced it would (421), which is how servers end idle sessions. It
/// cannot see a peer that vanished silently, which would then hold the delivery until
/// the MAIL FROM timeout (5 min) instead of the NOOP's 30 s. Silent loss takes minutes
/// (NAT and firewall idle timeouts: RFC 5382 asks for 2 h, clouds use 4 to 20 min), so
/// it is not worth a round trip on the messages of a burst, which follow each other
/// within seconds; after 10 s of silence a message is not part of a burst, and one
/// round trip more costs nothing that matters.
pub(crate) const PROBE_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Whether a session that has been idle for `idle` can carry the next transaction:
/// still open and silent, and, after [`PROBE_AFTER_IDLE`], answering NOOP within
/// `timeout`.
pub(crate) async fn still_usable<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    idle: Duration,
    timeout: Duration,
) -> bool {
    if !client.is_idle() {
        return false;
    }
    if idle < PROBE_AFTER_IDLE {
        return true;
    }
    matches!(client.command("NOOP", timeout, "NOOP").await, Ok(reply) if reply.is_positive())
}

/// An idle session and when it went idle.
pub(crate) struct Idle {
    pub(crate) session: Session<Stream>,
    pub(crate) since: Instant,
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
    pub(crate) fn take(&self, key: &str) -> (Option<Idle>, Vec<Session<Stream>>) {
        let mut idle = self.lock();
        let Some(sessions) = idle.get_mut(key) else {
            return (None, Vec::new());
        };
        let now = Instant::now();
        let (fresh, expired): (Vec<Idle>, Vec<Idle>) = sessions
            .drain(..)
            .partition(|entry| now.duration_since(entry.since) < self.idle_timeout);
        *sessions = fresh;
        let session = sessions.pop();
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    const RECENT: Duration = Duration::from_millis(100);
    const TIMEOUT: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_recent_silent_session_is_reused_without_a_round_trip() {
        let (client, mut server) = duplex(64);
        let mut client = Client::new(client);
        assert!(still_usable(&mut client, RECENT, TIMEOUT).await);
        drop(client);
        let mut wire = Vec::new();
        server.read_to_end(&mut wire).await.ok();
        assert!(wire.is_empty(), "nothing sent: {wire:?}");
    }

    #[tokio::test]
    async fn a_closed_session_or_one_with_a_notice_is_not_reused() {
        let (client, server) = duplex(64);
        drop(server);
        assert!(!still_usable(&mut Client::new(client), RECENT, TIMEOUT).await);

        let (client, mut server) = duplex(64);
        server.write_all(b"421 4.4.2 idle too long\r\n").await.ok();
        assert!(!still_usable(&mut Client::new(client), RECENT, TIMEOUT).await);
    }

    #[tokio::test]
    async fn a_session_idle_for_long_must_answer_noop() {
        let (client, mut server) = duplex(64);
        let mut client = Client::new(client);
        let answer = tokio::spawn(async move {
            let mut line = [0; 6];
            server.read_exact(&mut line).await.ok();
            server.write_all(b"250 2.0.0 Ok\r\n").await.ok();
            (line, server)
        });
        assert!(still_usable(&mut client, PROBE_AFTER_IDLE, TIMEOUT).await);
        let (line, _server) = answer.await.expect("the server task");
        assert_eq!(&line, b"NOOP\r\n");

        let (client, _silent) = duplex(64);
        let mut client = Client::new(client);
        assert!(!still_usable(&mut client, PROBE_AFTER_IDLE, TIMEOUT).await);
    }
}
