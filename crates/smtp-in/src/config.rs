//! Settings of the SMTP listener.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// How the SMTP server behaves. The largest message accepted is not here: it is
/// [`mailfwd_domain::IngestLimits::max_message_size`], so the `SIZE` the server
/// advertises and the limit [`mailfwd_domain::Ingest`] enforces can never disagree.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Our name, in the greeting and the EHLO reply.
    pub hostname: String,
    /// Longest wait for a whole command line, counted from when the server starts
    /// waiting for it (its replies to the last commands being taken included): a line
    /// trickled in a byte at a time does not stretch it.
    pub command_timeout: Duration,
    /// Longest wait for the next piece of message data during DATA or BDAT.
    pub data_timeout: Duration,
    /// Share of `max_connections`, in percent, open at which the server is under stress
    /// (rounded up; at least one connection). Stress ends when the open connections fall
    /// below three quarters of that number.
    pub stress_threshold_percent: u8,
    /// `command_timeout` while under stress, for waits already under way too.
    pub stress_command_timeout: Duration,
    /// `data_timeout` while under stress, for waits already under way too.
    pub stress_data_timeout: Duration,
    /// `max_junk_commands` while under stress.
    pub stress_max_junk_commands: usize,
    /// Most connections one client may open a minute; `None`: no limit.
    pub max_connection_rate_per_minute: Option<NonZeroU32>,
    /// Most connections open at once; more are answered `421` and closed.
    pub max_connections: usize,
    /// Most connections open at once from one client: one IPv4 address, or one IPv6
    /// network of `ipv6_client_prefix` bits.
    pub max_connections_per_peer: usize,
    /// How many leading bits of an IPv6 address name one client (64: a /64, which one
    /// host commonly holds whole; 128: every address on its own).
    pub ipv6_client_prefix: u8,
    /// Errors (5xx replies, and 4xx refusals of MAIL) one session may cause before it
    /// is answered `421` and closed.
    pub max_errors: usize,
    /// Junk commands (NOOP, RSET, VRFY, HELP) one session may send freely between two
    /// accepted messages; each one beyond counts as an error, as Postfix's
    /// `smtpd_junk_command_limit` does.
    pub max_junk_commands: usize,
    /// Longest command line in octets, CRLF included; longer lines are refused unread.
    pub max_line_length: usize,
    /// The certificate and key for STARTTLS; `None` means STARTTLS is not offered.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            hostname: "localhost".to_owned(),
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(10 * 60),
            stress_threshold_percent: 80,
            stress_command_timeout: Duration::from_secs(10),
            stress_data_timeout: Duration::from_secs(30),
            stress_max_junk_commands: 1,
            max_connection_rate_per_minute: None,
            max_connections: 1000,
            max_connections_per_peer: 50,
            ipv6_client_prefix: 64,
            max_errors: 10,
            max_junk_commands: 100,
            max_line_length: 4096,
            tls: None,
        }
    }
}
