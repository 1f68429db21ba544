//! Private destinations (ADR 0015): addresses that come from the destination (MX and
//! address records, address literals) must be public unless allowed; the relay and
//! routes are the operator's choice. And routes: a domain's own next hop.

use mailfwd_domain::Domain;
use mailfwd_domain::delivery::{DeliveryOutcome, Mailer};
use mailfwd_smtp_out::{MailerConfig, MailerError, SmtpMailer};

use crate::SendOne;
use crate::body::simple;
use crate::config;
use crate::dns::{DnsServer, Zone};
use crate::routing::{loopback, mailer_with};
use mailfwd_testkit::sink::{Options, Sink};

/// The test configuration with private destinations refused, as in production.
fn strict(port: u16) -> MailerConfig {
    MailerConfig {
        deliver_to_private_addresses: false,
        ..config(port)
    }
}

fn domain(name: &str) -> Domain {
    Domain::parse(name).expect("a domain")
}

#[test]
fn private_destinations_are_refused_by_default() {
    assert!(!MailerConfig::default().deliver_to_private_addresses);
}

#[tokio::test]
async fn mx_records_pointing_inside_are_refused_for_good() {
    let sink = Sink::start(Options::default()).await;
    let zone = Zone::default()
        .mx("inside.test", 10, "mx.inside.test.")
        .a("mx.inside.test", loopback(1))
        .mx("corp.test", 10, "host.corp.test.")
        .a("host.corp.test", "10.0.0.5".parse().expect("an address"))
        .mx("metadata.test", 10, "meta.metadata.test.")
        .a(
            "meta.metadata.test",
            "169.254.169.254".parse().expect("an address"),
        )
        .a("implicit.test", loopback(1));
    let (mailer, _dns) = mailer_with(zone, strict(sink.port())).await;
    for (recipient, text) in [
        (
            "b@inside.test",
            "5.7.1 refusing to deliver to the loopback address 127.0.0.1 (MX mx.inside.test)",
        ),
        (
            "b@corp.test",
            "5.7.1 refusing to deliver to the private address 10.0.0.5 (MX host.corp.test)",
        ),
        (
            "b@metadata.test",
            "5.7.1 refusing to deliver to the link-local address 169.254.169.254 (MX meta.metadata.test)",
        ),
        (
            "b@implicit.test",
            "5.7.1 refusing to deliver to the loopback address 127.0.0.1 (host implicit.test)",
        ),
    ] {
        assert_eq!(
            mailer.send_one(simple(recipient)).await,
            DeliveryOutcome::Permanent(text.into()),
            "{recipient}"
        );
    }
    assert_eq!(sink.log().connections, 0, "no banner to record");
}

#[tokio::test]
async fn address_literals_follow_the_same_policy() {
    let sink = Sink::start(Options::default()).await;
    let dns = DnsServer::start(Zone::default()).await;
    let mailer = SmtpMailer::with_name_servers(strict(sink.port()), &[dns.addr]).expect("a mailer");
    assert_eq!(
        mailer.send_one(simple("u@[127.0.0.1]")).await,
        DeliveryOutcome::Permanent(
            "5.7.1 refusing to deliver to the loopback address 127.0.0.1 (address literal [127.0.0.1])"
                .into()
        )
    );
    assert_eq!(
        mailer.send_one(simple("u@[IPv6:::ffff:10.1.2.3]")).await,
        DeliveryOutcome::Permanent(
            "5.7.1 refusing to deliver to the private address 10.1.2.3 (address literal [IPv6:::ffff:10.1.2.3])"
                .into()
        )
    );
    assert_eq!(sink.log().connections, 0);
}

