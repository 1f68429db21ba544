//! The work one delivery attempt may do: `mx_address_limit` addresses (a host whose
//! lookup fails counts as one) and `mx_session_limit` sessions, Postfix's limits with
//! Postfix's defaults.

use std::time::{Duration, Instant};

use mailfwd_domain::delivery::DeliveryOutcome;
use mailfwd_smtp_out::MailerConfig;

use crate::SendOne;
use crate::body::simple;
use crate::config;
use crate::dns::{Behaviour, Zone};
use crate::routing::{loopback, mailer_with, sinks};
use mailfwd_testkit::sink::Options;

#[tokio::test]
async fn the_defaults_are_postfixs() {
    let defaults = MailerConfig::default();
    assert_eq!(
        (defaults.mx_address_limit, defaults.mx_session_limit),
        (5, 2)
    );
}

#[tokio::test]
async fn twenty_mx_hosts_whose_lookups_time_out_cost_five_lookups() {
    let mut zone = Zone::default();
    for n in 0..20 {
        let host = format!("mx{n}.slow.test");
        zone = zone
            .mx("slow.test", 10 + n, &format!("{host}."))
            .behave(&host, Behaviour::Silent);
    }
    let (mailer, dns) = mailer_with(
        zone,
        MailerConfig {
            dns_timeout: Duration::from_millis(100),
            ..config(25)
        },
    )
    .await;
    let started = Instant::now();
    let outcome = mailer.send_one(simple("b@slow.test")).await;
    let DeliveryOutcome::Unreachable(text) = &outcome else {
        panic!("a lookup that timed out is worth another try: {outcome:?}");
    };
    assert!(text.starts_with("address lookup for mx"), "{text}");
    let hosts: Vec<String> = dns
        .names_asked()
        .into_iter()
        .filter(|name| name != "slow.test")
        .collect();
    assert_eq!(hosts.len(), 5, "{hosts:?}");
    // 5 lookups of 2 tries each at 100 ms, not 20.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Seven MX hosts on 127.0.0.1 to .7 whose greeting is a 421: each session fails, and
/// the attempt goes on to the next host until a limit stops it.
async fn seven_busy_hosts(config: MailerConfig) -> (DeliveryOutcome, Vec<usize>) {
    let busy = Options {
        greeting: "421 4.3.2 busy".into(),
        ..Options::default()
    };
    let hosts: Vec<(u8, Options)> = (1..=7).map(|n| (n, busy.clone())).collect();
    let (port, sinks) = sinks(&hosts).await;
    let mut zone = Zone::default();
    for n in 1..=7u8 {
        let host = format!("mx{n}.busy.test");
        zone = zone
            .mx("busy.test", u16::from(n), &format!("{host}."))
            .a(&host, loopback(n));
    }
    let (mailer, _dns) = mailer_with(zone, MailerConfig { port, ..config }).await;
    let outcome = mailer.send_one(simple("b@busy.test")).await;
    let connections = sinks.iter().map(|sink| sink.log().connections).collect();
    (outcome, connections)
}

#[tokio::test]
async fn at_most_two_sessions_per_attempt_by_default() {
    let (outcome, connections) = seven_busy_hosts(config(25)).await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Unreachable("421 4.3.2 busy".into())
    );
    assert_eq!(connections, [1, 1, 0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn at_most_five_addresses_per_attempt_by_default() {
    let unlimited_sessions = MailerConfig {
        mx_session_limit: 0,
        ..config(25)
    };
    let (outcome, connections) = seven_busy_hosts(unlimited_sessions).await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Unreachable("421 4.3.2 busy".into())
    );
    assert_eq!(connections, [1, 1, 1, 1, 1, 0, 0]);

    let no_limits = MailerConfig {
        mx_session_limit: 0,
        mx_address_limit: 0,
        ..config(25)
    };
    let (_, connections) = seven_busy_hosts(no_limits).await;
    assert_eq!(connections, [1; 7]);
}
