//! [`Timestamp`]: a UTC instant in whole milliseconds, the only time representation we store.
//!
//! Milliseconds as a plain integer sort, compare and index cheaply in SQLite, match the
//! reference agent's wire format, and cross the WIT boundary as an `s64`. Finer precision is
//! truncated on the way in, so what you read back is exactly what was stored.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// A UTC instant in milliseconds since the Unix epoch.
///
/// Serializes as an integer; deserializes from an integer (ms) or an RFC3339 string
/// (sub-millisecond digits are truncated, offsets are converted to UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From UTC milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// UTC milliseconds.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Now, from a [`crate::Clock`].
    pub fn now(clock: &dyn crate::Clock) -> Self {
        Timestamp(clock.now_ms())
    }

    /// Parse RFC3339 (`2024-05-01T12:00:00.123456Z`, `...+02:00`), truncating to the millisecond.
    pub fn parse_rfc3339(text: &str) -> Result<Self> {
        let dt = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| Error::invalid_input(format!("not an RFC3339 timestamp {text:?}: {e}")))?;
        let nanos = dt.unix_timestamp_nanos();
        // div_euclid truncates toward the past, also before 1970.
        let ms = nanos.div_euclid(1_000_000);
        i64::try_from(ms)
            .map(Timestamp)
            .map_err(|_| Error::invalid_input(format!("timestamp out of range: {text:?}")))
    }

    /// Parse a time given on a command line: UTC milliseconds (`1714564800123`) or RFC3339
    /// (`2024-05-01T12:00:00Z`, truncated to the millisecond). Every CLI's `--since`/`--until`
    /// and `--where` on a timestamp column take this.
    pub fn parse_arg(text: &str) -> Result<Self> {
        if let Ok(ms) = text.parse::<i64>() {
            return Ok(Timestamp(ms));
        }
        Timestamp::parse_rfc3339(text).map_err(|e| {
            Error::invalid_input(format!(
                "expected RFC3339 or UTC milliseconds: {}",
                e.message()
            ))
        })
    }

    /// Format as RFC3339 with millisecond precision in UTC, for humans and logs.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|dt| dt.format(&Rfc3339).ok())
        {
            Some(s) => s,
            None => format!("{}ms", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl From<Timestamp> for crate::model::Value {
    fn from(t: Timestamp) -> Self {
        crate::model::Value::Integer(t.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(TimestampVisitor)
    }
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UTC milliseconds as an integer or an RFC3339 string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Timestamp, E> {
        Ok(Timestamp(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Timestamp, E> {
        i64::try_from(v)
            .map(Timestamp)
            .map_err(|_| E::custom("timestamp out of range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Timestamp, E> {
        if v.is_finite() && v.abs() < 9.2e18 {
            // Truncate sub-millisecond fractions, like the string form.
            #[allow(clippy::cast_possible_truncation)]
            Ok(Timestamp(v.floor() as i64))
        } else {
            Err(E::custom("timestamp out of range"))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Timestamp, E> {
        Timestamp::parse_rfc3339(v).map_err(|e| E::custom(e.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_truncates() {
        let t = Timestamp::parse_rfc3339("2024-05-01T12:00:00.123987Z").unwrap();
        assert_eq!(t.as_millis(), 1_714_564_800_123);
        let offset = Timestamp::parse_rfc3339("2024-05-01T14:00:00.123+02:00").unwrap();
        assert_eq!(offset, t);
        let before_epoch = Timestamp::parse_rfc3339("1969-12-31T23:59:59.9999Z").unwrap();
        assert_eq!(before_epoch.as_millis(), -1);
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert_eq!(t.to_rfc3339(), "2024-05-01T12:00:00.123Z");
    }

    #[test]
    fn command_line_times_are_ms_or_rfc3339() {
        assert_eq!(Timestamp::parse_arg("1000").unwrap(), Timestamp(1000));
        assert_eq!(Timestamp::parse_arg("-5").unwrap(), Timestamp(-5));
        assert_eq!(
            Timestamp::parse_arg("2024-05-01T12:00:00.123Z").unwrap(),
            Timestamp(1_714_564_800_123)
        );
        let e = Timestamp::parse_arg("yesterday").unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidInput);
        assert!(
            e.message()
                .starts_with("expected RFC3339 or UTC milliseconds"),
            "{e}"
        );
    }

    #[test]
    fn serde_accepts_both_forms() {
        let a: Timestamp = serde_json::from_str("1714564800123").unwrap();
        let b: Timestamp = serde_json::from_str("\"2024-05-01T12:00:00.123999Z\"").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "1714564800123");
    }
}
