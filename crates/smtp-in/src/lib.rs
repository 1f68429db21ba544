//! mailfwd's inbound SMTP server.
//!
//! Clients talk to [`SmtpServer`]; each connection becomes a session ([`run_session`])
//! that parses commands with smtp-proto (a parser with no I/O), asks [`Ingest`] at RCPT
//! time whether each recipient is ours, and streams the body into [`Ingest`] chunk by
//! chunk. The client hears `250` only after the email was committed (made durable).
//!
//! The session is generic over the byte stream, so tests drive it in memory.
//!
//! [`Ingest`]: mailfwd_domain::Ingest

mod config;
mod conn;
mod data;
mod limits;
mod numbers;
mod path;
mod rate;
mod reply;
mod server;
mod session;
mod stress;
mod timeouts;
mod tls;

pub use config::SmtpConfig;
pub use server::SmtpServer;
pub use session::run_session;
pub use tls::{TlsError, load_tls};
