use super::*;

#[test]
fn defaults_work_on_a_laptop() {
    let config = Config::default();
    assert_eq!(config.http_listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.database_url(), "sqlite://./data/mailfwd.db");
}

#[test]
fn a_typo_in_the_file_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("mailfwd.toml");
    std::fs::write(&file, "htp_listen = \"127.0.0.1:1\"\n").expect("write");
    let error = Config::load(Some(&file))
        .expect_err("unknown key")
        .to_string();
    assert!(error.contains("htp_listen"), "{error}");
    std::fs::write(&file, "http_listen = \"nonsense\"\n").expect("write");
    let error = Config::load(Some(&file))
        .expect_err("bad address")
        .to_string();
    assert!(error.contains("http_listen"), "{error}");
    let missing = Config::load(Some(&dir.path().join("absent.toml")))
        .expect_err("missing")
        .to_string();
    assert!(missing.contains("absent.toml"), "{missing}");
}

#[test]
fn the_rule_cache_is_configured_by_ttl_and_capacity() {
    let cache = Config::default()
        .rule_cache()
        .expect("the defaults are valid");
    assert_eq!(cache.ttl, std::time::Duration::from_secs(30));
    assert_eq!(cache.capacity, 100_000);
    assert!(cache.is_enabled());

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("mailfwd.toml");
    std::fs::write(&file, "rule_cache_ttl = \"0s\"\n").expect("write");
    let off = Config::load(Some(&file)).expect("0s is a duration");
    assert!(!off.rule_cache().expect("valid").is_enabled());
    std::fs::write(&file, "rule_cache_ttl = \"soon\"\n").expect("write");
    let error = Config::load(Some(&file))
        .expect_err("not a duration")
        .to_string();
    assert!(
        error.contains("rule_cache_ttl") && error.contains("soon"),
        "{error}"
    );
}
