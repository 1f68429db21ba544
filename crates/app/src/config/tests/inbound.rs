//! The inbound settings: SMTP limits, stress, message policy, the API.

use super::*;

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
