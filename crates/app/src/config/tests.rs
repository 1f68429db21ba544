use std::ffi::OsString;
use std::time::Duration;

use super::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Loads with only `vars` in the environment.
fn load_env(file: Option<&Path>, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load_with(file, |name| {
        vars.iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| OsString::from(value))
    })
}

fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("mailfwd.toml");
    std::fs::write(&file, text).expect("write");
    (dir, file)
}

#[test]
fn defaults_work_on_a_laptop() {
    let config = load_env(None, &[]).expect("the defaults are valid");
    assert_eq!(config.http_listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.database_url(), "sqlite://./data/mailfwd.db");
    assert_eq!(config.delivery_lease, 15 * MINUTE);
    assert_eq!(
        config.retry_schedule,
        [1, 5, 15, 30, 60, 120, 240].map(|m| m * MINUTE)
    );
    assert_eq!(config.retry_every, 240 * MINUTE);
    assert_eq!(config.retry_give_up, Duration::from_secs(5 * 24 * 3600));
    assert_eq!(config.smtp_command_timeout, Duration::from_secs(300));
    assert_eq!(config.smtp_data_timeout, Duration::from_secs(600));
}

#[test]
fn a_typo_in_the_file_is_named() {
    let (dir, file) = file_with("htp_listen = \"127.0.0.1:1\"\n");
    let error = Config::load(Some(&file))
        .expect_err("unknown key")
        .to_string();
    assert!(error.contains("htp_listen"), "{error}");
    std::fs::write(&file, "http_listen = \"nonsense\"\n").expect("write");
    let error = Config::load(Some(&file))
        .expect_err("bad address")
        .to_string();
    assert!(
        error.contains("http_listen (MAILFWD_HTTP_LISTEN) in the file")
            && error.contains("mailfwd.toml"),
        "{error}"
    );
    let missing = Config::load(Some(&dir.path().join("absent.toml")))
        .expect_err("missing")
        .to_string();
    assert!(missing.contains("absent.toml"), "{missing}");
}

#[test]
fn durations_in_the_file_are_parsed_at_load() {
    let (_dir, file) = file_with(
        "delivery_lease = \"90s\"\nretry_schedule = \"1m, 5m,\"\nretry_every = \"2h\"\n\
         retry_give_up = \"3d\"\nsmtp_command_timeout = 30\nsmtp_data_timeout = \"2m\"\n",
    );
    let config = load_env(Some(&file), &[]).expect("valid durations");
    assert_eq!(config.delivery_lease, Duration::from_secs(90));
    assert_eq!(config.retry_schedule, vec![MINUTE, 5 * MINUTE]);
    let policy = config.retry_policy();
    assert_eq!(policy.steps, vec![MINUTE, 5 * MINUTE]);
    assert_eq!(policy.then_every, 120 * MINUTE);
    assert_eq!(policy.give_up_after, Duration::from_secs(3 * 24 * 3600));
    assert_eq!(config.smtp_command_timeout, Duration::from_secs(30));
    assert_eq!(config.smtp_data_timeout, 2 * MINUTE);
}

#[test]
fn durations_in_the_environment_win_over_the_file() {
    let (_dir, file) = file_with("delivery_lease = \"90s\"\nsmtp_command_timeout = 30\n");
    let config = load_env(
        Some(&file),
        &[
            ("MAILFWD_DELIVERY_LEASE", "20m"),
            ("MAILFWD_RETRY_SCHEDULE", ""),
            ("MAILFWD_SMTP_COMMAND_TIMEOUT", "45"),
            ("MAILFWD_SMTP_DATA_TIMEOUT", "5m"),
            ("MAILFWD_API_TOKEN", "12345"),
        ],
    )
    .expect("valid settings");
    assert_eq!(config.delivery_lease, 20 * MINUTE);
    assert!(config.retry_schedule.is_empty());
    assert_eq!(config.smtp_command_timeout, Duration::from_secs(45));
    assert_eq!(config.smtp_data_timeout, 5 * MINUTE);
    assert_eq!(config.api_token.as_deref(), Some("12345"));
}

