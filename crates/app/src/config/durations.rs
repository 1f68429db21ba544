//! Durations in the configuration, parsed once when it loads (`#[serde(with = …)]`), so
//! a bad value stops mailfwd at start, named, and the rest of the app reads
//! [`Duration`]s.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

const EXAMPLES: &str = "90s, 5m, 4h or 5d";

fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("'{text}' is not a duration such as {EXAMPLES} ({e})"))
}

/// One duration written with a unit: `15m`, `30s`, `5d`.
pub mod duration {
    use super::{Deserializer, Duration, EXAMPLES, Serializer, Visitor, de, fmt, parse};

    struct Text;

    impl Visitor<'_> for Text {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a duration such as {EXAMPLES}")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            parse(text).map_err(E::custom)
        }
    }

    /// Writes the duration as humantime text (`15m`, `5days`).
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    /// Reads a duration with a unit.
    ///
    /// # Errors
    /// A message quoting the value when it is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(Text)
    }
}

/// Comma-separated durations: `1m,5m,15m`; empty items are skipped.
pub mod duration_list {
    use super::{Deserializer, Duration, EXAMPLES, Serializer, Visitor, de, fmt, parse};

    struct List;

    impl Visitor<'_> for List {
        type Value = Vec<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "comma-separated durations such as {EXAMPLES}")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<Duration>, E> {
            text.split(',')
                .map(str::trim)
                .filter(|step| !step.is_empty())
                .map(|step| parse(step).map_err(E::custom))
                .collect()
        }
    }

    /// Writes the durations as humantime text joined by commas.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(value: &[Duration], serializer: S) -> Result<S::Ok, S::Error> {
        let steps: Vec<String> = value
            .iter()
            .map(|step| humantime::format_duration(*step).to_string())
            .collect();
        serializer.collect_str(&steps.join(","))
    }

    /// Reads comma-separated durations.
    ///
    /// # Errors
    /// A message quoting the first item that is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Duration>, D::Error> {
        deserializer.deserialize_any(List)
    }
}

/// A whole number of seconds (`300`), or a duration with a unit (`5m`).
pub mod seconds {
    use super::{Deserializer, Duration, EXAMPLES, Serializer, Visitor, de, fmt, parse};

    struct Seconds;

    impl Visitor<'_> for Seconds {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a number of seconds, or a duration such as {EXAMPLES}")
        }

        fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(seconds))
        }

        fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
            u64::try_from(seconds)
                .map(Duration::from_secs)
                .map_err(|_| {
                    E::custom(format!(
                        "{seconds} is negative: expected a number of seconds, or a duration such as {EXAMPLES}"
                    ))
                })
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            match text.trim().parse::<u64>() {
                Ok(seconds) => Ok(Duration::from_secs(seconds)),
                Err(_) => parse(text).map_err(E::custom),
            }
        }
    }

    /// Writes whole seconds as a number, anything finer as humantime text.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        if value.subsec_nanos() == 0 {
            serializer.serialize_u64(value.as_secs())
        } else {
            serializer.collect_str(&humantime::format_duration(*value))
        }
    }

    /// Reads seconds or a duration.
    ///
    /// # Errors
    /// A message quoting the value when it is neither.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(Seconds)
    }
}

/// An optional duration written with a unit; unset when absent.
pub mod optional {
    use super::{Deserializer, Duration, Serializer, parse};
    use serde::Deserialize;
    use serde::de::Error;

    /// Writes the duration as humantime text, or nothing.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.collect_str(&humantime::format_duration(*value)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a duration with a unit.
    ///
    /// # Errors
    /// A message quoting the value when it is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| parse(&text).map_err(D::Error::custom))
            .transpose()
    }
}
