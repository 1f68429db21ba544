//! Configuration: defaults that work on a laptop, a TOML file over them, and
//! `MAILFWD_*` environment variables over both.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod choices;
mod defaults;
mod delivery;
mod derived;
mod durations;
mod environment;
mod error;
mod own;
mod protection;

pub use choices::{BareLineEndings, LogFormat};
use environment::Environment;
pub use error::ConfigError;
pub use own::SecretError;

/// Every setting. Field names are the environment variable names without `MAILFWD_`,
/// lower-cased; the TOML file uses the same names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Inbound SMTP listener.
    pub smtp_listen: SocketAddr,
    /// HTTP API listener.
    pub http_listen: SocketAddr,
    /// gRPC API listener.
    pub grpc_listen: SocketAddr,
    /// Where the embedded defaults keep their files.
    pub data_dir: PathBuf,
    /// `sqlite://…`; defaults to `sqlite://<data_dir>/mailfwd.db`.
    pub database_url: Option<String>,
    /// Most connections to a PostgreSQL database from this instance (SQLite ignores it).
    pub database_pool_size: u32,
    /// How long a query waits for a PostgreSQL connection before it fails (and the mail
    /// is answered 451): a database that went away fails requests instead of hanging them.
    #[serde(with = "durations::seconds")]
    pub database_acquire_timeout: Duration,
    /// This instance's name among those sharing a PostgreSQL database: unique among
    /// them and the same across its restarts. Unset: `HOSTNAME:SMTP_PORT`.
    pub instance_id: Option<String>,
    /// How long an instance sharing the database may be silent before the others take
    /// over its deliveries (it says it is alive three times as often).
    #[serde(with = "durations::seconds")]
    pub instance_timeout: Duration,
    /// Where email bodies go: `file://…`, `s3://bucket/prefix` or `database`.
    pub email_store: Option<String>,
    /// While bodies move to `email_store` (`mailfwd migrate-emails`): where they were.
    /// Reads fall back to it; new bodies go to `email_store` only.
    pub email_store_old: Option<String>,
    /// Bodies of up to this many bytes are kept in their email's record on SQLite,
    /// written in the record's own commit; larger ones go to `email_store`. 0: none.
    pub inline_body_limit: usize,
    /// Emails older than this whose every delivery is final are deleted (record,
    /// deliveries, body); unset keeps everything.
    #[serde(default, with = "durations::optional")]
    pub retention: Option<Duration>,
    /// `host:port` of a relay host for all outbound mail; unset means MX lookup.
    pub relay: Option<String>,
    /// Per-domain next hops, `domain=host[:port]` separated by commas, consulted
    /// before the relay and MX (Postfix's `transport_maps`); exact domains only.
    pub routes: Option<String>,
    /// Whether mail may go to loopback, private, link-local and other non-public
    /// addresses found in MX/A records or address literals (the relay and routes
    /// always may).
    pub deliver_to_private_addresses: bool,
    /// Most addresses one delivery attempt tries (Postfix's `smtp_mx_address_limit`);
    /// 0 means no limit.
    pub mx_address_limit: usize,
    /// Most SMTP sessions one delivery attempt opens (Postfix's
    /// `smtp_mx_session_limit`); 0 means no limit.
    pub mx_session_limit: usize,
    /// Name used in the SMTP greeting and headers.
    pub hostname: Option<String>,
    /// The domain envelope senders are rewritten into (SRS); unset: the host name.
    pub srs_domain: Option<String>,
    /// SRS secrets, separated by commas: the first signs, all verify. Unset: one is
    /// made on first start and kept in `srs.secret` in the data directory.
    pub srs_secret: Option<String>,
    /// Days an SRS address can be bounced to (less than 1024).
    pub srs_max_age_days: u32,
    /// Where mail to `postmaster` goes when no rule says otherwise; unset, it is
    /// accepted and stored, and can be reprocessed once this is set.
    pub postmaster: Option<String>,
    /// Bearer token for the admin APIs; unset means loopback clients only.
    pub api_token: Option<String>,
    /// Comma-separated host names the tokenless HTTP API answers besides loopback ones.
    pub api_allowed_hosts: Option<String>,
    /// PEM certificate chain for STARTTLS; STARTTLS is offered only with a key too.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for STARTTLS.
    pub tls_key: Option<PathBuf>,
    /// Largest message accepted, in octets (advertised as SMTP SIZE).
    pub max_message_size: u64,
    /// Most recipients of one message.
    pub max_recipients: usize,
    /// Largest header section of a message, in octets (Postfix's `header_size_limit`
    /// is the same size).
    pub max_header_size: usize,
    /// Longest line of a message, in octets, CRLF not counted (RFC 5322: 998).
    pub max_message_line_length: usize,
    /// What a bare CR or LF in message data gets: `reject` (the default) or
    /// `normalize` (a bare LF is stored as CRLF; a bare CR is still refused).
    pub bare_line_endings: BareLineEndings,
    /// Most simultaneous SMTP connections.
    pub smtp_max_connections: usize,
    /// Most simultaneous SMTP connections from one client (an IPv4 address, or an IPv6
    /// network of `smtp_ipv6_client_prefix` bits).
    pub smtp_max_connections_per_peer: usize,
    /// Leading bits of an IPv6 address that name one SMTP client (1 to 128).
    pub smtp_ipv6_client_prefix: u8,
    /// How long an SMTP client may take to send a command (seconds, or a duration).
    #[serde(with = "durations::seconds")]
    pub smtp_command_timeout: Duration,
    /// How long an SMTP client may pause while sending a message's data (seconds, or a
    /// duration).
    #[serde(with = "durations::seconds")]
    pub smtp_data_timeout: Duration,
    /// Errors in one SMTP session before the server hangs up.
    pub smtp_max_errors: usize,
    /// NOOP, RSET, VRFY and HELP commands one SMTP session may send before each further
    /// one counts as an error.
    pub smtp_junk_command_limit: usize,
    /// Share of `smtp_max_connections`, in percent (1 to 100), open at which the SMTP
    /// server is under stress and runs on the `smtp_stress_*` limits.
    pub smtp_stress_threshold_percent: u8,
    /// `smtp_command_timeout` under stress (seconds, or a duration).
    #[serde(with = "durations::seconds")]
    pub smtp_stress_command_timeout: Duration,
    /// `smtp_data_timeout` under stress (seconds, or a duration).
    #[serde(with = "durations::seconds")]
    pub smtp_stress_data_timeout: Duration,
    /// `smtp_junk_command_limit` under stress.
    pub smtp_stress_junk_command_limit: usize,
    /// Most SMTP connections one client may open a minute; 0 (the default, as in
    /// Postfix) means no limit.
    pub smtp_client_connection_rate_limit: u32,
    /// Longest SMTP command line in octets, CRLF included.
    pub smtp_max_line_length: usize,
    /// Most destinations one rule may have.
    pub max_destinations: usize,
    /// Most rules one address may pass through when destinations that have rules of
    /// their own are expanded (a recipient's own rule is 1).
    pub forward_max_depth: usize,
    /// Most final destinations one email may expand to, all recipients together.
    pub forward_max_expansion: usize,
    /// Concurrent deliveries, all destinations together.
    pub delivery_workers: usize,
    /// How long a worker holds a claimed job before another may take it over.
    #[serde(with = "durations::duration")]
    pub delivery_lease: Duration,
    /// Delays after the first, second, … failed attempt, comma-separated (`1m,5m`).
    #[serde(with = "durations::duration_list")]
    pub retry_schedule: Vec<Duration>,
    /// Delay between later attempts.
    #[serde(with = "durations::duration")]
    pub retry_every: Duration,
    /// Give up once the next attempt would be this long after the email arrived.
    #[serde(with = "durations::duration")]
    pub retry_give_up: Duration,

    // Delivery scheduling and outbound SMTP timeouts (ADR 0016); checked in `delivery.rs`.
    /// The longest one delivery attempt may take, connection to final reply; at most
    /// four fifths of `delivery_lease`. Unset: four fifths of the lease, at most 10m.
    #[serde(default, with = "durations::optional")]
    pub delivery_attempt_timeout: Option<Duration>,
    /// Concurrent deliveries one destination gets at first.
    pub destination_initial_concurrency: usize,
    /// The most concurrent deliveries one destination gets.
    pub destination_concurrency_limit: usize,
    /// Connection-level failures in a row that mark a destination unreachable.
    pub destination_failed_cohort: u32,
    /// How long a destination is unreachable at first, before one attempt probes it.
    #[serde(with = "durations::duration")]
    pub destination_min_backoff: Duration,
    /// The longest a destination is unreachable before one attempt probes it.
    #[serde(with = "durations::duration")]
    pub destination_max_backoff: Duration,
    /// The most recipients of one message in one transaction to a destination
    /// (Postfix's `smtp_destination_recipient_limit`, ADR 0017).
    pub destination_recipient_limit: usize,
    /// Waiting for a TCP connection to a next hop (Postfix's `smtp_connect_timeout`).
    #[serde(with = "durations::seconds")]
    pub smtp_out_connect_timeout: Duration,
    /// Waiting for the greeting and the reply to EHLO/HELO (`smtp_helo_timeout`).
    #[serde(with = "durations::seconds")]
    pub smtp_out_helo_timeout: Duration,
    /// Waiting for the reply to MAIL FROM (`smtp_mail_timeout`).
    #[serde(with = "durations::seconds")]
    pub smtp_out_mail_timeout: Duration,
    /// Waiting for the reply to RCPT TO (`smtp_rcpt_timeout`).
    #[serde(with = "durations::seconds")]
    pub smtp_out_rcpt_timeout: Duration,
    /// Waiting for the reply to DATA (`smtp_data_init_timeout`).
    #[serde(with = "durations::seconds")]
    pub smtp_out_data_init_timeout: Duration,
    /// Sending one block of message data (`smtp_data_xfer_timeout`).
    #[serde(with = "durations::seconds")]
    pub smtp_out_data_xfer_timeout: Duration,
    /// Waiting for the reply to the end of the data (`smtp_data_done_timeout`).
    #[serde(with = "durations::seconds")]
    pub smtp_out_data_done_timeout: Duration,
    /// How long a rule lookup is cached (`0s`: no cache). Changes made through this
    /// instance are seen at once; this bounds how long another instance's are not.
    #[serde(with = "durations::duration")]
    pub rule_cache_ttl: Duration,
    /// Most recipients whose rule lookup is cached.
    pub rule_cache_capacity: u64,
    /// Largest CSV body `POST /v1/forwards/import` accepts, in bytes.
    pub import_body_limit: usize,
    /// The most rows an atomic import (HTTP or `mailfwd import --atomic`) takes.
    pub import_atomic_max_rows: u64,
    /// Messages per second the email store takes over all clients; unset: no limit.
    pub throttle_messages_per_second: Option<u64>,
    /// Body bytes per second the email store takes over all clients; unset: no limit.
    pub throttle_bytes_per_second: Option<u64>,
    /// Messages per second the email store takes from one client (an SMTP or gRPC
    /// peer's IP address); unset: no limit.
    pub throttle_client_messages_per_second: Option<u64>,
    /// Body bytes per second the email store takes from one client; unset: no limit.
    pub throttle_client_bytes_per_second: Option<u64>,
    /// New mail is refused (452 4.3.1) while the disk holding `data_dir` has fewer free
    /// bytes than this; unset: 1.5 × `max_message_size` (as Postfix); 0: never.
    pub disk_free_floor: Option<u64>,
    /// New mail is refused (452 4.3.1) while more delivery jobs than this are pending;
    /// unset: never.
    pub max_backlog: Option<u64>,
    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    pub log: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
}

impl Config {
    /// Loads defaults, then `file` (if given), then the environment, and checks the
    /// result: every duration is parsed here, once.
    ///
    /// # Errors
    /// A [`ConfigError`] that names the setting, its variable, where the value came
    /// from and what is wrong.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with(file, |variable| std::env::var_os(variable))
    }

    /// [`Config::load`] with the environment given as a lookup, so tests need not
    /// change the process's.
    fn load_with(
        file: Option<&Path>,
        environment: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::MissingFile(file.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment.merge(Environment(environment)).extract()?;
        config.check()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
