//! DATA and BDAT: what is stored, byte for byte, and what is refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::email::{BodyReader, BodyStore, BodyWriter, EmailId, StoreError};
use mailfwd_domain::memory::{MemoryBodyStore, MemoryEmailLog};
use mailfwd_domain::{IngestLimits, MessagePolicy};

use crate::harness::{Mailfwd, PEER, addr, config, queued_id};

#[tokio::test]
async fn a_message_is_stored_unstuffed_with_its_record() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client
        .envelope("alice@sender.test", &["sales@acme.test"])
        .await;
    let raw = b"Subject: dots\r\n\r\n..leading dot\r\n...two\r\n.\r\n";
    let id = queued_id(&client.data(raw).await);
    client.cmd("QUIT", 221).await;

    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    let (email, body) = &stored[0];
    assert_eq!(email.id.to_string(), id);
    assert_eq!(
        body.as_slice(),
        b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n"
    );
    assert_eq!(email.size, body.len() as u64);
    assert_eq!(email.email.envelope.sender, Some(addr("alice@sender.test")));
    assert_eq!(email.email.envelope.recipients, [addr("sales@acme.test")]);
    assert_eq!(email.email.peer.as_deref(), Some(PEER));
    assert_eq!(email.email.helo.as_deref(), Some("client.test"));
    assert!(!email.email.tls);
}

/// A body store that records the size of every chunk written to it.
#[derive(Default)]
struct Recording {
    inner: MemoryBodyStore,
    writes: Arc<Mutex<Vec<usize>>>,
}

struct RecordingWriter {
    inner: Box<dyn BodyWriter>,
    writes: Arc<Mutex<Vec<usize>>>,
}

#[async_trait]
impl BodyWriter for RecordingWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.writes.lock().unwrap().push(chunk.len());
        self.inner.write(chunk).await
    }
    async fn commit(self: Box<Self>) -> Result<u64, StoreError> {
        self.inner.commit().await
    }
    async fn abort(self: Box<Self>) {
        self.inner.abort().await;
    }
}

#[async_trait]
impl BodyStore for Recording {
    async fn create(&self, id: &EmailId) -> Result<Box<dyn BodyWriter>, StoreError> {
        Ok(Box::new(RecordingWriter {
            inner: self.inner.create(id).await?,
            writes: Arc::clone(&self.writes),
        }))
    }
    async fn open(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        self.inner.open(id).await
    }
    async fn delete(&self, id: &EmailId) -> Result<(), StoreError> {
        self.inner.delete(id).await
    }
}

#[tokio::test]
async fn the_body_is_stored_while_it_arrives() {
    let bodies = Arc::new(Recording::default());
    let writes = Arc::clone(&bodies.writes);
    let mailfwd = Mailfwd::on(
        IngestLimits::default(),
        bodies,
        Arc::new(MemoryEmailLog::new()),
    )
    .await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    client.cmd("DATA", 354).await;
    client.send(b"Subject: big\r\n\r\n").await;
    client.send("line\r\n".repeat(1000)).await;
    // Before the end of the data arrives, some of it is already in the store.
    tokio::time::timeout(Duration::from_secs(5), async {
        while writes.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("chunks written before the end");
    client.send(b"last\r\n.\r\n").await;
    queued_id(&client.reply().await);
    let stored = mailfwd.stored().await;
    let expected = [
        &b"Subject: big\r\n\r\n"[..],
        &b"line\r\n".repeat(1000),
        b"last\r\n",
    ]
    .concat();
    assert_eq!(stored[0].1, expected);
    assert_eq!(writes.lock().unwrap().iter().sum::<usize>(), expected.len());
}

#[tokio::test]
async fn bdat_chunks_are_stored_byte_exact() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    client.send("BDAT 12\r\nSubject: x\r\n").await;
    assert_eq!(client.reply().await.line(), "250 2.0.0 12 octets received");
    // BDAT is not dot-stuffed: ".\r\n" lines are content.
    let second = b"\r\n.\r\n..x\r\nab\r";
    client.send(format!("BDAT {}\r\n", second.len())).await;
    client.send(second).await;
    client.expect_reply(250).await;
    // The CR that ended the last chunk meets its LF here, but this body ends in a bare CR.
    client.send("BDAT 3 LAST\r\n\nz\r").await;
    let reply = client.reply().await;
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(mailfwd.stored().await.is_empty());

    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    client.cmd("RCPT TO:<sales@acme.test>", 250).await;
    client.send("BDAT 5\r\na\r\nb\r").await;
    client.expect_reply(250).await;
    client.send("BDAT 4\r\n\nc\r\n").await;
    client.expect_reply(250).await;
    client.send("BDAT 0 LAST\r\n").await;
    queued_id(&client.reply().await);
    client.cmd("QUIT", 221).await;
    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, b"a\r\nb\r\nc\r\n");
}

