//! The three listeners, each bound first (so its address can be announced and a port
//! conflict stops the start) and then run until told to stop.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use mailfwd_domain::Ingest;
use mailfwd_grpc::GrpcServices;
use mailfwd_http::{HttpConfig, Services};
use mailfwd_smtp_in::{SmtpConfig, SmtpServer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::error::AppError;

/// Which listener an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Inbound mail.
    Smtp,
    /// The HTTP API.
    Http,
    /// The gRPC API.
    Grpc,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Smtp => "SMTP",
            Protocol::Http => "HTTP",
            Protocol::Grpc => "gRPC",
        })
    }
}

/// A socket bound to its configured address, and the address it really got (port 0
/// becomes a free port).
struct Bound {
    listener: TcpListener,
    address: SocketAddr,
}

impl Bound {
    async fn bind(protocol: Protocol, address: SocketAddr) -> Result<Bound, AppError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| AppError::Bind {
                protocol,
                address,
                source,
            })?;
        let address = listener
            .local_addr()
            .map_err(|source| AppError::LocalAddr { protocol, source })?;
        Ok(Bound { listener, address })
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

fn failed<E: std::error::Error + Send + Sync + 'static>(
    protocol: Protocol,
) -> impl FnOnce(E) -> AppError {
    move |source| AppError::Serve {
        protocol,
        source: Box::new(source),
    }
}

/// Inbound SMTP (`MAILFWD_SMTP_LISTEN`).
pub struct SmtpListener {
    server: SmtpServer,
    bound: Bound,
}

impl SmtpListener {
    /// Loads the STARTTLS certificate, if configured, and binds the SMTP address.
    ///
    /// # Errors
    /// [`AppError::Tls`] naming the file that cannot be used; [`AppError::Bind`] naming
    /// the address that cannot be taken.
    pub async fn bind(config: &Config, ingest: Ingest) -> Result<SmtpListener, AppError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(mailfwd_smtp_in::load_tls(cert, key)?),
            _ => None,
        };
        let smtp_config = SmtpConfig {
            hostname: config.hostname(),
            command_timeout: config.smtp_command_timeout,
            data_timeout: config.smtp_data_timeout,
            max_connections: config.smtp_max_connections,
            max_connections_per_peer: config.smtp_max_connections_per_peer,
            ipv6_client_prefix: config.smtp_ipv6_client_prefix,
            max_errors: config.smtp_max_errors,
            max_junk_commands: config.smtp_junk_command_limit,
            stress_threshold_percent: config.smtp_stress_threshold_percent,
            stress_command_timeout: config.smtp_stress_command_timeout,
            stress_data_timeout: config.smtp_stress_data_timeout,
            stress_max_junk_commands: config.smtp_stress_junk_command_limit,
            max_connection_rate_per_minute: NonZeroU32::new(
                config.smtp_client_connection_rate_limit,
            ),
            max_line_length: config.smtp_max_line_length,
            tls,
        };
        Ok(SmtpListener {
            server: SmtpServer::new(ingest, smtp_config),
            bound: Bound::bind(Protocol::Smtp, config.smtp_listen).await?,
        })
    }

    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.bound.address
    }

    /// Serves SMTP until `shutdown` turns true; sessions in progress are told to close.
    ///
    /// # Errors
    /// [`AppError::Serve`] if the server fails.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), AppError> {
        self.server
            .serve(self.bound.listener, stopped(shutdown))
            .await
            .map_err(failed(Protocol::Smtp))
    }
}

/// The HTTP API (`MAILFWD_HTTP_LISTEN`).
pub struct HttpListener {
    services: Services,
    http_config: HttpConfig,
    bound: Bound,
}

