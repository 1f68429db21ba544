//! The sink's modes and its two views of a message, seen through the test client over
//! a real socket.

use std::time::{Duration, Instant};

use mailfwd_testkit::Client;
use mailfwd_testkit::client::dot_stuffed;
use mailfwd_testkit::sink::{Mode, Options, Received, SLOW_REPLY, Sink};

async fn connect(sink: &Sink) -> Client {
    let mut client = Client::connect(&sink.addr.to_string()).await;
    client.ehlo().await;
    client
}

#[tokio::test]
async fn modes_change_the_answers_while_the_connection_stays() {
    let sink = Sink::start(Options::destination()).await;
    let mut client = connect(&sink).await;
    client.cmd("MAIL FROM:<a@src.test>", 250).await;
    let refused = client.cmd("RCPT TO:<reject-me@dest.test>", 550).await;
    assert_eq!(refused.line(), "550 5.1.1 no such user here");

    sink.set_mode(Mode::TempFail);
    let down = client.cmd("RCPT TO:<b@dest.test>", 451).await;
    assert_eq!(down.line(), "451 4.3.0 destination is down, try later");

    sink.set_mode(Mode::Slow);
    client.cmd("RCPT TO:<b@dest.test>", 250).await;
    let started = Instant::now();
    let done = client
        .data(&dot_stuffed(b"Subject: x\r\n\r\n.dot\r\n"))
        .await;
    assert!(started.elapsed() >= SLOW_REPLY, "{:?}", started.elapsed());
    assert_eq!(done.line(), "250 2.0.0 queued by sink");

    let received = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(
        received,
        [Received {
            sender: "a@src.test".to_owned(),
            recipients: vec!["b@dest.test".to_owned()],
            data: b"Subject: x\r\n\r\n.dot\r\n".to_vec(),
        }]
    );
    let message = &sink.messages()[0];
    assert_eq!(message.mail_from, "MAIL FROM:<a@src.test>");
    assert_eq!(message.rcpt_to, ["RCPT TO:<b@dest.test>"]);
}

#[tokio::test]
async fn send_mail_returns_the_queued_id_of_a_scripted_reply() {
    let sink = Sink::start(Options {
        data_reply: "250 2.0.0 Ok: queued as 0190-abcd".into(),
        ..Options::default()
    })
    .await;
    let mut client = Client::connect(&sink.addr.to_string()).await;
    let id = client
        .send_mail("a@src.test", "b@dest.test", b"no final CRLF")
        .await;
    assert_eq!(id, "0190-abcd");
    assert_eq!(sink.received()[0].data, b"no final CRLF\r\n");
    client.cmd("QUIT", 221).await;
    assert!(client.is_closed().await);
}
