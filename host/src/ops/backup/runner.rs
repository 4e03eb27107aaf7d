//! The continuous backup of a data directory's databases: generations started and rotated,
//! new transactions captured and uploaded to every target in order, old generations deleted,
//! the latest backup verified by restoring it, and a status for health and metrics.
//!
//! Each round captures what is new (reading the log's 32-byte header when nothing is: no
//! request, no work) and uploads it, oldest first, to every target; an object reaches the next
//! target only in the same order, and the queue keeps it until all have confirmed. A target
//! that stays down lets the queue grow to [`MAX_QUEUED_BYTES`]; past that the queue is dropped
//! and a new generation starts once the targets answer again (a restore never sees a gap).

use edgestore::sql::sqlite::DatabaseKey;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use super::capture::{now_ms, Capturer};
use super::increment::{self, Manifest};
use super::restore;
use super::store::BackupTarget;
use super::{BackupConfig, BackupError};
use crate::metrics::Metrics;

/// The owner's backup status in the data directory, for `edgestore health` in another
/// process.
pub const STATUS_FILE: &str = ".edgestore-backup.json";
/// How often the status file is rewritten while nothing but its time changes.
const STATUS_EVERY_MS: i64 = 30_000;

/// Bytes waiting for a target past which the queue is dropped for a new generation later.
pub const MAX_QUEUED_BYTES: u64 = 256 << 20;
/// Increments captured at most in one round (a busy log comes in several).
const MAX_INCREMENTS_PER_ROUND: usize = 64;

/// RFC 3339 in UTC with milliseconds, for messages.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// One object waiting to reach every target.
#[derive(Debug, Clone)]
struct Queued {
    generation: String,
    name: String,
    bytes: Bytes,
    kind: &'static str,
    /// Targets that already confirmed it (by index).
    done: Vec<bool>,
}

/// One database's backup state.
struct Database {
    label: String,
    path: PathBuf,
    capturer: Option<Capturer>,
    generation: Option<(String, i64)>,
    next_seq: u64,
    queue: VecDeque<Queued>,
    needs_snapshot: bool,
    /// When the last capture started: every transaction committed before is captured.
    captured_at_ms: i64,
    /// With `backup.spool` (first database only): the spool directory, and the segments
    /// already queued in this generation.
    spool: Option<(PathBuf, std::collections::BTreeSet<String>)>,
    /// The database keys when the databases are encrypted (current first).
    keys: Vec<DatabaseKey>,
}

/// What one database's backup stands at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// The label.
    pub label: String,
    /// The current generation.
    pub generation: Option<String>,
    /// Increments in it so far.
    pub increments: u64,
    /// The time of the newest state every target holds.
    pub backed_up_at_ms: Option<i64>,
    /// Objects waiting to reach every target.
    pub queued: usize,
    /// The last failure, cleared by a round that succeeds.
    pub last_error: Option<String>,
    /// The last verification: when, and its outcome.
    pub verified_at_ms: Option<i64>,
    /// The last verification's result (`ok`, or why not).
    pub verify_result: Option<String>,
}

/// The whole backup's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The targets' URLs.
    pub targets: Vec<String>,
    /// Per database.
    pub databases: Vec<DatabaseStatus>,
}

/// What one verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The label.
    pub label: String,
    /// The target checked.
    pub target: String,
    /// The generation restored.
    pub generation: String,
    /// The time of the state restored.
    pub restored_at_ms: i64,
    /// Tables compared.
    pub tables: usize,
    /// Rows compared.
    pub rows: u64,
    /// `ok`, or how the restored database differs.
    pub result: String,
}

impl VerifyReport {
    /// Whether the restored database matched.
    pub fn ok(&self) -> bool {
        self.result == "ok"
    }
}

struct Inner {
    config: BackupConfig,
    data_dir: PathBuf,
    spool_dir: Option<PathBuf>,
    targets: Vec<BackupTarget>,
    databases: Vec<Arc<Mutex<Database>>>,
    status: Mutex<BackupStatus>,
    /// What the status file last said (errors and verification) and when it was written.
    saved: Mutex<Option<(String, i64)>>,
    metrics: Metrics,
    /// The database keys (encrypted databases), for opening restored copies.
    keys: Vec<DatabaseKey>,
    /// One round at a time.
    rounds: tokio::sync::Mutex<()>,
    report: bool,
}

