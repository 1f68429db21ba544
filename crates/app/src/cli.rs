//! The command line.

use std::path::PathBuf;

use clap::builder::TypedValueParser;
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
    /// Run stored emails through forwarding again with the rules as they are now, over
    /// the gRPC API of a running `mailfwd serve`: one or more ids, or every email
    /// received in a window. Without --force, destinations already delivered are left
    /// alone, so running it twice delivers nothing twice.
    ///
    /// Exit status: 0 when every email was reprocessed, 1 otherwise.
    Reprocess(ReprocessArgs),
    /// Move every stored email body from one email store to another, while `serve`
    /// keeps running with MAILFWD_EMAIL_STORE set to the new store and
    /// MAILFWD_EMAIL_STORE_OLD to the old one. Each body is copied, read back and
    /// compared (size and SHA-256); the original is deleted only with --delete-source,
    /// and only after. Killed and started again, it carries on where it stopped
    /// (a checkpoint in the data directory) and never copies a body twice.
    ///
    /// Exit status: 0 when every body was moved (or already was), 1 otherwise.
    MigrateEmails(MigrateArgs),
}

impl Command {
    /// The subcommand as typed.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Command::Serve => "serve",
            Command::Import(_) => "import",
            Command::Reprocess(_) => "reprocess",
            Command::MigrateEmails(_) => "migrate-emails",
        }
    }
}

/// Arguments of `mailfwd reprocess`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["ids", "since"])))]
pub struct ReprocessArgs {
    /// An email id (as in `250 2.0.0 Ok: queued as <id>`); repeat for several.
    #[arg(long = "id", value_name = "ID", num_args = 1..)]
    pub ids: Vec<String>,

    /// Every email received in this window up to now (or up to --until): `24h`, `90m`.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub since: Option<std::time::Duration>,

    /// End the window this long ago instead of now.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", requires = "since")]
    pub until: Option<std::time::Duration>,

    /// Deliver again even to destinations already delivered.
    #[arg(long)]
    pub force: bool,

    /// Calls in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,

    /// The gRPC API of the running mailfwd; by default the configured
    /// MAILFWD_GRPC_LISTEN (http://127.0.0.1:50051 unless set).
    #[arg(long, value_name = "URL")]
    pub grpc: Option<String>,
}

/// Arguments of `mailfwd migrate-emails`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The store the bodies are in: file://PATH, s3://BUCKET/PREFIX or database.
    #[arg(long, value_name = "URL")]
    pub from: String,

    /// The store they move to (same forms).
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// Delete each body from --from once its copy in --to is verified.
    #[arg(long)]
    pub delete_source: bool,

    /// Bodies moved at once (1 to 256).
    #[arg(long, default_value = "8", value_parser = clap::value_parser!(u16).range(1..=256).map(|n| std::num::NonZeroU16::new(n).unwrap_or(std::num::NonZeroU16::MIN)))]
    pub concurrency: std::num::NonZeroU16,

    /// Move at most this many megabytes (10^6 bytes) per second, all copies together:
    /// the bytes copied and those read to check copies (1 to 100000; unset for no limit).
    #[arg(long, value_name = "MB_PER_SECOND", value_parser = clap::value_parser!(u32).range(1..=100_000).map(|n| std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN)))]
    pub rate_limit: Option<std::num::NonZeroU32>,
}

/// Arguments of `mailfwd import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The CSV file; `-` reads standard input.
    #[arg(value_name = "FILE.csv")]
    pub file: PathBuf,

    /// Import nothing unless every row is valid.
    #[arg(long)]
    pub atomic: bool,
}
