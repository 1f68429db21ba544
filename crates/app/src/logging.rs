//! Structured logs on standard error, filtered by MAILFWD_LOG.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. A bad filter falls back to `info` and says so.
/// Colour codes are written only when stderr is a terminal: in a file, a journal or a
/// pipe they would be noise around every level and field name.
pub fn init(config: &Config) {
    let (filter, bad_filter) = match EnvFilter::try_new(&config.log) {
        Ok(filter) => (filter, None),
        Err(error) => (EnvFilter::new("info"), Some(error)),
    };
    let ansi = std::io::stderr().is_terminal();
    let subscriber = subscriber(config.log_format, filter, ansi, std::io::stderr);
    if let Err(error) = tracing::subscriber::set_global_default(subscriber) {
        eprintln!("mailfwd: cannot install the logger: {error}");
    }
    if let Some(error) = bad_filter {
        tracing::warn!(filter = %config.log, %error, "MAILFWD_LOG is not a valid filter; logging at info");
    }
}

/// The subscriber `init` installs, writing to `writer`.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(builder.json().finish()),
        LogFormat::Text => Box::new(builder.finish()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log_line(ansi: bool) -> String {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = subscriber(LogFormat::Text, EnvFilter::new("info"), ansi, move || {
            sink.clone()
        });
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(http = "127.0.0.1:8080", "mailfwd is serving");
        });
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn text_logs_for_a_file_or_pipe_hold_no_colour_codes() {
        let plain = log_line(false);
        assert!(
            plain.contains("WARN") && plain.contains("mailfwd is serving http=\"127.0.0.1:8080\""),
            "{plain:?}"
        );
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
    }

    #[test]
    fn text_logs_for_a_terminal_are_coloured() {
        let coloured = log_line(true);
        assert!(coloured.contains("\u{1b}["), "{coloured:?}");
    }
}
