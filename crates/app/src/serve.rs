//! `mailfwd serve`: open the storage, bind the listeners, forward until a signal.

use std::sync::Arc;

use mailfwd_forwarder::{Forwarder, ForwarderConfig, Retention};
use mailfwd_grpc::GrpcServices;
use mailfwd_http::Services;
use tokio::sync::watch;

use crate::config::Config;
use crate::error::AppError;
use crate::listeners::{GrpcListener, HttpListener, Listeners, SmtpListener};
use crate::metrics::Prometheus;
use crate::wiring::Ports;

/// Runs the service until SIGINT or SIGTERM, or until a listener fails.
///
/// # Errors
/// Whatever kept it from starting (storage, a port in use, a TLS file …), or the first
/// listener that failed; the others are stopped in order first.
pub async fn run(config: Config) -> Result<(), AppError> {
    let mut ports = Ports::open(&config)
        .await
        .map_err(|e| AppError::Storage(e.into()))?;
    let metrics = Prometheus::install(Arc::clone(&ports.queue), Arc::clone(&ports.emails))?;

    // The forwarder: evaluates each accepted email and delivers its jobs.
    let forwarder = Forwarder::new(
        Arc::clone(&ports.emails),
        ports.evaluator(&config),
        ports
            .deliverer(&config)
            .map_err(|e| AppError::Forwarder(e.into()))?,
        ForwarderConfig {
            workers: config.delivery_workers,
            lease: config.delivery_lease,
            attempt_timeout: config.attempt_timeout(),
            destinations: config.destination_limits(),
            instance_timeout: config.instance_timeout,
            ..ForwarderConfig::default()
        },
    );
    ports.listen_for_changes(forwarder.queue_waker());
    let ingest = ports.ingest(&config).with_listener(forwarder.handoff());
    forwarder.set_bouncer(ports.bouncer(&config, ingest.clone()));

    let smtp = SmtpListener::bind(&config, ingest.clone()).await?;
    let http = HttpListener::bind(
        &config,
        Services {
            rules: Arc::clone(&ports.rules),
            emails: Arc::clone(&ports.emails),
            deliveries: Arc::clone(&ports.queue),
            metrics: Arc::new(metrics),
        },
    )
    .await?;
    let grpc = GrpcListener::bind(
        &config,
        GrpcServices {
            ingest,
            emails: Arc::clone(&ports.emails),
            // Wakes the workers for what it requeues.
            evaluator: forwarder.evaluator(),
            queue: Arc::clone(&ports.queue),
            api_token: config.api_token.clone(),
        },
    )
    .await?;
    announce(&config, &smtp, &http, &grpc);

    let (stop_forwarder, forwarder_stop) = watch::channel(false);
    let retention = config.retention.map(|keep| {
        let retention = Retention::new(Arc::clone(&ports.emails), Arc::clone(&ports.queue), keep);
        tokio::spawn(retention.run(forwarder_stop.clone()))
    });
    let orphans = tokio::spawn(crate::orphans::sweep_hourly(
        ports.split_emails.clone(),
        forwarder_stop.clone(),
    ));
    let workers = forwarder.start(forwarder_stop).await;
    let mut listeners = Listeners::start(smtp, http, grpc);
    let failure = tokio::select! {
        () = shutdown_signal() => None,
        error = listeners.failure() => Some(error),
    };

    // Stop in order: no new mail first; then the forwarder cuts short the attempts it
    // is making and gives back every job it holds.
    let stopped = listeners.stop().await;
    let _ = stop_forwarder.send(true);
    workers.join_all().await;
    if let Some(retention) = retention {
        let _ = retention.await;
    }
    let _ = orphans.await;
    if let Some(listener) = ports.changes.take() {
        listener.stop().await;
    }
    tracing::info!("mailfwd stopped");
    failure.map_or(stopped, Err)
}

/// The one line that says where mailfwd listens (the e2e harness reads it).
fn announce(config: &Config, smtp: &SmtpListener, http: &HttpListener, grpc: &GrpcListener) {
    let (smtp, http, grpc) = (smtp.local_addr(), http.local_addr(), grpc.local_addr());
    if config.postmaster.is_none() {
        tracing::warn!(
            "MAILFWD_POSTMASTER is unset: mail to postmaster is accepted and stored, and sent on once it is set and the mail reprocessed"
        );
    }
    if config.api_token.is_none() && !http.ip().is_loopback() {
        tracing::warn!(http_address = %http, "MAILFWD_API_TOKEN is unset: the HTTP API answers loopback clients only");
    }
    tracing::info!(
        http = %http,
        smtp = %smtp,
        grpc = %grpc,
        database = %config.database_url(),
        email_store = %config.email_store_url(),
        "mailfwd is serving"
    );
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
