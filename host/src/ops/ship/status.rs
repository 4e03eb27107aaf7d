//! What health needs to know about shipping: the pending segments (listed locally, from names
//! alone: no request to the target, no sidecar read), the shipping lag, and the last permanent
//! failure.
//!
//! The owner keeps its last permanent failure in memory and in `DIR/.edgestore.ship.json`
//! (written on change, removed once shipping works again), so `edgestore health` in another
//! process reports it too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgestore::spool::SegmentName;
use serde::{Deserialize, Serialize};

/// The file in the data directory holding the owner's last permanent shipping failure.
pub const STATUS_FILE: &str = ".edgestore.ship.json";

/// A finished segment waiting in the spool directory's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// File name.
    pub name: String,
    /// First row's time, ms.
    pub start_ms: i64,
    /// When it was finished, ms.
    pub stop_ms: i64,
    /// Size.
    pub bytes: u64,
}

/// The pending segments of the spool at `spool_dir` (on the host), oldest first: the
/// finished-segment names in its root, which is what `spool list` shows as pending (uploaded
/// ones are in `uploaded/`, bad ones in `quarantine/`, journals and temporaries are hidden
/// names that never parse as segments). A spool directory that does not exist yet is empty.
pub fn list_pending(spool_dir: &Path) -> std::io::Result<Vec<Pending>> {
    let entries = match std::fs::read_dir(spool_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(segment) = SegmentName::parse(&name) else {
            continue;
        };
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Acknowledged or quarantined while listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.is_file() {
            continue;
        }
        out.push(Pending {
            name,
            start_ms: segment.start_ms,
            stop_ms: segment.stop_ms,
            bytes: meta.len(),
        });
    }
    out.sort_by(|a, b| (a.start_ms, a.stop_ms, &a.name).cmp(&(b.start_ms, b.stop_ms, &b.name)));
    Ok(out)
}

/// The oldest pending segment and how long ago it was finished: the shipping lag.
pub fn lag(pending: &[Pending], now_ms: i64) -> Option<(&Pending, Duration)> {
    pending.iter().min_by_key(|p| p.stop_ms).map(|p| {
        (
            p,
            Duration::from_millis(u64::try_from(now_ms.saturating_sub(p.stop_ms)).unwrap_or(0)),
        )
    })
}

/// A failure the shipper reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The target's URL.
    pub target: String,
    /// The failure kind's label (`denied`, `no-bucket`, ...).
    pub kind: String,
    /// Whether retrying cannot fix it.
    pub permanent: bool,
    /// The message.
    pub message: String,
    /// When, UTC ms.
    pub at_ms: i64,
}

fn status_path(data_dir: &Path) -> PathBuf {
    data_dir.join(STATUS_FILE)
}

/// The last permanent failure the data directory's owner recorded, if any.
pub fn read_failure(data_dir: &Path) -> Option<Failure> {
    let text = std::fs::read(status_path(data_dir)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Record (or with `None`, clear) the last permanent failure: a temporary then a rename, so a
/// reader never sees half a file.
pub fn write_failure(data_dir: &Path, failure: Option<&Failure>) -> std::io::Result<()> {
    let path = status_path(data_dir);
    match failure {
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        Some(f) => {
            let tmp = data_dir.join(format!("{STATUS_FILE}.{}.tmp", std::process::id()));
            let text = serde_json::to_vec(f).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &path)
        }
    }
}

/// The health reasons about shipping to `target`: the oldest pending segment finished longer
/// than `max_lag` ago, and the last attempt's permanent failure (when it was this target's).
pub fn health_reasons(
    target: &str,
    pending: &[Pending],
    failure: Option<&Failure>,
    max_lag: Duration,
    now_ms: i64,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(f) = failure.filter(|f| f.permanent && f.target == target) {
        reasons.push(format!("shipping to {target} fails: {}", f.message));
    }
    if let Some((oldest, age)) = lag(pending, now_ms) {
        if age > max_lag {
            reasons.push(format!(
                "shipping lag: {} pending segments, the oldest ({}) finished {} ago (limit {}, health.maxShipLag); target {target}",
                pending.len(),
                oldest.name,
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                humantime::format_duration(max_lag),
            ));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_pending_segments_oldest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for name in [
            "agent_2000_3000.json.br",
            "agent_1000_2000.json.br",
            "agent_1000_2000.json.br.sum",
            ".agent_3000_42.journal",
            ".agent_3000_4000.json.br.tmp",
            "notes.txt",
        ] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        for sub in ["uploaded", "quarantine"] {
            std::fs::create_dir(d.join(sub)).unwrap();
            std::fs::write(d.join(sub).join("agent_500_600.json.br"), b"x").unwrap();
        }
        let names: Vec<String> = list_pending(d)
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(
            names,
            ["agent_1000_2000.json.br", "agent_2000_3000.json.br"]
        );
        assert!(list_pending(&d.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn health_names_the_lag_and_the_permanent_failure() {
        let pending = vec![Pending {
            name: "agent_0_1000.json.br".into(),
            start_ms: 0,
            stop_ms: 1_000,
            bytes: 10,
        }];
        let hour = Duration::from_secs(3600);
        assert!(health_reasons("s3://b", &pending, None, hour, 1_000 + 60_000).is_empty());
        let reasons = health_reasons("s3://b", &pending, None, hour, 1_000 + 7_200_000);
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0].contains("agent_0_1000.json.br")
                && reasons[0].contains("2h")
                && reasons[0].contains("s3://b"),
            "{reasons:?}"
        );
        let failure = Failure {
            target: "s3://b".into(),
            kind: "denied".into(),
            permanent: true,
            message: "ship target s3://b: PUT k: access denied".into(),
            at_ms: 5,
        };
        let reasons = health_reasons("s3://b", &[], Some(&failure), hour, 10);
        assert_eq!(
            reasons,
            ["shipping to s3://b fails: ship target s3://b: PUT k: access denied"]
        );
        // Another target's failure, or a transient one, is not this target's health.
        assert!(health_reasons("s3://other", &[], Some(&failure), hour, 10).is_empty());
        let transient = Failure {
            permanent: false,
            ..failure.clone()
        };
        assert!(health_reasons("s3://b", &[], Some(&transient), hour, 10).is_empty());
    }

    #[test]
    fn the_failure_file_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read_failure(tmp.path()), None);
        let f = Failure {
            target: "file:///x".into(),
            kind: "no-bucket".into(),
            permanent: true,
            message: "m".into(),
            at_ms: 1,
        };
        write_failure(tmp.path(), Some(&f)).unwrap();
        assert_eq!(read_failure(tmp.path()), Some(f));
        write_failure(tmp.path(), None).unwrap();
        write_failure(tmp.path(), None).unwrap();
        assert_eq!(read_failure(tmp.path()), None);
    }
}
