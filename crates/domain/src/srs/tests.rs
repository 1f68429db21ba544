use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn srs(secrets: &[&str]) -> Srs {
    let domain = Domain::parse("fwd.example").unwrap_or_else(|e| panic!("{e}"));
    Srs::new(
        domain,
        secrets.iter().map(|s| (*s).to_owned()).collect(),
        DEFAULT_MAX_AGE_DAYS,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn day(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(n * 86_400 + 3_600)
}

fn forward(srs: &Srs, sender: &str, now: SystemTime) -> String {
    srs.forward(Some(&addr(sender)), now)
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// postsrsd's own unit test (tests/unit/test_srs2.c), with our domain.
#[test]
fn postsrsd_vector() {
    let srs = Srs::new(
        Domain::parse("example.com").unwrap_or_else(|e| panic!("{e}")),
        vec!["tops3cr3t".into()],
        21,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let now = UNIX_EPOCH + Duration::from_secs(1_577_836_860);
    let rewritten = forward(&srs, "test@otherdomain.com", now);
    assert_eq!(rewritten, "SRS0=vmyz=2W=otherdomain.com=test@example.com");
    assert_eq!(forward(&srs, "test@example.com", now), "test@example.com");
    let back = srs.reverse(&addr(&rewritten), now).map(|a| a.to_string());
    assert_eq!(back, Ok("test@otherdomain.com".to_owned()));
    let plain = srs.reverse(&addr("test@example.com"), now);
    assert_eq!(plain, Err(SrsError::NotSrs("test@example.com".into())));
}

#[test]
fn null_sender_stays_null() {
    assert_eq!(srs(&["s"]).forward(None, day(100)), None);
}

#[test]
fn round_trip_keeps_the_local_part_case() {
    let srs = srs(&["s3cret"]);
    let out = forward(&srs, "Alice.Smith+Tag@Example.ORG", day(19_000));
    assert!(out.starts_with("SRS0="), "{out}");
    assert!(
        out.ends_with("=example.org=Alice.Smith+Tag@fwd.example"),
        "{out}"
    );
    let back = srs.reverse(&addr(&out), day(19_000)).map(|a| a.to_string());
    assert_eq!(back, Ok("Alice.Smith+Tag@example.org".to_owned()));
}

#[test]
fn rotation_signs_with_the_first_secret_and_verifies_with_any() {
    let old = srs(&["old"]);
    let rotated = srs(&["new", "old"]);
    let now = day(19_000);
    let by_old = forward(&old, "bob@example.net", now);
    let by_new = forward(&rotated, "bob@example.net", now);
    assert_ne!(by_old, by_new, "the first secret signs");
    assert_eq!(by_new, forward(&srs(&["new"]), "bob@example.net", now));
    for made in [&by_old, &by_new] {
        let back = rotated.reverse(&addr(made), now).map(|a| a.to_string());
        assert_eq!(back, Ok("bob@example.net".to_owned()), "{made}");
    }
    // once "old" is dropped, its addresses no longer verify
    let dropped = srs(&["new"]).reverse(&addr(&by_old), now);
    assert_eq!(dropped, Err(SrsError::BadHash(by_old.clone())));
}

#[test]
fn expires_after_the_maximum_age() {
    let srs = srs(&["s"]);
    let made = addr(&forward(&srs, "bob@example.net", day(20_000)));
    assert!(srs.reverse(&made, day(20_000)).is_ok());
    assert!(
        srs.reverse(&made, day(20_021)).is_ok(),
        "21 days is still valid"
    );
    assert_eq!(
        srs.reverse(&made, day(20_022)),
        Err(SrsError::Expired {
            address: made.to_string(),
            age_days: 22,
            max_age_days: 21
        })
    );
    // A stamp from the future reads as made a cycle ago: expired.
    assert!(matches!(
        srs.reverse(&made, day(19_999)),
        Err(SrsError::Expired { age_days: 1023, .. })
    ));
}

#[test]
fn age_counts_across_the_1024_day_wrap() {
    let srs = srs(&["s"]);
    // day 2047 is stamp "77", day 2048 is "AA" again
    let made = addr(&forward(&srs, "bob@example.net", day(2_047)));
    assert!(made.local_part().contains("=77="), "{made}");
    assert!(srs.reverse(&made, day(2_048)).is_ok());
    assert!(srs.reverse(&made, day(2_047 + 21)).is_ok());
    assert!(matches!(
        srs.reverse(&made, day(2_047 + 22)),
        Err(SrsError::Expired { age_days: 22, .. })
    ));
}

#[test]
fn forged_or_altered_hash_is_refused() {
    let srs = srs(&["s"]);
    let now = day(20_000);
    let made = forward(&srs, "bob@example.net", now);
    // someone else's secret
    let foreign = forward(&self::srs(&["other"]), "bob@example.net", now);
    assert_eq!(
        srs.reverse(&addr(&foreign), now),
        Err(SrsError::BadHash(foreign.clone()))
    );
    // the same hash on a different original sender
    let altered = made.replace("=bob@", "=eve@");
    assert_eq!(
        srs.reverse(&addr(&altered), now),
        Err(SrsError::BadHash(altered.clone()))
    );
    // the same hash with a different stamp
    let hash = &made[5..9];
    let restamped = format!("SRS0={hash}=AA=example.net=bob@fwd.example");
    assert!(matches!(
        srs.reverse(&addr(&restamped), day(1024 * 19 + 1)),
        Err(SrsError::BadHash(_))
    ));
}

#[test]
fn hash_and_tag_are_read_in_any_case_and_either_base64_alphabet() {
    let srs = srs(&["s"]);
    let now = day(20_000);
    // find a sender whose hash has a '-' or '_' in it, so the alphabet matters
    let made = (0..500)
        .map(|i| forward(&srs, &format!("user{i}@example.net"), now))
        .find(|m| m[5..9].contains(['-', '_']))
        .unwrap_or_else(|| panic!("no hash with - or _ in 500 tries"));
    let standard = format!(
        "{}{}",
        &made[..5],
        &made[5..].replacen('-', "+", 1).replacen('_', "/", 1)
    );
    let lower = made.to_lowercase();
    let upper = format!(
        "{}@fwd.example",
        made.split('@').next().unwrap_or_default().to_uppercase()
    );
    for variant in [&made, &standard, &lower] {
        assert!(srs.reverse(&addr(variant), now).is_ok(), "{variant}");
    }
    // upper-casing the whole local part changes the original local part, but not the hash
    let back = srs
        .reverse(&addr(&upper), now)
        .map(|a| a.local_part().to_owned());
    assert!(
        back.as_deref().is_ok_and(|l| l.starts_with("USER")),
        "{back:?}"
    );
}

#[test]
fn malformed_addresses_say_what_is_wrong() {
    let srs = srs(&["s"]);
    let now = day(20_000);
    let reason = |s: &str| match srs.reverse(&addr(s), now) {
        Err(SrsError::Malformed { reason, .. }) => reason,
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(reason("SRS0=@fwd.example"), "the hash is missing");
    assert_eq!(reason("SRS0=abcd@fwd.example"), "the timestamp is missing");
    assert_eq!(
        reason("SRS0=abcd=AB@fwd.example"),
        "the original domain is missing"
    );
    assert_eq!(
        reason("SRS0=abcd=AB=example.net@fwd.example"),
        "the original local part is missing"
    );
    assert_eq!(
        reason("SRS0=abcd=A1=example.net=bob@fwd.example"),
        "the timestamp is not two base32 characters"
    );
    assert_eq!(
        reason("SRS0=abcd=ABC=example.net=bob@fwd.example"),
        "the timestamp is not two base32 characters"
    );
    assert_eq!(
        reason("SRS0=abc=RA=example.net=bob@fwd.example"),
        "the hash is shorter than four characters"
    );
    assert_eq!(reason("SRS1=abcd@fwd.example"), "the hash is missing");
    assert_eq!(
        reason("SRS1=abcd=relay.example@fwd.example"),
        "the first forwarder's domain or address is missing"
    );
    for not_srs in [
        "srs@fwd.example",
        "SRS2=abcd=AB=x=y@fwd.example",
        "SRS0.abcd@fwd.example",
        "bob@fwd.example",
    ] {
        assert_eq!(
            srs.reverse(&addr(not_srs), now),
            Err(SrsError::NotSrs(not_srs.into()))
        );
    }
    let message = srs.reverse(&addr("SRS0=abcd=A1=example.net=bob@fwd.example"), now);
    let message = message.map_err(|e| e.to_string()).err().unwrap_or_default();
    assert!(message.contains("not two base32 characters"), "{message}");
}

#[test]
fn srs0_of_another_forwarder_becomes_srs1_and_reverses_to_it() {
    let ours = srs(&["ours"]);
    let theirs = Srs::new(
        Domain::parse("relay.example").unwrap_or_else(|e| panic!("{e}")),
        vec!["theirs".into()],
        21,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let now = day(20_000);
    let srs0 = forward(&theirs, "bob@example.net", now);
    let srs1 = forward(&ours, &srs0, now);
    let inner = &srs0[4..srs0.find('@').unwrap_or_default()];
    assert!(srs1.starts_with("SRS1="), "{srs1}");
    assert!(
        srs1.ends_with(&format!("=relay.example={inner}@fwd.example")),
        "{srs1}"
    );
    // Forwarding the SRS1 again re-signs it and keeps the first forwarder.
    let again = forward(&ours, &srs1.replace("@fwd.example", "@third.example"), now);
    assert_eq!(again, srs1);
    // Reverse gives the other forwarder's SRS0, which it can reverse itself.
    let back = ours
        .reverse(&addr(&srs1), now)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.to_string(), srs0);
    let original = theirs.reverse(&back, now).map(|a| a.to_string());
    assert_eq!(original, Ok("bob@example.net".to_owned()));
    // SRS1 carries no stamp, so it does not expire here (the SRS0 inside does, there)
    assert!(ours.reverse(&addr(&srs1), day(21_000)).is_ok());
}

#[test]
fn sender_in_our_domain_is_not_rewritten() {
    let srs = srs(&["s"]);
    assert_eq!(forward(&srs, "Bob@FWD.example", day(1)), "Bob@fwd.example");
    let own = forward(&srs, "alice@example.org", day(1));
    assert_eq!(
        forward(&srs, &own, day(1)),
        own,
        "our own SRS0 is not wrapped again"
    );
}

#[test]
fn long_senders_get_long_local_parts_and_too_long_ones_stay() {
    let srs = srs(&["s"]);
    let long_local = format!("{}@example.net", "b".repeat(60));
    let out = forward(&srs, &long_local, day(1));
    assert!(out.starts_with("SRS0="), "{out}");
    assert!(out.find('@').unwrap_or_default() > 64);
    let out = EmailAddress::parse_rewritten(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        srs.reverse(&out, day(1)).map(|a| a.to_string()),
        Ok(long_local)
    );
    let huge = format!(
        "{}@{}.example",
        "b".repeat(60),
        vec!["d".repeat(60); 3].join(".")
    );
    assert_eq!(
        forward(&srs, &huge, day(1)),
        huge,
        "past 254 octets it is not rewritten"
    );
    let quoted = "\"a b\"@example.net";
    assert_eq!(forward(&srs, quoted, day(1)), quoted);
}

#[test]
fn configuration_is_checked() {
    let domain = || Domain::parse("fwd.example").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        Srs::new(domain(), vec![], 21).err(),
        Some(SrsConfigError::NoSecret)
    );
    assert_eq!(
        Srs::new(domain(), vec!["a".into(), String::new()], 21).err(),
        Some(SrsConfigError::EmptySecret(1))
    );
    assert_eq!(
        Srs::new(domain(), vec!["a".into()], 1024).err(),
        Some(SrsConfigError::MaxAgeTooLong(1024))
    );
    let debug = format!("{:?}", srs(&["hunter2"]));
    assert!(!debug.contains("hunter2"), "{debug}");
}
