//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// mailfwd: an email forwarding service that never loses a message it accepted.
///
/// Settings come from an optional TOML file (--config) and MAILFWD_* environment
/// variables, the environment winning. With no settings at all mailfwd keeps its data
/// in ./data (SQLite) and listens on 127.0.0.1 only. See docs/configuration.md.
#[derive(Debug, Parser)]
#[command(name = "mailfwd", version, about, long_about)]
pub struct Cli {
    /// A TOML configuration file (keys are the MAILFWD_* names without the prefix, lower-case).
    #[arg(long, global = true, env = "MAILFWD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service until SIGINT or SIGTERM: receive mail over SMTP
    /// (MAILFWD_SMTP_LISTEN), forward it (to MAILFWD_RELAY or by MX lookup), and serve
    /// the HTTP API (MAILFWD_HTTP_LISTEN).
    Serve,
    /// Import forwarding rules from a CSV file (header `email,forward`) straight into
    /// the configured database, with the same importer as `POST /v1/forwards/import`.
    ///
    /// Exit status: 0 when every row was imported, 2 when some rows were rejected
    /// (each is listed with its line), 1 when the import could not run.
    Import(ImportArgs),
}

/// Arguments of `mailfwd import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file; `-` reads standard input.
    #[arg(value_name = "FILE.csv")]
    pub file: PathBuf,

    /// Import nothing unless every row is valid.
    #[arg(long)]
    pub atomic: bool,
}
