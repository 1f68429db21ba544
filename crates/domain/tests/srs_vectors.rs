//! SRS checked against an independent implementation: every vector in
//! `fixtures/srs/vectors.json` (made by Python pysrs, see `make_vectors.py`) both ways.

use std::time::{Duration, UNIX_EPOCH};

use mailfwd_domain::{Domain, EmailAddress, Srs};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    source: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    note: String,
    secrets: Vec<String>,
    now: u64,
    day: u64,
    srs_domain: String,
    sender: String,
    expected: String,
    pysrs: String,
    reversed: Option<String>,
}

fn parse(s: &str) -> EmailAddress {
    EmailAddress::parse_rewritten(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn every_pysrs_vector_forwards_and_reverses() {
    let fixture: Fixture = serde_json::from_str(include_str!("fixtures/srs/vectors.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(fixture.source.starts_with("pysrs"), "{}", fixture.source);
    assert!(
        fixture.vectors.len() >= 40,
        "only {} vectors",
        fixture.vectors.len()
    );
    let mut wrapped_days = 0;
    for v in &fixture.vectors {
        let case = format!("{} ({} at day {})", v.note, v.sender, v.day);
        assert_eq!(v.now / 86_400, v.day, "{case}");
        if v.day >= 1024 {
            wrapped_days += 1;
        }
        let domain = Domain::parse(&v.srs_domain).unwrap_or_else(|e| panic!("{e}"));
        let srs = Srs::new(domain, v.secrets.clone(), 21).unwrap_or_else(|e| panic!("{e}"));
        let now = UNIX_EPOCH + Duration::from_secs(v.now);
        let forwarded = srs
            .forward(Some(&parse(&v.sender)), now)
            .map(|a| a.to_string());
        assert_eq!(forwarded.as_deref(), Some(v.expected.as_str()), "{case}");
        let Some(reversed) = &v.reversed else {
            assert_eq!(
                v.expected, v.sender,
                "{case}: only unrewritten senders have no reverse"
            );
            continue;
        };
        // our own form, and pysrs' (standard base64 in the hash) reverse alike
        for form in [&v.expected, &v.pysrs] {
            let back = srs.reverse(&parse(form), now).map(|a| a.to_string());
            assert_eq!(back.as_ref(), Ok(reversed), "{case}: reverse of {form}");
        }
    }
    assert!(
        wrapped_days > 0,
        "the vectors must cover days past the 1024-day wrap"
    );
}
