//! The email store's rates and load shedding: off by default but for the disk floor.

use super::*;

#[test]
fn rates_are_off_by_default_and_the_disk_floor_is_one_and_a_half_messages() {
    let config = load_env(None, &[]).expect("defaults");
    assert_eq!(config.throttle(), mailfwd_layers::ThrottleConfig::default());
    assert_eq!(config.disk_free_floor(), 75 * 1024 * 1024);
    assert_eq!(config.max_backlog, None);
    let config = load_env(None, &[("MAILFWD_MAX_MESSAGE_SIZE", "1000")]).expect("small");
    assert_eq!(config.disk_free_floor(), 1500);
}

#[test]
fn every_rate_and_limit_is_read_from_the_environment_and_the_file() {
    let config = load_env(
        None,
        &[
            ("MAILFWD_THROTTLE_MESSAGES_PER_SECOND", "100"),
            ("MAILFWD_THROTTLE_BYTES_PER_SECOND", "10000000"),
            ("MAILFWD_THROTTLE_CLIENT_MESSAGES_PER_SECOND", "5"),
            ("MAILFWD_THROTTLE_CLIENT_BYTES_PER_SECOND", "500000"),
            ("MAILFWD_DISK_FREE_FLOOR", "0"),
            ("MAILFWD_MAX_BACKLOG", "100000"),
        ],
    )
    .expect("all set");
    assert_eq!(
        config.throttle(),
        mailfwd_layers::ThrottleConfig {
            messages_per_second: Some(100),
            bytes_per_second: Some(10_000_000),
            client_messages_per_second: Some(5),
            client_bytes_per_second: Some(500_000),
        }
    );
    assert_eq!(config.disk_free_floor(), 0);
    assert_eq!(config.max_backlog, Some(100_000));

    let (_dir, file) = file_with("throttle_client_messages_per_second = 7\nmax_backlog = 3\n");
    let config = load_env(Some(&file), &[]).expect("from the file");
    assert_eq!(config.throttle_client_messages_per_second, Some(7));
    assert_eq!(config.max_backlog, Some(3));
}
