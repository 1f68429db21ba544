//! `mailfwd`: reads the configuration, then runs the subcommand asked for.

mod cli;
mod config;
mod error;
mod import;
mod listeners;
mod logging;
mod metrics;
mod migrate;
mod orphans;
mod reprocess;
mod serve;
mod storage;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::AppError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command;
    match run(cli.config.as_deref(), &command) {
        Ok(code) => code,
        Err(error) => {
            error.report(&command);
            error.exit_code()
        }
    }
}

/// Loads the configuration, starts logging and the runtime, and runs `command`.
fn run(file: Option<&std::path::Path>, command: &Command) -> Result<ExitCode, AppError> {
    let config = config::Config::load(file)?;
    logging::init(&config);
    let runtime = tokio::runtime::Runtime::new().map_err(AppError::Runtime)?;
    runtime.block_on(async {
        match command {
            Command::Serve => serve::run(config).await.map(|()| ExitCode::SUCCESS),
            Command::Import(args) => Ok(import::run(config, args.clone()).await),
            Command::MigrateEmails(args) => Ok(migrate::run(config, args.clone()).await),
            Command::Reprocess(args) => reprocess::run(config, args.clone())
                .await
                .map(|()| ExitCode::SUCCESS)
                .map_err(AppError::from),
        }
    })
}
