//! A 25 MB message, generated lazily, through DATA and through BDAT: it arrives intact,
//! and the mailer never reads far ahead of what the server has received, so it
//! streams instead of collecting the body.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mailfwd_domain::delivery::{DeliveryOutcome, Outgoing};

use crate::SendOne;
use crate::body::{Generated, address, block};
use crate::relay_to;
use mailfwd_testkit::sink::{Options, Sink, fnv};

const TARGET: u64 = 25_000_000;
/// The mailer's socket send buffer can hold up to 4 MB (Linux `tcp_wmem`), the sink's
/// receive buffer is fixed at 256 KiB; a mailer that collected the body would be 25 MB
/// ahead.
const MAX_LEAD: u64 = 12 << 20;

async fn send_large(options: Options) {
    let sink = Sink::start(options).await;
    let block = block();
    let blocks = TARGET / block.len() as u64 + 1;
    let body = Generated::new(blocks, 64 * 1024 + 13, Arc::clone(&sink.octets));
    let lead = Arc::clone(&body.max_lead);
    let size = body.size();
    let message = Outgoing {
        sender: Some(address("big@sender.test")),
        recipients: vec![address("b@dest.test")],
        size,
        encoding: mailfwd_domain::Encoding::default(),
        body: Box::new(body),
    };
    let outcome = relay_to(&sink).send_one(message).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );

    let received = sink.messages().pop().expect("one message");
    let mut expected = 0;
    for _ in 0..blocks {
        expected = fnv(expected, &block);
    }
    assert_eq!(received.len, size);
    assert!(size >= TARGET);
    assert_eq!(received.hash, expected, "the bytes arrived unchanged");
    let lead = lead.load(Ordering::Relaxed);
    assert!(lead < MAX_LEAD, "read {lead} octets ahead of the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_25_mb_message_is_streamed_through_data() {
    send_large(Options::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_25_mb_message_is_streamed_through_bdat() {
    send_large(Options {
        chunking: true,
        ..Options::default()
    })
    .await;
}
