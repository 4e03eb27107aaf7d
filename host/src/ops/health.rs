//! Health of a store as an operator sees it: can it do its job right now, and if not, why.
//! One report serves `edgestore health`, `serve`'s `/healthz` and the tests.
//!
//! Checks, each giving one reason when it fails:
//! - the engine answers in time, its database answers `SELECT 1` and its spools' usage is
//!   readable (the engine's own checks, `admin.health` in the component);
//! - no transaction has been open longer than `max_transaction_age` (read from the store's
//!   activity, not through its queue, which such a transaction blocks);
//! - the circuit breaker is not open;
//! - the file system holding the data directory is at most `max_disk_used_percent` full;
//! - the data directory and the spool directory accept a new file (a real write probe: a
//!   permission bit says nothing when running as root, a read-only mount or a path that is
//!   not a directory does);
//! - with shipping configured, the oldest pending segment is at most `max_ship_lag` old and
//!   the last shipping attempt did not fail permanently (the shipper's own reasons,
//!   [`crate::ship`], added by `serve` and `edgestore health`);
//! - with backup configured, the newest backed-up state is at most `max_backup_age` old, the
//!   last round did not fail and the last verification passed ([`crate::backup`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgestore::dir::CapDir;
use edgestore::present::used_percent;
use edgestore::Directory;
use serde::{Deserialize, Serialize};

use crate::client::{AsyncSpool, Store};
use crate::error::Error;
use crate::resilience::BreakerState;

/// Thresholds of the health checks (config section `health`: `maxDiskUsedPercent`,
/// `maxTransactionAge`, `answerWithin`, `maxShipLag`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Unhealthy above this share of the file system in use, percent (0..=100).
    pub max_disk_used_percent: f64,
    /// Unhealthy when a transaction has been open longer than this.
    #[serde(with = "crate::duration")]
    pub max_transaction_age: Duration,
    /// How long the engine may take to answer the health call (`SELECT 1`, spool usage); a
    /// long call or transaction holding the store makes it miss this.
    #[serde(with = "crate::duration")]
    pub answer_within: Duration,
    /// With shipping configured (`ship.target`), unhealthy when the oldest pending segment was
    /// finished longer ago than this ([`crate::ship`]).
    #[serde(with = "crate::duration")]
    pub max_ship_lag: Duration,
    /// With backup configured (`backup.targets`), unhealthy when the newest state every
    /// target holds is older than this, or the last verification failed ([`crate::backup`]).
    #[serde(with = "crate::duration")]
    pub max_backup_age: Duration,
}

impl Default for HealthConfig {
    /// 90 %, 30 s, 5 s, 1 h.
    fn default() -> Self {
        HealthConfig {
            max_disk_used_percent: 90.0,
            max_transaction_age: Duration::from_secs(30),
            answer_within: Duration::from_secs(5),
            max_ship_lag: Duration::from_secs(3600),
            max_backup_age: Duration::from_secs(300),
        }
    }
}

/// The outcome: healthy when there is no reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthReport {
    /// One line per failed check.
    pub reasons: Vec<String>,
    /// Work in progress an operator should know about that is not a failure (journals an
    /// earlier process left, being finished in the background).
    pub notes: Vec<String>,
}

impl HealthReport {
    /// True when every check passed.
    pub fn healthy(&self) -> bool {
        self.reasons.is_empty()
    }

    /// Record a failed check.
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.reasons.push(reason.into());
    }

    /// `edgestore health` and `serve`'s `/healthz`: `healthy`, or `unhealthy` and one reason per
    /// line; as JSON, the shared document form ([`edgestore::present::to_json`]). Only the host
    /// prints health, so it is rendered here rather than in the core's `present`.
    pub fn render(&self, json: bool) -> String {
        let healthy = self.healthy();
        let status = if healthy { "healthy" } else { "unhealthy" };
        if json {
            return edgestore::present::to_json(&HealthView {
                status,
                healthy,
                reasons: &self.reasons,
                notes: &self.notes,
            });
        }
        let mut out = format!("{status}\n");
        for r in &self.reasons {
            out.push_str(&format!("reason: {r}\n"));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}

/// The JSON shape of a [`HealthReport`].
#[derive(Serialize)]
struct HealthView<'a> {
    status: &'static str,
    healthy: bool,
    reasons: &'a [String],
    notes: &'a [String],
}

/// What to check besides the store itself.
#[derive(Debug, Clone)]
pub struct HealthTarget<'a> {
    /// The data directory (on the host's file system).
    pub data_dir: &'a Path,
    /// The spool's directory relative to it, if a spool is configured.
    pub spool_dir: Option<&'a str>,
    /// The open spool, if it could be opened.
    pub spool: Option<&'a AsyncSpool>,
}

