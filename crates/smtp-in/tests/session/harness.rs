//! A mailfwd on in-memory stores, and an SMTP client that reads replies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailfwd_domain::email::{BodyStore, EmailLog, EmailQuery, SplitEmailStore};
use mailfwd_domain::memory::{MemoryBodyStore, MemoryEmailLog, MemoryRuleStore};
use mailfwd_domain::{
    EmailAddress, EmailStore, Ingest, IngestLimits, ReceivedEmail, RecipientPattern, Rule,
    RuleStore,
};
use mailfwd_smtp_in::{SmtpConfig, run_session};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

/// The address the in-memory client seems to connect from.
pub const PEER: &str = "192.0.2.7:4242";
/// How long a test waits for a reply before failing.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

pub fn config() -> SmtpConfig {
    SmtpConfig {
        hostname: "mx.test".into(),
        ..SmtpConfig::default()
    }
}

/// mailfwd's ingest side: rules for `sales@acme.test` and `info@acme.test`.
pub struct Mailfwd {
    pub ingest: Ingest,
    pub emails: Arc<dyn EmailStore>,
}

impl Mailfwd {
    pub async fn new() -> Self {
        Mailfwd::with(IngestLimits::default()).await
    }

    pub async fn with(limits: IngestLimits) -> Self {
        Mailfwd::on(
            limits,
            Arc::new(MemoryBodyStore::new()),
            Arc::new(MemoryEmailLog::new()),
        )
        .await
    }

    pub async fn on(
        limits: IngestLimits,
        bodies: Arc<dyn BodyStore>,
        log: Arc<dyn EmailLog>,
    ) -> Self {
        let rules = Arc::new(MemoryRuleStore::new());
        for pattern in ["sales@acme.test", "info@acme.test"] {
            let rule = Rule::new(
                RecipientPattern::parse(pattern).unwrap(),
                vec![addr("dest@elsewhere.test")],
                10,
            )
            .unwrap();
            rules.create(rule).await.unwrap();
        }
        Mailfwd::on_rules(limits, rules, bodies, log)
    }

    pub fn on_rules(
        limits: IngestLimits,
        rules: Arc<dyn RuleStore>,
        bodies: Arc<dyn BodyStore>,
        log: Arc<dyn EmailLog>,
    ) -> Self {
        let emails: Arc<dyn EmailStore> = Arc::new(SplitEmailStore::new(bodies, log));
        Mailfwd {
            ingest: Ingest::new(rules, Arc::clone(&emails), limits),
            emails,
        }
    }

    /// Every email stored, with its body, read back through the [`EmailStore`].
    pub async fn stored(&self) -> Vec<(ReceivedEmail, Vec<u8>)> {
        let page = self
            .emails
            .list(&EmailQuery {
                limit: 1000,
                ..EmailQuery::default()
            })
            .await
            .unwrap();
        let mut stored = Vec::new();
        for email in page.emails {
            let mut reader = self.emails.open_body(&email.id).await.unwrap();
            let mut body = Vec::new();
            while let Some(chunk) = reader.next_chunk().await.unwrap() {
                body.extend_from_slice(&chunk);
            }
            stored.push((email, body));
        }
        stored
    }

    /// A session over an in-memory stream, its greeting already read.
    pub async fn connect(&self, config: SmtpConfig) -> Client {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let ingest = self.ingest.clone();
        let peer: SocketAddr = PEER.parse().unwrap();
        let session =
            tokio::spawn(async move { run_session(server, peer, &ingest, &config).await });
        let mut client = Client::new(Box::new(client), Some(session));
        client.expect_reply(220).await;
        client
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One reply: its code and its lines as sent, without CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The last line, which holds the text of a one-line reply.
    pub fn line(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or_default()
    }
}

/// A client that writes raw bytes and reads replies.
pub struct Client {
    io: BufReader<Box<dyn Io>>,
    session: Option<JoinHandle<()>>,
}

impl Client {
    pub fn new(io: Box<dyn Io>, session: Option<JoinHandle<()>>) -> Self {
        Client {
            io: BufReader::new(io),
            session,
        }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.io.get_mut().write_all(bytes.as_ref()).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    pub async fn reply(&mut self) -> Reply {
        tokio::time::timeout(REPLY_TIMEOUT, self.read_reply())
            .await
            .expect("a reply in time")
    }

    async fn read_reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            self.io.read_until(b'\n', &mut line).await.unwrap();
            let line = String::from_utf8(line).unwrap();
            let line = line
                .strip_suffix("\r\n")
                .expect("reply lines end with CRLF");
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3].parse().unwrap();
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.to_owned());
            if !more {
                return Reply { code, lines };
            }
        }
    }

    pub async fn expect_reply(&mut self, code: u16) -> Reply {
        let reply = self.reply().await;
        assert_eq!(reply.code, code, "unexpected reply {reply:?}");
        reply
    }

    /// Sends one command line and checks the code of its reply.
    pub async fn cmd(&mut self, line: &str, code: u16) -> Reply {
        self.send(format!("{line}\r\n")).await;
        let reply = self.reply().await;
        assert_eq!(reply.code, code, "{line} got {reply:?}");
        reply
    }

    pub async fn ehlo(&mut self) -> Reply {
        self.cmd("EHLO client.test", 250).await
    }

    /// EHLO, MAIL FROM and RCPT TO for each recipient, all accepted.
    pub async fn envelope(&mut self, from: &str, to: &[&str]) {
        self.ehlo().await;
        self.cmd(&format!("MAIL FROM:<{from}>"), 250).await;
        for recipient in to {
            self.cmd(&format!("RCPT TO:<{recipient}>"), 250).await;
        }
    }

    /// Sends DATA and the (already dot-stuffed and terminated) data; returns the reply.
    pub async fn data(&mut self, raw: &[u8]) -> Reply {
        self.cmd("DATA", 354).await;
        self.send(raw).await;
        self.reply().await
    }

    /// Whether the server has closed the connection (nothing more to read).
    pub async fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.io.read_to_end(&mut rest)).await;
        matches!(read, Ok(Ok(0)))
    }

    /// Waits for the session task to end.
    pub async fn finished(&mut self) {
        if let Some(session) = self.session.take() {
            tokio::time::timeout(REPLY_TIMEOUT, session)
                .await
                .expect("the session ends")
                .unwrap();
        }
    }

    /// The stream, for a TLS handshake; nothing may be buffered unread.
    pub fn into_parts(self) -> (Box<dyn Io>, Option<JoinHandle<()>>) {
        assert!(self.io.buffer().is_empty(), "unread bytes before TLS");
        (self.io.into_inner(), self.session)
    }
}

/// Asserts that `reply` is `250 2.0.0 Ok: queued as <id>` and returns the id text.
pub fn queued_id(reply: &Reply) -> String {
    let id = reply
        .line()
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not a queued reply: {reply:?}"));
    id.to_owned()
}
