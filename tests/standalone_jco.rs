//! The standalone component under hosts that are not ours: jco (transpiled to JavaScript, on
//! Node.js with preview2-shim; `tests/jco/run.mjs`) and, when it is on PATH, the `wasmtime`
//! CLI. Each writes a data directory that the native core then reads, and the command entry
//! point prints exactly what `edgestore::present` prints for the same data. Also: a writer
//! killed mid-write leaves a database that passes `PRAGMA integrity_check`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use edgestore::sql::Database;
use edgestore::{inspect, present, Spool, SpoolConfig, SqliteDatabase, TimeRange};

use common::standalone::node;

fn run_ok(mut cmd: Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .expect("run node (install Node.js 20+ and `npm ci --prefix tests/jco`)");
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "{cmd:?} failed ({status}): {stderr}");
    String::from_utf8(stdout).unwrap()
}

fn native_segments(data: &Path) -> Vec<edgestore::spool::SegmentInfo> {
    let spool: Spool<serde_json::Value> =
        Spool::open_path(data.join("metrics"), SpoolConfig::new("native")).unwrap();
    spool.segments(TimeRange::all()).unwrap()
}

fn native_db(data: &Path) -> Arc<SqliteDatabase> {
    Arc::new(SqliteDatabase::open(data.join("edgestore.sqlite").to_str().unwrap()).unwrap())
}

fn on_native<T>(data: &Path, f: impl Fn(&dyn edgestore::Connection) -> edgestore::Result<T>) -> T {
    let db = native_db(data);
    let mut out = None;
    db.reader(&mut |c| {
        out = Some(f(c)?);
        Ok(())
    })
    .unwrap();
    out.unwrap()
}

/// jco writes a repository and a spool and reads them back; the native core reads the same
/// directory; the command entry point under jco prints what `present` prints natively.
#[test]
fn jco_round_trip_native_reads_and_command_output_matches() {
    let data = tempfile::tempdir().unwrap();
    let out = run_ok(node(data.path(), &["roundtrip"]));
    let got: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(got["created"], 100, "{got}");
    assert_eq!(got["count"], 100, "{got}");
    assert_eq!(
        got["get"],
        serde_json::json!([{"tag": "integer", "val": 42}, {"tag": "text", "val": "item-42"}])
    );
    assert_eq!(got["segments"], 1, "{got}");
    assert_eq!(got["spoolRows"], 50, "{got}");
    assert_eq!(got["spoolSame"], true, "{got}");

    // The native core reads what jco's host wrote.
    assert_eq!(on_native(data.path(), |c| inspect::count(c, "item")), 100);
    let segments = native_segments(data.path());
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].rows, Some(50));

    // The command entry point prints byte-for-byte what `present` prints natively.
    let list = run_ok(node(
        data.path(),
        &["command", "spool", "list", "--path", "metrics"],
    ));
    assert_eq!(list, present::segments(&segments, false));
    let list_json = run_ok(node(
        data.path(),
        &["command", "spool", "list", "--path", "metrics", "--json"],
    ));
    assert_eq!(list_json, present::segments(&segments, true));
    let row = run_ok(node(data.path(), &["command", "db", "get", "item", "42"]));
    assert_eq!(row, "{\"id\":42,\"name\":\"item-42\"}\n");
    let models = run_ok(node(data.path(), &["command", "db", "models"]));
    assert_eq!(
        models,
        present::recorded_models(&on_native(data.path(), inspect::models), false)
    );
    let cat = run_ok(node(
        data.path(),
        &[
            "command",
            "spool",
            "cat",
            "--path",
            "metrics",
            &segments[0].name,
        ],
    ));
    assert_eq!(cat.lines().count(), 50);
    assert!(cat
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));

    // A failing command fails the run (and says why on stderr).
    let failed = node(data.path(), &["command", "db", "get", "item", "9999"])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("no row in item"));
}

/// The stock `wasmtime` CLI (when installed) runs the command entry point on a directory the
/// native core wrote, and prints what `present` prints.
#[test]
fn wasmtime_cli_runs_the_command_when_installed() {
    if Command::new("wasmtime").arg("--version").output().is_err() {
        eprintln!("wasmtime CLI not on PATH: skipped (jco covers the non-our host in CI)");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    {
        let spool: Spool<serde_json::Value> =
            Spool::open_path(data.path().join("metrics"), SpoolConfig::new("native")).unwrap();
        spool
            .put(&[serde_json::json!({"timestamp": "2024-01-01T00:00:00Z", "v": 1})])
            .unwrap();
        spool.flush().unwrap();
    }
    let out = Command::new("wasmtime")
        .arg("run")
        .arg("--dir")
        .arg(format!("{}::/data", data.path().display()))
        .arg(common::standalone::standalone_component())
        .args(["spool", "list", "--path", "metrics"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        present::segments(&native_segments(data.path()), false)
    );
}

/// A Node.js process writing through the standalone component, killed (SIGKILL) mid-write,
/// leaves a database that opens natively and passes `PRAGMA integrity_check` with whole batches
/// only; the standalone component names the stale lock, and opens it again once it is removed.
#[test]
fn killed_writer_leaves_a_sound_database() {
    let data = tempfile::tempdir().unwrap();
    let mut child = node(data.path(), &["write-forever"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the writer did not start");
    // Let it commit more batches, then kill it in the middle of one.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();

    let check = on_native(data.path(), |c| c.query("PRAGMA integrity_check", &[]));
    assert_eq!(
        check,
        vec![vec![edgestore::model::Value::Text("ok".into())]],
        "integrity_check after the kill"
    );
    let rows = on_native(data.path(), |c| inspect::count(c, "item"));
    assert!(
        rows >= 500 && rows % 500 == 0,
        "committed batches only: {rows}"
    );
    // The killed instance left its dot-file lock: the component refuses to open, and says
    // which lock to remove; once removed, it opens the database and sees the same rows.
    let lock = data.path().join("edgestore.sqlite.lock");
    assert!(lock.exists(), "the WASI build locks with a dot-file");
    let refused = node(data.path(), &["command", "db", "count", "item"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("busy") && why.contains("edgestore.sqlite.lock"),
        "{why}"
    );
    std::fs::remove_dir(&lock).unwrap();
    let count = run_ok(node(data.path(), &["command", "db", "count", "item"]));
    assert_eq!(count, format!("{rows}\n"));
}
