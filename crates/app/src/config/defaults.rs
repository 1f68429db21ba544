//! The defaults: every setting works on a laptop with nothing installed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mailfwd_domain::ExpansionLimits;

use super::{BareLineEndings, Config, LogFormat};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

impl Default for Config {
    fn default() -> Self {
        Config {
            smtp_listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_pool_size: 10,
            database_acquire_timeout: Duration::from_secs(5),
            instance_id: None,
            instance_timeout: Duration::from_secs(30),
            email_store: None,
            inline_body_limit: 64 * 1024,
            relay: None,
            routes: None,
            deliver_to_private_addresses: false,
            mx_address_limit: 5,
            mx_session_limit: 2,
            hostname: None,
            srs_domain: None,
            srs_secret: None,
            srs_max_age_days: mailfwd_domain::srs::DEFAULT_MAX_AGE_DAYS,
            postmaster: None,
            api_token: None,
            api_allowed_hosts: None,
            tls_cert: None,
            tls_key: None,
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_header_size: 102_400,
            max_message_line_length: 998,
            bare_line_endings: BareLineEndings::Reject,
            smtp_max_connections: 1000,
            smtp_max_connections_per_peer: 50,
            smtp_ipv6_client_prefix: 64,
            smtp_command_timeout: Duration::from_secs(300),
            smtp_data_timeout: Duration::from_secs(600),
            smtp_max_errors: 10,
            smtp_junk_command_limit: 100,
            smtp_stress_threshold_percent: 80,
            smtp_stress_command_timeout: Duration::from_secs(10),
            smtp_stress_data_timeout: Duration::from_secs(30),
            smtp_stress_junk_command_limit: 1,
            smtp_client_connection_rate_limit: 0,
            smtp_max_line_length: 4096,
            delivery_workers: 100,
            delivery_lease: MINUTE * 15,
            retry_schedule: [1, 5, 15, 30, 60, 120, 240].map(|m| MINUTE * m).to_vec(),
            retry_every: HOUR * 4,
            retry_give_up: HOUR * 24 * 5,
            delivery_attempt_timeout: None,
            email_store_old: None,
            retention: None,
            destination_initial_concurrency: 5,
            destination_concurrency_limit: 20,
            destination_failed_cohort: 5,
            destination_min_backoff: MINUTE,
            destination_max_backoff: MINUTE * 10,
            destination_recipient_limit: 50,
            smtp_out_connect_timeout: Duration::from_secs(30),
            smtp_out_helo_timeout: MINUTE * 5,
            smtp_out_mail_timeout: MINUTE * 5,
            smtp_out_rcpt_timeout: MINUTE * 5,
            smtp_out_data_init_timeout: MINUTE * 2,
            smtp_out_data_xfer_timeout: MINUTE * 3,
            smtp_out_data_done_timeout: MINUTE * 10,
            max_destinations: mailfwd_domain::rule::DEFAULT_MAX_DESTINATIONS,
            forward_max_depth: ExpansionLimits::default().max_depth,
            forward_max_expansion: ExpansionLimits::default().max_destinations,
            rule_cache_ttl: Duration::from_secs(30),
            rule_cache_capacity: 100_000,
            import_body_limit: 64 * 1024 * 1024,
            import_atomic_max_rows: mailfwd_domain::import::DEFAULT_ATOMIC_MAX_ROWS,
            throttle_messages_per_second: None,
            throttle_bytes_per_second: None,
            throttle_client_messages_per_second: None,
            throttle_client_bytes_per_second: None,
            disk_free_floor: None,
            max_backlog: None,
            log: "info".to_owned(),
            log_format: LogFormat::Text,
        }
    }
}
