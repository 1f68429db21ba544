//! `mailfwd import FILE.csv`: the HTTP importer, fed from a file, with progress.

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use mailfwd_domain::import::{CsvImport, ImportError, ImportOptions, ImportReport};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::cli::ImportArgs;
use crate::config::Config;
use crate::storage::{StorageError, open_rules};

const CHUNK: usize = 64 * 1024;

/// Imports the file and prints a summary; see `mailfwd import --help` for exit codes.
pub async fn run(config: Config, args: ImportArgs) -> ExitCode {
    match import(&config, &args).await {
        Ok(report) => {
            print_report(&report);
            if report.rejected_rows == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(error) => {
            eprintln!("mailfwd import: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Why an import did not run to its end.
#[derive(Debug, Error)]
enum ImportFailure {
    /// The input file could not be opened.
    #[error("cannot open '{}': {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The input broke off while being read.
    #[error("cannot read '{}': {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The rule store could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The import itself stopped (bad header, store failure).
    #[error(transparent)]
    Import(#[from] ImportError),
}

async fn import(config: &Config, args: &ImportArgs) -> Result<ImportReport, ImportFailure> {
    let (mut input, length): (Box<dyn AsyncRead + Unpin>, Option<u64>) =
        if args.file.as_os_str() == "-" {
            (Box::new(tokio::io::stdin()), None)
        } else {
            let file =
                tokio::fs::File::open(&args.file)
                    .await
                    .map_err(|source| ImportFailure::Open {
                        path: args.file.clone(),
                        source,
                    })?;
            let length = file.metadata().await.ok().map(|m| m.len());
            (Box::new(file), length)
        };
    let store = open_rules(config).await?;
    let options = ImportOptions {
        atomic: args.atomic,
        atomic_max_rows: config.import_atomic_max_rows,
        max_destinations: config.max_destinations,
        expansion: config.expansion_limits(),
        ..ImportOptions::default()
    };
    let mut importer = CsvImport::new(store.as_ref(), options);
    let progress = progress_bar(length);
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = input
            .read(&mut buffer)
            .await
            .map_err(|source| ImportFailure::Read {
                path: args.file.clone(),
                source,
            })?;
        if read == 0 {
            break;
        }
        importer.feed(&buffer[..read]).await?;
        progress.inc(read as u64);
    }
    let report = importer.finish().await?;
    progress.finish_and_clear();
    Ok(report)
}

/// A byte-count bar on a terminal; draws nothing when stderr is not a terminal.
fn progress_bar(length: Option<u64>) -> ProgressBar {
    let bar = length.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
    let template = "{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn print_report(report: &ImportReport) {
    println!(
        "{} rows read: {} imported into {} rules, {} rejected",
        report.rows, report.imported_rows, report.rules_written, report.rejected_rows
    );
    for error in &report.errors {
        println!("line {} ({}): {}", error.line, error.column, error.reason);
    }
    if report.errors_truncated {
        println!("(more rejected rows not listed)");
    }
}
