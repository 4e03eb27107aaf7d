//! Restoring a database to a point in time, and the content digest that verifies a backup.
//!
//! A restore picks the latest generation whose snapshot is no later than the time asked for,
//! copies its snapshot, then writes each increment's pages in order, transaction by
//! transaction, stopping before the first transaction stamped after that time. Every object
//! is checked (the snapshot against its manifest's SHA-256, each increment against its own)
//! before any of it is used; the result must pass `PRAGMA integrity_check` before it is moved
//! into place, under the destination's name, in a destination no store owns.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use edgestore::sql::sqlite::cipher::{self, DatabaseKey};
use rusqlite::Connection;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::increment::{self, Increment, Manifest};
use super::store::BackupTarget;
use super::BackupError;

/// The name prefix of a restore's scratch file in the destination.
const SCRATCH_PREFIX: &str = ".restore-";

/// What to restore, where.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The database's label.
    pub label: String,
    /// The point in time (ms since the epoch, UTC); `None`: the latest.
    pub at_ms: Option<i64>,
    /// The destination directory: the database is written there under its usual file name.
    pub to: PathBuf,
    /// Also bring back the spool segments copied with the generation (`backup.spool`) into
    /// this directory under `to` (the spool's path), those finished by the point in time.
    pub spool: Option<String>,
    /// The database keys of an encrypted database (current first; older ones open a backup
    /// taken before a rotation); empty for a plain one.
    pub keys: Vec<DatabaseKey>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// The target restored from.
    pub target: String,
    /// The label.
    pub label: String,
    /// The generation used.
    pub generation: String,
    /// The time of its snapshot.
    pub snapshot_at_ms: i64,
    /// Increments applied (wholly or up to the time asked for).
    pub increments: u64,
    /// Transactions applied after the snapshot.
    pub transactions: u64,
    /// The time of the restored state: the last transaction applied (or the snapshot).
    pub restored_at_ms: i64,
    /// The restored database file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Why it stopped before the time asked for, when it did (a missing increment).
    pub stopped: Option<String>,
    /// Spool segments brought back (with `spool`).
    pub spool_segments: u64,
}

fn io(what: impl Into<String>) -> impl Fn(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io {
        what: what.clone(),
        source,
    }
}

/// The generation to restore `at_ms` from: the latest that started no later.
pub fn pick(generations: &[Manifest], at_ms: Option<i64>) -> Option<&Manifest> {
    generations
        .iter()
        .filter(|g| at_ms.is_none_or(|t| g.at_ms <= t))
        .max_by(|a, b| (a.at_ms, &a.generation).cmp(&(b.at_ms, &b.generation)))
}

