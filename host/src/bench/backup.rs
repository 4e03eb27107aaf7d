//! Backup figures: restoring a database from a loopback S3 server against the AWS CLI copying
//! the very same objects, and what a continuous backup costs `create_many`.
//!
//! **Restore.** A SQLite database of ~1 KB rows (plain rusqlite, WAL, one index) is written
//! once, untimed, as the default database of a data directory, backed up once by
//! [`BackupRunner::backup_now`] to `moto_server` on loopback (the ship figures'
//! [`S3Server`]: same venv, isolation and measuring), then changed by [`INCREMENTS`] x
//! [`TRANSACTIONS_PER_INCREMENT`] one-row transactions with a `backup_now` after each group,
//! so a restore applies increments as well as the snapshot. Per rep, ours is a measuring child
//! (the current executable, [`CHILD_ENV`]) doing what `edgestore restore` does:
//! [`restore`] of the latest point into a fresh directory (list the generations, read the
//! manifest, download the snapshot and each increment, check every SHA-256, write the pages,
//! sync, `PRAGMA integrity_check`, move into place). The baseline is `aws s3 cp --recursive`
//! of exactly that generation's objects into a fresh directory. Both are timed as whole
//! processes, start-up included, so neither side's start-up is hidden. Every rep is checked:
//! the child must have applied every increment and transaction, the restored file must open
//! and hold every row, and the AWS CLI's directory must hold every object with every byte.
//!
//! **Overhead.** The repository figures' `create_many` through the host client on the native
//! engine ([`CreateMany::host_into`]) into a fresh store, once alone and once while a
//! [`BackupRunner`] runs continuously ([`BackupRunner::run`] on the host's runtime,
//! `backup.interval` 1 s) on the store's data directory, to a `file://` target (no moto
//! needed). The host's writing connections carry commit hooks ([`crate::commit_hooks`]), so
//! while a backup runs each commit's new log frames are read by the committing thread right
//! after it: that is part of what is timed, as are the runner's rounds sharing the cores. The
//! capturer's read transaction also keeps SQLite's passive checkpoint after a large commit
//! from copying that commit's pages, work the call does without a backup; the runner copies
//! them later (its rollover), off the committing thread, so the ratio is not the backup's
//! cost alone. After each rep the backup is restored (untimed) and must hold every row.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use edgestore::Model as _;
use edgestore::ResourceTags;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::error::{BenchError, Result};
use super::fixture::{tempdir, Host, Side};
use super::memory::CHILD_ENV;
use super::repo::{CreateMany, HostTable};
use super::ship::{isolate_aws_env, isolated_aws_var, measure, Run, S3Server, BUCKET, REGION};
use crate::backup::store::BackupTarget;
use crate::backup::{
    restore, BackupConfig, BackupRunner, BackupTargetConfig, RestoreOptions, RestoreReport,
};
use crate::metrics::Metrics;
use crate::ship::Target;

/// The child work of the restore figures.
pub const RESTORE: &str = "restore";

/// Increments the restore applies after the snapshot.
pub const INCREMENTS: u64 = 3;

/// One-row transactions in each increment.
pub const TRANSACTIONS_PER_INCREMENT: u64 = 100;

/// Where the restore workload's backup goes in the bucket.
const PREFIX: &str = "backup";

/// The database backed up and restored: the data directory's default one.
const LABEL: &str = edgestore::layout::DEFAULT_LABEL;

/// The restore workload's table.
const TABLE: &str = "items";

/// Bytes of each row's body.
const ROW_BYTES: usize = 1000;

/// Rows per transaction while the database is built.
const BUILD_BATCH: u64 = 1000;

/// The backup of a database on the loopback server, and what a restore of it must give.
pub struct RestoreWorkload {
    target: BackupTargetConfig,
    /// The generation restored.
    pub generation: String,
    /// Rows a restore must hold.
    pub rows: u64,
    /// The live database's size when it was last backed up, bytes.
    pub db_bytes: u64,
    /// Objects of the generation (snapshot, manifest, increments).
    pub objects: u64,
    /// Their bytes.
    pub object_bytes: u64,
}