#[test]
fn a_bad_duration_names_the_variable_and_the_value() {
    let error = load_env(None, &[("MAILFWD_RETRY_EVERY", "4 hours later")])
        .expect_err("not a duration")
        .to_string();
    assert_eq!(
        error,
        "retry_every (MAILFWD_RETRY_EVERY) in the environment: '4 hours later' is not a \
         duration such as 90s, 5m, 4h or 5d (expected number at 8)"
    );
    let error = load_env(None, &[("MAILFWD_RETRY_SCHEDULE", "1m,fortnight,4h")])
        .expect_err("one step is not a duration")
        .to_string();
    assert!(
        error.contains("MAILFWD_RETRY_SCHEDULE") && error.contains("'fortnight'"),
        "{error}"
    );
    let error = load_env(None, &[("MAILFWD_SMTP_DATA_TIMEOUT", "soon")])
        .expect_err("neither seconds nor a duration")
        .to_string();
    assert!(
        error.contains("MAILFWD_SMTP_DATA_TIMEOUT") && error.contains("'soon'"),
        "{error}"
    );
    let (_dir, file) = file_with("smtp_command_timeout = -5\n");
    let error = load_env(Some(&file), &[])
        .expect_err("negative seconds")
        .to_string();
    assert!(
        error.contains("smtp_command_timeout") && error.contains("-5 is negative"),
        "{error}"
    );
}

#[test]
fn a_setting_that_breaks_its_rule_is_named() {
    let error = load_env(None, &[("MAILFWD_DELIVERY_WORKERS", "0")])
        .expect_err("no workers")
        .to_string();
    assert_eq!(
        error,
        "delivery_workers (MAILFWD_DELIVERY_WORKERS) must be at least 1"
    );
    let error = load_env(None, &[("MAILFWD_DATABASE_URL", "mysql://x")])
        .expect_err("unsupported database")
        .to_string();
    assert!(
        error.contains("MAILFWD_DATABASE_URL") && error.contains("mysql://x"),
        "{error}"
    );
}

#[test]
fn the_rule_cache_is_configured_by_ttl_and_capacity() {
    let cache = Config::default().rule_cache();
    assert_eq!(cache.ttl, Duration::from_secs(30));
    assert_eq!(cache.capacity, 100_000);
    assert!(cache.is_enabled());

    let off = load_env(None, &[("MAILFWD_RULE_CACHE_TTL", "0s")]).expect("0s is a duration");
    assert!(!off.rule_cache().is_enabled());
    let (_dir, file) = file_with("rule_cache_ttl = \"soon\"\n");
    let error = load_env(Some(&file), &[])
        .expect_err("not a duration")
        .to_string();
    assert!(
        error.contains("rule_cache_ttl") && error.contains("soon"),
        "{error}"
    );
}

#[test]
fn bare_line_endings_are_rejected_unless_normalize_is_asked_for() {
    let config = load_env(None, &[]).expect("defaults");
    assert_eq!(config.bare_line_endings, BareLineEndings::Reject);
    let config = load_env(None, &[("MAILFWD_BARE_LINE_ENDINGS", "normalize")]).expect("normalize");
    assert_eq!(
        mailfwd_domain::BareLineEndings::from(config.bare_line_endings),
        mailfwd_domain::BareLineEndings::Normalize
    );
    let error = load_env(None, &[("MAILFWD_BARE_LINE_ENDINGS", "strip")])
        .expect_err("an unknown value")
        .to_string();
    assert!(
        error.contains("MAILFWD_BARE_LINE_ENDINGS") && error.contains("strip"),
        "{error}"
    );
}

