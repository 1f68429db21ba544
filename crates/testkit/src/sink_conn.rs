//! One connection of the sink: the SMTP dialogue, DATA with dot-unstuffing, BDAT,
//! STARTTLS, the mode's answers, and recording what arrived.

use std::sync::atomic::Ordering;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::sink::{Message, Mode, SLOW_REPLY, Shared, lock};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The envelope of the transaction in progress.
#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    bdat: Vec<u8>,
    bdat_len: u64,
    bdat_hash: u64,
}

const NO_RECIPIENTS: &str = "554 5.5.1 Error: no valid recipients";

pub(crate) async fn serve(stream: TcpStream, id: usize, shared: &Shared) -> std::io::Result<()> {
    let options = &shared.options;
    let mut io: BufReader<Box<dyn Io>> = BufReader::new(Box::new(stream));
    if !options.no_greeting {
        reply(&mut io, &options.greeting).await?;
    }
    let mut tls = false;
    let mut stale_sent = false;
    let mut tx = Transaction::default();
    // Transactions whose data this connection took, and whether the last command was one.
    let mut done = 0;
    let mut after_data = false;
    loop {
        if let (Some(wait), true) = (options.idle_notice, after_data) {
            // fill_buf, unlike a line read, loses nothing when the wait runs out.
            if tokio::time::timeout(wait, io.fill_buf()).await.is_err() {
                reply(&mut io, "421 4.4.2 sink.test idle timeout").await?;
                lock(&shared.log).notices += 1;
            }
        }
        after_data = false;
        let Some(line) = read_line(&mut io, shared).await? else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        {
            let mut log = lock(&shared.log);
            log.commands.push((id, text.clone()));
            if !io.buffer().is_empty() {
                log.batched.push(text.clone());
            }
        }
        let verb = text
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" if !options.ehlo => reply(&mut io, "502 5.5.1 EHLO not supported").await?,
            "EHLO" => {
                let mut lines = vec!["250-sink.test".to_owned()];
                if options.pipelining {
                    lines.push("250-PIPELINING".into());
                }
                if options.chunking {
                    lines.push("250-CHUNKING".into());
                }
                if options.starttls && !tls {
                    lines.push("250-STARTTLS".into());
                }
                if options.smtputf8 {
                    lines.push("250-SMTPUTF8".into());
                }
                if options.eight_bit_mime {
                    lines.push("250-8BITMIME".into());
                }
                if let Some(size) = options.size {
                    lines.push(format!("250-SIZE {size}"));
                }
                lines.push("250 ENHANCEDSTATUSCODES".into());
                reply(&mut io, &lines.join("\r\n")).await?;
            }
            "HELO" => reply(&mut io, "250 sink.test").await?,
            "STARTTLS" => {
                reply(&mut io, "220 2.0.0 Ready to start TLS").await?;
                if options.broken_tls {
                    io.write_all(b"this is not a TLS handshake\r\n\r\n\r\n")
                        .await?;
                    return io.shutdown().await;
                }
                let stream = shared.tls.accept(io.into_inner()).await?;
                io = BufReader::new(Box::new(stream));
                tls = true;
                tx = Transaction::default();
            }
            "MAIL" if options.close_at_second_mail && done > 0 => return Ok(()),
            "MAIL" => {
                if let (Some(stale), true, false) = (&options.stale_reply, done > 0, stale_sent) {
                    io.write_all(format!("{stale}\r\n").as_bytes()).await?;
                    stale_sent = true;
                }
                if options.mail_reply.starts_with('2') {
                    tx.mail_from = Some(text.clone());
                }
                reply(&mut io, &options.mail_reply).await?;
            }
            "RCPT" if tx.mail_from.is_none() => {
                reply(&mut io, "503 5.5.1 Error: need MAIL command").await?;
            }
            "RCPT" => {
                let answer = if path(&text).starts_with("reject") {
                    "550 5.1.1 no such user here"
                } else if mode(shared) == Mode::TempFail {
                    "451 4.3.0 destination is down, try later"
                } else {
                    &options.rcpt_reply
                };
                if answer.starts_with('2') {
                    tx.rcpt_to.push(text.clone());
                }
                reply(&mut io, answer).await?;
            }
            "DATA" if tx.rcpt_to.is_empty() && !options.data_without_rcpt => {
                reply(&mut io, NO_RECIPIENTS).await?;
            }
            "DATA" if options.data_command_reply.is_some() => {
                let answer = options.data_command_reply.as_deref().unwrap_or_default();
                reply(&mut io, answer).await?;
            }
            "DATA" => {
                reply(&mut io, "354 End data with <CR><LF>.<CR><LF>").await?;
                let (body, len, hash) = read_data(&mut io, shared).await?;
                let valid = !tx.rcpt_to.is_empty();
                slow_down(shared).await;
                record(shared, id, &mut tx, body, len, hash, tls, false);
                let answer = if valid {
                    &options.data_reply
                } else {
                    NO_RECIPIENTS
                };
                reply(&mut io, answer).await?;
                (done, after_data) = (done + 1, true);
            }
            "BDAT" => {
                let mut words = text.split_ascii_whitespace().skip(1);
                let size: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let last = words.next().is_some_and(|w| w.eq_ignore_ascii_case("LAST"));
                let mut chunk = vec![0; size];
                io.read_exact(&mut chunk).await?;
                shared.octets.fetch_add(size as u64, Ordering::Relaxed);
                tx.bdat_len += size as u64;
                tx.bdat_hash = fnv(tx.bdat_hash, &chunk);
                if tx.bdat.len() + size <= shared.options.keep_body {
                    tx.bdat.extend_from_slice(&chunk);
                }
                if last {
                    let body = std::mem::take(&mut tx.bdat);
                    let (len, hash) = (tx.bdat_len, tx.bdat_hash);
                    slow_down(shared).await;
                    record(shared, id, &mut tx, body, len, hash, tls, true);
                    reply(&mut io, &options.data_reply).await?;
                    (done, after_data) = (done + 1, true);
                } else {
                    reply(&mut io, &format!("250 2.0.0 {size} octets received")).await?;
                }
            }
            "RSET" => {
                tx = Transaction::default();
                reply(&mut io, "250 2.0.0 Ok").await?;
            }
            "NOOP" => reply(&mut io, "250 2.0.0 Ok").await?,
            "QUIT" => {
                reply(&mut io, "221 2.0.0 Bye").await?;
                return io.shutdown().await;
            }
            _ => reply(&mut io, "500 5.5.2 unknown command").await?,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    shared: &Shared,
    connection: usize,
    tx: &mut Transaction,
    body: Vec<u8>,
    len: u64,
    hash: u64,
    tls: bool,
    bdat: bool,
) {
    let done = std::mem::take(tx);
    lock(&shared.log).messages.push(Message {
        connection,
        mail_from: done.mail_from.unwrap_or_default(),
        rcpt_to: done.rcpt_to,
        body: if len as usize <= shared.options.keep_body {
            body
        } else {
            Vec::new()
        },
        len,
        hash,
        tls,
        bdat,
    });
}

fn mode(shared: &Shared) -> Mode {
    *lock(&shared.mode)
}

/// At the end of a message's data: in [`Mode::Slow`], the message is taken (and
/// answered) late.
async fn slow_down(shared: &Shared) {
    if mode(shared) == Mode::Slow {
        tokio::time::sleep(SLOW_REPLY).await;
    }
}

/// The address in a MAIL or RCPT command line: what stands between `<` and `>`.
pub(crate) fn path(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}

async fn reply(io: &mut BufReader<Box<dyn Io>>, text: &str) -> std::io::Result<()> {
    io.write_all(format!("{text}\r\n").as_bytes()).await?;
    io.flush().await
}

async fn read_line(
    io: &mut BufReader<Box<dyn Io>>,
    shared: &Shared,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let read = io.read_until(b'\n', &mut line).await?;
    shared.octets.fetch_add(read as u64, Ordering::Relaxed);
    Ok((read > 0).then_some(line))
}

/// Reads DATA up to `.` CRLF, undoing the dot-stuffing.
async fn read_data(
    io: &mut BufReader<Box<dyn Io>>,
    shared: &Shared,
) -> std::io::Result<(Vec<u8>, u64, u64)> {
    let mut body = Vec::new();
    let mut len = 0u64;
    let mut hash = FNV_OFFSET;
    loop {
        let Some(line) = read_line(io, shared).await? else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        if line == b".\r\n" {
            return Ok((body, len, hash));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        len += line.len() as u64;
        hash = fnv(hash, line);
        if body.len() + line.len() <= shared.options.keep_body {
            body.extend_from_slice(line);
        }
    }
}

/// Where an FNV-1a hash starts.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `hash`.
pub fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    if hash == 0 {
        hash = FNV_OFFSET;
    }
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
