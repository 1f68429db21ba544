//! [`SmtpMailer`]: the `Mailer` port over SMTP. Finds the hosts, reuses or opens a
//! session, runs the transaction, keeps the connection for next time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::delivery::{DeliveryOutcome, Mailer, Outgoing};
use tracing::{debug, info, warn};

use crate::config::MailerConfig;
use crate::connect::{Connector, Peer, Session};
use crate::dns::Dns;
use crate::error::{MailerError, SessionError};
use crate::pool::{Idle, Pool, still_usable};
use crate::resolve::{Router, Unreachable};
use crate::route::parse_relay;
use crate::tls::{Stream, opportunistic_connector};
use crate::transaction::{After, TransactionEnd, transaction};

/// At most this many connections are attempted for one message (RFC 5321 §5.1 asks
/// for a limit; Postfix tries 5 MX addresses by default).
const MAX_CONNECTION_ATTEMPTS: usize = 8;

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
    /// [`MailerError`] if the relay or hostname is malformed, or DNS or TLS cannot be
    /// set up.
    pub fn new(config: MailerConfig) -> Result<SmtpMailer, MailerError> {
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
        let pool = Pool::new(config.max_idle_per_host, config.idle_timeout);
        let router = Router {
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
        let mut last_error = None;
        let mut attempts = 0;
        'hosts: for host in &hosts {
            let key = host.pool_key();
            if let Some(session) = inner.checkout(&key).await {
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
                last_error = Some(outcome_text(end.outcome));
            }
            let addresses = match inner.router.addresses(host).await {
                Ok(addresses) => addresses,
                Err(Unreachable::Permanent(text)) => {
                    info!(recipient = %message.recipient, %text, "no route");
                    return DeliveryOutcome::Permanent(text);
                }
                Err(Unreachable::Skip(text)) => {
                    warn!(host = %host.name, %text, "skipping host");
                    last_error = Some(text);
                    continue;
                }
            };
            for ip in addresses {
                if attempts == MAX_CONNECTION_ATTEMPTS {
                    break 'hosts;
                }
                attempts += 1;
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
                        warn!(peer = %peer, %error, "no session; trying the next host");
                        last_error = Some(error.to_string());
                    }
                }
            }
        }
        let text = last_error.unwrap_or_else(|| format!("no host to deliver to for {domain}"));
        info!(recipient = %message.recipient, %text, "all hosts failed");
        // No server answered: the forwarder's memory of dead destinations counts it.
        DeliveryOutcome::Unreachable(text)
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
            recipient = %message.recipient,
            outcome = ?end.outcome,
            "delivery attempt finished"
        );
        match end.after {
            After::Ready => self.pool_or_quit(key, session).await,
            After::Reset => self.reset(key, session).await,
            After::Close => {}
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
