//! SRS and postmaster settings, and the SRS secret made on first start.

use std::time::SystemTime;

use mailfwd_domain::EmailAddress;

use super::*;

#[test]
fn bad_srs_and_postmaster_settings_are_named() {
    for (vars, names) in [
        (
            vec![("MAILFWD_SRS_DOMAIN", "not a domain")],
            "srs_domain (MAILFWD_SRS_DOMAIN): 'not a domain'",
        ),
        (
            vec![("MAILFWD_SRS_DOMAIN", "[192.0.2.1]")],
            "srs_domain (MAILFWD_SRS_DOMAIN)",
        ),
        (
            vec![("MAILFWD_SRS_SECRET", " , ")],
            "srs_secret (MAILFWD_SRS_SECRET) is set but holds no secret",
        ),
        (
            vec![("MAILFWD_SRS_MAX_AGE_DAYS", "1024")],
            "srs_max_age_days (MAILFWD_SRS_MAX_AGE_DAYS) must be less than 1024",
        ),
        (
            vec![("MAILFWD_POSTMASTER", "nobody")],
            "postmaster (MAILFWD_POSTMASTER): 'nobody' is not an email address",
        ),
    ] {
        let error = load_env(None, &vars).expect_err("refused").to_string();
        assert!(error.contains(names), "{vars:?}: {error}");
    }
}

#[test]
fn the_secret_is_made_once_kept_private_and_used_by_every_start_after() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().to_str().expect("utf-8 path");
    let vars = [
        ("MAILFWD_DATA_DIR", dir),
        ("MAILFWD_SRS_DOMAIN", "fwd.test"),
    ];
    let first = load_env(None, &vars).unwrap().own_addresses().unwrap();
    let file = data.path().join("srs.secret");
    let secret = std::fs::read_to_string(&file).unwrap();
    assert_eq!(secret.trim().len(), 64, "256 bits, in hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // What the first start signed, the second reverses.
    let now = SystemTime::now();
    let alice = EmailAddress::parse("alice@sender.test").unwrap();
    let rewritten = first.srs().forward(Some(&alice), now).unwrap();
    let second = load_env(None, &vars).unwrap().own_addresses().unwrap();
    assert_eq!(second.srs().reverse(&rewritten, now).unwrap(), alice);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), secret);

    // Given secrets win over the file; the first signs, the others still verify.
    let rotated = load_env(
        None,
        &[
            ("MAILFWD_DATA_DIR", dir),
            ("MAILFWD_SRS_DOMAIN", "fwd.test"),
            (
                "MAILFWD_SRS_SECRET",
                &format!("new-secret, {}", secret.trim()),
            ),
        ],
    )
    .unwrap()
    .own_addresses()
    .unwrap();
    assert_eq!(rotated.srs().reverse(&rewritten, now).unwrap(), alice);
    assert_ne!(rotated.srs().forward(Some(&alice), now), Some(rewritten));

    std::fs::write(&file, "\n").unwrap();
    let error = load_env(None, &vars).unwrap().own_addresses().unwrap_err();
    assert!(error.to_string().contains("is empty"), "{error}");
}

#[test]
fn the_srs_domain_defaults_to_the_host_name() {
    let data = tempfile::tempdir().expect("temp dir");
    let own = load_env(
        None,
        &[
            ("MAILFWD_DATA_DIR", data.path().to_str().unwrap()),
            ("MAILFWD_HOSTNAME", "MX1.Example.NET"),
            ("MAILFWD_POSTMASTER", "admin@example.net"),
        ],
    )
    .unwrap()
    .own_addresses()
    .unwrap();
    assert_eq!(own.srs().domain().as_str(), "mx1.example.net");
    assert_eq!(
        own.bare_postmaster().to_string(),
        "postmaster@mx1.example.net"
    );
    assert_eq!(own.postmaster().unwrap().to_string(), "admin@example.net");
}
