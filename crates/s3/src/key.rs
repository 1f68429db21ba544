//! Where a body lives: `<prefix>/YYYY/MM/DD/<id>.eml`, computed from the id alone.

use std::time::UNIX_EPOCH;

use mailfwd_domain::EmailId;
use mailfwd_domain::calendar::civil_date;
use object_store::path::Path;

const SECONDS_PER_DAY: u64 = 86_400;

/// The object key of the body of `id` under `prefix` (which may be empty).
///
/// The day comes from the UUIDv7 timestamp, so reading needs nothing but the id, and one
/// day's bodies share a directory (or key prefix) that can be listed, archived or expired
/// as a unit.
pub(crate) fn body_key(prefix: &str, id: &EmailId) -> Path {
    let seconds = id
        .created_at()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_date(seconds / SECONDS_PER_DAY);
    let name = format!("{year:04}/{month:02}/{day:02}/{id}.eml");
    if prefix.is_empty() {
        Path::from(name)
    } else {
        Path::from(format!("{prefix}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