impl HttpListener {
    /// Binds the HTTP address for these services.
    ///
    /// # Errors
    /// [`AppError::Bind`] naming the address that cannot be taken.
    pub async fn bind(config: &Config, services: Services) -> Result<HttpListener, AppError> {
        let http_config = HttpConfig {
            api_token: config.api_token.clone(),
            allowed_hosts: config.api_allowed_hosts().map(str::to_owned).collect(),
            max_destinations: config.max_destinations,
            expansion: config.expansion_limits(),
            import_body_limit: config.import_body_limit,
            import_atomic_max_rows: config.import_atomic_max_rows,
            ..HttpConfig::default()
        };
        Ok(HttpListener {
            services,
            http_config,
            bound: Bound::bind(Protocol::Http, config.http_listen).await?,
        })
    }

    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.bound.address
    }

    /// Serves the API until `shutdown` turns true, letting requests in progress finish.
    ///
    /// # Errors
    /// [`AppError::Serve`] if the server fails.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), AppError> {
        let router = mailfwd_http::router(self.services, self.http_config);
        mailfwd_http::serve(self.bound.listener, router, stopped(shutdown))
            .await
            .map_err(failed(Protocol::Http))
    }
}

/// The gRPC API (`MAILFWD_GRPC_LISTEN`).
pub struct GrpcListener {
    router: tonic::transport::server::Router,
    bound: Bound,
}

impl GrpcListener {
    /// Assembles the gRPC services and binds the gRPC address.
    ///
    /// # Errors
    /// [`AppError::GrpcSetup`] if the services cannot be assembled; [`AppError::Bind`]
    /// naming the address that cannot be taken.
    pub async fn bind(config: &Config, services: GrpcServices) -> Result<GrpcListener, AppError> {
        Ok(GrpcListener {
            router: mailfwd_grpc::router(services).await?,
            bound: Bound::bind(Protocol::Grpc, config.grpc_listen).await?,
        })
    }

    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.bound.address
    }

    /// Serves gRPC until `shutdown` turns true.
    ///
    /// # Errors
    /// [`AppError::Serve`] if the server fails.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), AppError> {
        mailfwd_grpc::serve(self.bound.listener, self.router, stopped(shutdown))
            .await
            .map_err(failed(Protocol::Grpc))
    }
}

/// The listeners, running side by side until told to stop.
pub struct Listeners {
    tasks: JoinSet<(Protocol, Result<(), AppError>)>,
    stop: watch::Sender<bool>,
}

impl Listeners {
    /// Starts all three, each on a task of its own.
    #[must_use]
    pub fn start(smtp: SmtpListener, http: HttpListener, grpc: GrpcListener) -> Listeners {
        let (stop, shutdown) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(guarded(Protocol::Smtp, smtp.run(shutdown.clone())));
        tasks.spawn(guarded(Protocol::Http, http.run(shutdown.clone())));
        tasks.spawn(guarded(Protocol::Grpc, grpc.run(shutdown)));
        Listeners { tasks, stop }
    }

    /// Resolves when a listener stops before it was told to: it failed or panicked, and
    /// the service is no longer whole. Never resolves while all of them serve.
    pub async fn failure(&mut self) -> AppError {
        match self.tasks.join_next().await {
            Some(Ok((_, Err(error)))) => error,
            Some(Ok((protocol, Ok(())))) => AppError::StoppedEarly(protocol),
            Some(Err(join)) => AppError::ListenerLost(join),
            None => std::future::pending().await,
        }
    }

    /// Tells every listener to stop and waits until all have.
    ///
    /// # Errors
    /// The first listener's error (failure or panic), once all have stopped.
    pub async fn stop(mut self) -> Result<(), AppError> {
        let _ = self.stop.send(true);
        let mut first = Ok(());
        while let Some(done) = self.tasks.join_next().await {
            let result = match done {
                Ok((_, result)) => result,
                Err(join) => Err(AppError::ListenerLost(join)),
            };
            if let (Err(error), Ok(())) = (result, &first) {
                first = Err(error);
            }
        }
        first
    }
}

/// Runs a listener, turning a panic into an error that names it.
async fn guarded(
    protocol: Protocol,
    run: impl Future<Output = Result<(), AppError>>,
) -> (Protocol, Result<(), AppError>) {
    let result = match AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(AppError::Panicked {
            protocol,
            message: panic_message(panic.as_ref()),
        }),
    };
    (protocol, result)
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests;
