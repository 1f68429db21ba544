//! The one SMTP test client: writes raw bytes and reads replies, over any
//! `AsyncRead + AsyncWrite` (an in-memory duplex to a session, or a TCP socket to a
//! real server), so a test sees exactly what a client sees.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long a test waits for a reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A stream the client can talk over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One reply: its code and its lines as sent, without CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply code.
    pub code: u16,
    /// Every line, code included.
    pub lines: Vec<String>,
}

impl Reply {
    /// The last line, which holds the text of a one-line reply.
    #[must_use]
    pub fn line(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or_default()
    }
}

/// One SMTP connection, as a client.
pub struct Client {
    io: BufReader<Box<dyn Io>>,
    session: Option<JoinHandle<()>>,
}

impl Client {
    /// A client on `io`; `session` is the task serving the other end, if the test runs
    /// it (see [`Client::finished`]). Nothing is read yet: not even the greeting.
    #[must_use]
    pub fn new(io: Box<dyn Io>, session: Option<JoinHandle<()>>) -> Self {
        Client {
            io: BufReader::new(io),
            session,
        }
    }

    /// Connects over TCP to `address` and reads the greeting, which must be 220.
    pub async fn connect(address: &str) -> Client {
        let stream = TcpStream::connect(address)
            .await
            .unwrap_or_else(|e| panic!("connect to the SMTP server at {address}: {e}"));
        let mut client = Client::new(Box::new(stream), None);
        client.expect_reply(220).await;
        client
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let io = self.io.get_mut();
        io.write_all(bytes.as_ref())
            .await
            .expect("send to the server");
        io.flush().await.expect("send to the server");
    }

    /// Reads one (possibly multi-line) reply; panics if none comes in time.
    pub async fn reply(&mut self) -> Reply {
        tokio::time::timeout(REPLY_TIMEOUT, self.read_reply())
            .await
            .expect("a reply in time")
    }

    async fn read_reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            self.io
                .read_until(b'\n', &mut line)
                .await
                .expect("read a reply line");
            assert!(
                !line.is_empty(),
                "the server closed the connection; reply lines so far: {lines:?}"
            );
            let line = String::from_utf8(line).expect("a UTF-8 reply line");
            let line = line
                .strip_suffix("\r\n")
                .expect("reply lines end with CRLF");
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3].parse().expect("a reply code");
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.to_owned());
            if !more {
                return Reply { code, lines };
            }
        }
    }

    /// Reads one reply and checks its code.
    pub async fn expect_reply(&mut self, code: u16) -> Reply {
        let reply = self.reply().await;
        assert_eq!(reply.code, code, "unexpected reply {reply:?}");
        reply
    }

    /// Sends one command line and returns its reply, whatever the code.
    pub async fn command(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Sends one command line and checks the code of its reply.
    pub async fn cmd(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.command(line).await;
        assert_eq!(reply.code, code, "{line} got {reply:?}");
        reply
    }

    /// `EHLO client.test`, accepted.
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

    /// Sends a whole message (dot-stuffed here) from `sender` to `recipient`, every
    /// step accepted, and returns the id from `250 … queued as <id>`.
    pub async fn send_mail(&mut self, sender: &str, recipient: &str, message: &[u8]) -> String {
        self.envelope(sender, &[recipient]).await;
        let done = self.data(&dot_stuffed(message)).await;
        assert_eq!(done.code, 250, "end of data: {done:?}");
        queued_id(&done)
    }

    /// Whether the server has closed the connection (nothing more to read).
    pub async fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.io.read_to_end(&mut rest)).await;
        matches!(read, Ok(Ok(0)))
    }

    /// Waits for the session task (if any) to end.
    pub async fn finished(&mut self) {
        if let Some(session) = self.session.take() {
            tokio::time::timeout(REPLY_TIMEOUT, session)
                .await
                .expect("the session ends")
                .expect("the session task ran to its end");
        }
    }

    /// The stream and the session task, for a TLS handshake; nothing may be buffered
    /// unread.
    #[must_use]
    pub fn into_parts(self) -> (Box<dyn Io>, Option<JoinHandle<()>>) {
        assert!(self.io.buffer().is_empty(), "unread bytes before TLS");
        (self.io.into_inner(), self.session)
    }
}

/// `message` as DATA carries it: a dot doubled at the start of each line, a CRLF
/// added if it does not end with one, and the final `.` line.
#[must_use]
pub fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    for &byte in message {
        if at_line_start && byte == b'.' {
            wire.push(b'.');
        }
        wire.push(byte);
        at_line_start = byte == b'\n';
    }
    if !message.ends_with(b"\r\n") {
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

/// Asserts that `reply` is `250 2.0.0 Ok: queued as <id>` and returns the id text
/// (tests call it for the assertion alone, too).
pub fn queued_id(reply: &Reply) -> String {
    let id = reply
        .line()
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not a queued reply: {reply:?}"));
    id.to_owned()
}

/// The id in the first `… queued as <id>` anywhere in `text` (a transcript of
/// another client, say).
#[must_use]
pub fn queued_id_in(text: &str) -> Option<String> {
    let after = text.split("queued as ").nth(1)?;
    let id: String = after
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    (!id.is_empty()).then_some(id)
}