/// Backs up a data directory's databases to the configured targets. Clones share everything.
#[derive(Clone)]
pub struct BackupRunner {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BackupRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupRunner")
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BackupRunner {
    /// A runner for `config` over the databases in `data_dir`; `spool_dir` (absolute) is
    /// the spool whose pending segments each snapshot records; `keys` the database keys when
    /// the databases are encrypted (snapshots and increments then hold only ciphertext). No
    /// request is sent yet.
    pub fn open(
        config: &BackupConfig,
        data_dir: &Path,
        spool_dir: Option<PathBuf>,
        keys: Vec<DatabaseKey>,
        metrics: Metrics,
        report: bool,
    ) -> Result<BackupRunner, BackupError> {
        config
            .validate()
            .map_err(|e| BackupError::Refused(e.to_string()))?;
        let targets = config
            .targets
            .iter()
            .map(BackupTarget::open)
            .collect::<Result<Vec<_>, _>>()?;
        BackupRunner::with_targets(config, data_dir, spool_dir, keys, targets, metrics, report)
    }

    /// A runner over already built targets (tests: in memory).
    pub fn with_targets(
        config: &BackupConfig,
        data_dir: &Path,
        spool_dir: Option<PathBuf>,
        keys: Vec<DatabaseKey>,
        targets: Vec<BackupTarget>,
        metrics: Metrics,
        report: bool,
    ) -> Result<BackupRunner, BackupError> {
        let mut databases = Vec::new();
        for (i, label) in config.databases.iter().enumerate() {
            let file = edgestore::layout::label_file(label)
                .map_err(|e| BackupError::Refused(e.to_string()))?;
            databases.push(Arc::new(Mutex::new(Database {
                label: label.clone(),
                path: data_dir.join(file),
                capturer: None,
                generation: None,
                next_seq: 1,
                queue: VecDeque::new(),
                needs_snapshot: true,
                captured_at_ms: 0,
                spool: spool_dir
                    .as_ref()
                    .filter(|_| config.spool && i == 0)
                    .map(|dir| (dir.clone(), std::collections::BTreeSet::new())),
                keys: keys.clone(),
            })));
        }
        let status = BackupStatus {
            targets: targets.iter().map(|t| t.name().to_owned()).collect(),
            databases: config
                .databases
                .iter()
                .map(|label| DatabaseStatus {
                    label: label.clone(),
                    ..DatabaseStatus::default()
                })
                .collect(),
        };
        Ok(BackupRunner {
            inner: Arc::new(Inner {
                config: config.clone(),
                data_dir: data_dir.to_path_buf(),
                spool_dir,
                targets,
                databases,
                status: Mutex::new(status),
                saved: Mutex::new(None),
                metrics,
                keys,
                rounds: tokio::sync::Mutex::new(()),
                report,
            }),
        })
    }

    /// The targets.
    pub fn targets(&self) -> &[BackupTarget] {
        &self.inner.targets
    }

    /// The status now.
    pub fn status(&self) -> BackupStatus {
        lock(&self.inner.status).clone()
    }

    fn set_status(&self, index: usize, f: impl FnOnce(&mut DatabaseStatus)) {
        let mut status = lock(&self.inner.status);
        if let Some(s) = status.databases.get_mut(index) {
            f(s);
        }
    }

    /// Start a new generation for every database at the next round.
    pub fn rotate(&self) {
        for db in &self.inner.databases {
            lock(db).needs_snapshot = true;
        }
    }

    /// One round: capture what is new in every database and upload it to every target.
    /// `Err` carries the first failure (the status has each database's).
    pub async fn backup_now(&self) -> Result<BackupStatus, BackupError> {
        let _round = self.inner.rounds.lock().await;
        let mut first_error = None;
        for (index, db) in self.inner.databases.iter().enumerate() {
            let result = self.round(index, db).await;
            let failed = result.as_ref().err().map(ToString::to_string);
            if failed.is_some() {
                self.inner.metrics.backup_failure();
            }
            self.set_status(index, |s| s.last_error = failed.clone());
            if let (Err(e), None) = (result, &first_error) {
                first_error = Some(e);
            }
        }
        self.refresh_age();
        self.save_status();
        match first_error {
            Some(e) => Err(e),
            None => Ok(self.status()),
        }
    }

    async fn round(&self, index: usize, db: &Arc<Mutex<Database>>) -> Result<(), BackupError> {
        let spool_dir = self.inner.spool_dir.clone();
        let db2 = db.clone();
        tokio::task::spawn_blocking(move || capture_into_queue(&db2, spool_dir.as_deref()))
            .await
            .map_err(|e| BackupError::Refused(format!("the capture task failed: {e}")))??;
        self.upload(db).await?;
        let (generation, increments, captured) = {
            let d = lock(db);
            (
                d.generation.clone(),
                d.next_seq.saturating_sub(1),
                d.captured_at_ms,
            )
        };
        self.set_status(index, |s| {
            s.generation = generation.map(|g| g.0);
            s.increments = increments;
            s.queued = 0;
            s.backed_up_at_ms = Some(captured);
        });
        Ok(())
    }

    /// Upload the queue, in order, to every target; what a target refused stays queued.
    async fn upload(&self, db: &Arc<Mutex<Database>>) -> Result<(), BackupError> {
        let label = lock(db).label.clone();
        loop {
            let Some(item) = lock(db).queue.front().cloned() else {
                return Ok(());
            };
            let mut done = item.done.clone();
            let mut failure = None;
            for (i, target) in self.inner.targets.iter().enumerate() {
                if done.get(i).copied().unwrap_or(false) {
                    continue;
                }
                match target
                    .put(&label, &item.generation, &item.name, item.bytes.clone())
                    .await
                {
                    Ok(()) => {
                        if let Some(d) = done.get_mut(i) {
                            *d = true;
                        }
                        self.inner
                            .metrics
                            .backup_bytes(item.kind, item.bytes.len() as u64);
                    }
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            let mut d = lock(db);
            if let Some(front) = d.queue.front_mut() {
                front.done = done;
            }
            if let Some(e) = failure {
                let queued: u64 = d.queue.iter().map(|q| q.bytes.len() as u64).sum();
                if queued > MAX_QUEUED_BYTES {
                    // Too much to hold: drop it; a new generation starts when targets answer.
                    d.queue.clear();
                    d.needs_snapshot = true;
                }
                return Err(e);
            }
            d.queue.pop_front();
        }
    }

    /// Write the status file when errors or verification changed, or its time is old.
    fn save_status(&self) {
        let status = self.status();
        let signature: String = status
            .databases
            .iter()
            .map(|d| format!("{:?}{:?}{:?}", d.last_error, d.verify_result, d.generation))
            .collect();
        let now = now_ms();
        let mut saved = lock(&self.inner.saved);
        let due = match saved.as_ref() {
            Some((sig, at)) => *sig != signature || now - at >= STATUS_EVERY_MS,
            None => true,
        };
        if !due {
            return;
        }
        let path = self.inner.data_dir.join(STATUS_FILE);
        let tmp = self
            .inner
            .data_dir
            .join(format!("{STATUS_FILE}.{}.tmp", std::process::id()));
        let written = serde_json::to_vec(&status)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        match written {
            Ok(()) => *saved = Some((signature, now)),
            Err(e) if self.inner.report => {
                eprintln!("edgestore backup: cannot record the backup status: {e}")
            }
            Err(_) => {}
        }
    }

    /// Refresh the backup-age gauge, for an exporter between rounds.
    pub fn refresh_metrics(&self) {
        self.refresh_age();
    }

    fn refresh_age(&self) {
        let status = self.status();
        let now = now_ms();
        let oldest = status
            .databases
            .iter()
            .map(|d| d.backed_up_at_ms.map_or(0, |t| now.saturating_sub(t)))
            .max()
            .unwrap_or(0);
        self.inner
            .metrics
            .set_backup_age(Duration::from_millis(u64::try_from(oldest).unwrap_or(0)));
    }

    /// Delete generations whose successor started more than `backup.retention` ago, on every
    /// target. The newest generation always stays.
    pub async fn apply_retention(&self) -> Result<usize, BackupError> {
        let cutoff = now_ms().saturating_sub(
            i64::try_from(self.inner.config.retention.as_millis()).unwrap_or(i64::MAX),
        );
        let mut deleted = 0;
        for db in &self.inner.databases {
            let label = lock(db).label.clone();
            for target in &self.inner.targets {
                let generations = target.generations(&label).await?;
                for pair in generations.windows(2) {
                    if pair[1].at_ms < cutoff {
                        target
                            .delete_generation(&label, &pair[0].generation)
                            .await?;
                        deleted += 1;
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// Capture everything up to now with writers held off for a moment, upload it, then
    /// restore the latest point from every target into a scratch directory and compare it
    /// with the live database at exactly that point (integrity check, row counts, content).
    pub async fn verify(&self) -> Result<Vec<VerifyReport>, BackupError> {
        let _round = self.inner.rounds.lock().await;
        let mut reports = Vec::new();
        for (index, db) in self.inner.databases.iter().enumerate() {
            let db2 = db.clone();
            let spool_dir = self.inner.spool_dir.clone();
            // The live digest at the captured point, taken while the read holds that point.
            let live = tokio::task::spawn_blocking(move || -> Result<_, BackupError> {
                capture_into_queue(&db2, spool_dir.as_deref())?;
                let mut d = lock(&db2);
                let seq = d.next_seq;
                let Database {
                    capturer,
                    generation,
                    queue,
                    next_seq,
                    path,
                    ..
                } = &mut *d;
                let Some(capturer) = capturer.as_mut() else {
                    return Err(BackupError::Database {
                        path: path.clone(),
                        message: "not captured".into(),
                    });
                };
                if let Some(inc) = capturer.capture_exact(seq)? {
                    if let Some((g, _)) = generation.as_ref() {
                        let bytes = Bytes::from(inc.encode());
                        queue.push_back(Queued {
                            generation: g.clone(),
                            name: increment::increment_name(seq),
                            bytes,
                            kind: "increment",
                            done: Vec::new(),
                        });
                        *next_seq += 1;
                    }
                }
                let digest =
                    restore::digest(capturer.reader()).map_err(|e| BackupError::Database {
                        path: path.clone(),
                        message: format!("digest: {e}"),
                    })?;
                Ok(digest)
            })
            .await
            .map_err(|e| BackupError::Refused(format!("the verify task failed: {e}")))??;
            self.upload(db).await?;
            let label = lock(db).label.clone();
            for target in &self.inner.targets {
                let report = verify_one(target, &label, &live, &self.inner.keys).await;
                let report = match report {
                    Ok(r) => r,
                    Err(e) => VerifyReport {
                        label: label.clone(),
                        target: target.name().to_owned(),
                        generation: String::new(),
                        restored_at_ms: 0,
                        tables: 0,
                        rows: 0,
                        result: e.to_string(),
                    },
                };
                let ok = report.ok();
                let result = report.result.clone();
                self.set_status(index, |s| {
                    s.verified_at_ms = Some(now_ms());
                    s.verify_result = Some(if ok {
                        "ok".into()
                    } else {
                        format!("{}: {result}", report.target)
                    });
                });
                self.inner.metrics.set_backup_verified(ok);
                reports.push(report);
            }
        }
        self.save_status();
        Ok(reports)
    }

    /// Health reasons: a failing backup, a last good backup older than `max_age`, a failed
    /// verification.
    pub fn health(&self, max_age: Duration) -> Vec<String> {
        health_reasons(&self.status(), max_age, now_ms())
    }

    /// Run rounds until `stop` resolves: every `backup.interval`, a new generation every
    /// `backup.snapshotInterval` (then retention), a verification every
    /// `backup.verifyInterval`. Failures are printed once per change when reporting.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let config = &self.inner.config;
        let mut last_snapshot = Instant::now();
        let mut last_verify = Instant::now();
        let mut last_error: Option<String> = None;
        let mut delay = Duration::ZERO;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(delay) => {}
            }
            if last_snapshot.elapsed() >= config.snapshot_interval {
                self.rotate();
                last_snapshot = Instant::now();
            }
            let mut outcome = self.backup_now().await.map(|_| ());
            if outcome.is_ok() && last_verify.elapsed() >= config.verify_interval {
                last_verify = Instant::now();
                outcome = match self.verify().await {
                    Ok(reports) => match reports.iter().find(|r| !r.ok()) {
                        Some(r) => Err(BackupError::Verify(format!(
                            "verification against {} failed: {}",
                            r.target, r.result
                        ))),
                        None => Ok(()),
                    },
                    Err(e) => Err(e),
                };
                if outcome.is_ok() {
                    let _ = self.apply_retention().await;
                }
            }
            let message = outcome.as_ref().err().map(ToString::to_string);
            if self.inner.report && message != last_error {
                match &message {
                    Some(m) => eprintln!("edgestore backup: {m}"),
                    None => eprintln!("edgestore backup: backing up works again"),
                }
            }
            delay = if message.is_some() {
                (config.interval * 4).min(Duration::from_secs(60))
            } else {
                config.interval
            };
            last_error = message;
        }
        // A last round, so a clean stop leaves the targets current.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.backup_now()).await;
    }
}

/// Health reasons from a status: a failing backup, a newest backed-up state older than
/// `max_age`, a failed verification.
pub fn health_reasons(status: &BackupStatus, max_age: Duration, now: i64) -> Vec<String> {
    let max_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    let mut reasons = Vec::new();
    for d in &status.databases {
        if let Some(e) = &d.last_error {
            reasons.push(format!("backup of database {:?} fails: {e}", d.label));
        }
        if let Some(t) = d.backed_up_at_ms {
            if now.saturating_sub(t) > max_ms {
                reasons.push(format!(
                    "backup of database {:?}: the newest backup is {} s old (health.maxBackupAge {} s)",
                    d.label,
                    now.saturating_sub(t) / 1000,
                    max_age.as_secs()
                ));
            }
        }
        if let Some(result) = d.verify_result.as_ref().filter(|r| *r != "ok") {
            reasons.push(format!(
                "backup of database {:?} failed verification: {result}",
                d.label
            ));
        }
    }
    reasons
}

/// The status the data directory's owner last recorded, if any.
pub fn read_status(data_dir: &Path) -> Option<BackupStatus> {
    let bytes = std::fs::read(data_dir.join(STATUS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Start a generation if one is due, else capture what is new, into the queue.
fn capture_into_queue(
    db: &Arc<Mutex<Database>>,
    spool_dir: Option<&Path>,
) -> Result<(), BackupError> {
    let mut d = lock(db);
    let started = now_ms();
    if d.capturer.is_none() && !d.path.exists() {
        // No database yet: nothing to back up, nothing wrong.
        d.captured_at_ms = started;
        return Ok(());
    }
    d.captured_at_ms = started;
    if d.needs_snapshot || d.capturer.is_none() {
        start_generation(&mut d, spool_dir)?;
        return Ok(());
    }
    for _ in 0..MAX_INCREMENTS_PER_ROUND {
        let seq = d.next_seq;
        let Some(capturer) = d.capturer.as_mut() else {
            break;
        };
        let captured = match capturer.capture(seq) {
            Ok(c) => c,
            Err(BackupError::NeedSnapshot(_)) => {
                start_generation(&mut d, spool_dir)?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Some(inc) = captured else {
            break;
        };
        let Some((generation, _)) = d.generation.clone() else {
            break;
        };
        d.queue.push_back(Queued {
            generation,
            name: increment::increment_name(seq),
            bytes: Bytes::from(inc.encode()),
            kind: "increment",
            done: Vec::new(),
        });
        d.next_seq += 1;
    }
    queue_spool(&mut d)
}

/// With `backup.spool`: queue the pending segments (and their sidecars) not yet copied in this
/// generation, after the generation's own objects.
fn queue_spool(d: &mut Database) -> Result<(), BackupError> {
    let Some((generation, _)) = d.generation.clone() else {
        return Ok(());
    };
    let Some((dir, copied)) = d.spool.as_mut() else {
        return Ok(());
    };
    let pending = crate::ops::ship::status::list_pending(dir).map_err(|e| BackupError::Io {
        what: format!("list the pending segments in {}", dir.display()),
        source: e,
    })?;
    let mut queued = Vec::new();
    for p in pending {
        if copied.contains(&p.name) {
            continue;
        }
        let read = |name: &str| std::fs::read(dir.join(name));
        let (segment, sidecar) = match (read(&p.name), read(&format!("{}.sum", p.name))) {
            (Ok(s), Ok(c)) => (s, Some(c)),
            (Ok(s), Err(e)) if e.kind() == std::io::ErrorKind::NotFound => (s, None),
            // Shipped or purged meanwhile: nothing to keep.
            (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => continue,
            (Err(e), _) | (_, Err(e)) => {
                return Err(BackupError::Io {
                    what: format!("read the segment {}", p.name),
                    source: e,
                })
            }
        };
        // The sidecar first: a segment on the target always has its checksum beside it.
        if let Some(sum) = sidecar {
            queued.push((format!("{}/{}.sum", increment::SPOOL_DIR, p.name), sum));
        }
        queued.push((format!("{}/{}", increment::SPOOL_DIR, p.name), segment));
        copied.insert(p.name);
    }
    for (name, bytes) in queued {
        d.queue.push_back(Queued {
            generation: generation.clone(),
            name,
            bytes: Bytes::from(bytes),
            kind: "spool",
            done: Vec::new(),
        });
    }
    Ok(())
}

/// A fresh snapshot as a new generation: its objects go to the queue (snapshot, then
/// manifest); what was still queued of the old generation stays ahead of it.
fn start_generation(d: &mut Database, spool_dir: Option<&Path>) -> Result<(), BackupError> {
    // The old generation first gets what was committed up to now, so it ends where the new
    // one starts (a restore between the two finds every transaction).
    if let (Some((old, _)), Some(capturer)) = (d.generation.clone(), d.capturer.as_mut()) {
        let mut seq = d.next_seq;
        let mut tail = Vec::new();
        loop {
            match capturer.capture(seq) {
                Ok(Some(inc)) => {
                    tail.push(Queued {
                        generation: old.clone(),
                        name: increment::increment_name(seq),
                        bytes: Bytes::from(inc.encode()),
                        kind: "increment",
                        done: Vec::new(),
                    });
                    seq += 1;
                }
                // Cannot be continued (page size changed): the snapshot covers it.
                Ok(None) | Err(BackupError::NeedSnapshot(_)) => break,
                Err(e) => return Err(e),
            }
        }
        d.queue.extend(tail);
        d.next_seq = seq;
    }
    let snapshot = match d.capturer.as_mut() {
        Some(c) => c.snapshot()?,
        None => {
            let (capturer, snapshot) = Capturer::start(&d.path, &d.keys)?;
            d.capturer = Some(capturer);
            snapshot
        }
    };
    let generation = increment::generation_name(snapshot.at_ms);
    let pending_segments = spool_dir
        .and_then(|dir| crate::ops::ship::status::list_pending(dir).ok())
        .map(|list| list.into_iter().map(|p| p.name).collect())
        .unwrap_or_default();
    let file = d
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let manifest = Manifest {
        format: 1,
        label: d.label.clone(),
        file,
        generation: generation.clone(),
        at_ms: snapshot.at_ms,
        page_size: snapshot.page_size,
        bytes: snapshot.bytes.len() as u64,
        sha256: crate::digest::sha256_hex(&snapshot.bytes),
        pending_segments,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io {
        what: "encode the manifest".into(),
        source: std::io::Error::other(e),
    })?;
    d.queue.push_back(Queued {
        generation: generation.clone(),
        name: increment::SNAPSHOT.into(),
        bytes: Bytes::from(snapshot.bytes),
        kind: "snapshot",
        done: Vec::new(),
    });
    d.queue.push_back(Queued {
        generation: generation.clone(),
        name: increment::MANIFEST.into(),
        bytes: Bytes::from(manifest_bytes),
        kind: "snapshot",
        done: Vec::new(),
    });
    d.generation = Some((generation, snapshot.at_ms));
    d.next_seq = 1;
    d.needs_snapshot = false;
    if let Some((_, copied)) = d.spool.as_mut() {
        copied.clear();
    }
    queue_spool(d)
}

/// Restore the latest point of `label` from `target` into a scratch directory and compare.
async fn verify_one(
    target: &BackupTarget,
    label: &str,
    live: &[(String, u64, String)],
    keys: &[DatabaseKey],
) -> Result<VerifyReport, BackupError> {
    let scratch = tempfile::tempdir().map_err(|e| BackupError::Io {
        what: "create a scratch directory".into(),
        source: e,
    })?;
    let (file, report) = restore::materialize(target, label, None, scratch.path(), keys).await?;
    let conn = restore::open_restored(file.path(), keys)?;
    let restored = restore::digest(&conn)
        .map_err(|e| BackupError::Verify(format!("digest of the restored database: {e}")))?;
    let result = if restored == live {
        "ok".to_owned()
    } else {
        let differ: Vec<String> = live
            .iter()
            .map(|(t, n, h)| {
                let other = restored.iter().find(|(rt, _, _)| rt == t);
                match other {
                    None => format!("table {t} is missing"),
                    Some((_, rn, _)) if rn != n => format!("table {t} has {rn} rows, live {n}"),
                    Some((_, _, rh)) if rh != h => format!("table {t} differs in content"),
                    Some(_) => String::new(),
                }
            })
            .filter(|s| !s.is_empty())
            .chain(
                restored
                    .iter()
                    .filter(|(t, _, _)| !live.iter().any(|(lt, _, _)| lt == t))
                    .map(|(t, _, _)| format!("table {t} is not in the live database")),
            )
            .collect();
        format!("the restored database differs: {}", differ.join("; "))
    };
    Ok(VerifyReport {
        label: label.to_owned(),
        target: target.name().to_owned(),
        generation: report.generation,
        restored_at_ms: report.restored_at_ms,
        tables: live.len(),
        rows: live.iter().map(|(_, n, _)| n).sum(),
        result,
    })
}
