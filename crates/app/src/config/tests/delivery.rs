//! The delivery settings: private destinations, routes, scheduling, timeouts.

use super::*;

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
