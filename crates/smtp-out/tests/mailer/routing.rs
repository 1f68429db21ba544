//! MX routing against a real DNS server: preference order, falling back to the next
//! host, implicit MX, null MX, NXDOMAIN and DNS failures.
//!
//! MX hosts resolve to different loopback addresses (127.0.0.1, .2, …) that share one
//! port, so each sink stands for one host.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use mailfwd_domain::delivery::DeliveryOutcome;
use mailfwd_smtp_out::{MailerConfig, SmtpMailer};

use crate::SendOne;
use crate::body::simple;
use crate::config;
use crate::dns::{Behaviour, DnsServer, Zone};
use mailfwd_testkit::sink::{Options, Sink};

pub fn loopback(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Sinks on 127.0.0.<n> for each (n, options), all on one port.
pub async fn sinks(hosts: &[(u8, Options)]) -> (u16, Vec<Sink>) {
    'attempt: for _ in 0..20 {
        let first = Sink::start(hosts[0].1.clone()).await;
        let port = first.port();
        let mut all = vec![first];
        for (last, options) in &hosts[1..] {
            match Sink::start_at(IpAddr::V4(loopback(*last)), port, options.clone()).await {
                Some(sink) => all.push(sink),
                None => continue 'attempt,
            }
        }
        return (port, all);
    }
    panic!("no common free port on the loopback addresses");
}

async fn mailer(zone: Zone, port: u16) -> (SmtpMailer, DnsServer) {
    mailer_with(zone, config(port)).await
}

pub async fn mailer_with(zone: Zone, config: MailerConfig) -> (SmtpMailer, DnsServer) {
    let dns = DnsServer::start(zone).await;
    let mailer = SmtpMailer::with_name_servers(config, &[dns.addr]).expect("a mailer");
    (mailer, dns)
}

#[tokio::test]
async fn the_most_preferred_exchange_gets_the_message() {
    let (port, sinks) = sinks(&[(1, Options::default()), (2, Options::default())]).await;
    let zone = Zone::default()
        .mx("order.test", 20, "mx-a.order.test.")
        .mx("order.test", 10, "mx-b.order.test.")
        .a("mx-a.order.test", loopback(1))
        .a("mx-b.order.test", loopback(2));
    let (mailer, _dns) = mailer(zone, port).await;
    let outcome = mailer.send_one(simple("b@order.test")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    assert_eq!(
        sinks[1].messages().len(),
        1,
        "preference 10 is on 127.0.0.2"
    );
    assert_eq!(sinks[0].log().connections, 0);
}

#[tokio::test]
async fn refused_connections_and_4xx_greetings_move_on_to_the_next_exchange() {
    let busy = Options {
        greeting: "421 4.3.2 busy".into(),
        ..Options::default()
    };
    let (port, sinks) = sinks(&[(1, Options::default()), (4, busy)]).await;
    let zone = Zone::default()
        .mx("fallback.test", 10, "dead.fallback.test.")
        .mx("fallback.test", 20, "busy.fallback.test.")
        .mx("fallback.test", 25, "nowhere.fallback.test.")
        .mx("fallback.test", 30, "good.fallback.test.")
        .a("dead.fallback.test", loopback(3))
        .a("busy.fallback.test", loopback(4))
        .empty("nowhere.fallback.test")
        .a("good.fallback.test", loopback(1));
    let (mailer, _dns) = mailer(zone, port).await;
    let outcome = mailer.send_one(simple("b@fallback.test")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    assert_eq!(sinks[1].log().connections, 1, "the busy host was tried");
    assert_eq!(sinks[0].messages().len(), 1);
}

#[tokio::test]
async fn when_every_exchange_fails_the_last_error_is_transient() {
    let (port, _sinks) = sinks(&[(1, Options::default())]).await;
    let zone = Zone::default()
        .mx("down.test", 10, "mx1.down.test.")
        .mx("down.test", 20, "mx2.down.test.")
        .a("mx1.down.test", loopback(5))
        .a("mx2.down.test", loopback(6));
    let (mailer, _dns) = mailer(zone, port).await;
    let outcome = mailer.send_one(simple("b@down.test")).await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Unreachable(format!(
            "connection to mx2.down.test[127.0.0.6]:{port} refused"
        ))
    );
}

#[tokio::test]
async fn without_mx_the_domain_itself_is_the_exchange() {
    let (port, sinks) = sinks(&[(1, Options::default())]).await;
    let zone = Zone::default().a("implicit.test", loopback(1));
    let (mailer, _dns) = mailer(zone, port).await;
    let outcome = mailer.send_one(simple("b@implicit.test")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    assert_eq!(sinks[0].messages().len(), 1);
}

#[tokio::test]
async fn dns_answers_that_end_the_delivery() {
    let zone = Zone::default()
        .mx("nullmx.test", 0, ".")
        .empty("noaddress.test")
        .behave("servfail.test", Behaviour::ServFail);
    let (mailer, _dns) = mailer(zone, 2525).await;
    let cases = [
        (
            "b@nullmx.test",
            DeliveryOutcome::Permanent(
                "domain nullmx.test does not accept mail (null MX, RFC 7505)".into(),
            ),
        ),
        (
            "b@nonexistent.test",
            DeliveryOutcome::Permanent("domain nonexistent.test does not exist (NXDOMAIN)".into()),
        ),
        (
            "b@noaddress.test",
            DeliveryOutcome::Permanent(
                "domain noaddress.test has no MX and no A/AAAA records".into(),
            ),
        ),
    ];
    for (recipient, expected) in cases {
        assert_eq!(
            mailer.send_one(simple(recipient)).await,
            expected,
            "{recipient}"
        );
    }
    let outcome = mailer.send_one(simple("b@servfail.test")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Transient(ref text) if text.starts_with("MX lookup for servfail.test failed")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_dns_timeout_is_transient() {
    let zone = Zone::default().behave("silent.test", Behaviour::Silent);
    let (mailer, _dns) = mailer_with(
        zone,
        MailerConfig {
            dns_timeout: Duration::from_millis(200),
            ..config(2525)
        },
    )
    .await;
    let started = Instant::now();
    let outcome = mailer.send_one(simple("b@silent.test")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Transient(ref text) if text.starts_with("MX lookup for silent.test failed")),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}
