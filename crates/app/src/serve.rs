//! `mailfwd serve`: build the ports, start the listeners, wait for a signal.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use mailfwd_grpc::GrpcServices;
use mailfwd_http::{HttpConfig, Services};
use mailfwd_smtp_in::{SmtpConfig, SmtpServer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Prometheus;
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::wiring::Ports;

/// Runs the service until SIGINT or SIGTERM.
pub async fn run(config: Config) -> ExitCode {
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn bind(what: &str, address: std::net::SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen for {what} on {address}: {e}"))
}

fn smtp_config(config: &Config) -> Result<SmtpConfig, String> {
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            Some(mailfwd_smtp_in::load_tls(cert, key).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    Ok(SmtpConfig {
        hostname: config.hostname(),
        command_timeout: Duration::from_secs(config.smtp_command_timeout),
        data_timeout: Duration::from_secs(config.smtp_data_timeout),
        max_connections: config.smtp_max_connections,
        max_connections_per_peer: config.smtp_max_connections_per_peer,
        max_errors: config.smtp_max_errors,
        max_line_length: config.smtp_max_line_length,
        tls,
    })
}

async fn serve(config: Config) -> Result<(), String> {
    let ports = Ports::open(&config).await.map_err(|e| e.to_string())?;
    let metrics = Prometheus::install(Arc::clone(&ports.queue))?;
    let pipeline_config = PipelineConfig {
        workers: config.delivery_workers,
        lease: config.delivery_lease().map_err(|e| e.to_string())?,
    };
    let (pipeline, handoff, accepted) = Pipeline::new(
        Arc::clone(&ports.emails),
        ports.evaluator(),
        ports.deliverer(&config).map_err(|e| e.to_string())?,
        pipeline_config,
    );
    let ingest = ports.ingest(&config).with_listener(Arc::new(handoff));
    let grpc_router = mailfwd_grpc::router(GrpcServices {
        ingest: ingest.clone(),
        emails: Arc::clone(&ports.emails),
        evaluator: ports.evaluator(),
        queue: Arc::clone(&ports.queue),
        api_token: config.api_token.clone(),
    })
    .await
    .map_err(|e| format!("cannot set up the gRPC API: {e}"))?;
    let smtp = SmtpServer::new(ingest, smtp_config(&config)?);
    let http_config = HttpConfig {
        api_token: config.api_token.clone(),
        max_destinations: config.max_destinations,
        import_body_limit: config.import_body_limit,
        ..HttpConfig::default()
    };
    let http_listener = bind("HTTP", config.http_listen).await?;
    let smtp_listener = bind("SMTP", config.smtp_listen).await?;
    let grpc_listener = bind("gRPC", config.grpc_listen).await?;
    let local = |l: &TcpListener| {
        l.local_addr()
            .map_err(|e| format!("cannot read a listen address: {e}"))
    };
    let (http_address, smtp_address, grpc_address) = (
        local(&http_listener)?,
        local(&smtp_listener)?,
        local(&grpc_listener)?,
    );
    if config.api_token.is_none() && !http_address.ip().is_loopback() {
        tracing::warn!(%http_address, "MAILFWD_API_TOKEN is unset: the HTTP API answers loopback clients only");
    }
    tracing::info!(
        http = %http_address,
        smtp = %smtp_address,
        grpc = %grpc_address,
        database = %config.database_url(),
        email_store = %config.email_store_url(),
        "mailfwd is serving"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let workers = pipeline.start(accepted, stop_rx.clone());
    let services = Services {
        rules: ports.rules,
        emails: ports.emails,
        deliveries: ports.queue,
        metrics: Arc::new(metrics),
    };
    let router = mailfwd_http::router(services, http_config);
    let http = tokio::spawn(mailfwd_http::serve(
        http_listener,
        router,
        stopped(stop_rx.clone()),
    ));
    let grpc = tokio::spawn(mailfwd_grpc::serve(
        grpc_listener,
        grpc_router,
        stopped(stop_rx.clone()),
    ));
    let smtp = tokio::spawn(smtp.serve(smtp_listener, stopped(stop_rx)));
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let (http, smtp, grpc, ()) = tokio::join!(http, smtp, grpc, workers.join_all().map(drop));
    grpc.map_err(|e| format!("the gRPC server panicked: {e}"))?
        .map_err(|e| format!("the gRPC server failed: {e}"))?;
    http.map_err(|e| format!("the HTTP server panicked: {e}"))?
        .map_err(|e| format!("the HTTP server failed: {e}"))?;
    smtp.map_err(|e| format!("the SMTP server panicked: {e}"))?
        .map_err(|e| format!("the SMTP server failed: {e}"))?;
    tracing::info!("mailfwd stopped");
    Ok(())
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