#[test]
fn allowed_api_hosts_are_host_names_without_a_port() {
    let config = load_env(
        None,
        &[("MAILFWD_API_ALLOWED_HOSTS", "admin.example, mx.example.")],
    )
    .expect("two host names");
    assert_eq!(
        config.api_allowed_hosts().collect::<Vec<_>>(),
        ["admin.example", "mx.example."]
    );
    for bad in ["admin.example:8080", "not a host"] {
        let error = load_env(None, &[("MAILFWD_API_ALLOWED_HOSTS", bad)])
            .expect_err(bad)
            .to_string();
        assert_eq!(
            error,
            "api_allowed_hosts (MAILFWD_API_ALLOWED_HOSTS) must be host names without a port, separated by commas"
        );
    }
}

#[test]
fn delivery_refuses_private_destinations_and_bounds_mx_work_by_default() {
    let config = load_env(None, &[]).expect("defaults");
    assert!(!config.deliver_to_private_addresses);
    assert_eq!((config.mx_address_limit, config.mx_session_limit), (5, 2));
    assert!(config.routes().is_empty());
    let config = load_env(
        None,
        &[
            ("MAILFWD_DELIVER_TO_PRIVATE_ADDRESSES", "true"),
            ("MAILFWD_MX_ADDRESS_LIMIT", "0"),
            ("MAILFWD_MX_SESSION_LIMIT", "1"),
        ],
    )
    .expect("valid settings");
    assert!(config.deliver_to_private_addresses);
    assert_eq!((config.mx_address_limit, config.mx_session_limit), (0, 1));
}

#[test]
fn routes_are_domains_with_next_hops() {
    let config = load_env(
        None,
        &[(
            "MAILFWD_ROUTES",
            "corp.test=10.0.0.5:25, Hang.Test=127.0.0.1:5601,,v6.test=[::1]:2525,named.test=smtp.internal",
        )],
    )
    .expect("valid routes");
    let routes: Vec<(String, String)> = config
        .routes()
        .into_iter()
        .map(|(domain, next_hop)| (domain.as_str().to_owned(), next_hop))
        .collect();
    assert_eq!(
        routes,
        [
            ("corp.test".to_owned(), "10.0.0.5:25".to_owned()),
            ("hang.test".to_owned(), "127.0.0.1:5601".to_owned()),
            ("v6.test".to_owned(), "[::1]:2525".to_owned()),
            ("named.test".to_owned(), "smtp.internal".to_owned()),
        ]
    );
    for (bad, why) in [
        (
            "corp.test",
            "'corp.test' must be domain=host or domain=host:port",
        ),
        (
            "corp.test=host:port",
            "'corp.test=host:port' does not end with host or host:port",
        ),
        (
            "not a domain=10.0.0.5",
            "'not a domain=10.0.0.5' does not start with a domain name",
        ),
        (
            "[10.0.0.1]=10.0.0.5",
            "'[10.0.0.1]=10.0.0.5' does not start with a domain name",
        ),
        (
            "a.test=h:25,A.test=h:26",
            "'A.test=h:26' routes a domain that already has a route",
        ),
    ] {
        let error = load_env(None, &[("MAILFWD_ROUTES", bad)])
            .expect_err(bad)
            .to_string();
        assert_eq!(error, format!("routes (MAILFWD_ROUTES): {why}"), "{bad}");
    }
}

#[test]
fn the_ipv6_client_prefix_is_a_prefix_length() {
    assert_eq!(
        load_env(None, &[])
            .expect("defaults")
            .smtp_ipv6_client_prefix,
        64
    );
    for bad in ["0", "129"] {
        let error = load_env(None, &[("MAILFWD_SMTP_IPV6_CLIENT_PREFIX", bad)])
            .expect_err(bad)
            .to_string();
        assert_eq!(
            error,
            "smtp_ipv6_client_prefix (MAILFWD_SMTP_IPV6_CLIENT_PREFIX) must be from 1 to 128"
        );
    }
    let config = load_env(None, &[("MAILFWD_SMTP_IPV6_CLIENT_PREFIX", "128")]).expect("128");
    assert_eq!(config.smtp_ipv6_client_prefix, 128);
}

