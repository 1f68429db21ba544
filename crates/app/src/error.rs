//! Why a `mailfwd` command failed, and the exit status each failure gives.

use std::net::SocketAddr;
use std::process::ExitCode;

use thiserror::Error;

use crate::cli::Command;
use crate::config::ConfigError;
use crate::listeners::Protocol;
use crate::reprocess::ReprocessError;

/// Any error from adapters whose error types differ, kept with its chain of sources.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `EX_CONFIG` from sysexits.h: the configuration is wrong.
const EX_CONFIG: u8 = 78;

/// Everything that can stop a `mailfwd` command.
#[derive(Debug, Error)]
pub enum AppError {
    /// The settings are wrong; nothing was started.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The async runtime could not start (out of threads or file descriptors).
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The database or the email store could not be opened.
    #[error("cannot open the storage: {0}")]
    Storage(#[source] BoxError),
    /// The Prometheus recorder could not be installed.
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    /// The outbound mailer could not be set up (such as a `MAILFWD_RELAY` that is not
    /// `host:port`).
    #[error("cannot set up forwarding: {0}")]
    Forwarder(#[source] BoxError),
    /// The STARTTLS certificate or key could not be loaded; the message names the file.
    #[error("cannot set up STARTTLS for SMTP: {0}")]
    Tls(#[from] mailfwd_smtp_in::TlsError),
    /// The gRPC services could not be assembled.
    #[error("cannot set up the gRPC API: {0}")]
    GrpcSetup(#[from] mailfwd_grpc::SetupError),
    /// A listener could not take its address (in use, not ours, no permission).
    #[error("cannot listen for {protocol} on {address}: {source}")]
    Bind {
        /// Which listener.
        protocol: Protocol,
        /// The address it was given.
        address: SocketAddr,
        /// Why the operating system refused.
        #[source]
        source: std::io::Error,
    },
    /// A bound listener could not tell its own address.
    #[error("cannot read the address the {protocol} listener is bound to: {source}")]
    LocalAddr {
        /// Which listener.
        protocol: Protocol,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A listener stopped with an error while serving.
    #[error("the {protocol} server failed: {source}")]
    Serve {
        /// Which listener.
        protocol: Protocol,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// A listener stopped without being asked to.
    #[error("the {0} server stopped on its own")]
    StoppedEarly(Protocol),
    /// A listener panicked.
    #[error("the {protocol} server panicked: {message}")]
    Panicked {
        /// Which listener.
        protocol: Protocol,
        /// The panic's message.
        message: String,
    },
    /// A listener's task ended without a result (it was cancelled); panics are caught
    /// and reported as [`AppError::Panicked`] before this can happen.
    #[error("a listener's task ended abnormally: {0}")]
    ListenerLost(#[source] tokio::task::JoinError),
    /// `mailfwd reprocess` could not do all it was asked.
    #[error(transparent)]
    Reprocess(#[from] ReprocessError),
}

impl AppError {
    /// The process exit status for this error: 78 (`EX_CONFIG`) when the configuration
    /// is wrong, 1 otherwise.
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        match self {
            AppError::Config(_) => ExitCode::from(EX_CONFIG),
            _ => ExitCode::FAILURE,
        }
    }

    /// Tells the operator: `serve` logs the error (its log is where operators look);
    /// the other commands, and failures before logging starts, print it on stderr.
    pub fn report(&self, command: &Command) {
        match (self, command) {
            (AppError::Config(_) | AppError::Runtime(_), _) => eprintln!("mailfwd: {self}"),
            (_, Command::Serve) => tracing::error!("{self}"),
            (_, command) => eprintln!("mailfwd {}: {self}", command.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configuration_errors_exit_with_ex_config() {
        let config = AppError::from(ConfigError::Rule {
            setting: "delivery_workers",
            rule: "must be at least 1",
        });
        assert_eq!(config.exit_code(), ExitCode::from(78));
        let panicked = AppError::Panicked {
            protocol: Protocol::Http,
            message: "boom".to_owned(),
        };
        assert_eq!(panicked.exit_code(), ExitCode::FAILURE);
        assert_eq!(panicked.to_string(), "the HTTP server panicked: boom");
    }
}
