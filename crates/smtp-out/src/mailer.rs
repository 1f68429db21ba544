//! [`SmtpMailer`]: the `Mailer` port over SMTP. Finds the hosts, reuses or opens a
//! session, runs the transaction, keeps the connection for next time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{DeliveryOutcome, Mailer, Outgoing};
use tracing::{debug, info, warn};

use crate::config::MailerConfig;
use crate::connect::{Connector, Peer, Session};
use crate::dns::Dns;
use crate::error::{MailerError, SessionError};
use crate::pool::{Idle, Pool, still_usable};
use crate::private::non_public;
use crate::resolve::{Router, Unreachable};
use crate::route::{Host, HostKind, parse_relay};
use crate::tls::{Stream, opportunistic_connector};
use crate::transaction::{After, TransactionEnd, transaction};

/// Sends mail over SMTP to a relay host or to each recipient domain's MX, with
/// opportunistic STARTTLS and per-host connection reuse.
///
/// Clones share one connection pool. Build it inside a Tokio runtime so that idle
/// connections are closed on time (otherwise they are closed when next looked at).
#[derive(Clone)]
pub struct SmtpMailer {
    inner: Arc<Inner>,
}

struct Inner {
    config: MailerConfig,
    router: Router,
    connector: Connector,
    pool: Pool,
}

impl SmtpMailer {
    /// A mailer; without a relay it resolves MX records with the system's DNS
    /// configuration (`/etc/resolv.conf`).
    ///
    /// # Errors
    /// [`MailerError`] if the relay, a route or the hostname is malformed, or DNS or
    /// TLS cannot be set up.
    pub fn new(config: MailerConfig) -> Result<SmtpMailer, MailerError> {
        // With a relay, only routed domains and the relay itself are ever looked up,
        // and those with the system's resolver.
        let dns = match config.relay {
            Some(_) => None,
            None => Some(Dns::system(config.dns_timeout)?),
        };
        Self::build(config, dns)
    }

    /// A mailer that resolves MX records by asking the given name servers instead of
    /// the system's.
    ///
    /// # Errors
    /// As [`SmtpMailer::new`].
    pub fn with_name_servers(
        config: MailerConfig,
        name_servers: &[SocketAddr],
    ) -> Result<SmtpMailer, MailerError> {
        let dns = Dns::with_name_servers(name_servers, config.dns_timeout)?;
        Self::build(config, Some(dns))
    }

