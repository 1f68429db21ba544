//! The environment as a source of settings: which `MAILFWD_*` variables are settings,
//! and which of them hold free text.

use std::ffi::OsString;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::error;

/// The environment variables that are settings. Others starting with `MAILFWD_`
/// (such as `MAILFWD_CONFIG`) are not, and must not trip `deny_unknown_fields`.
const SETTINGS: &[&str] = &[
    "smtp_listen",
    "http_listen",
    "grpc_listen",
    "data_dir",
    "database_url",
    "database_pool_size",
    "database_acquire_timeout",
    "instance_id",
    "instance_timeout",
    "email_store",
    "email_store_old",
    "retention",
    "relay",
    "routes",
    "deliver_to_private_addresses",
    "mx_address_limit",
    "mx_session_limit",
    "hostname",
    "srs_domain",
    "srs_secret",
    "srs_max_age_days",
    "postmaster",
    "api_token",
    "api_allowed_hosts",
    "tls_cert",
    "tls_key",
    "max_message_size",
    "max_recipients",
    "max_header_size",
    "max_message_line_length",
    "bare_line_endings",
    "smtp_max_connections",
    "smtp_max_connections_per_peer",
    "smtp_ipv6_client_prefix",
    "smtp_command_timeout",
    "smtp_data_timeout",
    "smtp_max_errors",
    "smtp_junk_command_limit",
    "smtp_stress_threshold_percent",
    "smtp_stress_command_timeout",
    "smtp_stress_data_timeout",
    "smtp_stress_junk_command_limit",
    "smtp_client_connection_rate_limit",
    "smtp_max_line_length",
    "max_destinations",
    "forward_max_depth",
    "forward_max_expansion",
    "delivery_workers",
    "delivery_lease",
    "retry_schedule",
    "retry_every",
    "retry_give_up",
    // Delivery scheduling and outbound SMTP timeouts.
    "delivery_attempt_timeout",
    "destination_initial_concurrency",
    "destination_concurrency_limit",
    "destination_failed_cohort",
    "destination_min_backoff",
    "destination_max_backoff",
    "destination_recipient_limit",
    "smtp_out_connect_timeout",
    "smtp_out_helo_timeout",
    "smtp_out_mail_timeout",
    "smtp_out_rcpt_timeout",
    "smtp_out_data_init_timeout",
    "smtp_out_data_xfer_timeout",
    "smtp_out_data_done_timeout",
    "rule_cache_ttl",
    "rule_cache_capacity",
    "import_body_limit",
    "import_atomic_max_rows",
    "throttle_messages_per_second",
    "throttle_bytes_per_second",
    "throttle_client_messages_per_second",
    "throttle_client_bytes_per_second",
    "disk_free_floor",
    "max_backlog",
    "inline_body_limit",
    "log",
    "log_format",
];

/// Settings whose values are free text: read verbatim, never as TOML numbers or booleans.
const TEXT_SETTINGS: &[&str] = &[
    "api_token",
    "api_allowed_hosts",
    "database_url",
    "email_store",
    "email_store_old",
    "retention",
    "instance_id",
    "relay",
    "routes",
    "hostname",
    "srs_domain",
    "srs_secret",
    "postmaster",
    "log",
    "data_dir",
    "tls_cert",
    "tls_key",
    "delivery_lease",
    "retry_schedule",
    "retry_every",
    "retry_give_up",
    "delivery_attempt_timeout",
    "destination_min_backoff",
    "destination_max_backoff",
    "rule_cache_ttl",
];

/// The `MAILFWD_*` variables that are settings. Unlike figment's `Env`, it reads free
/// text verbatim (a token of digits stays a string) and names itself in errors.
pub(super) struct Environment<F>(pub(super) F);

impl<F: Fn(&str) -> Option<OsString>> Provider for Environment<F> {
    fn metadata(&self) -> Metadata {
        Metadata::named("the environment")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut settings = Dict::new();
        for &setting in SETTINGS {
            let variable = error::variable(setting);
            let Some(value) = (self.0)(&variable) else {
                continue;
            };
            let Ok(value) = value.into_string() else {
                return Err(figment::Error::from(format!(
                    "{variable} is not valid UTF-8"
                )));
            };
            let value = if TEXT_SETTINGS.contains(&setting) {
                Value::from(value)
            } else {
                match value.parse::<Value>() {
                    Ok(parsed) => parsed,
                    Err(never) => match never {},
                }
            };
            settings.insert(setting.to_owned(), value);
        }
        Ok(Profile::Default.collect(settings))
    }
}
