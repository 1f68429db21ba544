//! Connections: relay mode, refused connections, opportunistic TLS, reuse and expiry.

use std::time::Duration;

use mailfwd_domain::delivery::DeliveryOutcome;
use mailfwd_smtp_out::{MailerConfig, SmtpMailer};

use crate::SendOne;
use crate::body::simple;
use crate::dns::{DnsServer, Zone};
use crate::{config, relay_to, relay_with};
use mailfwd_testkit::sink::{Options, Sink};

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let mailer = SmtpMailer::new(MailerConfig {
        relay: Some(addr.to_string()),
        ..config(25)
    })
    .expect("a mailer");
    let outcome = mailer.send_one(simple("b@dest.test")).await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Unreachable(format!("connection to {addr} refused"))
    );
}

#[tokio::test]
async fn relay_mode_sends_every_domain_to_the_relay_host_by_name() {
    let sink = Sink::start(Options::default()).await;
    let mailer = SmtpMailer::new(MailerConfig {
        relay: Some(format!("localhost:{}", sink.port())),
        ..config(25)
    })
    .expect("a mailer");
    for recipient in ["b@one.invalid", "c@two.invalid"] {
        let outcome = mailer.send_one(simple(recipient)).await;
        assert!(
            matches!(outcome, DeliveryOutcome::Delivered(_)),
            "{outcome:?}"
        );
    }
    let rcpts: Vec<Vec<String>> = sink.messages().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(
        rcpts,
        [["RCPT TO:<b@one.invalid>"], ["RCPT TO:<c@two.invalid>"]]
    );
}

