//! Configuration: defaults that work on a laptop, a TOML file over them, and
//! `MAILFWD_*` environment variables over both.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Every setting. Field names are the environment variable names without `MAILFWD_`,
/// lower-cased; the TOML file uses the same names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Inbound SMTP listener (reserved: used once SMTP receiving lands).
    pub smtp_listen: SocketAddr,
    /// HTTP API listener.
    pub http_listen: SocketAddr,
    /// gRPC listener (reserved: used once the gRPC API lands).
    pub grpc_listen: SocketAddr,
    /// Where the embedded defaults keep their files.
    pub data_dir: PathBuf,
    /// `sqlite://…`; defaults to `sqlite://<data_dir>/mailfwd.db`.
    pub database_url: Option<String>,
    /// Where email bodies go (reserved: used once SMTP receiving lands).
    pub email_store: Option<String>,
    /// `host:port` of a relay host (reserved: used once delivery lands).
    pub relay: Option<String>,
    /// Name used in greetings and headers (reserved: used once SMTP lands).
    pub hostname: Option<String>,
    /// Bearer token for the admin APIs; unset means loopback clients only.
    pub api_token: Option<String>,
    /// Most destinations one rule may have.
    pub max_destinations: usize,
    /// Largest CSV body `POST /v1/forwards/import` accepts, in bytes.
    pub import_body_limit: usize,
    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    pub log: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            smtp_listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            email_store: None,
            relay: None,
            hostname: None,
            api_token: None,
            max_destinations: mailfwd_domain::rule::DEFAULT_MAX_DESTINATIONS,
            import_body_limit: 64 * 1024 * 1024,
            log: "info".to_owned(),
            log_format: LogFormat::Text,
        }
    }
}

/// The environment variables that are settings. Others starting with `MAILFWD_`
/// (such as `MAILFWD_CONFIG`) are not, and must not trip `deny_unknown_fields`.
const SETTINGS: &[&str] = &[
    "smtp_listen",
    "http_listen",
    "grpc_listen",
    "data_dir",
    "database_url",
    "email_store",
    "relay",
    "hostname",
    "api_token",
    "max_destinations",
    "import_body_limit",
    "log",
    "log_format",
];

/// Settings whose values are free text: read verbatim, never as TOML numbers or booleans.
const TEXT_SETTINGS: &[&str] = &[
    "api_token",
    "database_url",
    "email_store",
    "relay",
    "hostname",
    "log",
    "data_dir",
];

impl Config {
    /// Loads defaults, then `file` (if given), then the environment.
    ///
    /// # Errors
    /// A [`figment::Error`] that names the setting, its source and what is wrong.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(Box::new(figment::Error::from(format!(
                    "the configuration file '{}' does not exist or is not a file",
                    file.display()
                ))));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let env = Env::prefixed("MAILFWD_").only(SETTINGS);
        figment = figment.merge(
            env.clone()
                .filter(|key| !TEXT_SETTINGS.contains(&key.as_str())),
        );
        for key in TEXT_SETTINGS {
            let variable = format!("MAILFWD_{}", key.to_uppercase());
            if let Ok(value) = std::env::var(&variable) {
                figment = figment.merge(Serialized::default(key, value));
            }
        }
        let config: Config = figment.extract().map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), Box<figment::Error>> {
        let fail = |m: String| Err(Box::new(figment::Error::from(m)));
        if self.max_destinations == 0 {
            return fail(
                "max_destinations (MAILFWD_MAX_DESTINATIONS) must be at least 1".to_owned(),
            );
        }
        if self
            .api_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return fail(
                "api_token (MAILFWD_API_TOKEN) is set but empty; unset it or give a token"
                    .to_owned(),
            );
        }
        if let Some(url) = &self.database_url
            && !url.starts_with("sqlite:")
        {
            return fail(format!(
                "database_url (MAILFWD_DATABASE_URL) '{url}' is not supported: this version stores rules in SQLite only (sqlite://PATH)"
            ));
        }
        Ok(())
    }

    /// The database URL, derived from the data directory when not set.
    #[must_use]
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("mailfwd.db").display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_on_a_laptop() {
        let config = Config::default();
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_url(), "sqlite://./data/mailfwd.db");
    }

    #[test]
    fn a_typo_in_the_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("mailfwd.toml");
        std::fs::write(&file, "htp_listen = \"127.0.0.1:1\"\n").expect("write");
        let error = Config::load(Some(&file))
            .expect_err("unknown key")
            .to_string();
        assert!(error.contains("htp_listen"), "{error}");
        std::fs::write(&file, "http_listen = \"nonsense\"\n").expect("write");
        let error = Config::load(Some(&file))
            .expect_err("bad address")
            .to_string();
        assert!(error.contains("http_listen"), "{error}");
        let missing = Config::load(Some(&dir.path().join("absent.toml")))
            .expect_err("missing")
            .to_string();
        assert!(missing.contains("absent.toml"), "{missing}");
    }
}