/// Build the database as of `options.at_ms` in a scratch file inside `dir`; the file and
/// the report (its `path` is the scratch file's).
pub async fn materialize(
    target: &BackupTarget,
    label: &str,
    at_ms: Option<i64>,
    dir: &Path,
    keys: &[DatabaseKey],
) -> Result<(tempfile::NamedTempFile, RestoreReport), BackupError> {
    let generations = target.generations(label).await?;
    let Some(manifest) = pick(&generations, at_ms) else {
        let earliest = generations.iter().map(|g| g.at_ms).min();
        let when = at_ms.map_or_else(String::new, |t| {
            format!(" at or before {}", super::runner::rfc3339(t))
        });
        let earliest = earliest.map_or_else(
            || " (no finished generation)".to_owned(),
            |e| format!(" (the earliest is {})", super::runner::rfc3339(e)),
        );
        return Err(BackupError::NotFound(format!(
            "backup target {}: no backup of database {label:?}{when}{earliest}",
            target.name()
        )));
    };
    let generation = manifest.generation.clone();
    let snapshot = target.get(label, &generation, increment::SNAPSHOT).await?;
    let snapshot_key = target.describe(label, &generation, increment::SNAPSHOT);
    let sha = crate::digest::sha256_hex(&snapshot);
    if snapshot.len() as u64 != manifest.bytes || sha != manifest.sha256 {
        return Err(BackupError::Damaged {
            target: target.name().to_owned(),
            key: snapshot_key,
            reason: format!(
                "{} bytes with sha256 {sha}; its manifest says {} bytes, {}",
                snapshot.len(),
                manifest.bytes,
                manifest.sha256
            ),
        });
    }
    let scratch = tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempfile_in(dir)
        .map_err(io(format!("create a scratch file in {}", dir.display())))?;
    let mut file = OpenOptions::new()
        .write(true)
        .open(scratch.path())
        .map_err(io("open the scratch file"))?;
    file.write_all(&snapshot)
        .map_err(io("write the snapshot"))?;
    let page_size = u64::from(manifest.page_size);
    let mut report = RestoreReport {
        target: target.name().to_owned(),
        label: label.to_owned(),
        generation: generation.clone(),
        snapshot_at_ms: manifest.at_ms,
        increments: 0,
        transactions: 0,
        restored_at_ms: manifest.at_ms,
        path: scratch.path().to_path_buf(),
        bytes: 0,
        stopped: None,
        spool_segments: 0,
    };
    let seqs = target.increments(label, &generation).await?;
    'increments: for (expected, seq) in (1u64..).zip(seqs) {
        if seq != expected {
            report.stopped = Some(format!(
                "increment {} of generation {generation} is missing on {}; restored to the last point before it",
                increment::increment_name(expected),
                target.name()
            ));
            break;
        }
        let name = increment::increment_name(seq);
        let bytes = target.get(label, &generation, &name).await?;
        let inc = Increment::decode(&bytes).map_err(|e| BackupError::Damaged {
            target: target.name().to_owned(),
            key: target.describe(label, &generation, &name),
            reason: e.0,
        })?;
        if inc.seq != seq || inc.page_size != manifest.page_size {
            return Err(BackupError::Damaged {
                target: target.name().to_owned(),
                key: target.describe(label, &generation, &name),
                reason: format!(
                    "it says increment {} with {}-byte pages; expected {seq} with {}",
                    inc.seq, inc.page_size, manifest.page_size
                ),
            });
        }
        let mut from = 0usize;
        let mut applied_any = false;
        for commit in &inc.commits {
            if at_ms.is_some_and(|t| commit.at_ms > t) {
                if applied_any {
                    report.increments += 1;
                }
                break 'increments;
            }
            let through = commit.frames_through as usize;
            for (page, data) in &inc.frames[from..through] {
                file.seek(SeekFrom::Start((u64::from(*page) - 1) * page_size))
                    .map_err(io("write a page"))?;
                file.write_all(data).map_err(io("write a page"))?;
            }
            file.set_len(u64::from(commit.pages) * page_size)
                .map_err(io("set the database size"))?;
            from = through;
            applied_any = true;
            report.transactions += 1;
            report.restored_at_ms = commit.at_ms;
        }
        report.increments += 1;
    }
    file.sync_all().map_err(io("sync the restored database"))?;
    drop(file);
    check_integrity(scratch.path(), keys)?;
    report.bytes = std::fs::metadata(scratch.path()).map_or(0, |m| m.len());
    Ok((scratch, report))
}

/// Open a restored database, keyed when it is encrypted.
pub fn open_restored(path: &Path, keys: &[DatabaseKey]) -> Result<Connection, BackupError> {
    let conn = Connection::open(path)
        .map_err(|e| BackupError::Verify(format!("the restored database does not open: {e}")))?;
    cipher::apply(&conn, path, keys)
        .map_err(|e| BackupError::Verify(format!("the restored database does not open: {e}")))?;
    Ok(conn)
}

/// `PRAGMA integrity_check` must say `ok`.
pub fn check_integrity(path: &Path, keys: &[DatabaseKey]) -> Result<(), BackupError> {
    let conn = open_restored(path, keys)?;
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| BackupError::Verify(format!("integrity check failed to run: {e}")))?;
    if rows != ["ok"] {
        return Err(BackupError::Verify(format!(
            "the restored database fails its integrity check: {}",
            rows.join("; ")
        )));
    }
    Ok(())
}

