//! The two small encodings inside an SRS address, exactly as postsrsd 2.x writes them:
//! the day stamp (days since the epoch mod 1024, two base32 characters) and the hash
//! (the first four characters of the base64url HMAC-SHA1 over the case-folded fields).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The alphabet of the day stamp (RFC 4648 base32).
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Days in one cycle of the two-character stamp (32 × 32).
pub(super) const DAY_SLOTS: u64 = 1024;
/// Characters of the hash that an address carries.
pub(super) const HASH_LEN: usize = 4;

/// The stamp for `day` (days since the Unix epoch): its low 10 bits in two base32
/// characters, high five bits first.
pub(super) fn stamp(day: u64) -> String {
    let slot = day % DAY_SLOTS;
    let high = usize::try_from(slot >> 5).unwrap_or(0);
    let low = usize::try_from(slot & 31).unwrap_or(0);
    [char::from(BASE32[high]), char::from(BASE32[low])]
        .iter()
        .collect()
}

/// Reads a stamp back into its slot in the 1024-day cycle; case is ignored, as some
/// MTAs smash the case of local parts. `None` if it is not two base32 characters.
pub(super) fn stamp_slot(stamp: &str) -> Option<u64> {
    if stamp.len() != 2 {
        return None;
    }
    stamp.bytes().try_fold(0u64, |slot, c| {
        let value = BASE32.iter().position(|&b| b == c.to_ascii_uppercase())?;
        Some((slot << 5) | u64::try_from(value).ok()?)
    })
}

/// How many days old a stamp in `slot` is on `today`, counting back around the cycle
/// as postsrsd does: a slot "after" today is read as one from the previous cycle.
pub(super) fn age_in_days(slot: u64, today: u64) -> u64 {
    let now = today % DAY_SLOTS;
    if now >= slot {
        now - slot
    } else {
        now + DAY_SLOTS - slot
    }
}

/// The four-character hash of `fields` under `secret`: HMAC-SHA1 over the fields
/// concatenated with nothing between them, each ASCII-lower-cased first (postsrsd folds
/// with C `tolower`, so non-ASCII bytes pass unchanged), then base64url.
pub(super) fn hash(secret: &[u8], fields: &[&str]) -> String {
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts a key of any length");
    for field in fields {
        mac.update(field.to_ascii_lowercase().as_bytes());
    }
    let digest = mac.finalize().into_bytes();
    // Three bytes are exactly four base64 characters.
    URL_SAFE_NO_PAD.encode(&digest[..3])
}

/// Whether `given` (from an address) matches `expected` (freshly computed), comparing
/// the first [`HASH_LEN`] characters in constant time, ignoring case and reading the
/// standard (`+/`) and url-safe (`-_`) base64 alphabets as one, as postsrsd does.
pub(super) fn hash_matches(given: &str, expected: &str) -> bool {
    let (Some(given), Some(expected)) = (given.get(..HASH_LEN), expected.get(..HASH_LEN)) else {
        return false;
    };
    let given = canonical(given);
    let expected = canonical(expected);
    // An invalid character canonicalises to 0, which must never count as a match.
    let valid = given.iter().chain(&expected).all(|&b| b != 0);
    bool::from(given.ct_eq(&expected)) && valid
}

/// One spelling per base64 character: letters lower-cased, `+` as `-`, `/` as `_`;
/// anything outside both alphabets becomes 0.
fn canonical(hash: &str) -> [u8; HASH_LEN] {
    let mut out = [0u8; HASH_LEN];
    for (slot, c) in out.iter_mut().zip(hash.bytes()) {
        *slot = match c {
            b'A'..=b'Z' => c.to_ascii_lowercase(),
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => c,
            b'+' => b'-',
            b'/' => b'_',
            _ => 0,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_days_mod_1024_in_base32() {
        assert_eq!(stamp(0), "AA");
        assert_eq!(stamp(1), "AB");
        assert_eq!(stamp(31), "A7");
        assert_eq!(stamp(32), "BA");
        assert_eq!(stamp(1023), "77");
        assert_eq!(stamp(1024), "AA");
        // postsrsd's test time, 2020-01-01: day 18262
        assert_eq!(stamp(18262), "2W");
    }

    #[test]
    fn stamps_read_back_in_any_case() {
        for day in [0, 1, 31, 32, 500, 1023] {
            assert_eq!(stamp_slot(&stamp(day)), Some(day));
            assert_eq!(stamp_slot(&stamp(day).to_lowercase()), Some(day));
        }
        assert_eq!(stamp_slot("A1"), None, "1 is not base32");
        assert_eq!(stamp_slot("A"), None);
        assert_eq!(stamp_slot("AAA"), None);
        assert_eq!(stamp_slot("Ä"), None);
    }

    #[test]
    fn age_counts_back_across_the_wrap() {
        assert_eq!(age_in_days(1023, 1024), 1);
        assert_eq!(age_in_days(1020, 2048 + 5), 9);
        assert_eq!(age_in_days(5, 5), 0);
        // a stamp from "tomorrow" is read as 1023 days old
        assert_eq!(age_in_days(6, 5), 1023);
    }

    #[test]
    fn hash_matches_postsrsd_test_vector() {
        // postsrsd tests/unit/test_srs2.c: secret "tops3cr3t", 2020-01-01
        assert_eq!(
            hash(b"tops3cr3t", &["2W", "otherdomain.com", "test"]),
            "vmyz"
        );
        assert_eq!(
            hash(b"tops3cr3t", &["2w", "OtherDomain.COM", "TEST"]),
            "vmyz",
            "fields are case-folded before hashing"
        );
    }

    #[test]
    fn comparison_takes_both_alphabets_and_any_case() {
        assert!(hash_matches("a-b_", "a-b_"));
        assert!(hash_matches("a+b/", "a-b_"));
        assert!(hash_matches("A-B_", "a+b/"));
        assert!(
            hash_matches("vmyzEXTRA", "vmyz"),
            "only four characters count"
        );
        assert!(!hash_matches("vmyy", "vmyz"));
        assert!(!hash_matches("vmy", "vmyz"), "too short");
        assert!(!hash_matches("vm.z", "vm.z"), "not base64");
        assert!(!hash_matches("vmyä", "vmyz"));
    }
}
