//! Checks across settings, and the values derived from them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mailfwd_domain::delivery::RetryPolicy;
use mailfwd_layers::RuleCacheConfig;

use super::Config;

impl Config {
    pub(super) fn check(&self) -> Result<(), Box<figment::Error>> {
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
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return fail(
                "tls_cert (MAILFWD_TLS_CERT) and tls_key (MAILFWD_TLS_KEY) must be set together"
                    .to_owned(),
            );
        }
        if self.max_recipients == 0
            || self.smtp_max_connections == 0
            || self.smtp_max_connections_per_peer == 0
        {
            return fail("max_recipients, smtp_max_connections and smtp_max_connections_per_peer must be at least 1".to_owned());
        }
        self.retry_policy()?;
        self.delivery_lease()?;
        self.rule_cache()?;
        if self.smtp_max_line_length < 512 {
            return fail("smtp_max_line_length (MAILFWD_SMTP_MAX_LINE_LENGTH) must be at least 512, the RFC 5321 minimum".to_owned());
        }
        if self.delivery_workers == 0 {
            return fail(
                "delivery_workers (MAILFWD_DELIVERY_WORKERS) must be at least 1".to_owned(),
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

    /// The email store URL, derived from the data directory when not set.
    #[must_use]
    pub fn email_store_url(&self) -> String {
        self.email_store.clone().unwrap_or_else(|| {
            format!(
                "file://{}",
                absolute(&self.data_dir.join("emails")).display()
            )
        })
    }

    /// The name mailfwd gives itself: the setting, else the machine's host name.
    #[must_use]
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "localhost".to_owned())
        })
    }

    /// The database URL, derived from the data directory when not set.
    #[must_use]
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("mailfwd.db").display()))
    }

    /// The retry schedule.
    ///
    /// # Errors
    /// A message naming the setting that is not a duration (`90s`, `5m`, `4h`, `5d`).
    pub fn retry_policy(&self) -> Result<RetryPolicy, Box<figment::Error>> {
        let steps = self
            .retry_schedule
            .split(',')
            .map(str::trim)
            .filter(|step| !step.is_empty())
            .map(|step| duration("retry_schedule", step))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RetryPolicy {
            steps,
            then_every: duration("retry_every", &self.retry_every)?,
            give_up_after: duration("retry_give_up", &self.retry_give_up)?,
            ..RetryPolicy::default()
        })
    }

    /// How long a worker holds a claimed job.
    ///
    /// # Errors
    /// A message if `delivery_lease` is not a duration.
    pub fn delivery_lease(&self) -> Result<Duration, Box<figment::Error>> {
        duration("delivery_lease", &self.delivery_lease)
    }
}

impl Config {
    /// The rule cache's size and time to live.
    ///
    /// # Errors
    /// A message if `rule_cache_ttl` is not a duration.
    pub fn rule_cache(&self) -> Result<RuleCacheConfig, Box<figment::Error>> {
        Ok(RuleCacheConfig {
            capacity: self.rule_cache_capacity,
            ttl: duration("rule_cache_ttl", &self.rule_cache_ttl)?,
        })
    }
}

fn duration(setting: &str, text: &str) -> Result<Duration, Box<figment::Error>> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        Box::new(figment::Error::from(format!(
            "{setting} (MAILFWD_{}) has '{text}', which is not a duration such as 90s, 5m, 4h or 5d: {e}",
            setting.to_uppercase()
        )))
    })
}

/// `file://` URLs need absolute paths; a relative data directory is taken from the
/// working directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
