//! Message bodies for the tests: fixed chunks, and a large body generated lazily that
//! watches how far the mailer reads ahead of what the server has received. And what
//! arrives of a stored body that is not CRLF-only.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use mailfwd_domain::EmailAddress;
use mailfwd_domain::StoreError;
use mailfwd_domain::delivery::{DeliveryOutcome, Outgoing};
use mailfwd_domain::email::BodyReader;

use crate::SendOne;
use crate::relay_to;
use mailfwd_testkit::sink::{Options, Sink};

/// A body handed out in the given chunks.
pub struct Chunks(VecDeque<Bytes>);

#[async_trait]
impl BodyReader for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.0.pop_front())
    }
}

pub fn address(text: &str) -> EmailAddress {
    EmailAddress::parse(text).expect("a valid address")
}

/// A message from `sender` (`None`: `<>`) to `recipient` whose body comes in `chunks`.
pub fn message(sender: Option<&str>, recipient: &str, chunks: &[&[u8]]) -> Outgoing {
    to_all(sender, &[recipient], chunks)
}

/// A message from `sender` (`None`: `<>`) to `recipients` whose body comes in `chunks`.
pub fn to_all(sender: Option<&str>, recipients: &[&str], chunks: &[&[u8]]) -> Outgoing {
    let size = chunks.iter().map(|c| c.len() as u64).sum();
    Outgoing {
        sender: sender.map(address),
        recipients: recipients
            .iter()
            .map(|recipient| address(recipient))
            .collect(),
        body: Box::new(Chunks(
            chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect(),
        )),
        size,
        encoding: mailfwd_domain::Encoding::default(),
    }
}

/// A simple message from `a@sender.test`.
pub fn simple(recipient: &str) -> Outgoing {
    message(
        Some("a@sender.test"),
        recipient,
        &[b"Subject: hi\r\n\r\nhello\r\n"],
    )
}

/// One block of the generated body: lines of varying length, some starting with dots.
pub fn block() -> Vec<u8> {
    let mut block = Vec::with_capacity(1000);
    let mut line = 0;
    while block.len() < 900 {
        let prefix: &[u8] = match line % 4 {
            0 => b".",
            1 => b"..",
            2 => b"",
            _ => b"x.",
        };
        block.extend_from_slice(prefix);
        block.extend(std::iter::repeat_n(b'a' + (line % 26) as u8, line * 7 % 60));
        block.extend_from_slice(b"\r\n");
        line += 1;
    }
    block
}

/// The body `block()` repeated `blocks` times, produced in chunks of `chunk` octets
/// (which do not line up with lines), never all in memory.
pub struct Generated {
    block: Vec<u8>,
    total: u64,
    produced: u64,
    chunk: usize,
    /// What the server has received so far.
    received: Arc<AtomicU64>,
    /// The most the mailer ever read ahead of the server.
    pub max_lead: Arc<AtomicU64>,
}

impl Generated {
    pub fn new(blocks: u64, chunk: usize, received: Arc<AtomicU64>) -> Self {
        let block = block();
        Generated {
            total: blocks * block.len() as u64,
            block,
            produced: 0,
            chunk,
            received,
            max_lead: Arc::default(),
        }
    }

    pub fn size(&self) -> u64 {
        self.total
    }
}

#[async_trait]
impl BodyReader for Generated {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        let lead = self
            .produced
            .saturating_sub(self.received.load(Ordering::Relaxed));
        self.max_lead.fetch_max(lead, Ordering::Relaxed);
        if self.produced == self.total {
            return Ok(None);
        }
        let len = (self.total - self.produced).min(self.chunk as u64) as usize;
        let mut out = Vec::with_capacity(len);
        let block_len = self.block.len() as u64;
        while out.len() < len {
            let at = ((self.produced + out.len() as u64) % block_len) as usize;
            let take = (self.block.len() - at).min(len - out.len());
            out.extend_from_slice(&self.block[at..at + take]);
        }
        self.produced += len as u64;
        Ok(Some(Bytes::from(out)))
    }
}

/// A stored body that smuggles a second transaction past a next hop that ends DATA at
/// `<LF>.<LF>` or at `<CR>.<CR>`, cut so that line endings straddle chunks.
const SMUGGLING: &[&[u8]] = &[
    b"Subject: hi\r\n\r\nhello\n",
    b".\nMAIL FROM:<ceo@bank.test>\nRCPT TO:<x@victim.test>\nDATA\n\n",
    b"forged\r",
    b".\r",
    b"MAIL FROM:<cfo@bank.test>\r\r",
    b"\nend",
];

/// The same body as every receiver must get it: CRLF-only, ending with CRLF.
const NORMALIZED: &[u8] = b"Subject: hi\r\n\r\nhello\r\n.\r\nMAIL FROM:<ceo@bank.test>\r\n\
    RCPT TO:<x@victim.test>\r\nDATA\r\n\r\nforged\r\n.\r\nMAIL FROM:<cfo@bank.test>\r\n\r\n\
    end\r\n";

async fn deliver_smuggling(chunking: bool) {
    let sink = Sink::start(Options {
        chunking,
        ..Options::default()
    })
    .await;
    let outcome = relay_to(&sink)
        .send_one(message(Some("a@sender.test"), "b@dest.test", SMUGGLING))
        .await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        String::from_utf8_lossy(&messages[0].body),
        String::from_utf8_lossy(NORMALIZED)
    );
    assert_eq!(messages[0].bdat, chunking);
    let mails: Vec<String> = sink
        .commands()
        .into_iter()
        .filter(|command| command.starts_with("MAIL"))
        .collect();
    assert_eq!(mails, ["MAIL FROM:<a@sender.test>"]);
}

#[tokio::test]
async fn bare_lf_and_cr_dot_lines_arrive_as_one_normalized_message_over_data() {
    deliver_smuggling(false).await;
}

#[tokio::test]
async fn bare_lf_and_cr_dot_lines_arrive_as_one_normalized_message_over_bdat() {
    deliver_smuggling(true).await;
}
