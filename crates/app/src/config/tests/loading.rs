//! Loading: defaults, the file, the environment, durations and rule checks.

use super::*;

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
fn database_and_instance_timeouts_that_would_break_sharing_are_refused() {
    for (vars, names) in [
        (
            [("MAILFWD_INSTANCE_TIMEOUT", "1s")],
            "instance_timeout (MAILFWD_INSTANCE_TIMEOUT) must be at least 3s",
        ),
        (
            [("MAILFWD_DATABASE_ACQUIRE_TIMEOUT", "0")],
            "database_acquire_timeout (MAILFWD_DATABASE_ACQUIRE_TIMEOUT) must be more than 0",
        ),
        (
            [("MAILFWD_DATABASE_POOL_SIZE", "0")],
            "database_pool_size (MAILFWD_DATABASE_POOL_SIZE) must be at least 1",
        ),
    ] {
        let error = load_env(None, &vars).expect_err("refused").to_string();
        assert!(error.contains(names), "{vars:?}: {error}");
    }
}

#[test]
fn email_store_and_retention_settings_are_checked() {
    for (vars, names) in [
        (
            [
                ("MAILFWD_EMAIL_STORE", "database"),
                ("MAILFWD_EMAIL_STORE_OLD", "database"),
            ],
            "email_store_old (MAILFWD_EMAIL_STORE_OLD) names the same store",
        ),
        (
            [
                ("MAILFWD_EMAIL_STORE", "database"),
                ("MAILFWD_EMAIL_STORE_OLD", "ftp://x"),
            ],
            "MAILFWD_EMAIL_STORE_OLD='ftp://x' is not supported",
        ),
        (
            [
                ("MAILFWD_RETENTION", "0s"),
                ("MAILFWD_EMAIL_STORE", "database"),
            ],
            "retention (MAILFWD_RETENTION) must be more than 0",
        ),
        (
            [
                ("MAILFWD_RETENTION", "a month"),
                ("MAILFWD_EMAIL_STORE", "database"),
            ],
            "a month",
        ),
        (
            [
                ("MAILFWD_INLINE_BODY_LIMIT", "2000000"),
                ("MAILFWD_EMAIL_STORE", "database"),
            ],
            "inline_body_limit (MAILFWD_INLINE_BODY_LIMIT) must be at most 1048576 (1 MiB)",
        ),
    ] {
        let error = load_env(None, &vars).expect_err("refused").to_string();
        assert!(error.contains(names), "{vars:?}: {error}");
    }
    let inline = load_env(None, &[("MAILFWD_INLINE_BODY_LIMIT", "0")]).expect("0 turns it off");
    assert_eq!(inline.inline_body_limit, 0);
    let kept = load_env(None, &[("MAILFWD_RETENTION", "30d")]).expect("a duration");
    assert_eq!(
        kept.retention,
        Some(std::time::Duration::from_secs(30 * 86_400))
    );
}