#[tokio::test]
async fn pipelined_commands_get_every_reply_in_order() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client
        .send(concat!(
            "EHLO client.test\r\n",
            "MAIL FROM:<a@b.test>\r\n",
            "RCPT TO:<sales@acme.test>\r\n",
            "RCPT TO:<nobody@acme.test>\r\n",
            "RCPT TO:<info@acme.test>\r\n",
            "DATA\r\n",
        ))
        .await;
    for code in [250, 250, 250, 550, 250, 354] {
        client.expect_reply(code).await;
    }
    client
        .send(concat!(
            "Subject: one\r\n\r\nfirst\r\n.\r\n",
            "MAIL FROM:<c@d.test>\r\n",
            "RCPT TO:<info@acme.test>\r\n",
            "BDAT 8 LAST\r\nsecond\r\n",
            "NOOP\r\n",
            "QUIT\r\n",
        ))
        .await;
    let first = queued_id(&client.reply().await);
    client.expect_reply(250).await;
    client.expect_reply(250).await;
    let second = queued_id(&client.reply().await);
    client.expect_reply(250).await;
    client.expect_reply(221).await;
    assert!(client.is_closed().await);

    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].0.id.to_string(), first);
    assert_eq!(stored[0].1, b"Subject: one\r\n\r\nfirst\r\n");
    assert_eq!(
        stored[0].0.email.envelope.recipients,
        [addr("sales@acme.test"), addr("info@acme.test")]
    );
    assert_eq!(stored[1].0.id.to_string(), second);
    assert_eq!(stored[1].1, b"second\r\n");
}

#[tokio::test]
async fn bare_cr_or_lf_refuses_the_whole_message() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    let refusal = "550 5.6.11 bare CR or LF in message; lines must end with CRLF";
    for raw in [
        &b"Subject: x\r\n\r\nline one\nline two\r\n.\r\n"[..],
        b"Subject: x\r\n\r\nline one\rline two\r\n.\r\n",
        b"Subject: x\r\n\r\nends in CR\r\r\n.\r\n",
    ] {
        client.envelope("a@b.test", &["sales@acme.test"]).await;
        assert_eq!(client.data(raw).await.line(), refusal, "{raw:?}");
    }
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    client.send("BDAT 5 LAST\r\na\nb\r\n").await;
    assert_eq!(client.reply().await.line(), refusal);
    // A refused chunk ends the transaction; the rest of the pipeline is read, not run.
    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    client.cmd("RCPT TO:<sales@acme.test>", 250).await;
    client.send("BDAT 4\r\na\rb\nBDAT 2 LAST\r\nok").await;
    assert_eq!(client.reply().await.line(), refusal);
    assert_eq!(client.expect_reply(503).await.code, 503);
    client.cmd("NOOP", 250).await;
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn an_oversized_message_is_read_to_its_end_and_not_stored() {
    let mailfwd = Mailfwd::with(IngestLimits {
        message: MessagePolicy {
            max_size: 100,
            ..MessagePolicy::default()
        },
        ..IngestLimits::default()
    })
    .await;
    let mut client = mailfwd.connect(config()).await;
    let too_large = "552 5.3.4 Message size exceeds fixed maximum message size";
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    let raw = [
        b"Subject: big\r\n\r\n".to_vec(),
        b"0123456789\r\n".repeat(100),
        b".\r\n".to_vec(),
    ]
    .concat();
    assert_eq!(client.data(&raw).await.line(), too_large);
    client.cmd("NOOP", 250).await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    client
        .send(format!("BDAT 200 LAST\r\n{}", "x".repeat(200)))
        .await;
    assert_eq!(client.reply().await.line(), too_large);
    client.cmd("NOOP", 250).await;
    // Exactly at the limit is fine.
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    let fits = [b"x".repeat(98), b"\r\n.\r\n".to_vec()].concat();
    queued_id(&client.data(&fits).await);
    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1.len(), 100);
}

