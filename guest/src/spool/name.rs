//! File names of the spool: finished segments, journals, temporaries and sidecars.
//!
//! A finished segment is `<identifier>_<startMs>_<stopMs>.json.br`, or `.json.br.age` when it
//! is encrypted. Identifiers may contain
//! `_`, so names are parsed from the right: the last two `_`-separated fields are the times.
//! Everything the spool writes that is not a finished segment starts with `.` or ends in
//! something other than `.json.br` (`.json.br.age`), so a shipper globbing `*.json.br*` only
//! sees finished ones.

use crate::error::{Error, Result};

/// Largest identifier accepted, so names stay well below file-name limits. The identifier rule
/// lives here, with the names it becomes part of; the config only asks `check_identifier`.
pub const MAX_IDENTIFIER_LEN: usize = 128;

/// Suffix of a finished segment.
pub const SEGMENT_SUFFIX: &str = ".json.br";
/// Suffix of a finished segment encrypted with age (`<segment>.json.br.age`): a tool that
/// expects Brotli never mistakes one for a damaged `.json.br`.
pub const ENCRYPTED_SUFFIX: &str = ".json.br.age";
/// Suffix of a segment's checksum sidecar (`<segment>.sum`).
pub const SIDECAR_SUFFIX: &str = ".sum";
/// Suffix of an active or unfinished journal (`.<identifier>_<startMs>_<nonce>.journal`).
pub const JOURNAL_SUFFIX: &str = ".journal";
/// Suffix of a segment being written (`.<segment>.tmp`).
pub const TMP_SUFFIX: &str = ".tmp";
/// Where uploaded segments go.
pub const UPLOADED_DIR: &str = "uploaded";
/// Where segments that fail verification go.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Check an identifier (see [`crate::spool::SpoolConfig::identifier`]).
pub fn check_identifier(id: &str) -> Result<()> {
    let first_ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let chars_ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !first_ok || !chars_ok || id.contains("..") || id.len() > MAX_IDENTIFIER_LEN {
        return Err(Error::invalid_input(format!(
            "spool config field `identifier`: {id:?} must be 1-{MAX_IDENTIFIER_LEN} of \
             [A-Za-z0-9._-], start with a letter or digit, and contain no `..`"
        )));
    }
    Ok(())
}

/// A parsed finished-segment name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// Milliseconds of the first row (first sort key: oldest first).
    pub start_ms: i64,
    /// Milliseconds at which the segment was finished.
    pub stop_ms: i64,
    /// The spool identifier.
    pub identifier: String,
    /// Encrypted with age (named `.json.br.age`).
    pub encrypted: bool,
}

fn parse_ms(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl SegmentName {
    /// Parse `<identifier>_<start>_<stop>.json.br` (or `.json.br.age`); `None` for anything
    /// else.
    pub fn parse(name: &str) -> Option<SegmentName> {
        let (stem, encrypted) = match name.strip_suffix(ENCRYPTED_SUFFIX) {
            Some(stem) => (stem, true),
            None => (name.strip_suffix(SEGMENT_SUFFIX)?, false),
        };
        let (rest, stop) = stem.rsplit_once('_')?;
        let (identifier, start) = rest.rsplit_once('_')?;
        let seg = SegmentName {
            start_ms: parse_ms(start)?,
            stop_ms: parse_ms(stop)?,
            identifier: identifier.to_string(),
            encrypted,
        };
        check_identifier(identifier).ok()?;
        Some(seg)
    }

    /// Parse a caller-supplied name, rejecting anything else (separators, `..`, absolute
    /// paths, temporaries) with `InvalidInput`.
    pub fn parse_user(name: &str) -> Result<SegmentName> {
        SegmentName::parse(name).ok_or_else(|| {
            Error::invalid_input(format!(
                "{name:?} is not a segment name <identifier>_<startMs>_<stopMs>.json.br[.age]"
            ))
        })
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        let suffix = if self.encrypted {
            ENCRYPTED_SUFFIX
        } else {
            SEGMENT_SUFFIX
        };
        format!(
            "{}_{}_{}{suffix}",
            self.identifier, self.start_ms, self.stop_ms
        )
    }

    /// True if `[start, stop]` overlaps `range`.
    pub fn overlaps(&self, range: &TimeRange) -> bool {
        range.from_ms.is_none_or(|f| self.stop_ms >= f)
            && range.to_ms.is_none_or(|t| self.start_ms < t)
    }
}

/// A journal name: `.<identifier>_<startMs>_<nonce>.journal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalName {
    /// The spool identifier.
    pub identifier: String,
    /// Milliseconds of the first row.
    pub start_ms: i64,
    /// Random hex making the name unique across processes.
    pub nonce: String,
}