    fn build(config: MailerConfig, dns: Option<Dns>) -> Result<SmtpMailer, MailerError> {
        let hostname = config.hostname.trim();
        if hostname.is_empty()
            || hostname
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(MailerError::InvalidHostname(config.hostname.clone()));
        }
        let relay = match &config.relay {
            Some(relay) => Some(
                parse_relay(relay, config.port)
                    .ok_or_else(|| MailerError::InvalidRelay(relay.clone()))?,
            ),
            None => None,
        };
        let connector = Connector {
            hostname: hostname.to_owned(),
            connect_timeout: config.connect_timeout,
            timeouts: config.timeouts,
            tls: opportunistic_connector().map_err(MailerError::Tls)?,
        };
        let mut routes = HashMap::new();
        for (domain, next_hop) in &config.routes {
            let host =
                parse_relay(next_hop, config.port).ok_or_else(|| MailerError::InvalidRoute {
                    domain: domain.as_str().to_owned(),
                    next_hop: next_hop.clone(),
                })?;
            routes.insert(domain.as_str().to_owned(), host);
        }
        let pool = Pool::new(config.max_idle_per_host, config.idle_timeout);
        let router = Router {
            routes,
            relay,
            dns,
            port: config.port,
        };
        let inner = Arc::new(Inner {
            config,
            router,
            connector,
            pool,
        });
        spawn_reaper(&inner);
        Ok(SmtpMailer { inner })
    }

    /// Closes every idle connection with QUIT, for a clean shutdown.
    pub async fn close_idle(&self) {
        let timeout = self.inner.short_timeout();
        for session in self.inner.pool.drain() {
            session.client.quit(timeout).await;
        }
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    fn destination(&self, recipient: &EmailAddress) -> String {
        self.inner.router.destination(recipient.domain().as_str())
    }

    async fn send(&self, mut message: Outgoing) -> DeliveryOutcome {
        let inner = &self.inner;
        let domain = message.recipient.domain().as_str().to_owned();
        let hosts = match inner.router.hosts(&domain).await {
            Ok(hosts) => hosts,
            Err(outcome) => {
                info!(recipient = %message.recipient, ?outcome, "no route");
                return outcome;
            }
        };
        let mut attempt = Attempt::default();
        'hosts: for host in &hosts {
            let key = host.pool_key();
            if !inner.may_open_session(&attempt) {
                break;
            }
            if let Some(session) = inner.checkout(&key).await {
                attempt.sessions += 1;
                let peer = session.peer.clone();
                let end = inner.deliver(session, &key, &mut message).await;
                if !end.retryable {
                    return end.outcome;
                }
                // Nothing reached the server: a fresh connection to this host gets it now
                // rather than a later retry of the whole delivery. Once: a fresh session
                // is never retried (`deliver` below returns whatever happens).
                info!(
                    peer = %peer,
                    outcome = ?end.outcome,
                    "reused connection failed before MAIL FROM; sending over a new one"
                );
                attempt.last_error = Some(outcome_text(end.outcome));
            }
            if !inner.may_try_address(&attempt) {
                break;
            }
            let addresses = match inner.router.addresses(host).await {
                Ok(addresses) => addresses,
                Err(Unreachable::Permanent(text)) => {
                    info!(recipient = %message.recipient, %text, "no route");
                    return DeliveryOutcome::Permanent(text);
                }
                Err(Unreachable::Skip(text)) => {
                    warn!(host = %host.name, %text, "skipping host");
                    attempt.addresses += 1;
                    attempt.last_error = Some(text);
                    continue;
                }
            };
            let addresses = inner.allowed(host, addresses, &mut attempt);
            if addresses.is_empty() {
                // Nothing usable, but the lookup had its cost.
                attempt.addresses += 1;
            }
            for ip in addresses {
                if !inner.may_try_address(&attempt) || !inner.may_open_session(&attempt) {
                    break 'hosts;
                }
                attempt.addresses += 1;
                let peer = Peer {
                    host: host.name.clone(),
                    addr: SocketAddr::new(ip, host.port),
                };
                if inner.is_own_address(peer.addr) {
                    let error = SessionError::LoopsBack {
                        peer: peer.to_string(),
                        how: "is an address I listen on",
                    };
                    warn!(recipient = %message.recipient, %error, "not sending to myself");
                    return error.outcome();
                }
                match inner.connector.open(&peer).await {
                    Ok(session) => {
                        return inner.deliver(session, &key, &mut message).await.outcome;
                    }
                    Err(error @ SessionError::LoopsBack { .. }) => {
                        warn!(recipient = %message.recipient, %error, "not sending to myself");
                        return error.outcome();
                    }
                    Err(error) => {
                        if !matches!(error, SessionError::Connect { .. }) {
                            attempt.sessions += 1;
                        }
                        warn!(peer = %peer, %error, "no session; trying the next host");
                        attempt.last_error = Some(error.to_string());
                    }
                }
            }
        }
        attempt.outcome(&domain, &message)
    }
}

/// What one delivery attempt has spent, and what stopped it so far.
#[derive(Default)]
struct Attempt {
    /// Addresses tried, and hosts whose lookup gave none (see `mx_address_limit`).
    addresses: usize,
    /// Sessions opened or reused (see `mx_session_limit`).
    sessions: usize,
    /// The last failure worth trying again later.
    last_error: Option<String>,
    /// The first address refused as not public.
    refused: Option<String>,
}

impl Attempt {
    /// How an attempt that found no server to take the message ends: unreachable (to be
    /// tried later) if anything failed that may work later; permanent if the only
    /// addresses there were refused as private; unreachable with a generic text
    /// otherwise.
    fn outcome(self, domain: &str, message: &Outgoing) -> DeliveryOutcome {
        let outcome = match (self.last_error, self.refused) {
            // No server answered: the forwarder's memory of dead destinations counts it.
            (Some(text), _) => DeliveryOutcome::Unreachable(text),
            (None, Some(text)) => DeliveryOutcome::Permanent(text),
            (None, None) => {
                DeliveryOutcome::Unreachable(format!("no host to deliver to for {domain}"))
            }
        };
        info!(recipient = %message.recipient, ?outcome, "all hosts failed");
        outcome
    }
}

impl Inner {
    /// Whether the attempt may try one more address (`mx_address_limit`).
    fn may_try_address(&self, attempt: &Attempt) -> bool {
        let limit = self.config.mx_address_limit;
        limit == 0 || attempt.addresses < limit
    }

    /// Whether the attempt may open or reuse one more session (`mx_session_limit`).
    fn may_open_session(&self, attempt: &Attempt) -> bool {
        let limit = self.config.mx_session_limit;
        limit == 0 || attempt.sessions < limit
    }

