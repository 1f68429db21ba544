//! A real SMTP server standing in for the destinations: it records every message it
//! is given (envelope and exact bytes) and answers as the test tells it to.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the sink answers RCPT. A recipient whose local part starts with `reject` is
/// always refused with 550.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 250 to everything.
    Accept,
    /// 451 to every RCPT: the destination is "down".
    TempFail,
    /// 250 to everything, but each message's final reply takes 200 ms: a slow
    /// destination keeps every delivery worker busy.
    Slow,
}

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub sender: String,
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
}

/// The running sink.
#[derive(Clone)]
pub struct Sink {
    /// `127.0.0.1:PORT`
    pub address: String,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    pub async fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Sink {
            address: listener.local_addr().unwrap().to_string(),
            mode: Arc::new(Mutex::new(Mode::Accept)),
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let serving = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let session = serving.clone();
                tokio::spawn(async move { session.session(stream).await });
            }
        });
        sink
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` messages arrived, or panics after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                started.elapsed() < timeout,
                "only {} of {count} messages arrived in {timeout:?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn session(&self, stream: TcpStream) {
        let mut stream = BufReader::new(stream);
        if stream
            .get_mut()
            .write_all(b"220 sink.test ESMTP\r\n")
            .await
            .is_err()
        {
            return;
        }
        let (mut sender, mut recipients) = (String::new(), Vec::new());
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let upper = line.to_ascii_uppercase();
            let answer: String = if upper.starts_with("EHLO") {
                "250-sink.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n".into()
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                "250 ok\r\n".into()
            } else if upper.starts_with("RSET") {
                (sender, recipients) = (String::new(), Vec::new());
                "250 ok\r\n".into()
            } else if upper.starts_with("MAIL FROM:") {
                (sender, recipients) = (path(&line), Vec::new());
                "250 2.1.0 ok\r\n".into()
            } else if upper.starts_with("RCPT TO:") {
                let recipient = path(&line);
                if recipient.starts_with("reject") {
                    "550 5.1.1 no such user here\r\n".into()
                } else if *self.mode.lock().unwrap() == Mode::TempFail {
                    "451 4.3.0 destination is down, try later\r\n".into()
                } else {
                    recipients.push(recipient);
                    "250 2.1.5 ok\r\n".into()
                }
            } else if upper.starts_with("DATA") {
                if recipients.is_empty() {
                    "554 5.5.1 no valid recipients\r\n".into()
                } else {
                    if stream
                        .get_mut()
                        .write_all(b"354 go ahead\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let Some(data) = read_data(&mut stream).await else {
                        return;
                    };
                    let message = Received {
                        sender: sender.clone(),
                        recipients: recipients.clone(),
                        data,
                    };
                    if *self.mode.lock().unwrap() == Mode::Slow {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    self.received.lock().unwrap().push(message);
                    // The end of the data ends the transaction (RFC 5321 §4.1.1.4).
                    (sender, recipients) = (String::new(), Vec::new());
                    "250 2.0.0 queued by sink\r\n".into()
                }
            } else if upper.starts_with("QUIT") {
                let _ = stream.get_mut().write_all(b"221 bye\r\n").await;
                return;
            } else {
                "502 5.5.2 not implemented\r\n".into()
            };
            if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

fn path(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}

async fn read_data(stream: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if stream.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        if line == b".\r\n" {
            return Some(data);
        }
        let unstuffed = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(unstuffed);
    }
}