#[tokio::test]
async fn a_mail_loop_is_refused() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    let looped = [
        b"Received: from a by b\r\n".repeat(51),
        b"\r\nbody\r\n.\r\n".to_vec(),
    ]
    .concat();
    assert_eq!(
        client.data(&looped).await.line(),
        "554 5.4.6 Too many hops (mail loop)"
    );
    assert!(mailfwd.stored().await.is_empty());
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    let fifty = [
        b"Received: from a by b\r\n".repeat(50),
        b"\r\nbody\r\n.\r\n".to_vec(),
    ]
    .concat();
    queued_id(&client.data(&fifty).await);
    assert_eq!(mailfwd.stored().await.len(), 1);
}

/// RFC 3030: a pipelining client may have sent many chunks before it sees that the
/// message was refused at the first. They are read and thrown away, answered `503`
/// without counting as errors, so the session goes on.
#[tokio::test]
async fn chunks_pipelined_after_a_refused_chunk_are_discarded_quietly() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    let mut pipeline = b"BDAT 4\r\na\nb\r".to_vec();
    for _ in 0..20 {
        pipeline.extend_from_slice(b"BDAT 6\r\nmore\r\n");
    }
    pipeline.extend_from_slice(b"BDAT 4 LAST\r\nend\n");
    client.send(&pipeline).await;
    let refused = client.reply().await;
    assert!(refused.line().starts_with("550 5.6.11"), "{refused:?}");
    for _ in 0..20 {
        let discarded = client.expect_reply(503).await;
        assert_eq!(
            discarded.line(),
            "503 5.5.1 6 octets discarded: the message was refused at an earlier chunk"
        );
    }
    client.expect_reply(503).await;
    // Still in step, and the next message goes through.
    client.cmd("NOOP", 250).await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    client.send("BDAT 10 LAST\r\nSubject:\r\n").await;
    let accepted = client.expect_reply(250).await;
    assert!(accepted.line().contains("queued as"), "{accepted:?}");
    // A BDAT with no transaction and nothing refused is still a sequence error.
    client.send("BDAT 2 LAST\r\nok").await;
    client.expect_reply(503).await;
    client.cmd("QUIT", 221).await;
    assert_eq!(mailfwd.stored().await.len(), 1);
}

/// The common pipeline where every recipient was refused and the chunks follow anyway:
/// they are discarded quietly too, not counted against the error budget.
#[tokio::test]
async fn chunks_pipelined_after_all_recipients_were_refused_are_discarded_quietly() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.ehlo().await;
    let mut pipeline = b"MAIL FROM:<a@b.test>\r\nRCPT TO:<nobody@acme.test>\r\n".to_vec();
    for _ in 0..15 {
        pipeline.extend_from_slice(b"BDAT 6\r\nmore\r\n");
    }
    pipeline.extend_from_slice(b"BDAT 4 LAST\r\nend\n");
    client.send(&pipeline).await;
    client.expect_reply(250).await;
    client.expect_reply(550).await;
    let first = client.expect_reply(503).await;
    assert!(
        first.line().starts_with("503 5.5.1 Send RCPT first"),
        "{first:?}"
    );
    for _ in 0..15 {
        let discarded = client.expect_reply(503).await;
        assert!(
            discarded.line().contains("octets discarded"),
            "{discarded:?}"
        );
    }
    client.cmd("NOOP", 250).await;
    client.cmd("QUIT", 221).await;
    assert!(mailfwd.stored().await.is_empty());
}
