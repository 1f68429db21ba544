//! The listener: accepts connections within the limits, runs a session for each, and
//! shuts down without cutting a message in half.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailfwd_domain::Ingest;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::SmtpConfig;
use crate::limits::ConnectionLimits;
use crate::reply::Reply;
use crate::session::Session;

/// How long to wait before accepting again after `accept` failed (out of file
/// descriptors, for instance), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a refused client gets to take its `421`.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Connections beyond [`SmtpConfig::max_connections`] in total or
    /// [`SmtpConfig::max_connections_per_peer`] from one IP address are answered
    /// `421 4.7.0` and closed.
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
        let limits = ConnectionLimits::new(
            self.config.max_connections,
            self.config.max_connections_per_peer,
            self.config.ipv6_client_prefix,
        );
        let (stop, stopped) = watch::channel(false);
        let mut sessions = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match limits.admit(peer.ip()) {
                        Ok(permit) => {
                            let ingest = self.ingest.clone();
                            let config = Arc::clone(&self.config);
                            let stopped = stopped.clone();
                            sessions.spawn(async move {
                                let _permit = permit;
                                let _ = stream.set_nodelay(true);
                                Session::new(stream, peer, &ingest, &config, Some(stopped))
                                    .run()
                                    .await;
                            });
                        }
                        Err(limit) => {
                            warn!(%peer, ?limit, "connection refused: too many connections");
                            sessions.spawn(refuse(stream, peer));
                        }
                    },
                    Err(error) => {
                        warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(done) = sessions.join_next(), if !sessions.is_empty() => report(done),
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

async fn refuse(mut stream: TcpStream, peer: SocketAddr) {
    let mut reply = Vec::new();
    Reply::too_many_connections().write_to(&mut reply);
    let answer = async {
        stream.write_all(&reply).await?;
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
