//! One SMTP session: the command loop, the error budget, shutdown and STARTTLS.
//! The envelope commands are in `envelope.rs`, DATA and BDAT in `transfer.rs`.

mod envelope;
mod transfer;

use std::net::SocketAddr;
use std::time::Duration;

use mailfwd_domain::{Ingest, ingest};
use smtp_proto::Request;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::SmtpConfig;
use crate::conn::{Conn, ConnError, Line};
use crate::data::Body;
use crate::numbers::{self, NumberError};
use crate::reply::Reply;
use crate::timeouts::Timeouts;

/// Longest wait for the last replies to be taken when a session ends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one SMTP session on `stream` until the client quits, the connection fails or a
/// limit ends it. `peer` is the client's address, recorded with every email accepted.
/// Errors are answered on the wire and logged, never returned.
pub async fn run_session<S>(stream: S, peer: SocketAddr, ingest: &Ingest, config: &SmtpConfig)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    Session::new(stream, peer, ingest, config, None).run().await;
}

/// What the server tells its sessions while they run.
pub(crate) struct Signals {
    /// `true` once the server is shutting down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// `true` while the server is under stress (see `stress`).
    pub(crate) stress: watch::Receiver<bool>,
}

/// Why a session ended.
#[derive(Debug, Error)]
pub(crate) enum End {
    #[error("the client quit")]
    Quit,
    #[error("the client closed the connection")]
    Closed,
    #[error("timeout")]
    Timeout,
    #[error("the server is shutting down")]
    Shutdown,
    #[error("too many errors")]
    TooManyErrors,
    #[error("a BDAT chunk size that cannot be read: the chunk cannot be skipped")]
    UnreadableChunkSize,
    #[error("{0}")]
    Failed(ConnError),
}

/// What a command handler returns: a reply (STARTTLS has none after the handshake),
/// or the end of the session.
type Step = Result<Option<Reply>, End>;

/// The mail transaction in progress.
enum Transaction {
    /// After MAIL: the recipients are being collected.
    Envelope(ingest::Transaction),
    /// The body while BDAT chunks arrive.
    Body(Body),
}

