//! mailfwd's own addresses from the configuration: the SRS domain and secrets, and
//! where postmaster's mail goes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use mailfwd_domain::{Domain, EmailAddress, OwnAddresses, Srs, SrsConfigError};
use thiserror::Error;

use super::{Config, ConfigError};

/// The file in the data directory that keeps the SRS secret made on first start when
/// `MAILFWD_SRS_SECRET` is unset.
const SECRET_FILE: &str = "srs.secret";

/// Why the SRS secret could not be had.
#[derive(Debug, Error)]
pub enum SecretError {
    /// The secret file could not be read or written.
    #[error(
        "MAILFWD_SRS_SECRET is unset and the secret file '{}' cannot be used: {source}",
        path.display()
    )]
    File {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The secret file holds no secret.
    #[error(
        "the SRS secret file '{}' is empty: put a secret in it or set MAILFWD_SRS_SECRET",
        .0.display()
    )]
    Empty(PathBuf),
    /// The system gave no random bytes for a new secret.
    #[error("cannot make an SRS secret: the system gave no random bytes: {0}")]
    Random(String),
}

impl Config {
    /// Checks the SRS and postmaster settings without touching the secret file.
    pub(super) fn check_own_addresses(&self) -> Result<(), ConfigError> {
        let domain = self.srs_domain()?;
        match Srs::check_settings(&domain, self.srs_max_age_days) {
            Ok(()) => {}
            Err(SrsConfigError::MaxAgeTooLong(_)) => {
                return Err(ConfigError::Rule {
                    setting: "srs_max_age_days",
                    rule: "must be less than 1024, the cycle of the SRS timestamp",
                });
            }
            Err(_) => return Err(self.bad_srs_domain()),
        }
        self.postmaster()?;
        let secrets = self.srs_secrets();
        if self.srs_secret.is_some() && secrets.is_empty() {
            return Err(ConfigError::Rule {
                setting: "srs_secret",
                rule: "is set but holds no secret; unset it to have one made, or give secrets separated by commas",
            });
        }
        Ok(())
    }

    /// The domain rewritten senders go into: `srs_domain`, or the host name.
    fn srs_domain(&self) -> Result<Domain, ConfigError> {
        Domain::parse(&self.srs_domain_setting().1).map_err(|_| self.bad_srs_domain())
    }

    /// The setting the SRS domain comes from, and its value.
    fn srs_domain_setting(&self) -> (&'static str, String) {
        match &self.srs_domain {
            Some(domain) => ("srs_domain", domain.clone()),
            None => ("hostname", self.hostname()),
        }
    }

    fn bad_srs_domain(&self) -> ConfigError {
        let (setting, entry) = self.srs_domain_setting();
        ConfigError::Entry {
            setting,
            entry,
            rule: "is not a domain name SRS addresses can be made in (set MAILFWD_SRS_DOMAIN)",
        }
    }

    /// Where postmaster's mail goes, when set.
    fn postmaster(&self) -> Result<Option<EmailAddress>, ConfigError> {
        self.postmaster
            .as_deref()
            .map(|address| {
                EmailAddress::parse(address.trim()).map_err(|_| ConfigError::Entry {
                    setting: "postmaster",
                    entry: address.to_owned(),
                    rule: "is not an email address",
                })
            })
            .transpose()
    }

    /// The secrets of `srs_secret`, trimmed, empty entries left out.
    fn srs_secrets(&self) -> Vec<String> {
        self.srs_secret
            .iter()
            .flat_map(|secrets| secrets.split(','))
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// mailfwd's own addresses. Without `srs_secret`, the secret is read from
    /// [`SECRET_FILE`] in the data directory, which is made (mode 0600) on first use.
    ///
    /// # Errors
    /// [`SecretError`] if that file cannot be read or made.
    pub fn own_addresses(&self) -> Result<OwnAddresses, SecretError> {
        let mut secrets = self.srs_secrets();
        if secrets.is_empty() {
            secrets.push(secret_from_file(&self.data_dir.join(SECRET_FILE))?);
        }
        let domain = self.srs_domain().expect("checked when loaded");
        let srs = Srs::new(domain, secrets, self.srs_max_age_days).expect("checked when loaded");
        let hostname = Domain::parse(&self.hostname())
            .unwrap_or_else(|_| Domain::parse("localhost").expect("valid"));
        Ok(OwnAddresses::new(
            srs,
            hostname,
            self.postmaster().expect("checked when loaded"),
        ))
    }
}

/// The secret kept in `path`, made there first if the file does not exist.
fn secret_from_file(path: &Path) -> Result<String, SecretError> {
    let file_error = |source| SecretError::File {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim();
            if secret.is_empty() {
                return Err(SecretError::Empty(path.to_owned()));
            }
            return Ok(secret.to_owned());
        }
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(file_error(error));
        }
        Err(_) => {}
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| SecretError::Random(error.to_string()))?;
    let secret: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file_error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{secret}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(file_error)?;
            tracing::info!(file = %path.display(), "made a new SRS secret; set MAILFWD_SRS_SECRET to share one between instances");
            Ok(secret)
        }
        // Another process made it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => secret_from_file(path),
        Err(error) => Err(file_error(error)),
    }
}
