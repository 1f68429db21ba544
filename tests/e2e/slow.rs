//! A destination slower than the lease (issue 11): one attempt takes longer than the
//! lease, yet the destination receives the message once and the outcome is recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::harness::Server;
use mailfwd_testkit::Client;

/// An SMTP server that takes each message's data and then sits on its final reply for
/// `takes`, as the destination answering a byte a second; counts the messages.
async fn crawling_destination(takes: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 crawl.test ESMTP\r\n").await;
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if in_data {
                        if line != "." {
                            continue;
                        }
                        in_data = false;
                        counter.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(takes).await;
                        b"250 2.0.0 taken at last\r\n"
                    } else if line.to_ascii_uppercase().starts_with("EHLO") {
                        b"250 crawl.test\r\n"
                    } else if line.eq_ignore_ascii_case("DATA") {
                        in_data = true;
                        b"354 go on\r\n"
                    } else if line.eq_ignore_ascii_case("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, received)
}

#[tokio::test]
async fn a_destination_slower_than_the_lease_receives_the_message_once() {
    let (relay, received) = crawling_destination(Duration::from_secs(30)).await;
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("MAILFWD_RELAY", relay.as_str()),
        ("MAILFWD_HOSTNAME", "mx.mailfwd.test"),
        ("MAILFWD_DELIVERY_LEASE", "3s"),
        ("MAILFWD_DELIVERY_ATTEMPT_TIMEOUT", "2s"),
        ("MAILFWD_RETRY_SCHEDULE", "1h"),
    ];
    let server = Server::start(data.path(), &env);
    server
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;
    let mut client = Client::connect(&server.smtp).await;
    let id = client
        .send_mail(
            "a@example.org",
            "sales@acme.test",
            b"Subject: slow\r\n\r\nbody\r\n",
        )
        .await;
    let sent = Instant::now();

    let recorded = loop {
        let deliveries = server.deliveries(&id).await;
        if let Some(reply) = deliveries
            .first()
            .and_then(|delivery| delivery["last_reply"].as_str())
        {
            break (reply.to_owned(), deliveries[0]["attempts"].clone());
        }
        assert!(sent.elapsed() < Duration::from_secs(20), "never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("attempt recorded after {:?}: {recorded:?}", sent.elapsed());
    assert_eq!(
        recorded,
        ("attempt deadline of 2 s exceeded".to_owned(), json!(1))
    );
    // Several leases and idle looks at the queue later: no second copy.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(received.load(Ordering::SeqCst), 1, "received once");
    let deliveries = server.deliveries(&id).await;
    assert_eq!(
        (
            deliveries[0]["state"].clone(),
            deliveries[0]["attempts"].clone()
        ),
        (json!("pending"), json!(1))
    );
}