#[tokio::test]
async fn a_private_mx_beside_one_that_fails_for_now_is_transient() {
    let zone = Zone::default()
        .mx("mixed.test", 10, "inside.mixed.test.")
        .mx("mixed.test", 20, "down.mixed.test.")
        .a(
            "inside.mixed.test",
            "192.168.1.1".parse().expect("an address"),
        )
        .behave("down.mixed.test", crate::dns::Behaviour::ServFail);
    let (mailer, _dns) = mailer_with(zone, strict(25)).await;
    let outcome = mailer.send_one(simple("b@mixed.test")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Unreachable(ref t) if t.starts_with("address lookup for down.mixed.test failed")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn the_relay_is_the_operators_choice() {
    let sink = Sink::start(Options::default()).await;
    let mailer = SmtpMailer::new(MailerConfig {
        relay: Some(sink.addr.to_string()),
        ..strict(25)
    })
    .expect("a mailer");
    let outcome = mailer.send_one(simple("u@[127.0.0.1]")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn routes_come_before_the_relay_and_mx_and_may_be_private() {
    let corp = Sink::start(Options::default()).await;
    let hang = Sink::start(Options::default()).await;
    let relay = Sink::start(Options::default()).await;
    let mailer = SmtpMailer::new(MailerConfig {
        relay: Some(relay.addr.to_string()),
        routes: vec![
            (domain("corp.test"), corp.addr.to_string()),
            (domain("HANG.test"), format!("localhost:{}", hang.port())),
        ],
        ..strict(25)
    })
    .expect("a mailer");
    for recipient in [
        "a@corp.test",
        "b@Hang.Test",
        "c@sub.corp.test",
        "d@other.test",
    ] {
        let outcome = mailer.send_one(simple(recipient)).await;
        assert!(
            matches!(outcome, DeliveryOutcome::Delivered(_)),
            "{recipient}: {outcome:?}"
        );
    }
    let rcpts = |sink: &Sink| -> Vec<String> {
        sink.messages()
            .into_iter()
            .flat_map(|m| m.rcpt_to)
            .collect()
    };
    assert_eq!(rcpts(&corp), ["RCPT TO:<a@corp.test>"]);
    assert_eq!(rcpts(&hang), ["RCPT TO:<b@hang.test>"]);
    // Routes are for the exact domain: a subdomain goes the usual way.
    assert_eq!(
        rcpts(&relay),
        ["RCPT TO:<c@sub.corp.test>", "RCPT TO:<d@other.test>"]
    );
    // The forwarder schedules by next hop: a route or the relay is one destination,
    // whatever the domains it takes.
    let destination = |recipient: &str| mailer.destination(&simple(recipient).recipients[0]);
    assert_eq!(destination("a@corp.test"), corp.addr.to_string());
    assert_eq!(
        destination("b@Hang.Test"),
        format!("localhost:{}", hang.port())
    );
    assert_eq!(destination("c@sub.corp.test"), relay.addr.to_string());
    assert_eq!(destination("d@other.test"), destination("e@elsewhere.test"));
}

#[tokio::test]
async fn a_route_wins_over_the_domains_mx() {
    let routed = Sink::start(Options::default()).await;
    let zone = Zone::default()
        .mx("corp.test", 10, "mx.corp.test.")
        .a("mx.corp.test", "10.0.0.5".parse().expect("an address"));
    let (mailer, dns) = mailer_with(
        zone,
        MailerConfig {
            routes: vec![(domain("corp.test"), routed.addr.to_string())],
            ..strict(25)
        },
    )
    .await;
    let outcome = mailer.send_one(simple("b@corp.test")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    assert_eq!(routed.messages().len(), 1);
    assert_eq!(dns.questions(), 0, "no MX lookup for a routed domain");
}

#[test]
fn a_malformed_route_is_refused() {
    let config = MailerConfig {
        routes: vec![(domain("corp.test"), "host:port".to_owned())],
        ..strict(25)
    };
    assert!(matches!(
        SmtpMailer::new(config),
        Err(MailerError::InvalidRoute { domain, next_hop })
            if domain == "corp.test" && next_hop == "host:port"
    ));
}