impl JournalName {
    /// Parse a journal file name.
    pub fn parse(name: &str) -> Option<JournalName> {
        let stem = name.strip_prefix('.')?.strip_suffix(JOURNAL_SUFFIX)?;
        let (rest, nonce) = stem.rsplit_once('_')?;
        let (identifier, start) = rest.rsplit_once('_')?;
        if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        check_identifier(identifier).ok()?;
        Some(JournalName {
            identifier: identifier.to_string(),
            start_ms: parse_ms(start)?,
            nonce: nonce.to_string(),
        })
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        format!(
            ".{}_{}_{}{JOURNAL_SUFFIX}",
            self.identifier, self.start_ms, self.nonce
        )
    }
}

/// A half-open time filter `[from_ms, to_ms)` over segment spans; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Keep segments whose stop is at or after this.
    pub from_ms: Option<i64>,
    /// Keep segments whose start is before this.
    pub to_ms: Option<i64>,
}

impl TimeRange {
    /// Every segment.
    pub fn all() -> Self {
        TimeRange::default()
    }

    /// Segments overlapping `[from_ms, to_ms)`.
    pub fn between(from_ms: i64, to_ms: i64) -> Self {
        TimeRange {
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
        }
    }
}

/// The temporary name a segment is written under before its rename.
pub fn tmp_name(segment: &str) -> String {
    format!(".{segment}{TMP_SUFFIX}")
}

/// The sidecar name of a segment.
pub fn sidecar_name(segment: &str) -> String {
    format!("{segment}{SIDECAR_SUFFIX}")
}

/// Suffix of a rewritten segment's new sidecar before it replaces the old one (erase).
pub const NEW_SIDECAR_SUFFIX: &str = ".sum.new";

/// The name of `segment`'s new sidecar during a rewrite (in the spool root).
pub fn new_sidecar_name(segment: &str) -> String {
    format!(".{segment}{NEW_SIDECAR_SUFFIX}")
}

/// `dir/name`, or `name` in the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_parse_from_the_right() {
        let s = SegmentName::parse("my_agent_1700000000000_1700000030000.json.br").unwrap();
        assert_eq!(s.identifier, "my_agent");
        assert_eq!(s.start_ms, 1_700_000_000_000);
        assert_eq!(s.stop_ms, 1_700_000_030_000);
        assert_eq!(
            s.file_name(),
            "my_agent_1700000000000_1700000030000.json.br"
        );
        for bad in [
            "../a_1_2.json.br",
            "/tmp/a_1_2.json.br",
            "up/a_1_2.json.br",
            "a_1_2.json.br.tmp",
            ".a_1_2.json.br.tmp",
            "a_x_2.json.br",
            "a_1_-2.json.br",
            "_1_2.json.br",
        ] {
            assert!(SegmentName::parse(bad).is_none(), "{bad}");
            assert!(SegmentName::parse_user(bad).is_err());
        }
    }

    #[test]
    fn journal_names_round_trip_and_ranges_filter() {
        let j = JournalName {
            identifier: "a_b".into(),
            start_ms: 5,
            nonce: "00ff".into(),
        };
        assert_eq!(JournalName::parse(&j.file_name()), Some(j));
        let s = SegmentName::parse("a_10_20.json.br").unwrap();
        let e = SegmentName::parse("a_10_20.json.br.age").unwrap();
        assert!(e.encrypted && !s.encrypted);
        assert_eq!(e.file_name(), "a_10_20.json.br.age");
        assert!(SegmentName::parse("a_10_20.json.age").is_none());
        assert!(s.overlaps(&TimeRange::all()));
        assert!(s.overlaps(&TimeRange::between(20, 30)));
        assert!(!s.overlaps(&TimeRange::between(21, 30)));
        assert!(!s.overlaps(&TimeRange::between(0, 10)));
        assert!(s.overlaps(&TimeRange::between(0, 11)));
    }
}
