//! Destinations that break the protocol: only the reply to the end of the data
//! delivers, replies are matched with their commands, a connection out of step is
//! never reused, and sessions given up end with QUIT, keeping what the server said.

use std::time::Duration;

use mailfwd_domain::delivery::DeliveryOutcome;
use mailfwd_smtp_out::{MailerConfig, SmtpTimeouts};

use crate::SendOne;
use crate::body::simple;
use crate::{config, relay_to, relay_with};
use mailfwd_testkit::sink::{Options, Sink};

fn transient(text: &str) -> DeliveryOutcome {
    DeliveryOutcome::Transient(text.to_owned())
}

#[tokio::test]
async fn a_250_to_data_is_a_temporary_protocol_error_and_the_connection_is_dropped() {
    for pipelining in [true, false] {
        let sink = Sink::start(Options {
            pipelining,
            data_command_reply: Some("250 2.0.0 Ok".into()),
            ..Options::default()
        })
        .await;
        let mailer = relay_to(&sink);
        let outcome = mailer.send_one(simple("b@dest.test")).await;
        assert_eq!(
            outcome,
            transient("protocol error: unexpected reply to DATA: 250 2.0.0 Ok"),
            "pipelining: {pipelining}"
        );
        assert!(sink.messages().is_empty(), "nothing delivered");
        // No body, no RSET, no QUIT: the connection is out of step, so closed.
        let expected = [
            "EHLO mailfwd.test",
            "MAIL FROM:<a@sender.test>",
            "RCPT TO:<b@dest.test>",
            "DATA",
        ];
        assert!(sink.wait_for(|log| log.closed == 1).await, "closed");
        assert_eq!(sink.commands(), expected);
        // The next message gets a connection of its own.
        mailer.send_one(simple("c@dest.test")).await;
        assert_eq!(sink.log().connections, 2);
    }
}

#[tokio::test]
async fn a_stale_reply_on_a_reused_connection_delivers_nothing() {
    let sink = Sink::start(Options {
        stale_reply: Some("250 2.0.0 stale".into()),
        ..Options::default()
    })
    .await;
    let mailer = relay_to(&sink);
    assert_eq!(
        mailer.send_one(simple("b@dest.test")).await,
        DeliveryOutcome::Delivered("250 2.0.0 Ok: queued as SINK1".into())
    );
    // On the reused connection the stale 250 answers MAIL, MAIL's answers RCPT, and
    // RCPT's answers DATA: caught there, before the body.
    assert_eq!(
        mailer.send_one(simple("c@dest.test")).await,
        transient("protocol error: unexpected reply to DATA: 250 2.1.5 Ok")
    );
    assert_eq!(sink.messages().len(), 1, "the second body never went");
    assert!(sink.wait_for(|log| log.closed == 1).await);
    // Never reused: the third message goes on a new connection, and arrives.
    assert!(matches!(
        mailer.send_one(simple("d@dest.test")).await,
        DeliveryOutcome::Delivered(_)
    ));
    let connections: Vec<usize> = sink.messages().iter().map(|m| m.connection).collect();
    assert_eq!(connections, [0, 1]);
}

#[tokio::test]
async fn a_multi_line_reply_counts_by_its_last_line() {
    for chunking in [false, true] {
        let sink = Sink::start(Options {
            chunking,
            data_reply: "250-2.0.0 queued\r\n451 4.3.0 but not really".into(),
            ..Options::default()
        })
        .await;
        let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
        assert_eq!(
            outcome,
            transient("451 4.3.0 queued but not really"),
            "chunking: {chunking}"
        );
    }
}

#[tokio::test]
async fn a_malformed_reply_is_recorded_and_the_session_ended_with_quit() {
    let sink = Sink::start(Options {
        mail_reply: "hello, this is not SMTP".into(),
        ..Options::default()
    })
    .await;
    let mailer = relay_to(&sink);
    let outcome = mailer.send_one(simple("b@dest.test")).await;
    assert_eq!(
        outcome,
        transient("malformed reply during MAIL FROM: 'hello, this is not SMTP'")
    );
    assert!(
        sink.wait_for(|log| log.commands.iter().any(|(_, c)| c == "QUIT"))
            .await,
        "QUIT: {:?}",
        sink.commands()
    );
}

#[tokio::test]
async fn a_refused_greeting_is_answered_with_quit() {
    let sink = Sink::start(Options {
        greeting: "554 5.7.1 no mail from you".into(),
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
    // As Postfix's smtp_skip_5xx_greeting: the next host (or a later try) may do
    // better, so the reply is kept but the delivery is deferred.
    // No session could be had: the forwarder counts it against the destination.
    assert_eq!(
        outcome,
        DeliveryOutcome::Unreachable("554 5.7.1 no mail from you".into())
    );
    assert!(sink.wait_for(|log| log.closed == 1).await);
    assert_eq!(sink.commands(), ["QUIT"], "no EHLO, only QUIT");
}

#[tokio::test]
async fn a_server_that_never_greets_gets_quit_after_the_timeout() {
    let sink = Sink::start(Options {
        no_greeting: true,
        ..Options::default()
    })
    .await;
    let base = config(25);
    let mailer = relay_with(
        &sink,
        MailerConfig {
            timeouts: SmtpTimeouts {
                greeting: Duration::from_millis(200),
                ..base.timeouts
            },
            ..base
        },
    );
    let outcome = mailer.send_one(simple("b@dest.test")).await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Unreachable("timed out during the greeting".into())
    );
    assert!(
        sink.wait_for(|log| log.commands.iter().any(|(_, c)| c == "QUIT"))
            .await,
        "QUIT after the timeout: {:?}",
        sink.commands()
    );
    assert_eq!(sink.commands(), ["QUIT"]);
}

#[tokio::test]
async fn a_refused_data_command_is_classified_by_its_code() {
    for (reply, outcome) in [
        ("451 4.3.0 try later", transient("451 4.3.0 try later")),
        (
            "554 5.7.1 not from you",
            DeliveryOutcome::Permanent("554 5.7.1 not from you".into()),
        ),
    ] {
        let sink = Sink::start(Options {
            data_command_reply: Some(reply.into()),
            ..Options::default()
        })
        .await;
        let mailer = relay_to(&sink);
        assert_eq!(mailer.send_one(simple("b@dest.test")).await, outcome);
        // A refusal leaves the connection in step: RSET, and reused.
        mailer.send_one(simple("c@dest.test")).await;
        assert_eq!(sink.log().connections, 1, "{reply}");
        assert!(sink.commands().contains(&"RSET".to_owned()));
        assert!(sink.messages().is_empty());
    }
}
