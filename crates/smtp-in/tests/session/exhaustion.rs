//! Connection-slot exhaustion (issue 10), over real TCP against the real server with
//! its default limits: a thousand hostile idle connections from twenty addresses (50
//! each, the per-client limit) take every place, so a legitimate client is refused.
//! Stress shortens the idle ones' timeouts, those already waiting included, so they
//! are cut until the load falls, and the legitimate client gets its mail through
//! within about one stress timeout, even when the hostile clients come straight back
//! (then the connection rate limit is what keeps them out). Each test prints what it
//! measured (`cargo test … exhaustion -- --nocapture`).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mailfwd_smtp_in::SmtpConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::harness::{Mailfwd, config};
use crate::server::{Running, local};

const HOSTILE_ADDRESSES: u8 = 20;
const HOSTILE_PER_ADDRESS: usize = 50;
const HOSTILE: usize = HOSTILE_ADDRESSES as usize * HOSTILE_PER_ADDRESS;
/// Long enough for a thousand connections to open before the first is cut.
const STRESS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a hostile client waits before trying again after being refused.
const HOSTILE_RETRY: Duration = Duration::from_secs(1);

/// The defaults (1000 places, 50 per client, 300 s command timeout, stress from 80 %),
/// with a stress timeout short enough for a test.
fn defaults() -> SmtpConfig {
    SmtpConfig {
        stress_command_timeout: STRESS_TIMEOUT,
        ..config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legitimate_client_gets_its_mail_through_a_thousand_idle_connections() {
    let measured = exhaust(defaults(), Hostile::LeaveWhenCut).await;
    println!("idle hostile clients that leave when cut: {measured:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legitimate_client_gets_its_mail_through_hostile_clients_that_come_back() {
    let config = SmtpConfig {
        max_connection_rate_per_minute: NonZeroU32::new(60),
        ..defaults()
    };
    let measured = exhaust(config, Hostile::ComeBack).await;
    println!("idle hostile clients that come back, 60 connections a minute each: {measured:?}");
    assert!(
        measured.hostile_rate_limited > 0,
        "the rate limit refused some: {measured:?}"
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    LeaveWhenCut,
    ComeBack,
}

/// What one run measured.
#[derive(Debug)]
#[allow(dead_code)] // Read through Debug, in the test output.
struct Measured {
    /// From the first hostile connection to all thousand open.
    filled_in: Duration,
    /// From all thousand open to the legitimate client's `250`.
    mail_through_after: Duration,
    /// Legitimate attempts refused `421 4.7.0` before one got in.
    legitimate_refused: usize,
    hostile_cut: usize,
    /// Hostile attempts refused `421 4.7.0` for the rate.
    hostile_rate_limited: usize,
}

struct Counts {
    /// Connections being opened at once: all thousand at the same instant would
    /// overflow the listen queue (the kernel drops the SYNs and the clients retry a
    /// second later), which measures the kernel, not mailfwd.
    connecting: Semaphore,
    greeted: AtomicUsize,
    cut: AtomicUsize,
    rate_limited: AtomicUsize,
}

async fn exhaust(config: SmtpConfig, hostile: Hostile) -> Measured {
    let needed = 2 * HOSTILE as u64 + 256;
    let descriptors = rlimit::increase_nofile_limit(needed).unwrap();
    assert!(
        descriptors >= needed,
        "{needed} file descriptors needed, the hard limit allows {descriptors}"
    );
    let mailfwd = Mailfwd::new().await;
    assert_eq!(
        (config.max_connections, config.max_connections_per_peer),
        (1000, 50)
    );
    let running = Running::start(&mailfwd, config).await;
    let counts = Arc::new(Counts {
        connecting: Semaphore::new(HOSTILE_PER_ADDRESS),
        greeted: AtomicUsize::new(0),
        cut: AtomicUsize::new(0),
        rate_limited: AtomicUsize::new(0),
    });
    let (stop, stopped) = watch::channel(false);
    let mut attackers = JoinSet::new();
    let started = Instant::now();
    for address in 0..HOSTILE_ADDRESSES {
        for _ in 0..HOSTILE_PER_ADDRESS {
            let (counts, stopped) = (Arc::clone(&counts), stopped.clone());
            let from = local(2 + address);
            attackers.spawn(idle_hostile(
                running.address,
                from,
                hostile,
                counts,
                stopped,
            ));
        }
    }
    while counts.greeted.load(Ordering::SeqCst) < HOSTILE {
        assert!(
            started.elapsed() < STRESS_TIMEOUT,
            "a thousand connections open in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let full = Instant::now();
    let filled_in = full - started;
    assert_eq!(counts.cut.load(Ordering::SeqCst), 0);

    let mut legitimate_refused = 0;
    let id = loop {
        let mut client = running.raw_client(local(1)).await;
        let greeting = client.reply().await;
        if greeting.code == 220 {
            let message = b"Subject: through\r\n\r\nmail gets through\r\n";
            break client
                .send_mail("alice@sender.test", "sales@acme.test", message)
                .await;
        }
        assert_eq!(
            greeting.line(),
            "421 4.7.0 too many connections, try again later"
        );
        legitimate_refused += 1;
        assert!(
            full.elapsed() < STRESS_TIMEOUT * 3,
            "the legitimate client got in in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mail_through_after = full.elapsed();
    assert!(legitimate_refused > 0, "the server was full at first");
    stop.send_replace(true);
    while attackers.join_next().await.is_some() {}
    running.stop().await;

    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0.id.to_string(), id);
    let hostile_cut = counts.cut.load(Ordering::SeqCst);
    assert!(hostile_cut >= 1, "idle hostile connections were cut");
    Measured {
        filled_in,
        mail_through_after,
        legitimate_refused,
        hostile_cut,
        hostile_rate_limited: counts.rate_limited.load(Ordering::SeqCst),
    }
}

/// A client that connects from `from` and sends nothing; cut, it leaves or comes back.
async fn idle_hostile(
    server: SocketAddr,
    from: IpAddr,
    hostile: Hostile,
    counts: Arc<Counts>,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let connecting = counts.connecting.acquire().await.unwrap();
        let Ok(stream) = socket.connect(server).await else {
            drop(connecting);
            tokio::time::sleep(HOSTILE_RETRY).await;
            continue;
        };
        let mut lines = BufReader::new(stream).lines();
        let greeting = lines.next_line().await.ok().flatten().unwrap_or_default();
        drop(connecting);
        if !greeting.starts_with("220 ") {
            if greeting.contains("from your address") {
                counts.rate_limited.fetch_add(1, Ordering::SeqCst);
            }
            tokio::select! {
                () = tokio::time::sleep(HOSTILE_RETRY) => continue,
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
        counts.greeted.fetch_add(1, Ordering::SeqCst);
        tokio::select! {
            line = lines.next_line() => {
                let line = line.ok().flatten().unwrap_or_default();
                assert_eq!(line, "421 4.4.2 Timeout exceeded, closing connection");
                counts.cut.fetch_add(1, Ordering::SeqCst);
            }
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        if hostile == Hostile::LeaveWhenCut {
            return;
        }
    }
}
