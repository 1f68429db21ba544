//! The server under stress, over real TCP: shorter timeouts for idle clients (those
//! already waiting included) once enough connections are open, the normal ones again
//! when they close; a lower junk-command limit; and the per-client connection rate.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use mailfwd_smtp_in::SmtpConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinSet;

use crate::harness::{Client, Mailfwd, config};
use crate::server::{Running, local};

const TIMED_OUT: &str = "421 4.4.2 Timeout exceeded, closing connection";
const STRESS_TIMEOUT: Duration = Duration::from_millis(300);

/// Ten places, stress from eight open (80 %) until fewer than six are.
fn stressable() -> SmtpConfig {
    SmtpConfig {
        max_connections: 10,
        max_connections_per_peer: 10,
        command_timeout: Duration::from_secs(60),
        stress_threshold_percent: 80,
        stress_command_timeout: STRESS_TIMEOUT,
        ..config()
    }
}

async fn greeted(running: &Running) -> Client {
    let mut client = running.raw_client(local(1)).await;
    client.expect_reply(220).await;
    client
}

/// Whether `client` hears nothing for `quiet`.
async fn stays_quiet(client: &mut Client, quiet: Duration) -> bool {
    tokio::time::timeout(quiet, client.reply()).await.is_err()
}

/// Eight open of ten puts the server under stress, and idle clients that have waited
/// longer than the stress timeout are cut at once, until fewer than six (three quarters
/// of eight) are open: then stress is over and the rest keep the normal timeout.
#[tokio::test]
async fn stress_cuts_idle_clients_already_waiting_until_the_load_falls() {
    let mailfwd = Mailfwd::new().await;
    let running = Running::start(&mailfwd, stressable()).await;
    let mut idle = Vec::new();
    for _ in 0..7 {
        idle.push(greeted(&running).await);
    }
    // Seven open: no stress, the 60 s timeout holds well past the stress timeout.
    assert!(stays_quiet(&mut idle[0], STRESS_TIMEOUT * 2).await);

    let began = Instant::now();
    let newest = greeted(&running).await;
    let mut waiting = JoinSet::new();
    for (index, mut client) in idle.into_iter().chain([newest]).enumerate() {
        waiting.spawn(async move {
            let heard = tokio::time::timeout(STRESS_TIMEOUT * 3, client.reply()).await;
            (index, client, heard.ok(), began.elapsed())
        });
    }
    let (mut cut, mut kept) = (Vec::new(), Vec::new());
    while let Some(done) = waiting.join_next().await {
        match done.unwrap() {
            (index, mut client, Some(reply), after) => {
                assert_eq!(reply.line(), TIMED_OUT);
                assert!(client.is_closed().await);
                assert!(after < STRESS_TIMEOUT, "cut {after:?} after stress began");
                cut.push(index);
            }
            (_, client, None, _) => kept.push(client),
        }
    }
    assert_eq!(cut.len(), 3, "cut from eight down to five: {cut:?}");
    assert!(!cut.contains(&7), "the newest had not waited long: {cut:?}");
    // Stress is over: the others wait on the normal timeout, and still talk.
    for mut client in kept {
        assert!(stays_quiet(&mut client, STRESS_TIMEOUT * 2).await);
        client.cmd("QUIT", 221).await;
    }
    running.stop().await;
}

#[tokio::test]
async fn a_client_that_keeps_talking_is_not_cut_under_stress() {
    let mailfwd = Mailfwd::new().await;
    let config = SmtpConfig {
        max_connections: 1,
        stress_threshold_percent: 100,
        ..stressable()
    };
    let running = Running::start(&mailfwd, config).await;
    // Its one connection puts the server under stress.
    let mut client = greeted(&running).await;
    let began = Instant::now();
    // Each command has the stress timeout, not the whole session.
    for (command, code) in [
        ("EHLO client.test", 250),
        ("MAIL FROM:<a@b.test>", 250),
        ("RCPT TO:<sales@acme.test>", 250),
        ("DATA", 354),
    ] {
        tokio::time::sleep(STRESS_TIMEOUT / 2).await;
        client.cmd(command, code).await;
    }
    client.send("Subject: busy\r\n\r\nbody\r\n.\r\n").await;
    assert_eq!(client.reply().await.code, 250);
    assert!(began.elapsed() > STRESS_TIMEOUT * 2);
    client.cmd("QUIT", 221).await;
    running.stop().await;
    assert_eq!(mailfwd.stored().await.len(), 1);
}

#[tokio::test]
async fn under_stress_junk_commands_count_as_errors_sooner() {
    let mailfwd = Mailfwd::new().await;
    let config = SmtpConfig {
        max_connections: 1,
        stress_threshold_percent: 100,
        max_junk_commands: 100,
        stress_max_junk_commands: 1,
        max_errors: 2,
        ..stressable()
    };
    let running = Running::start(&mailfwd, config).await;
    let mut client = greeted(&running).await;
    client.cmd("NOOP", 250).await;
    // The second is past the stress limit: an error, the first of two allowed.
    client.cmd("NOOP", 250).await;
    assert_eq!(
        client.command("NOOP").await.line(),
        "421 4.7.0 Too many errors, closing connection"
    );
    assert!(client.is_closed().await);
    running.stop().await;
}

#[tokio::test]
async fn a_command_line_trickled_in_gets_one_timeout_in_all() {
    let mailfwd = Mailfwd::new().await;
    let config = SmtpConfig {
        command_timeout: Duration::from_millis(400),
        ..config()
    };
    let running = Running::start(&mailfwd, config).await;
    let (read, mut write) = running.connect_from(local(1)).await.unwrap().into_split();
    let mut replies = BufReader::new(read).lines();
    let greeting = replies.next_line().await.unwrap().unwrap_or_default();
    assert!(greeting.starts_with("220 "), "{greeting}");
    let began = Instant::now();
    // A byte every 100 ms would reset a per-read timeout forever.
    let trickle = async {
        for byte in b"NOOP and on and on and on and on and on" {
            write.write_all(&[*byte]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::future::pending::<()>().await;
    };
    let reply = tokio::select! {
        reply = replies.next_line() => reply.unwrap().unwrap_or_default(),
        () = trickle => unreachable!(),
    };
    assert_eq!(reply, TIMED_OUT);
    let cut_after = began.elapsed();
    assert!(
        cut_after < Duration::from_millis(1000),
        "cut {cut_after:?} after the line began"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_client_connecting_too_often_is_refused() {
    let mailfwd = Mailfwd::new().await;
    let config = SmtpConfig {
        max_connection_rate_per_minute: NonZeroU32::new(3),
        ..config()
    };
    let running = Running::start(&mailfwd, config).await;
    for _ in 0..3 {
        let mut client = greeted(&running).await;
        client.cmd("QUIT", 221).await;
    }
    let mut fourth = running.raw_client(local(1)).await;
    assert_eq!(
        fourth.reply().await.line(),
        "421 4.7.0 too many connections from your address, try again later"
    );
    assert!(fourth.is_closed().await);
    // Another client has its own quota.
    let mut other = running.raw_client(local(2)).await;
    other.expect_reply(220).await;
    other.cmd("QUIT", 221).await;
    running.stop().await;
}
