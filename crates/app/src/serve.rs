//! `mailfwd serve`: build the adapters, start the listeners, wait for a signal.

use std::process::ExitCode;
use std::sync::Arc;

use mailfwd_domain::RuleStore;
use mailfwd_http::HttpConfig;
use mailfwd_sqlite::SqliteRuleStore;

use crate::config::Config;

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

async fn serve(config: Config) -> Result<(), String> {
    let rules: Arc<dyn RuleStore> = Arc::new(open_rule_store(&config).await?);
    let http_config = HttpConfig {
        api_token: config.api_token.clone(),
        max_destinations: config.max_destinations,
        import_body_limit: config.import_body_limit,
        ..HttpConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(|e| format!("cannot listen for HTTP on {}: {e}", config.http_listen))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot read the HTTP listen address: {e}"))?;
    if config.api_token.is_none() && !address.ip().is_loopback() {
        tracing::warn!(%address, "MAILFWD_API_TOKEN is unset: the HTTP API answers loopback clients only");
    }
    tracing::info!(http = %address, database = %config.database_url(), "mailfwd is serving");
    let router = mailfwd_http::router(rules, http_config);
    mailfwd_http::serve(listener, router, shutdown_signal())
        .await
        .map_err(|e| format!("the HTTP server failed: {e}"))?;
    tracing::info!("mailfwd stopped");
    Ok(())
}

/// Opens the rule store named by the configuration, creating the data directory first.
pub async fn open_rule_store(config: &Config) -> Result<SqliteRuleStore, String> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create the data directory '{}': {e}",
            config.data_dir.display()
        )
    })?;
    SqliteRuleStore::connect(&config.database_url())
        .await
        .map_err(|e| e.to_string())
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