impl RestoreWorkload {
    /// Build a database of about `bytes` bytes, back it up to `server` (snapshot), then add
    /// [`INCREMENTS`] increments; all untimed. The live data directory is removed at the end:
    /// only the backup is needed.
    pub fn new(host: &Host, server: &S3Server, bytes: u64) -> Result<RestoreWorkload> {
        let data = tempdir()?;
        let file = edgestore::layout::label_file(LABEL)?;
        let path = data.path().join(file);
        let mut rows = build(&path, bytes).map_err(workload_sql)?;
        let target = BackupTargetConfig {
            url: format!("s3://{BUCKET}/{PREFIX}"),
            endpoint: Some(server.endpoint()),
            region: Some(REGION.into()),
            path_style: true,
            allow_http: true,
            profile: None,
        };
        let config = BackupConfig {
            targets: vec![target.clone()],
            ..BackupConfig::default()
        };
        // This process's environment is not the test one: the client reads the isolated one.
        let client = Target::open_with_env(&target.client_config(), &isolated_aws_var)?;
        let runner = BackupRunner::with_targets(
            &config,
            data.path(),
            None,
            Vec::new(),
            vec![BackupTarget::from_target(client)],
            Metrics::new("native")?,
            false,
        )?;
        host.rt.block_on(runner.backup_now())?;
        let conn = Connection::open(&path).map_err(workload_sql)?;
        let mut body = Body::new(rows);
        for _ in 0..INCREMENTS {
            for _ in 0..TRANSACTIONS_PER_INCREMENT {
                conn.execute(INSERT, rusqlite::params![name(rows), body.next_row()])
                    .map_err(workload_sql)?;
                rows += 1;
            }
            host.rt.block_on(runner.backup_now())?;
        }
        let db_bytes = page_bytes(&conn).map_err(workload_sql)?;
        drop(conn);
        let status = runner.status();
        let db = status.databases.first();
        let (Some(generation), Some(increments)) = (
            db.and_then(|d| d.generation.clone()),
            db.map(|d| d.increments),
        ) else {
            return Err(BenchError::Check("the backup started no generation".into()));
        };
        if increments != INCREMENTS {
            return Err(BenchError::Check(format!(
                "the backup holds {increments} increments, not {INCREMENTS}"
            )));
        }
        drop(runner);
        let listing = server.objects()?;
        let (objects, object_bytes) = listing.get(PREFIX).copied().unwrap_or_default();
        if objects != 2 + INCREMENTS {
            return Err(BenchError::Check(format!(
                "s3://{BUCKET}/{PREFIX}/ holds {objects} objects, not a snapshot, its manifest \
                 and {INCREMENTS} increments"
            )));
        }
        Ok(RestoreWorkload {
            target,
            generation,
            rows,
            db_bytes,
            objects,
            object_bytes,
        })
    }

    /// Ours: a measuring child doing what `edgestore restore` does, from the loopback server
    /// into a fresh directory (removed afterwards). The child must have applied every
    /// increment and transaction, and the restored database must hold every row.
    pub fn ours(&self, server: &S3Server) -> Result<Run> {
        let to = tempdir()?;
        let job = RestoreJob {
            target: self.target.clone(),
            to: to.path().join("restored"),
        };
        let json = serde_json::to_string(&job)
            .map_err(|e| BenchError::Check(format!("encode the restore job: {e}")))?;
        let exe = std::env::current_exe().map_err(|e| BenchError::io("find the executable", e))?;
        let mut cmd = Command::new(exe);
        cmd.env(CHILD_ENV, format!("{RESTORE}:{INCREMENTS}:{json}"));
        isolate_aws_env(&mut cmd);
        let before = server.cpu();
        let run = measure(cmd, server.logs(), "restore")?;
        let server_cpu = server.cpu().saturating_sub(before);
        if !run.status.success() {
            return Err(BenchError::Check(format!(
                "the restore child failed ({}): {}{}",
                run.status, run.stdout, run.stderr
            )));
        }
        let field = |name: &str| -> Option<u64> {
            run.stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.parse().ok())
        };
        let transactions = INCREMENTS * TRANSACTIONS_PER_INCREMENT;
        let restore_us = match (field("transactions="), field("restore_us=")) {
            (Some(t), Some(us)) if t == transactions => us,
            _ => {
                return Err(BenchError::Check(format!(
                    "the restore child did not apply the {transactions} transactions: {}",
                    run.stdout
                )))
            }
        };
        let file = edgestore::layout::label_file(LABEL)?;
        check_rows(&job.to.join(file), TABLE, self.rows)?;
        Ok(Run {
            wall: run.wall,
            cpu: run.cpu,
            server_cpu,
            round: Some(Duration::from_micros(restore_us)),
        })
    }

    /// The baseline: `aws s3 cp --recursive` of the generation's objects into a fresh
    /// directory (removed afterwards), with the AWS CLI's defaults. It must succeed and the
    /// directory must hold every object with every byte.
    pub fn aws_cli(&self, server: &S3Server) -> Result<Run> {
        let to = tempdir()?;
        let mut cmd = server.aws();
        cmd.args(["s3", "cp", "--recursive", "--only-show-errors"])
            .arg(format!(
                "s3://{BUCKET}/{PREFIX}/{LABEL}/{}/",
                self.generation
            ))
            .arg(to.path());
        let before = server.cpu();
        let run = measure(cmd, server.logs(), "aws-cp-down")?;
        let server_cpu = server.cpu().saturating_sub(before);
        if !run.status.success() {
            return Err(BenchError::Check(format!(
                "aws s3 cp failed ({}): {}{}",
                run.status, run.stdout, run.stderr
            )));
        }
        let (count, bytes) = dir_size(to.path())?;
        if (count, bytes) != (self.objects, self.object_bytes) {
            return Err(BenchError::Check(format!(
                "aws s3 cp wrote {count} files ({bytes} bytes), not the {} objects ({} bytes)",
                self.objects, self.object_bytes
            )));
        }
        Ok(Run {
            wall: run.wall,
            cpu: run.cpu,
            server_cpu,
            round: None,
        })
    }
}

