//! Fewer round trips: the envelope pipelined (RFC 2920), refusals inside a pipelined
//! group, and pooled connections reused without NOOP yet never used once the server
//! has closed them.

use std::time::Duration;

use mailfwd_domain::delivery::DeliveryOutcome;

use crate::SendOne;
use crate::body::simple;
use crate::relay_to;
use mailfwd_testkit::sink::{Options, Sink};

fn delivered(outcome: &DeliveryOutcome) -> bool {
    matches!(outcome, DeliveryOutcome::Delivered(_))
}

#[tokio::test]
async fn the_envelope_and_data_arrive_together_when_pipelining_is_offered() {
    let sink = Sink::start(Options::default()).await;
    let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
    assert!(delivered(&outcome), "{outcome:?}");
    // MAIL and RCPT each had the next command behind them when the sink read them:
    // DATA was sent before the sink had answered MAIL.
    assert_eq!(
        sink.log().batched,
        ["MAIL FROM:<a@sender.test>", "RCPT TO:<b@dest.test>"]
    );
}

#[tokio::test]
async fn without_pipelining_each_command_waits_for_its_reply() {
    let sink = Sink::start(Options {
        pipelining: false,
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
    assert!(delivered(&outcome), "{outcome:?}");
    assert!(sink.log().batched.is_empty(), "{:?}", sink.log().batched);
}

#[tokio::test]
async fn with_chunking_mail_and_rcpt_are_pipelined_then_bdat_is_sent() {
    let sink = Sink::start(Options {
        chunking: true,
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink).send_one(simple("b@dest.test")).await;
    assert!(delivered(&outcome), "{outcome:?}");
    assert!(sink.messages()[0].bdat);
    // (A BDAT line always has its chunk behind it.)
    assert_eq!(
        sink.log().batched,
        ["MAIL FROM:<a@sender.test>", "BDAT 22 LAST"]
    );
}

/// Two messages to a recipient the server refuses, on one connection: each time the
/// RCPT reply is the outcome, and the connection, reset, stays in step for the next.
async fn refused_rcpt_twice(options: Options) -> Sink {
    let sink = Sink::start(Options {
        rcpt_reply: "550 5.1.1 no such user".into(),
        ..options
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
    let envelope = [
        "MAIL FROM:<a@sender.test>",
        "RCPT TO:<nobody@dest.test>",
        "DATA",
        "RSET",
    ];
    assert_eq!(sink.commands()[1..], envelope.repeat(2));
    sink
}

#[tokio::test]
async fn a_refused_rcpt_with_data_refused_too_leaves_the_connection_usable() {
    let sink = refused_rcpt_twice(Options::default()).await;
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn data_accepted_despite_a_refused_rcpt_is_ended_empty() {
    let sink = refused_rcpt_twice(Options {
        data_without_rcpt: true,
        ..Options::default()
    })
    .await;
    // The server got a lone "." each time: empty data, never the body.
    let messages = sink.messages();
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m.len == 0 && m.rcpt_to.is_empty()));
}

#[tokio::test]
async fn a_connection_the_server_timed_out_while_idle_is_not_used() {
    let sink = Sink::start(Options {
        idle_notice: Some(Duration::from_millis(50)),
        ..Options::default()
    })
    .await;
    let mailer = relay_to(&sink);
    assert!(delivered(&mailer.send_one(simple("b@dest.test")).await));
    assert!(
        sink.wait_for(|log| log.notices == 1).await,
        "the 421 notice was sent"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(delivered(&mailer.send_one(simple("c@dest.test")).await));
    let log = sink.log();
    assert_eq!(log.connections, 2);
    let connections: Vec<usize> = log.messages.iter().map(|m| m.connection).collect();
    assert_eq!(connections, [0, 1]);
    drop(log);
    // The notice was seen without a command: nothing was sent on the first connection
    // after it, not even a NOOP.
    assert_eq!(sink.commands_on(0).last().map(String::as_str), Some("DATA"));
}

#[tokio::test]
async fn a_reused_connection_lost_at_mail_from_is_retried_on_a_new_one() {
    let sink = Sink::start(Options {
        close_at_second_mail: true,
        ..Options::default()
    })
    .await;
    let mailer = relay_to(&sink);
    assert!(delivered(&mailer.send_one(simple("b@dest.test")).await));
    let outcome = mailer.send_one(simple("c@dest.test")).await;
    assert!(delivered(&outcome), "not deferred: {outcome:?}");
    let log = sink.log();
    assert_eq!(log.connections, 2);
    let connections: Vec<usize> = log.messages.iter().map(|m| m.connection).collect();
    assert_eq!(connections, [0, 1]);
    drop(log);
    // The first connection looked alive, so the message was tried on it first.
    let on_first = sink.commands_on(0);
    assert_eq!(on_first.iter().filter(|c| c.starts_with("MAIL")).count(), 2);
}
