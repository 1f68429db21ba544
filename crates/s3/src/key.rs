//! Where a body lives: `<prefix>/YYYY/MM/DD/<id>.eml`, computed from the id alone.

use mailfwd_domain::EmailId;
use object_store::path::Path;

const MILLIS_PER_DAY: u64 = 86_400_000;

/// The object key of the body of `id` under `prefix` (which may be empty).
///
/// The day comes from the UUIDv7 timestamp, so reading needs nothing but the id, and one
/// day's bodies share a directory (or key prefix) that can be listed, archived or expired
/// as a unit.
pub(crate) fn body_key(prefix: &str, id: &EmailId) -> Path {
    let (year, month, day) = civil_date(unix_millis(id) / MILLIS_PER_DAY);
    let name = format!("{year:04}/{month:02}/{day:02}/{id}.eml");
    if prefix.is_empty() {
        Path::from(name)
    } else {
        Path::from(format!("{prefix}/{name}"))
    }
}

/// The 48-bit millisecond timestamp at the front of a UUIDv7.
///
/// For an id that is not a UUIDv7 these bits mean nothing, but they are still the same
/// every time, which is all a key needs.
fn unix_millis(id: &EmailId) -> u64 {
    // The hyphenated form starts `tttttttt-tttt-`: 12 hex digits of timestamp.
    let text = id.to_string();
    let hex: String = text.chars().filter(|c| *c != '-').take(12).collect();
    // Display always writes hex digits, so this cannot fail; 0 keeps the key stable anyway.
    u64::from_str_radix(&hex, 16).unwrap_or(0)
}

/// The proleptic Gregorian date of a day counted from 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`, for non-negative day numbers.
fn civil_date(days_since_epoch: u64) -> (u64, u64, u64) {
    let z = days_since_epoch + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_the_calendar() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(11_017), (2000, 3, 1));
        assert_eq!(civil_date(19_722), (2023, 12, 31));
        assert_eq!(civil_date(19_723), (2024, 1, 1));
        assert_eq!(civil_date(20_147), (2025, 2, 28));
    }

    #[test]
    fn keys_use_the_day_in_the_id() {
        // 0x0192e4c27b1a ms = 2024-10-31T22:46:43.738Z
        let id = EmailId::parse("0192e4c2-7b1a-7cde-8f00-112233445566").expect("a valid id");
        assert_eq!(
            body_key("", &id).as_ref(),
            "2024/10/31/0192e4c2-7b1a-7cde-8f00-112233445566.eml"
        );
        assert_eq!(
            body_key("mail/in", &id).as_ref(),
            "mail/in/2024/10/31/0192e4c2-7b1a-7cde-8f00-112233445566.eml"
        );
    }

    #[test]
    fn new_ids_land_under_today() {
        let id = EmailId::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970");
        let today = civil_date(now.as_secs() / 86_400);
        let (y, m, d) = today;
        let key = body_key("p", &id);
        // A test running across midnight UTC may see yesterday's date in the id.
        assert!(
            key.as_ref()
                .starts_with(&format!("p/{y:04}/{m:02}/{d:02}/"))
                || now.as_secs() % 86_400 < 5,
            "{key}"
        );
    }
}
