//! `mailfwd`: reads the configuration, then runs the subcommand asked for.

mod cli;
mod config;
mod import;
mod logging;
mod metrics;
mod pipeline;
mod reprocess;
mod serve;
mod storage;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let config = match config::Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("mailfwd: configuration error: {error}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    logging::init(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mailfwd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            cli::Command::Serve => serve::run(config).await,
            cli::Command::Import(args) => import::run(config, args).await,
            cli::Command::Reprocess(args) => reprocess::run(config, args).await,
        }
    })
}