#[test]
fn stress_settings_have_postfix_like_defaults_and_are_checked() {
    let config = load_env(None, &[]).expect("defaults");
    assert_eq!(config.smtp_stress_threshold_percent, 80);
    assert_eq!(config.smtp_stress_command_timeout, Duration::from_secs(10));
    assert_eq!(config.smtp_stress_data_timeout, Duration::from_secs(30));
    assert_eq!(config.smtp_stress_junk_command_limit, 1);
    assert_eq!(
        config.smtp_client_connection_rate_limit, 0,
        "off, as in Postfix"
    );

    let config = load_env(
        None,
        &[
            ("MAILFWD_SMTP_STRESS_THRESHOLD_PERCENT", "100"),
            ("MAILFWD_SMTP_STRESS_COMMAND_TIMEOUT", "1500ms"),
            ("MAILFWD_SMTP_STRESS_DATA_TIMEOUT", "5"),
            ("MAILFWD_SMTP_CLIENT_CONNECTION_RATE_LIMIT", "600"),
        ],
    )
    .expect("valid stress settings");
    assert_eq!(config.smtp_stress_threshold_percent, 100);
    assert_eq!(
        config.smtp_stress_command_timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(config.smtp_stress_data_timeout, Duration::from_secs(5));
    assert_eq!(config.smtp_client_connection_rate_limit, 600);

    let refused = [
        (
            ("MAILFWD_SMTP_STRESS_THRESHOLD_PERCENT", "0"),
            "smtp_stress_threshold_percent (MAILFWD_SMTP_STRESS_THRESHOLD_PERCENT) must be from 1 to 100",
        ),
        (
            ("MAILFWD_SMTP_STRESS_THRESHOLD_PERCENT", "101"),
            "smtp_stress_threshold_percent (MAILFWD_SMTP_STRESS_THRESHOLD_PERCENT) must be from 1 to 100",
        ),
        (
            ("MAILFWD_SMTP_STRESS_COMMAND_TIMEOUT", "0"),
            "smtp_stress_command_timeout (MAILFWD_SMTP_STRESS_COMMAND_TIMEOUT) must be more than 0 and at most smtp_command_timeout",
        ),
        (
            ("MAILFWD_SMTP_STRESS_COMMAND_TIMEOUT", "301"),
            "smtp_stress_command_timeout (MAILFWD_SMTP_STRESS_COMMAND_TIMEOUT) must be more than 0 and at most smtp_command_timeout",
        ),
        (
            ("MAILFWD_SMTP_STRESS_DATA_TIMEOUT", "11m"),
            "smtp_stress_data_timeout (MAILFWD_SMTP_STRESS_DATA_TIMEOUT) must be more than 0 and at most smtp_data_timeout",
        ),
        (
            ("MAILFWD_SMTP_STRESS_JUNK_COMMAND_LIMIT", "101"),
            "smtp_stress_junk_command_limit (MAILFWD_SMTP_STRESS_JUNK_COMMAND_LIMIT) must be at most smtp_junk_command_limit",
        ),
    ];
    for (variable, message) in refused {
        let error = load_env(None, &[variable])
            .expect_err(variable.1)
            .to_string();
        assert_eq!(error, message);
    }
    let error = load_env(None, &[("MAILFWD_SMTP_CLIENT_CONNECTION_RATE_LIMIT", "-1")])
        .expect_err("negative")
        .to_string();
    assert!(
        error.contains("MAILFWD_SMTP_CLIENT_CONNECTION_RATE_LIMIT"),
        "{error}"
    );
}

#[test]
fn delivery_scheduling_and_outbound_timeouts_default_to_postfix_s() {
    let config = load_env(None, &[]).expect("the defaults are valid");
    assert_eq!(config.delivery_workers, 100);
    assert_eq!(config.attempt_timeout(), 10 * MINUTE);
    let limits = config.destination_limits();
    assert_eq!(
        (limits.initial_concurrency, limits.concurrency_limit),
        (5, 20)
    );
    assert_eq!(
        (limits.min_backoff, limits.max_backoff),
        (MINUTE, 10 * MINUTE)
    );
    assert_eq!(limits.recipient_limit, 50);
    let timeouts = config.smtp_out_timeouts();
    let seconds = [
        config.smtp_out_connect_timeout,
        timeouts.greeting,
        timeouts.ehlo,
        timeouts.mail,
        timeouts.rcpt,
        timeouts.data_init,
        timeouts.data_block,
        timeouts.data_end,
    ]
    .map(|timeout| timeout.as_secs());
    assert_eq!(seconds, [30, 300, 300, 300, 300, 120, 180, 600]);

    let short = load_env(
        None,
        &[
            ("MAILFWD_DELIVERY_LEASE", "30s"),
            ("MAILFWD_SMTP_OUT_DATA_DONE_TIMEOUT", "20"),
            ("MAILFWD_DESTINATION_CONCURRENCY_LIMIT", "8"),
            ("MAILFWD_DESTINATION_RECIPIENT_LIMIT", "10"),
        ],
    )
    .expect("valid");
    assert_eq!(
        short.attempt_timeout(),
        Duration::from_secs(24),
        "four fifths of a short lease"
    );
    assert_eq!(short.smtp_out_timeouts().data_end, Duration::from_secs(20));
    assert_eq!(short.destination_limits().concurrency_limit, 8);
    assert_eq!(short.destination_limits().recipient_limit, 10);
    let error = load_env(None, &[("MAILFWD_DESTINATION_RECIPIENT_LIMIT", "0")])
        .expect_err("no transaction carries no recipient")
        .to_string();
    assert!(
        error.contains("MAILFWD_DESTINATION_RECIPIENT_LIMIT"),
        "{error}"
    );
}

#[test]
fn an_attempt_timeout_the_lease_cannot_cover_is_refused() {
    let error = load_env(
        None,
        &[
            ("MAILFWD_DELIVERY_LEASE", "15m"),
            ("MAILFWD_DELIVERY_ATTEMPT_TIMEOUT", "14m"),
        ],
    )
    .expect_err("the lease would run out during an attempt")
    .to_string();
    assert!(
        error.starts_with(
            "delivery_attempt_timeout (MAILFWD_DELIVERY_ATTEMPT_TIMEOUT) must be at most four \
             fifths of delivery_lease (MAILFWD_DELIVERY_LEASE)"
        ),
        "{error}"
    );
    let error = load_env(None, &[("MAILFWD_DESTINATION_CONCURRENCY_LIMIT", "2")])
        .expect_err("below the initial concurrency")
        .to_string();
    assert_eq!(
        error,
        "destination_concurrency_limit (MAILFWD_DESTINATION_CONCURRENCY_LIMIT) must be at \
         least destination_initial_concurrency"
    );
}

#[test]
fn message_lines_and_headers_have_limits_within_the_rfc() {
    let config = load_env(None, &[]).expect("the defaults are valid");
    assert_eq!(
        (config.max_message_line_length, config.max_header_size),
        (998, 102_400)
    );
    let config = load_env(
        None,
        &[
            ("MAILFWD_MAX_MESSAGE_LINE_LENGTH", "500"),
            ("MAILFWD_MAX_HEADER_SIZE", "65536"),
        ],
    )
    .expect("tighter limits are fine");
    assert_eq!(
        (config.max_message_line_length, config.max_header_size),
        (500, 65_536)
    );
    let error = load_env(None, &[("MAILFWD_MAX_MESSAGE_LINE_LENGTH", "999")])
        .expect_err("past RFC 5322")
        .to_string();
    assert!(
        error.contains("max_message_line_length") && error.contains("from 1 to 998"),
        "{error}"
    );
    let error = load_env(None, &[("MAILFWD_MAX_HEADER_SIZE", "0")])
        .expect_err("zero")
        .to_string();
    assert!(error.contains("max_header_size"), "{error}");
}
