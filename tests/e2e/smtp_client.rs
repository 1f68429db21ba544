//! A small SMTP client over a real TCP socket, to see exactly what a client sees.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A reply: its code and its text lines joined with `\n`.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// One SMTP connection.
pub struct SmtpClient {
    stream: BufReader<TcpStream>,
}

impl SmtpClient {
    /// Connects and reads the greeting, which must be 220.
    pub async fn connect(address: &str) -> SmtpClient {
        let stream = TcpStream::connect(address)
            .await
            .expect("connect to mailfwd's SMTP port");
        let mut client = SmtpClient {
            stream: BufReader::new(stream),
        };
        let greeting = client.reply().await;
        assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
        client
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn reply(&mut self) -> Reply {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            let read = self
                .stream
                .read_line(&mut line)
                .await
                .expect("read a reply line");
            assert!(
                read > 0,
                "the server closed the connection; replies so far: {text:?}"
            );
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .expect("a reply code");
            text.push(line.get(4..).unwrap_or_default().trim_end().to_owned());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Reply {
                    code,
                    text: text.join("\n"),
                };
            }
        }
    }

    /// Sends one command line and reads its reply.
    pub async fn command(&mut self, line: &str) -> Reply {
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("send a command");
        self.reply().await
    }

    /// Sends DATA, the dot-stuffed message and the final dot; returns the final reply.
    pub async fn data(&mut self, message: &[u8]) -> Reply {
        let go_ahead = self.command("DATA").await;
        assert_eq!(go_ahead.code, 354, "DATA: {go_ahead:?}");
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
        self.stream
            .get_mut()
            .write_all(&wire)
            .await
            .expect("send the message");
        self.reply().await
    }

    /// Sends a whole message to `recipient` and returns the id from `250 … queued as <id>`.
    pub async fn send(&mut self, sender: &str, recipient: &str, message: &[u8]) -> String {
        assert_eq!(self.command("EHLO client.test").await.code, 250);
        assert_eq!(
            self.command(&format!("MAIL FROM:<{sender}>")).await.code,
            250
        );
        let rcpt = self.command(&format!("RCPT TO:<{recipient}>")).await;
        assert_eq!(rcpt.code, 250, "RCPT: {rcpt:?}");
        let done = self.data(message).await;
        assert_eq!(done.code, 250, "end of data: {done:?}");
        queued_id(&done.text).expect("the 250 names the queued id")
    }
}

/// The id in `… queued as <id>`.
pub fn queued_id(text: &str) -> Option<String> {
    let after = text.split("queued as ").nth(1)?;
    let id: String = after
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    (!id.is_empty()).then_some(id)
}
