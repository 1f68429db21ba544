//! One bad destination cannot hold up the others: a destination that accepts
//! connections and never greets, next to a healthy one.

use std::time::{Duration, Instant};

use mailfwd_testkit::Client;
use mailfwd_testkit::sink::{Options, Sink};

use crate::harness::Server;

/// Sends `count` messages to `recipient` over `connections` sessions at once.
async fn send(server: &Server, recipient: &'static str, count: usize, connections: usize) {
    let mut sends = Vec::new();
    for connection in 0..connections {
        let address = server.smtp.clone();
        sends.push(tokio::spawn(async move {
            let mut client = Client::connect(&address).await;
            for n in 0..count / connections {
                let body = format!("Subject: {recipient} {connection}-{n}\r\n\r\nbody\r\n");
                client
                    .send_mail("a@example.org", recipient, body.as_bytes())
                    .await;
                assert_eq!(client.command("RSET").await.code, 250);
            }
        }));
    }
    for send in sends {
        send.await.unwrap();
    }
}

#[tokio::test]
async fn mail_for_a_healthy_destination_is_not_held_up_by_one_that_hangs() {
    let hang = Sink::start(Options {
        no_greeting: true,
        ..Options::destination()
    })
    .await;
    let healthy = Sink::start(Options::destination()).await;
    let routes = format!("hang.test={},ok.test={}", hang.addr, healthy.addr);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &[
            ("MAILFWD_ROUTES", routes.as_str()),
            ("MAILFWD_HOSTNAME", "mx.mailfwd.test"),
        ],
    );
    server
        .create_rule("stuck@acme.test", serde_json::json!("x@hang.test"))
        .await;
    server
        .create_rule("fine@acme.test", serde_json::json!("y@ok.test"))
        .await;

    send(&server, "stuck@acme.test", 200, 4).await;
    let started = Instant::now();
    send(&server, "fine@acme.test", 5, 1).await;
    while healthy.messages().len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{} of 5 delivered to the healthy destination after {:?}",
            healthy.messages().len(),
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "5 messages for the healthy destination delivered {:?} after 200 for the hung one",
        started.elapsed()
    );
    assert!(hang.messages().is_empty());
    server.terminate();
}
