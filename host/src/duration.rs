//! Durations as humantime text (`30s`, `10m`, `1h 30m`), for `#[serde(with = ...)]` on every
//! duration the configuration holds: in the config's own sections and in the runtime types it
//! embeds ([`crate::resilience::RetryConfig`], [`crate::resilience::BreakerConfig`],
//! [`crate::health::HealthConfig`]). It sits at the crate's top, below all of them, so the
//! runtime types own their serde shape without depending on `config`, which only reads them.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Write `d` as humantime text.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Read humantime text.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("expected a duration such as 30s or 10m: {e}"))
    })
}