/// Restore `options.label` as of `options.at_ms` from `target` into `options.to`, which must
/// not be owned by a store and must not hold the database file already.
pub async fn restore(
    target: &BackupTarget,
    options: &RestoreOptions,
) -> Result<RestoreReport, BackupError> {
    let to = &options.to;
    std::fs::create_dir_all(to).map_err(io(format!("create {}", to.display())))?;
    let dir = cap_std::fs::Dir::open_ambient_dir(to, cap_std::ambient_authority())
        .map_err(io(format!("open {}", to.display())))?;
    // Held while writing: no store can start in the destination meanwhile.
    let _lock = crate::client::owner::DirLock::acquire(&dir, to, "edgestore restore")
        .map_err(|e| BackupError::Refused(format!("restore into {}: {e}", to.display())))?;
    // A restore killed midway left its scratch file: ours to remove, under the lock.
    if let Ok(entries) = std::fs::read_dir(to) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(SCRATCH_PREFIX)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let file = edgestore::layout::label_file(&options.label)
        .map_err(|e| BackupError::Refused(e.to_string()))?;
    let dest = to.join(&file);
    for existing in [dest.clone(), to.join(format!("{file}-wal"))] {
        if existing.exists() {
            return Err(BackupError::Refused(format!(
                "restore into {}: {} exists; restore into an empty directory (nothing is overwritten)",
                to.display(),
                existing.display()
            )));
        }
    }
    let (scratch, mut report) =
        materialize(target, &options.label, options.at_ms, to, &options.keys).await?;
    scratch
        .persist_noclobber(&dest)
        .map_err(|e| io(format!("move the restored database to {}", dest.display()))(e.error))?;
    if let Ok(d) = std::fs::File::open(to) {
        let _ = d.sync_all();
    }
    report.path = dest;
    // The restored directory's audit log starts with where its data came from.
    if let Ok(log) = crate::audit::AuditLog::open(
        to,
        crate::audit::DEFAULT_MAX_BYTES,
        "host",
        "edgestore restore",
    ) {
        let _ = log.append(&crate::audit::AuditEvent {
            op: "restore".into(),
            target: format!(
                "{} generation {} as of {}",
                report.target,
                report.generation,
                super::runner::rfc3339(report.restored_at_ms)
            ),
            count: Some(report.transactions),
            ..crate::audit::AuditEvent::default()
        });
    }
    if let Some(spool) = &options.spool {
        let dir = to.join(spool);
        report.spool_segments = restore_spool(
            target,
            &options.label,
            &report.generation,
            options.at_ms,
            &dir,
        )
        .await?;
    }
    Ok(report)
}

/// Bring back the segments copied with `generation` that were finished by `at_ms` (all
/// without it) into `dir`, each with its sidecar; an existing file is left as it is. The
/// number of segments written.
async fn restore_spool(
    target: &BackupTarget,
    label: &str,
    generation: &str,
    at_ms: Option<i64>,
    dir: &Path,
) -> Result<u64, BackupError> {
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let names = target.spool_objects(label, generation).await?;
    let mut written = 0;
    for name in names.iter().filter(|n| !n.ends_with(".sum")) {
        let Some(segment) = edgestore::spool::SegmentName::parse(name) else {
            continue;
        };
        if at_ms.is_some_and(|t| segment.stop_ms > t) || dir.join(name).exists() {
            continue;
        }
        let sum_name = format!("{name}.sum");
        let folder = increment::SPOOL_DIR;
        if names.contains(&sum_name) {
            let sum = target
                .get(label, generation, &format!("{folder}/{sum_name}"))
                .await?;
            write_new(&dir.join(&sum_name), &sum)?;
        }
        let bytes = target
            .get(label, generation, &format!("{folder}/{name}"))
            .await?;
        // The segment last: a segment in the spool always has its sidecar beside it.
        write_new(&dir.join(name), &bytes)?;
        written += 1;
    }
    Ok(written)
}

/// Write `bytes` to `path` through a temporary and a rename, synced.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempfile_in(dir)
        .map_err(io(format!("create a file in {}", dir.display())))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io(format!("write {}", path.display())))?;
    tmp.persist_noclobber(path)
        .map_err(|e| io(format!("move into place {}", path.display()))(e.error))?;
    Ok(())
}

/// Row counts and an order-independent content hash per table: what a verified backup must
/// match. The hash sums (wrapping) the first 16 bytes of each row's SHA-256 over its values.
pub fn digest(conn: &Connection) -> Result<Vec<(String, u64, String)>, rusqlite::Error> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let mut stmt = conn.prepare(&format!("SELECT * FROM {quoted}"))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        let (mut count, mut sum) = (0u64, 0u128);
        while let Some(row) = rows.next()? {
            let mut h = Sha256::new();
            for i in 0..columns {
                match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => h.update([0u8]),
                    rusqlite::types::ValueRef::Integer(v) => {
                        h.update([1u8]);
                        h.update(v.to_le_bytes());
                    }
                    rusqlite::types::ValueRef::Real(v) => {
                        h.update([2u8]);
                        h.update(v.to_le_bytes());
                    }
                    rusqlite::types::ValueRef::Text(t) => {
                        h.update([3u8]);
                        h.update((t.len() as u64).to_le_bytes());
                        h.update(t);
                    }
                    rusqlite::types::ValueRef::Blob(b) => {
                        h.update([4u8]);
                        h.update((b.len() as u64).to_le_bytes());
                        h.update(b);
                    }
                }
            }
            let d = h.finalize();
            let mut first = [0u8; 16];
            first.copy_from_slice(&d[..16]);
            sum = sum.wrapping_add(u128::from_le_bytes(first));
            count += 1;
        }
        out.push((table, count, format!("{sum:032x}")));
    }
    Ok(out)
}