    /// The addresses of `host` that may be connected to: all of them for a host the
    /// operator chose or when private destinations are allowed, else the public ones
    /// (see `private.rs`). The first refused one is noted in `attempt`.
    fn allowed(&self, host: &Host, addresses: Vec<IpAddr>, attempt: &mut Attempt) -> Vec<IpAddr> {
        if !host.public_only || self.config.deliver_to_private_addresses {
            return addresses;
        }
        let mut allowed = Vec::with_capacity(addresses.len());
        for ip in addresses {
            let Some(kind) = non_public(ip) else {
                allowed.push(ip);
                continue;
            };
            let what = match host.kind {
                HostKind::Exchange => "MX",
                HostKind::ImplicitMx => "host",
                HostKind::Ip(_) => "address literal",
                HostKind::Relay => "next hop",
            };
            let text = format!(
                "5.7.1 refusing to deliver to the {kind} address {} ({what} {})",
                ip.to_canonical(),
                host.name
            );
            warn!(host = %host.name, %ip, "not a public address; not connecting");
            attempt.refused.get_or_insert(text);
        }
        allowed
    }

    /// Whether `addr` is one of the addresses our own SMTP server listens on.
    fn is_own_address(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        self.config.own_addresses.iter().any(|own| {
            own.port() == addr.port()
                && (own.ip().to_canonical() == ip
                    // Listening on every address: any local one is ours; the
                    // greeting check catches the others.
                    || (own.ip().is_unspecified()
                        && (ip.is_loopback() || ip.is_unspecified())))
        })
    }

    /// For RSET, NOOP and QUIT around pooled connections: a dead peer should not hold
    /// a delivery for minutes.
    fn short_timeout(&self) -> Duration {
        self.config.timeouts.ehlo.min(Duration::from_secs(30))
    }

    /// An idle session for `key` that is still usable (see [`still_usable`]).
    async fn checkout(&self, key: &str) -> Option<Session<Stream>> {
        loop {
            let (idle, expired) = self.pool.take(key);
            for old in expired {
                tokio::spawn(old.client.quit(self.short_timeout()));
            }
            let Idle { mut session, since } = idle?;
            let idle_for = since.elapsed();
            if still_usable(&mut session.client, idle_for, self.short_timeout()).await {
                debug!(peer = %session.peer, ?idle_for, "reusing connection");
                return Some(session);
            }
            debug!(peer = %session.peer, ?idle_for, "idle connection is gone");
        }
    }

    async fn deliver(
        &self,
        mut session: Session<Stream>,
        key: &str,
        message: &mut Outgoing,
    ) -> TransactionEnd {
        let end = transaction(&mut session, message, &self.config.timeouts).await;
        info!(
            peer = %session.peer,
            tls = session.tls,
            recipient = %message.recipient,
            outcome = ?end.outcome,
            "delivery attempt finished"
        );
        match end.after {
            After::Ready => self.pool_or_quit(key, session).await,
            After::Reset => self.reset(key, session).await,
            // QUIT in the background (unless the connection cannot take a command any
            // more, see `Client::quit`): the outcome is known already.
            After::Close => drop(tokio::spawn(session.client.quit(self.short_timeout()))),
        }
        end
    }

    /// RSET after a transaction that stopped half-way, then back to the pool; a
    /// session that fails RSET is dropped.
    async fn reset(&self, key: &str, mut session: Session<Stream>) {
        match session
            .client
            .command("RSET", self.short_timeout(), "RSET")
            .await
        {
            Ok(reply) if reply.is_positive() => self.pool_or_quit(key, session).await,
            _ => debug!(peer = %session.peer, "RSET failed; dropping the connection"),
        }
    }

    async fn pool_or_quit(&self, key: &str, session: Session<Stream>) {
        if let Some(surplus) = self.pool.put(key, session) {
            surplus.client.quit(self.short_timeout()).await;
        }
    }
}

/// The text an outcome carries, to report if no later attempt does better.
fn outcome_text(outcome: DeliveryOutcome) -> String {
    match outcome {
        DeliveryOutcome::Delivered(text)
        | DeliveryOutcome::Transient(text)
        | DeliveryOutcome::Unreachable(text)
        | DeliveryOutcome::Permanent(text) => text,
    }
}

/// Closes expired idle connections in the background, for as long as the mailer lives.
fn spawn_reaper(inner: &Arc<Inner>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if inner.config.max_idle_per_host == 0 {
        return;
    }
    let every =
        (inner.config.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
    let weak = Arc::downgrade(inner);
    runtime.spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticker.tick().await;
            let Some(inner) = weak.upgrade() else {
                break;
            };
            let expired = inner.pool.expired();
            let timeout = inner.short_timeout();
            drop(inner);
            for session in expired {
                debug!(peer = %session.peer, "closing idle connection");
                session.client.quit(timeout).await;
            }
        }
    });
}