/// A row of the restore workload.
const INSERT: &str = "INSERT INTO items (name, body) VALUES (?1, ?2)";

/// Row `i`'s name (the indexed column).
fn name(i: u64) -> String {
    format!("item-{i:09}")
}

/// A failure of the restore workload's own SQLite calls (not the product's).
fn workload_sql(e: rusqlite::Error) -> BenchError {
    BenchError::Check(format!("the restore workload's database: {e}"))
}

/// Write the restore workload's database at `path`: ~1 KB rows until it holds `bytes` bytes.
/// The rows it holds.
fn build(path: &Path, bytes: u64) -> rusqlite::Result<u64> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Untimed: a crash cannot happen that matters here.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, body BLOB NOT NULL);
         CREATE INDEX items_name ON items (name);",
    )?;
    let mut rows = 0u64;
    let mut body = Body::new(0);
    loop {
        let size = page_bytes(&conn)?;
        if size >= bytes {
            break;
        }
        // Smaller batches near the end, so the size lands close to the one asked for.
        let batch = ((bytes - size) / ROW_BYTES as u64 + 1).min(BUILD_BATCH);
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare(INSERT)?;
            for _ in 0..batch {
                insert.execute(rusqlite::params![name(rows), body.next_row()])?;
                rows += 1;
            }
        }
        tx.commit()?;
    }
    Ok(rows)
}

/// The database's size as its connection sees it (the log included).
fn page_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )
}

/// Row bodies: deterministic bytes without structure (SplitMix64), so pages hold what a
/// blob column would.
struct Body(u64);

impl Body {
    fn new(seed: u64) -> Body {
        Body(seed)
    }

    fn next_row(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ROW_BYTES + 8);
        while out.len() < ROW_BYTES {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out.truncate(ROW_BYTES);
        out
    }
}

/// The database at `path` must open and `table` must hold `want` rows.
fn check_rows(path: &Path, table: &str, want: u64) -> Result<()> {
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    let got: u64 = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|conn| {
            conn.query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get(0))
        })
        .map_err(|e| {
            BenchError::Check(format!(
                "the restored {} cannot be counted: {e}",
                path.display()
            ))
        })?;
    if got != want {
        return Err(BenchError::Check(format!(
            "the restored {} holds {got} rows in {table}, not {want}",
            path.display()
        )));
    }
    Ok(())
}

