//! Checks across settings, and the values derived from them.

use std::path::{Path, PathBuf};

use mailfwd_domain::delivery::RetryPolicy;
use mailfwd_domain::{Domain, ExpansionLimits};
use mailfwd_layers::RuleCacheConfig;

use super::{Config, ConfigError};

/// Reads one setting.
type Setting = fn(&Config) -> usize;

/// Settings that must be at least 1.
const AT_LEAST_ONE: &[(&str, Setting)] = &[
    ("max_destinations", |c| c.max_destinations),
    ("max_recipients", |c| c.max_recipients),
    ("max_header_size", |c| c.max_header_size),
    ("forward_max_depth", |c| c.forward_max_depth),
    ("forward_max_expansion", |c| c.forward_max_expansion),
    ("smtp_max_connections", |c| c.smtp_max_connections),
    ("smtp_max_connections_per_peer", |c| {
        c.smtp_max_connections_per_peer
    }),
    ("delivery_workers", |c| c.delivery_workers),
    ("database_pool_size", |c| c.database_pool_size as usize),
];

/// The highest `inline_body_limit`: each session holds up to this much in memory.
const MAX_INLINE_BODY_LIMIT: usize = 1024 * 1024;

impl Config {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let rule = |setting, rule| Err(ConfigError::Rule { setting, rule });
        if let Some((setting, _)) = AT_LEAST_ONE.iter().find(|(_, value)| value(self) == 0) {
            return rule(setting, "must be at least 1");
        }
        if self
            .api_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return rule("api_token", "is set but empty; unset it or give a token");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return rule(
                "tls_cert",
                "and tls_key (MAILFWD_TLS_KEY) must be set together",
            );
        }
        if self
            .api_allowed_hosts()
            .any(|host| host.contains(':') || mailfwd_domain::Domain::parse(host).is_err())
        {
            return rule(
                "api_allowed_hosts",
                "must be host names without a port, separated by commas",
            );
        }
        self.parse_routes()?;
        self.check_own_addresses()?;
        if self.email_store_old.as_deref() == Some(self.email_store_url().as_str()) {
            return rule(
                "email_store_old",
                "names the same store as MAILFWD_EMAIL_STORE; set it only while bodies move from another store",
            );
        }
        if self.inline_body_limit > MAX_INLINE_BODY_LIMIT {
            return rule(
                "inline_body_limit",
                "must be at most 1048576 (1 MiB): a body is held in memory until it outgrows it",
            );
        }
        if self.retention.is_some_and(|keep| keep.is_zero()) {
            return rule(
                "retention",
                "must be more than 0; leave it unset to keep every email",
            );
        }
        if self.database_acquire_timeout.is_zero() {
            return rule("database_acquire_timeout", "must be more than 0");
        }
        if self.instance_timeout < std::time::Duration::from_secs(3) {
            return rule(
                "instance_timeout",
                "must be at least 3s: instances say they are alive three times per timeout, and a shorter one takes a busy live instance for dead (its deliveries would be made twice)",
            );
        }
        if !(1..=128).contains(&self.smtp_ipv6_client_prefix) {
            return rule("smtp_ipv6_client_prefix", "must be from 1 to 128");
        }
        self.check_smtp_stress()?;
        self.check_delivery()?;
        if !(1..=998).contains(&self.max_message_line_length) {
            return rule(
                "max_message_line_length",
                "must be from 1 to 998 (the RFC 5322 limit): a longer line would be refused by strict next hops",
            );
        }
        if self.smtp_max_line_length < 512 {
            return rule(
                "smtp_max_line_length",
                "must be at least 512, the RFC 5321 minimum",
            );
        }
        crate::storage::check_schemes(self).map_err(ConfigError::Storage)
    }

    /// The stress limits must be limits, and no looser than the ones they replace.
    fn check_smtp_stress(&self) -> Result<(), ConfigError> {
        let rule = |setting, rule| Err(ConfigError::Rule { setting, rule });
        if !(1..=100).contains(&self.smtp_stress_threshold_percent) {
            return rule("smtp_stress_threshold_percent", "must be from 1 to 100");
        }
        let timeouts = [
            (
                "smtp_stress_command_timeout",
                self.smtp_stress_command_timeout,
                self.smtp_command_timeout,
                "must be more than 0 and at most smtp_command_timeout",
            ),
            (
                "smtp_stress_data_timeout",
                self.smtp_stress_data_timeout,
                self.smtp_data_timeout,
                "must be more than 0 and at most smtp_data_timeout",
            ),
        ];
        for (setting, stressed, normal, what) in timeouts {
            if stressed.is_zero() || stressed > normal {
                return rule(setting, what);
            }
        }
        if self.smtp_stress_junk_command_limit > self.smtp_junk_command_limit {
            return rule(
                "smtp_stress_junk_command_limit",
                "must be at most smtp_junk_command_limit",
            );
        }
        Ok(())
    }

    /// The host names of `api_allowed_hosts`, trimmed, empty entries left out.
    pub fn api_allowed_hosts(&self) -> impl Iterator<Item = &str> {
        self.api_allowed_hosts
            .iter()
            .flat_map(|hosts| hosts.split(','))
            .map(str::trim)
            .filter(|host| !host.is_empty())
    }

    /// The routes of `routes`: (domain, next hop) for each `domain=host[:port]` entry.
    /// Checked at load, so this holds every entry.
    #[must_use]
    pub fn routes(&self) -> Vec<(Domain, String)> {
        self.parse_routes().unwrap_or_default()
    }

    /// Reads `routes`, naming the first bad entry: not `domain=next hop`, a domain
    /// that is not a domain name, a next hop that is not `host[:port]`, or a domain
    /// routed twice.
    fn parse_routes(&self) -> Result<Vec<(Domain, String)>, ConfigError> {
        let entries = self
            .routes
            .iter()
            .flat_map(|routes| routes.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        let mut routes: Vec<(Domain, String)> = Vec::new();
        for entry in entries {
            let bad = |rule| {
                Err(ConfigError::Entry {
                    setting: "routes",
                    entry: entry.to_owned(),
                    rule,
                })
            };
            let Some((domain, next_hop)) = entry.split_once('=') else {
                return bad("must be domain=host or domain=host:port");
            };
            let (domain, next_hop) = (domain.trim(), next_hop.trim());
            let domain = match Domain::parse(domain) {
                Ok(domain) if !domain.is_address_literal() => domain,
                _ => return bad("does not start with a domain name"),
            };
            if !mailfwd_smtp_out::is_next_hop(next_hop) {
                return bad("does not end with host or host:port");
            }
            if routes.iter().any(|(known, _)| *known == domain) {
                return bad("routes a domain that already has a route");
            }
            routes.push((domain, next_hop.to_owned()));
        }
        Ok(routes)
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

    /// This instance's name among those sharing a database.
    #[must_use]
    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            // Port 0 (any free port) names no one instance: the process does, for as
            // long as it runs.
            match self.smtp_listen.port() {
                0 => format!("{}:pid{}", self.hostname(), std::process::id()),
                port => format!("{}:{port}", self.hostname()),
            }
        })
    }

    /// The PostgreSQL pool of this instance.
    #[must_use]
    pub fn pool_settings(&self) -> mailfwd_postgres::PoolSettings {
        mailfwd_postgres::PoolSettings {
            max_connections: self.database_pool_size,
            acquire_timeout: self.database_acquire_timeout,
            ..mailfwd_postgres::PoolSettings::default()
        }
    }

    /// The database URL, derived from the data directory when not set.
    #[must_use]
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("mailfwd.db").display()))
    }

    /// The retry schedule.
    #[must_use]
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            steps: self.retry_schedule.clone(),
            then_every: self.retry_every,
            give_up_after: self.retry_give_up,
            ..RetryPolicy::default()
        }
    }

    /// How far recipients are expanded through rules.
    #[must_use]
    pub fn expansion_limits(&self) -> ExpansionLimits {
        ExpansionLimits {
            max_depth: self.forward_max_depth,
            max_destinations: self.forward_max_expansion,
        }
    }

    /// The rule cache's size and time to live.
    #[must_use]
    pub fn rule_cache(&self) -> RuleCacheConfig {
        RuleCacheConfig {
            capacity: self.rule_cache_capacity,
            ttl: self.rule_cache_ttl,
        }
    }
}

/// `file://` URLs need absolute paths; a relative data directory is taken from the
/// working directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
