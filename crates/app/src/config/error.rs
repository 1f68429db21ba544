//! What is wrong with the configuration, naming the setting, its variable and where the
//! value came from.

use std::fmt::Write as _;
use std::path::PathBuf;

use figment::Source;
use thiserror::Error;

/// A configuration mistake; `mailfwd` exits with `EX_CONFIG` (78) on any of them.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// `--config` names no file.
    #[error("the configuration file '{}' does not exist or is not a file", .0.display())]
    MissingFile(PathBuf),
    /// A value has the wrong form (not an address, a number, a duration …), a key is
    /// unknown, or the file is not TOML.
    #[error("{}", describe(.0))]
    Invalid(Box<figment::Error>),
    /// A value has the right form but breaks a rule of its own.
    #[error("{setting} ({}) {rule}", variable(setting))]
    Rule {
        /// The setting, as written in the TOML file.
        setting: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// One entry of a list setting is wrong.
    #[error("{setting} ({}): '{entry}' {rule}", variable(setting))]
    Entry {
        /// The setting, as written in the TOML file.
        setting: &'static str,
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        rule: &'static str,
    },
    /// A storage URL names a scheme no adapter serves (`crate::storage` knows them).
    #[error(transparent)]
    Storage(crate::storage::StorageError),
}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        ConfigError::Invalid(Box::new(error))
    }
}

/// The environment variable of a setting.
pub(super) fn variable(setting: &str) -> String {
    format!("MAILFWD_{}", setting.to_uppercase())
}

/// Each of figment's errors on a line of its own: the setting and its variable, where
/// the value came from, and what is wrong.
fn describe(error: &figment::Error) -> String {
    let mut text = String::new();
    for (index, error) in error.clone().into_iter().enumerate() {
        if index > 0 {
            text.push_str("; ");
        }
        let source = match error.metadata.as_ref() {
            Some(metadata) => match &metadata.source {
                Some(Source::File(path)) => format!("the file {}", path.display()),
                _ => metadata.name.to_string(),
            },
            None => "the settings".to_owned(),
        };
        // An unknown key has no variable: name the key and where it was found.
        let unknown = matches!(error.kind, figment::error::Kind::UnknownField(..));
        let _ = if error.path.is_empty() || unknown {
            write!(text, "{} (in {source})", error.kind)
        } else {
            let setting = error.path.join(".");
            write!(
                text,
                "{setting} ({}) in {source}: {}",
                variable(&setting),
                error.kind
            )
        };
    }
    text
}