/// Files and bytes under `dir`, recursively.
fn dir_size(dir: &Path) -> Result<(u64, u64)> {
    let (mut count, mut bytes) = (0, 0);
    let entries =
        std::fs::read_dir(dir).map_err(|e| BenchError::io(format!("list {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BenchError::io(format!("list {}", dir.display()), e))?;
        let meta = entry
            .metadata()
            .map_err(|e| BenchError::io(format!("stat {}", entry.path().display()), e))?;
        if meta.is_dir() {
            let (c, b) = dir_size(&entry.path())?;
            count += c;
            bytes += b;
        } else {
            count += 1;
            bytes += meta.len();
        }
    }
    Ok((count, bytes))
}

/// What the restore child does: where from, and into which directory.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestoreJob {
    target: BackupTargetConfig,
    to: PathBuf,
}

/// The restore child's work (`spec`: the JSON [`RestoreJob`]): the target as `edgestore
/// restore` opens it (from this process's environment), the latest point of the default
/// database into the job's directory; it fails unless all `increments` were applied.
pub(super) fn restore_child(increments: u64, spec: &str) -> Result<()> {
    let job: RestoreJob = serde_json::from_str(spec)
        .map_err(|e| BenchError::Check(format!("bad restore job {spec}: {e}")))?;
    let host = Host::new()?;
    let target = BackupTarget::open(&job.target)?;
    let options = RestoreOptions {
        label: LABEL.to_owned(),
        at_ms: None,
        to: job.to,
        spool: None,
        keys: Vec::new(),
    };
    let t = Instant::now();
    let report: RestoreReport = host.rt.block_on(restore(&target, &options))?;
    let elapsed = t.elapsed();
    if report.increments != increments || report.stopped.is_some() {
        return Err(BenchError::Check(format!(
            "restored {} of {increments} increments{}",
            report.increments,
            report.stopped.map(|s| format!(": {s}")).unwrap_or_default()
        )));
    }
    println!(
        "increments={} transactions={} bytes={} restore_us={}",
        report.increments,
        report.transactions,
        report.bytes,
        elapsed.as_micros()
    );
    Ok(())
}

/// `create_many` of `cm`'s rows into a fresh store on the native engine, timed; with
/// `backup`, a [`BackupRunner`] runs continuously on the store's data directory during the
/// timed call, and the backup must hold every row afterwards.
pub fn create_many(host: &Host, cm: &CreateMany, backup: bool) -> Result<Duration> {
    let dir = tempdir()?;
    let table = HostTable::open(host, Side::Native, dir.path())?;
    if !backup {
        let elapsed = cm.host_into(host, &table);
        let closed = table.close(host);
        let elapsed = elapsed?;
        closed?;
        return Ok(elapsed);
    }
    let targets = tempdir()?;
    let config = BackupConfig {
        targets: vec![BackupTargetConfig::new(format!(
            "file://{}",
            targets.path().display()
        ))],
        interval: Duration::from_secs(1),
        ..BackupConfig::default()
    };
    let runner = BackupRunner::open(
        &config,
        dir.path(),
        None,
        Vec::new(),
        Metrics::new("native")?,
        false,
    )?;
    let elapsed = create_many_backed_up(host, cm, &table, &runner);
    // What the store still had to write is in the backup too.
    let closed = table.close(host);
    let last = host.rt.block_on(runner.backup_now());
    let elapsed = elapsed?;
    closed?;
    last?;
    // The backup holds every row: it was a working backup that ran, not a failing one.
    let target = runner
        .targets()
        .first()
        .ok_or_else(|| BenchError::Check("the backup has no target".into()))?;
    let to = tempdir()?;
    let report = host.rt.block_on(restore(
        target,
        &RestoreOptions {
            label: LABEL.to_owned(),
            at_ms: None,
            to: to.path().to_path_buf(),
            spool: None,
            keys: Vec::new(),
        },
    ))?;
    check_rows(
        &report.path,
        &ResourceTags::schema().table,
        cm.rows.len() as u64,
    )?;
    Ok(elapsed)
}

/// The timed `create_many` with `runner` running; the runner stops right after it.
fn create_many_backed_up(
    host: &Host,
    cm: &CreateMany,
    table: &HostTable,
    runner: &BackupRunner,
) -> Result<Duration> {
    // Untimed: the generation starts (the empty table's snapshot) and the commit hooks now
    // have a capture to tell.
    let status = host.rt.block_on(runner.backup_now())?;
    if status
        .databases
        .first()
        .and_then(|d| d.generation.as_ref())
        .is_none()
    {
        return Err(BenchError::Check(
            "the backup started no generation: the store's database is not where it looks".into(),
        ));
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = runner.clone();
    let task = host.rt.spawn(async move {
        running
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let elapsed = cm.host_into(host, table);
    let _ = stop.send(());
    host.rt
        .block_on(task)
        .map_err(|e| BenchError::Check(format!("the backup task failed: {e}")))?;
    let failed = runner
        .status()
        .databases
        .iter()
        .find_map(|d| d.last_error.clone());
    if let Some(e) = failed {
        return Err(BenchError::Check(format!(
            "the backup failed during create_many: {e}"
        )));
    }
    elapsed
}
