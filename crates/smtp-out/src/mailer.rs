//! [`SmtpMailer`]: the `Mailer` port over SMTP. Finds the hosts, reuses or opens a
//! session, runs the transaction, keeps the connection for next time.

use std::collections::HashMap;
use std::net::SocketAddr;
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
use crate::resolve::{Router, Unreachable};
use crate::route::parse_relay;
use crate::spent::Spent;
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

    async fn send(&self, mut message: Outgoing) -> Vec<DeliveryOutcome> {
        let recipients = message.recipients.len();
        match self.inner.send(&mut message).await {
            Sent::Transaction(end) => end.outcomes(recipients),
            Sent::Nowhere(outcome) => vec![outcome; recipients],
        }
    }
}

/// How sending a message ended.
enum Sent {
    /// In a transaction, which decided each recipient's outcome.
    Transaction(TransactionEnd),
    /// Before any transaction: one outcome for every recipient.
    Nowhere(DeliveryOutcome),
}

impl From<DeliveryOutcome> for Sent {
    fn from(outcome: DeliveryOutcome) -> Self {
        Sent::Nowhere(outcome)
    }
}

impl Inner {
    /// Sends `message` to its recipients, all at one destination: the next hop is
    /// found for the first one's domain.
    async fn send(&self, message: &mut Outgoing) -> Sent {
        let inner = self;
        let Some(first) = message.recipients.first() else {
            return DeliveryOutcome::Permanent("the message has no recipient".into()).into();
        };
        let domain = first.domain().as_str().to_owned();
        let hosts = match inner.router.hosts(&domain).await {
            Ok(hosts) => hosts,
            Err(outcome) => {
                info!(recipients = ?message.recipients, ?outcome, "no route");
                return outcome.into();
            }
        };
        let mut attempt = Spent::default();
        'hosts: for host in &hosts {
            let key = host.pool_key();
            if !attempt.may_open_session(&inner.config) {
                break;
            }
            if let Some(session) = inner.checkout(&key).await {
                attempt.sessions += 1;
                let peer = session.peer.clone();
                let end = inner.deliver(session, &key, message).await;
                if !end.retryable {
                    return Sent::Transaction(end);
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
            if !attempt.may_try_address(&inner.config) {
                break;
            }
            let addresses = match inner.router.addresses(host).await {
                Ok(addresses) => addresses,
                Err(Unreachable::Permanent(text)) => {
                    info!(recipients = ?message.recipients, %text, "no route");
                    return DeliveryOutcome::Permanent(text).into();
                }
                Err(Unreachable::Skip(text)) => {
                    warn!(host = %host.name, %text, "skipping host");
                    attempt.addresses += 1;
                    attempt.last_error = Some(text);
                    continue;
                }
            };
            let addresses = attempt.allowed(&inner.config, host, addresses);
            if addresses.is_empty() {
                // Nothing usable, but the lookup had its cost.
                attempt.addresses += 1;
            }
            for ip in addresses {
                if !attempt.may_try_address(&inner.config)
                    || !attempt.may_open_session(&inner.config)
                {
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
                    warn!(recipients = ?message.recipients, %error, "not sending to myself");
                    return error.outcome().into();
                }
                match inner.connector.open(&peer).await {
                    Ok(session) => {
                        return Sent::Transaction(inner.deliver(session, &key, message).await);
                    }
                    Err(error @ SessionError::LoopsBack { .. }) => {
                        warn!(recipients = ?message.recipients, %error, "not sending to myself");
                        return error.outcome().into();
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
        attempt.outcome(&domain, message).into()
    }
}

impl Inner {
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
            recipients = ?message.recipients,
            outcome = ?end.outcome,
            refused = ?end.refused,
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
