//! The listener: accepts connections within the limits, runs a session for each, and
//! shuts down without cutting a message in half.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mailfwd_domain::Ingest;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::SmtpConfig;
use crate::limits::{ConnectionLimits, Permit};
use crate::rate::ConnectionRate;
use crate::reply::Reply;
use crate::session::{Session, Signals};
use crate::stress::stress_threshold;

/// How long to wait before accepting again after `accept` failed (out of file
/// descriptors, for instance), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a refused client gets to take its `421`.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the connection rate limit forgets clients it no longer needs to remember.
const RATE_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The SMTP server: sessions on every accepted connection, all feeding one [`Ingest`].
pub struct SmtpServer {
    ingest: Ingest,
    config: Arc<SmtpConfig>,
}

impl SmtpServer {
    /// A server that hands what it receives to `ingest`.
    #[must_use]
    pub fn new(ingest: Ingest, config: SmtpConfig) -> Self {
        SmtpServer {
            ingest,
            config: Arc::new(config),
        }
    }

    /// Accepts connections on `listener` until `shutdown` resolves. Then it stops
    /// accepting, answers idle sessions `421 4.3.2 shutting down`, lets every message
    /// being received finish (and be committed and answered), and returns when the
    /// last session has ended.
    ///
    /// Connections beyond [`SmtpConfig::max_connections`] in total,
    /// [`SmtpConfig::max_connections_per_peer`] from one client, or
    /// [`SmtpConfig::max_connection_rate_per_minute`] a minute from one client are
    /// answered `421 4.7.0` and closed. From [`SmtpConfig::stress_threshold_percent`] of
    /// `max_connections` open on, sessions run on the shorter stress timeouts.
    ///
    /// # Errors
    /// An I/O error if the listener has no local address. Errors accepting a
    /// connection are logged and accepting goes on.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        info!(address = %listener.local_addr()?, "SMTP server listening");
        let config = &self.config;
        let limits = ConnectionLimits::new(
            config.max_connections,
            config.max_connections_per_peer,
            config.ipv6_client_prefix,
            stress_threshold(config.max_connections, config.stress_threshold_percent),
        );
        let rate = config
            .max_connection_rate_per_minute
            .map(|per_minute| ConnectionRate::per_minute(per_minute, config.ipv6_client_prefix));
        let mut rate_sweep = tokio::time::interval(RATE_SWEEP_INTERVAL);
        let (stop, stopped) = watch::channel(false);
        let mut sessions = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match admit(&limits, rate.as_ref(), peer.ip()) {
                        Ok(permit) => {
                            let ingest = self.ingest.clone();
                            let config = Arc::clone(&self.config);
                            let signals = Signals { shutdown: stopped.clone(), stress: limits.stress() };
                            sessions.spawn(async move {
                                let _permit = permit;
                                let _ = stream.set_nodelay(true);
                                Session::new(stream, peer, &ingest, &config, Some(signals))
                                    .run()
                                    .await;
                            });
                        }
                        Err(reply) => {
                            sessions.spawn(refuse(stream, peer, reply));
                        }
                    },
                    Err(error) => {
                        warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(done) = sessions.join_next(), if !sessions.is_empty() => report(done),
                _ = rate_sweep.tick(), if rate.is_some() => {
                    rate.iter().for_each(ConnectionRate::forget_idle_clients);
                }
            }
        }
        drop(listener);
        info!(sessions = sessions.len(), "SMTP server shutting down");
        stop.send_replace(true);
        while let Some(done) = sessions.join_next().await {
            report(done);
        }
        info!("SMTP server stopped");
        Ok(())
    }
}

/// A place for a connection from `peer`, or the reply that refuses it. The rate is
/// checked first: a connection then refused for the number open still counts against
/// its client's rate, so a client that keeps knocking on a full server is slowed too.
fn admit(
    limits: &Arc<ConnectionLimits>,
    rate: Option<&ConnectionRate>,
    peer: IpAddr,
) -> Result<Permit, Reply> {
    if rate.is_some_and(|rate| !rate.allows(peer)) {
        warn!(%peer, "connection refused: connecting too often");
        return Err(Reply::connecting_too_often());
    }
    limits.admit(peer).map_err(|limit| {
        warn!(%peer, ?limit, "connection refused: too many connections");
        Reply::too_many_connections()
    })
}

async fn refuse(mut stream: TcpStream, peer: SocketAddr, reply: Reply) {
    let mut wire = Vec::new();
    reply.write_to(&mut wire);
    let answer = async {
        stream.write_all(&wire).await?;
        stream.shutdown().await
    };
    if let Ok(Err(error)) = tokio::time::timeout(REFUSAL_TIMEOUT, answer).await {
        info!(%peer, %error, "could not tell a refused client why");
    }
}

fn report(done: Result<(), tokio::task::JoinError>) {
    if let Err(failure) = done {
        error!(%failure, "an SMTP session panicked");
    }
}