#[tokio::test]
async fn a_4xx_greeting_from_the_relay_is_transient() {
    let sink = Sink::start(Options {
        greeting: "421 4.3.2 too busy, come back later".into(),
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
    // No session could be had: temporary, and counted against the destination.
    assert_eq!(
        outcome,
        DeliveryOutcome::Unreachable("421 4.3.2 too busy, come back later".into())
    );
}

#[tokio::test]
async fn an_address_literal_goes_straight_to_that_address() {
    let sink = Sink::start(Options::default()).await;
    // The DNS server knows nothing: the literal must not be looked up.
    let dns = DnsServer::start(Zone::default()).await;
    let mailer = SmtpMailer::with_name_servers(config(sink.port()), &[dns.addr]).expect("a mailer");
    let outcome = mailer.send_one(simple("b@[127.0.0.1]")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    assert_eq!(sink.messages()[0].rcpt_to, ["RCPT TO:<b@[127.0.0.1]>"]);
}

#[tokio::test]
async fn starttls_is_used_when_offered() {
    let sink = Sink::start(Options {
        starttls: true,
        chunking: true,
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    let received = &sink.messages()[0];
    assert!(received.tls, "the message went over TLS");
    assert!(received.bdat, "capabilities were read again after TLS");
    let commands = sink.commands();
    assert_eq!(
        commands[..3],
        ["EHLO mailfwd.test", "STARTTLS", "EHLO mailfwd.test"]
    );
}

#[tokio::test]
async fn a_failed_tls_handshake_falls_back_to_plaintext() {
    let sink = Sink::start(Options {
        starttls: true,
        broken_tls: true,
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    assert!(!sink.messages()[0].tls);
    assert_eq!(sink.log().connections, 2);
    assert_eq!(
        sink.commands().iter().filter(|c| *c == "STARTTLS").count(),
        1,
        "no STARTTLS on the second connection"
    );
}

#[tokio::test]
async fn one_connection_carries_consecutive_messages() {
    let sink = Sink::start(Options {
        starttls: true,
        ..Options::default()
    })
    .await;
    let mailer = relay_to(&sink);
    for recipient in ["b@dest.test", "c@dest.test", "d@dest.test"] {
        let outcome = mailer.send_one(simple(recipient)).await;
        assert!(matches!(outcome, DeliveryOutcome::Delivered(_)));
    }
    assert_eq!(sink.log().connections, 1);
    let messages = sink.messages();
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.connection == 0 && m.tls));
    // A completed transaction needs no RSET, a connection idle for milliseconds no
    // NOOP: after the session's set-up, only the envelopes.
    let envelope = ["MAIL FROM:<a@sender.test>", "RCPT TO:<", "DATA"];
    let commands = sink.commands();
    assert_eq!(
        commands[..3],
        ["EHLO mailfwd.test", "STARTTLS", "EHLO mailfwd.test"]
    );
    assert_eq!(commands.len(), 3 + 3 * envelope.len(), "{commands:?}");
    for (command, expected) in commands[3..].iter().zip(envelope.iter().cycle()) {
        assert!(command.starts_with(expected), "{commands:?}");
    }
}

#[tokio::test]
async fn a_refused_transaction_leaves_the_connection_reusable() {
    let sink = Sink::start(Options {
        rcpt_reply: "550 5.1.1 no such user".into(),
        ..Options::default()
    })
    .await;
    let mailer = relay_to(&sink);
    for _ in 0..2 {
        let outcome = mailer.send_one(simple("nobody@dest.test")).await;
        assert_eq!(
            outcome,
            DeliveryOutcome::Permanent("550 5.1.1 no such user".into())
        );
    }
    assert_eq!(sink.log().connections, 1);
    // The transaction stopped half-way: RSET before the connection goes back to the pool.
    let commands = sink.commands();
    assert_eq!(commands.iter().filter(|c| *c == "RSET").count(), 2);
}

#[tokio::test]
async fn a_dead_idle_connection_is_replaced() {
    let sink = Sink::start(Options::default()).await;
    let mailer = relay_to(&sink);
    assert!(matches!(
        mailer.send_one(simple("b@dest.test")).await,
        DeliveryOutcome::Delivered(_)
    ));
    sink.kill_connections();
    assert!(matches!(
        mailer.send_one(simple("c@dest.test")).await,
        DeliveryOutcome::Delivered(_)
    ));
    assert_eq!(sink.log().connections, 2);
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test]
async fn idle_connections_are_closed_with_quit_when_they_expire() {
    let sink = Sink::start(Options::default()).await;
    let mailer = relay_with(
        &sink,
        MailerConfig {
            idle_timeout: Duration::from_millis(100),
            ..config(25)
        },
    );
    assert!(matches!(
        mailer.send_one(simple("b@dest.test")).await,
        DeliveryOutcome::Delivered(_)
    ));
    let closed = sink
        .wait_for(|log| log.closed == 1 && log.commands.iter().any(|(_, c)| c == "QUIT"))
        .await;
    assert!(closed, "QUIT after the idle timeout: {:?}", sink.commands());
    assert!(matches!(
        mailer.send_one(simple("c@dest.test")).await,
        DeliveryOutcome::Delivered(_)
    ));
    assert_eq!(sink.log().connections, 2);
}

#[tokio::test]
async fn without_reuse_each_message_has_its_own_connection() {
    let sink = Sink::start(Options::default()).await;
    let mailer = relay_with(
        &sink,
        MailerConfig {
            max_idle_per_host: 0,
            ..config(25)
        },
    );
    for recipient in ["b@dest.test", "c@dest.test"] {
        assert!(matches!(
            mailer.send_one(simple(recipient)).await,
            DeliveryOutcome::Delivered(_)
        ));
    }
    assert!(sink.wait_for(|log| log.closed == 2).await);
    let log = sink.log();
    assert_eq!(log.connections, 2);
    assert_eq!(log.commands.iter().filter(|(_, c)| c == "QUIT").count(), 2);
}

#[tokio::test]
async fn close_idle_says_quit() {
    let sink = Sink::start(Options::default()).await;
    let mailer = relay_to(&sink);
    assert!(matches!(
        mailer.send_one(simple("b@dest.test")).await,
        DeliveryOutcome::Delivered(_)
    ));
    mailer.close_idle().await;
    assert!(sink.wait_for(|log| log.closed == 1).await);
    assert_eq!(sink.commands().last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn a_server_that_greets_with_our_own_name_is_not_sent_to() {
    // `config` calls us mailfwd.test: a next hop that greets as MAILFWD.test. is us.
    let sink = Sink::start(Options {
        greeting: "220 MAILFWD.test. ESMTP mailfwd".into(),
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
    let DeliveryOutcome::Permanent(text) = outcome else {
        panic!("a loop back to ourselves fails for good: {outcome:?}");
    };
    assert!(
        text.starts_with("5.4.6 mail loops back to myself"),
        "{text}"
    );
    assert!(text.contains("greets with my own name"), "{text}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_next_hop_at_our_own_listen_address_is_not_even_connected_to() {
    let sink = Sink::start(Options::default()).await;
    let own = std::net::SocketAddr::from(([0, 0, 0, 0], sink.port()));
    let mailer = SmtpMailer::new(MailerConfig {
        relay: Some(format!("127.0.0.1:{}", sink.port())),
        own_addresses: vec![own],
        ..config(25)
    })
    .expect("a mailer");
    let outcome = mailer.send_one(simple("b@dest.test")).await;
    let DeliveryOutcome::Permanent(text) = outcome else {
        panic!("a loop back to ourselves fails for good: {outcome:?}");
    };
    assert!(
        text.contains("5.4.6") && text.contains("is an address I listen on"),
        "{text}"
    );
    assert_eq!(sink.log().connections, 0);
}