pub(crate) struct Session<'a, S> {
    conn: Conn<S>,
    peer: SocketAddr,
    ingest: &'a Ingest,
    config: &'a SmtpConfig,
    shutdown: Option<watch::Receiver<bool>>,
    timeouts: Timeouts,
    helo: Option<String>,
    /// The client greeted with EHLO: ESMTP parameters may be used.
    extended: bool,
    /// The transaction's MAIL asked for SMTPUTF8: UTF-8 addresses may be used.
    smtputf8: bool,
    /// A BDAT chunk was refused (with this reply code) before the last one: chunks the
    /// client pipelined after it are discarded quietly until the last one.
    bdat_refused: Option<u16>,
    tx: Option<Transaction>,
    errors: usize,
    /// NOOP, RSET, VRFY and HELP commands since the last message accepted.
    junk: usize,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin + Send> Session<'a, S> {
    /// A session that, given the server's `signals`, answers `421` at the next command
    /// once the server shuts down, and shortens its timeouts while it is under stress.
    pub(crate) fn new(
        stream: S,
        peer: SocketAddr,
        ingest: &'a Ingest,
        config: &'a SmtpConfig,
        signals: Option<Signals>,
    ) -> Self {
        let (shutdown, stress) = match signals {
            Some(Signals { shutdown, stress }) => (Some(shutdown), Some(stress)),
            None => (None, None),
        };
        Session {
            conn: Conn::new(stream),
            peer,
            ingest,
            config,
            shutdown,
            timeouts: Timeouts::new(config, stress),
            helo: None,
            extended: false,
            smtputf8: false,
            bdat_refused: None,
            tx: None,
            errors: 0,
            junk: 0,
        }
    }

    pub(crate) async fn run(mut self) {
        info!(peer = %self.peer, "connection opened");
        self.conn.queue(&Reply::greeting(&self.config.hostname));
        let end = self.serve().await;
        self.reset().await;
        self.conn
            .close(CLOSE_TIMEOUT.min(self.timeouts.command_now()))
            .await;
        let stress = self.timeouts.under_stress();
        info!(peer = %self.peer, reason = %end, errors = self.errors, stress, "connection closed");
    }

    async fn serve(&mut self) -> End {
        loop {
            if self.shutdown.as_ref().is_some_and(|stop| *stop.borrow()) {
                self.conn.queue(&Reply::shutting_down());
                return End::Shutdown;
            }
            let step = match self.next_line().await {
                Ok(Line::Command(line)) => self.command(&line).await,
                Ok(Line::TooLong) => Ok(Some(Reply::line_too_long())),
                Err(end) => return end,
            };
            let answered = match step {
                Ok(Some(reply)) => self.answer(&reply),
                Ok(None) => Ok(()),
                Err(end) => Err(end),
            };
            if let Err(end) = answered {
                return end;
            }
        }
    }

    /// Queues a reply, counting permanent errors against the session's budget.
    fn answer(&mut self, reply: &Reply) -> Result<(), End> {
        self.conn.queue(reply);
        if reply.code() >= 500 {
            self.count_error()?;
        }
        Ok(())
    }

    /// Counts one error against the session's budget; the last one ends the session.
    fn count_error(&mut self) -> Result<(), End> {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            warn!(peer = %self.peer, errors = self.errors, junk = self.junk, "too many errors");
            self.conn.queue(&Reply::too_many_errors());
            return Err(End::TooManyErrors);
        }
        Ok(())
    }

    /// The next command line; replies are flushed whenever the input runs dry, so
    /// pipelined commands get their replies together. The whole line must arrive within
    /// one command timeout, however it is split.
    async fn next_line(&mut self) -> Result<Line, End> {
        let mut deadline = self.timeouts.command();
        loop {
            if let Some(line) = self.conn.take_line(self.config.max_line_length) {
                return Ok(line);
            }
            if let Err(error) = self.conn.flush(&mut deadline).await {
                return Err(self.lost(error));
            }
            let read = match &mut self.shutdown {
                None => Some(self.conn.read_more(&mut deadline).await),
                Some(stop) => tokio::select! {
                    read = self.conn.read_more(&mut deadline) => Some(read),
                    () = stopped(stop) => None,
                },
            };
            match read {
                Some(Ok(())) => {}
                Some(Err(error)) => return Err(self.lost(error)),
                None => {
                    self.conn.queue(&Reply::shutting_down());
                    return Err(End::Shutdown);
                }
            }
        }
    }

    async fn command(&mut self, line: &[u8]) -> Step {
        // Before smtp-proto, whose numbers saturate and start again (see `numbers`).
        match numbers::check(line) {
            Ok(()) => {}
            Err(NumberError::Parameter(name)) => {
                info!(peer = %self.peer, parameter = name, "parameter refused: not a number that fits");
                return Ok(Some(Reply::invalid_parameter(name)));
            }
            Err(NumberError::ChunkSize) => {
                // The chunk's octets follow at once and cannot be told from commands:
                // reading on would run them as commands (a smuggled transaction).
                warn!(peer = %self.peer, "BDAT chunk size cannot be read; closing the connection");
                self.conn.queue(&Reply::unreadable_chunk_size());
                return Err(End::UnreadableChunkSize);
            }
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(error) => {
                debug!(peer = %self.peer, ?error, "command refused");
                return Ok(Some(Reply::for_parse_error(&error)));
            }
        };
        let reply = match request {
            Request::Ehlo { host } => self.hello(&host, true).await,
            Request::Helo { host } => self.hello(&host, false).await,
            Request::Mail { from } => {
                let reply = self.mail(&from).await;
                if reply.code() < 500 && reply.code() >= 400 {
                    // The store said "not now" (throttled, shedding, away). A client
                    // that keeps asking anyway is sent away as Postfix's error limit
                    // sends it: it would otherwise spin here at line rate.
                    self.conn.queue(&reply);
                    self.count_error()?;
                    return Ok(None);
                }
                reply
            }
            Request::Rcpt { to } => self.rcpt(&to, line).await,
            Request::Data => return self.data().await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => return self.bdat(chunk_size, is_last).await,
            Request::StartTls => return self.start_tls().await,
            Request::Rset => {
                self.junk_command()?;
                self.reset().await;
                Reply::ok()
            }
            Request::Noop { .. } => {
                self.junk_command()?;
                Reply::ok()
            }
            Request::Vrfy { .. } => {
                self.junk_command()?;
                Reply::vrfy()
            }
            Request::Help { .. } => {
                self.junk_command()?;
                Reply::help(self.offers_starttls())
            }
            Request::Quit => {
                self.conn.queue(&Reply::quit());
                return Err(End::Quit);
            }
            Request::Lhlo { .. }
            | Request::Auth { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => Reply::not_implemented(),
        };
        Ok(Some(reply))
    }

    /// Counts a command that moves no mail. Past the limit (a lower one under stress)
    /// each one counts as an error too, so a client that only keeps its connection busy
    /// is sent away as one that keeps failing would be (Postfix's
    /// `smtpd_junk_command_limit`).
    fn junk_command(&mut self) -> Result<(), End> {
        self.junk += 1;
        let limit = if self.timeouts.under_stress() {
            self.config.stress_max_junk_commands
        } else {
            self.config.max_junk_commands
        };
        if self.junk <= limit {
            return Ok(());
        }
        self.count_error()
    }

    /// STARTTLS: input that arrived before the handshake is thrown away (it was sent in
    /// the clear and could be injected), and the session starts over after it.
    async fn start_tls(&mut self) -> Step {
        let Some(tls) = self.config.tls.clone() else {
            return Ok(Some(Reply::not_implemented()));
        };
        if self.conn.is_tls() {
            return Ok(Some(Reply::bad_sequence("TLS already active")));
        }
        self.conn.queue(&Reply::start_tls());
        if let Err(error) = self.conn.flush(&mut self.timeouts.command()).await {
            return Err(self.lost(error));
        }
        let discarded = self.conn.discard_input();
        if discarded > 0 {
            warn!(peer = %self.peer, discarded, "discarded input sent ahead of the TLS handshake");
        }
        if let Err(error) = self.conn.start_tls(tls, self.timeouts.command()).await {
            return Err(self.lost(error));
        }
        self.reset().await;
        self.helo = None;
        debug!(peer = %self.peer, "TLS established");
        Ok(None)
    }

    /// Whether STARTTLS is available now: configured, and not done yet.
    fn offers_starttls(&self) -> bool {
        self.config.tls.is_some() && !self.conn.is_tls()
    }

    /// Ends the mail transaction, throwing away any partial BDAT body.
    async fn reset(&mut self) {
        self.bdat_refused = None;
        if let Some(Transaction::Body(body)) = self.tx.take() {
            body.abort().await;
        }
    }

    /// Turns a connection failure into the end of the session, telling the client
    /// about a timeout.
    fn lost(&mut self, error: ConnError) -> End {
        match error {
            ConnError::Timeout => {
                self.conn.queue(&Reply::timeout());
                End::Timeout
            }
            ConnError::Closed => End::Closed,
            other => End::Failed(other),
        }
    }
}

/// Resolves once the server says stop; never if the server is gone without saying it.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
