//! How the outbound mailer behaves: who it says it is, where it sends, how long it waits.

use std::net::SocketAddr;
use std::time::Duration;

use mailfwd_domain::Domain;

/// Configuration of an [`crate::SmtpMailer`]. Every field has a default that works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailerConfig {
    /// The name mailfwd gives in EHLO/HELO. Default: `localhost`; the app passes
    /// `MAILFWD_HOSTNAME`.
    pub hostname: String,
    /// `host:port` of a relay host that takes all outbound mail (a missing port means
    /// [`MailerConfig::port`]); `None` means the destination's MX is looked up.
    pub relay: Option<String>,
    /// Routes (Postfix's `transport_maps`): mail for exactly this domain (not its
    /// subdomains) goes to this `host` or `host:port` (a missing port means
    /// [`MailerConfig::port`]) instead of the relay or the domain's MX. Consulted
    /// first. Default: none.
    pub routes: Vec<(Domain, String)>,
    /// Whether mail may go to loopback, private, link-local, unique-local and other
    /// non-public addresses when they come from the destination: from its MX or
    /// address records, or an address literal (`u@[127.0.0.1]`). Otherwise such an
    /// address is never connected to, and mail that has no other fails for good
    /// (`5.7.1`): anyone who can create a rule could otherwise probe the internal
    /// network. The relay and routes are the operator's choice and are not checked.
    /// Default: `false`.
    pub deliver_to_private_addresses: bool,
    /// The most addresses one delivery attempt tries, over all MX hosts; a host whose
    /// lookup gives no usable address counts as one, so that a list of hosts whose
    /// lookups time out cannot hold an attempt for long. 0 means no limit. Default: 5
    /// (Postfix's `smtp_mx_address_limit`).
    pub mx_address_limit: usize,
    /// The most SMTP sessions one delivery attempt opens or reuses (a connection that
    /// was established counts, whatever its greeting). 0 means no limit. Default: 2
    /// (Postfix's `smtp_mx_session_limit`).
    pub mx_session_limit: usize,
    /// The port of MX hosts and address literals. Default: 25.
    pub port: u16,
    /// How long to wait for a TCP connection to be established. Default: 30 s.
    pub connect_timeout: Duration,
    /// How long to wait for each reply and each block of data.
    pub timeouts: SmtpTimeouts,
    /// Timeout of each DNS query (the resolver tries twice). Default: 5 s.
    pub dns_timeout: Duration,
    /// How many idle connections are kept per host for reuse. Default: 8; 0 disables reuse.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept before it is closed with QUIT. Default: 30 s.
    pub idle_timeout: Duration,
    /// The addresses mailfwd's own SMTP server listens on: a next hop at one of them
    /// is mailfwd itself, and mail for it fails with 5.4.6 instead of looping. An
    /// unspecified address (`0.0.0.0:25`) stands for every local address of its port.
    pub own_addresses: Vec<SocketAddr>,
}

impl Default for MailerConfig {
    fn default() -> Self {
        MailerConfig {
            hostname: "localhost".to_owned(),
            relay: None,
            routes: Vec::new(),
            deliver_to_private_addresses: false,
            mx_address_limit: 5,
            mx_session_limit: 2,
            port: 25,
            connect_timeout: Duration::from_secs(30),
            timeouts: SmtpTimeouts::default(),
            dns_timeout: Duration::from_secs(5),
            max_idle_per_host: 8,
            idle_timeout: Duration::from_secs(30),
            own_addresses: Vec::new(),
        }
    }
}

/// The client timeouts of RFC 5321 §4.5.3.2; the defaults are the RFC's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmtpTimeouts {
    /// Waiting for the 220 greeting (and for a TLS handshake). Default: 5 min.
    pub greeting: Duration,
    /// Waiting for the reply to EHLO/HELO, STARTTLS, RSET, NOOP and QUIT. Default: 5 min.
    pub ehlo: Duration,
    /// Waiting for the reply to MAIL FROM. Default: 5 min.
    pub mail: Duration,
    /// Waiting for the reply to RCPT TO. Default: 5 min.
    pub rcpt: Duration,
    /// Waiting for the 354 reply to DATA. Default: 2 min.
    pub data_init: Duration,
    /// Sending one block of data (and waiting for the reply to a non-final BDAT).
    /// Default: 3 min.
    pub data_block: Duration,
    /// Waiting for the reply after the final `.` or the last BDAT. Default: 10 min.
    pub data_end: Duration,
}

impl Default for SmtpTimeouts {
    fn default() -> Self {
        const MINUTE: u64 = 60;
        SmtpTimeouts {
            greeting: Duration::from_secs(5 * MINUTE),
            ehlo: Duration::from_secs(5 * MINUTE),
            mail: Duration::from_secs(5 * MINUTE),
            rcpt: Duration::from_secs(5 * MINUTE),
            data_init: Duration::from_secs(2 * MINUTE),
            data_block: Duration::from_secs(3 * MINUTE),
            data_end: Duration::from_secs(10 * MINUTE),
        }
    }
}