/// Run every check. The file-system checks (statvfs, the write probes) block, so they run on
/// tokio's blocking pool while the engine is asked.
pub async fn check(
    store: &Store,
    target: &HealthTarget<'_>,
    config: &HealthConfig,
) -> HealthReport {
    let mut report = HealthReport::default();
    let now = now_ms();

    let data_dir = target.data_dir.to_path_buf();
    let spool_dir = target.spool_dir.map(|spool| target.data_dir.join(spool));
    let max_disk_used_percent = config.max_disk_used_percent;
    let disk = tokio::task::spawn_blocking(move || {
        disk_reasons(&data_dir, spool_dir, max_disk_used_percent)
    });

    if let Some(since) = store.transaction_open_since_ms() {
        let age = Duration::from_millis(u64::try_from(now.saturating_sub(since)).unwrap_or(0));
        if age > config.max_transaction_age {
            report.fail(format!(
                "a transaction has been open for {:.1} s (limit {:.1} s)",
                age.as_secs_f64(),
                config.max_transaction_age.as_secs_f64()
            ));
        }
    }

    match tokio::time::timeout(config.answer_within, store.engine_health()).await {
        Ok(Ok(reasons)) => report.reasons.extend(reasons),
        Ok(Err(e @ Error::CircuitOpen { .. })) => report.fail(e.to_string()),
        Ok(Err(e)) => report.fail(format!("database unreachable: {e}")),
        Err(_) => report.fail(format!(
            "the store did not answer within {:.1} s (a long call or transaction holds it)",
            config.answer_within.as_secs_f64()
        )),
    }
    if store.breaker_state() == BreakerState::Open
        && !report.reasons.iter().any(|r| r.starts_with("circuit open"))
    {
        let last = store.breaker_last_failure().unwrap_or_default();
        report.fail(format!("circuit open; last failure: {last}"));
    }

    match disk.await {
        Ok(reasons) => report.reasons.extend(reasons),
        Err(e) => report.fail(format!("disk checks did not finish: {e}")),
    }

    if let Some(spool) = target.spool {
        // Also refreshes the disk gauges for whoever exports metrics next.
        match spool.usage().await {
            Ok(u) => {
                store.metrics().set_disk_usage(&u);
                // One journal is the active segment's; more are a backlog being finished.
                if u.journals.files > 1 {
                    report.notes.push(format!(
                        "{} journals ({} bytes) waiting to be finished into segments (`spool \
                         flush` finishes them now)",
                        u.journals.files - 1,
                        u.journals.bytes
                    ));
                }
            }
            Err(e) => report.fail(format!("spool usage: {e}")),
        }
    }
    report
}

/// The blocking file-system checks: usage of the data directory's file system against
/// `max_used_percent`, then a write probe in the data directory and in the spool directory.
fn disk_reasons(data_dir: &Path, spool_dir: Option<PathBuf>, max_used_percent: f64) -> Vec<String> {
    let mut reasons = Vec::new();
    match disk_used_percent(data_dir) {
        Ok(Some(used)) if used > max_used_percent => reasons.push(format!(
            "disk {used:.1}% used (limit {max_used_percent:.1}%)"
        )),
        Ok(_) => {}
        Err(e) => reasons.push(format!("disk usage unknown: {e}")),
    }
    let probe_dirs = std::iter::once(data_dir.to_path_buf()).chain(spool_dir);
    for dir in probe_dirs {
        if let Err(e) = write_probe(&dir) {
            reasons.push(format!("{} is not writable: {e}", dir.display()));
        }
    }
    reasons
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Share of the data directory's file system in use, where the platform reports it.
pub fn disk_used_percent(dir: &Path) -> std::io::Result<Option<f64>> {
    Ok(CapDir::open(dir)?.capacity()?.map(used_percent))
}

/// Create, write, sync and remove a file in `dir`: the only reliable test of writability.
/// Each probe has a name of its own (random, created exclusively): health checks run
/// concurrently (one per `/healthz` request), and a probe left by a process killed mid-check
/// must not fail every later check, as a name made of the process id did (pid 1 in every
/// container).
pub fn write_probe(dir: &Path) -> std::io::Result<()> {
    let mut probe = tempfile::Builder::new()
        .prefix(".edgestore-probe-")
        .tempfile_in(dir)?;
    probe.write_all(b"probe")?;
    probe.as_file().sync_data()?;
    probe.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_renders_in_both_forms() {
        let mut report = HealthReport::default();
        assert_eq!(report.render(false), "healthy\n");
        report
            .notes
            .push("2 journals (3145728 bytes) waiting".into());
        assert_eq!(
            report.render(false),
            "healthy\nnote: 2 journals (3145728 bytes) waiting\n"
        );
        assert!(report.healthy());
        report.notes.clear();
        report.fail("disk 95.0% used");
        assert_eq!(report.render(false), "unhealthy\nreason: disk 95.0% used\n");
        let v: serde_json::Value = serde_json::from_str(&report.render(true)).unwrap();
        assert_eq!(v["status"], "unhealthy");
        assert_eq!(v["healthy"], false);
        assert_eq!(v["reasons"][0], "disk 95.0% used");
    }

    #[test]
    fn write_probe_fails_where_no_file_can_be_created() {
        let tmp = tempfile::tempdir().unwrap();
        write_probe(tmp.path()).unwrap();
        assert!(
            std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
            "cleaned up"
        );
        // A path that is a regular file is not a directory anyone (root included) can write in.
        let file = tmp.path().join("metrics");
        std::fs::write(&file, b"x").unwrap();
        assert!(write_probe(&file).is_err());
        assert!(write_probe(&tmp.path().join("missing")).is_err());
    }

    #[test]
    fn concurrent_probes_and_a_stale_probe_do_not_fail_each_other() {
        let tmp = tempfile::tempdir().unwrap();
        // What a process killed mid-probe leaves (the old fixed name, pid 1 in a container).
        std::fs::write(tmp.path().join(".edgestore-probe-1"), b"probe").unwrap();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        write_probe(tmp.path()).unwrap();
                    }
                });
            }
        });
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(".edgestore-probe-1")]);
    }

    #[test]
    fn reports_disk_usage_of_a_real_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let used = disk_used_percent(tmp.path()).unwrap();
        if let Some(p) = used {
            assert!((0.0..=100.0).contains(&p), "{p}");
        }
    }
}
