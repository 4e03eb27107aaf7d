//! Spool configuration, validated up front: a bad value is an `InvalidInput` error naming the
//! field, never a silent fallback.

use std::time::Duration;

use super::cipher::SpoolKeys;
use super::compress::Compressor;
use super::name::check_identifier;
use crate::error::{Error, Result};

/// When the active journal is made durable (`fdatasync`) between flushes.
///
/// Whatever the policy, [`crate::spool::Spool::flush`] makes every accepted row durable in a
/// finished segment. The policy only decides what survives a crash *between* flushes: rows
/// synced to the journal are recovered into a segment on the next open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Sync only on flush and rotation (fastest; a crash loses rows since the last flush).
    OnFlush,
    /// Sync the journal once at least this many rows were written since the last sync.
    EveryRows(u64),
    /// Sync the journal when this much time passed since the last sync (checked on `put` and
    /// `flush_due`).
    EveryMillis(u64),
}

/// How a spool names, compresses, rotates and retains segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// First component of every segment name: ASCII letters, digits, `-`, `_`, `.`; starts
    /// with a letter or digit; no `..`; at most 128 bytes.
    pub identifier: String,
    /// Brotli quality, 0 (fastest) to 11 (smallest). Default 6.
    pub compression_level: u32,
    /// Rows per segment; a segment is finished exactly at this count.
    pub max_records: u64,
    /// A segment is finished once this long has passed since its first row.
    pub max_interval: Duration,
    /// When journal bytes are synced between flushes.
    pub sync_policy: SyncPolicy,
    /// `purge` deletes uploaded segments whose stop time is older than this.
    pub retention: Duration,
    /// Hard cap on the spool's bytes on disk; `purge` drops the oldest uploaded segments
    /// (then, if allowed, pending ones) until usage is under it.
    pub max_bytes: Option<u64>,
    /// Whether `purge` may drop segments that were never uploaded to get under `max_bytes`.
    pub drop_pending_over_cap: bool,
    /// age keys: recipients new segments are encrypted to, identities that read them.
    pub keys: SpoolKeys,
    /// Where segments are compressed: in this process unless an embedder (the plugin
    /// component's host) offers a faster encoder. The bytes are the same either way.
    pub compressor: Compressor,
}

impl SpoolConfig {
    /// The defaults: level 6, 10 000 rows, 30 s, sync on flush, 7 days retention, no cap.
    pub fn new(identifier: impl Into<String>) -> Self {
        SpoolConfig {
            identifier: identifier.into(),
            compression_level: 6,
            max_records: 10_000,
            max_interval: Duration::from_secs(30),
            sync_policy: SyncPolicy::OnFlush,
            retention: Duration::from_secs(7 * 24 * 3600),
            max_bytes: None,
            drop_pending_over_cap: false,
            keys: SpoolKeys::default(),
            compressor: Compressor::local(),
        }
    }

    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_identifier(&self.identifier)?;
        if self.compression_level > 11 {
            return Err(field(
                "compression_level",
                format!("{} is outside 0..=11", self.compression_level),
            ));
        }
        if self.max_records == 0 {
            return Err(field("max_records", "must be at least 1".into()));
        }
        if self.max_interval.is_zero() {
            return Err(field("max_interval", "must be positive".into()));
        }
        match self.sync_policy {
            SyncPolicy::EveryRows(0) | SyncPolicy::EveryMillis(0) => {
                return Err(field("sync_policy", "interval must be at least 1".into()))
            }
            _ => {}
        }
        if self.max_bytes == Some(0) {
            return Err(field("max_bytes", "must be positive when set".into()));
        }
        self.keys.validate()
    }

    pub(crate) fn max_interval_ms(&self) -> i64 {
        i64::try_from(self.max_interval.as_millis()).unwrap_or(i64::MAX)
    }
}

fn field(name: &str, why: String) -> Error {
    Error::invalid_input(format!("spool config field `{name}`: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn defaults_validate_and_bad_fields_are_named() {
        SpoolConfig::new("agent-1").validate().unwrap();
        let mut c = SpoolConfig::new("agent-1");
        c.compression_level = 12;
        let e = c.validate().unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
        assert!(e.message().contains("compression_level"), "{e}");
        let mut c = SpoolConfig::new("agent-1");
        c.max_records = 0;
        assert!(c.validate().unwrap_err().message().contains("max_records"));
        let c = SpoolConfig::new("../etc");
        assert_eq!(c.validate().unwrap_err().code(), ErrorCode::InvalidInput);
    }
}
