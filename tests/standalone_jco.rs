//! The standalone component under hosts that are not ours: jco (transpiled to JavaScript, on
//! Node.js with preview2-shim; `tests/jco/run.mjs`) and, when it is on PATH, the `wasmtime`
//! CLI. Each writes a data directory that the native core then reads, and the command entry
//! point prints exactly what `edgestore::present` prints for the same data; on a directory in
//! the `edgestore` CLI's layout it needs no flags to do so. Also: a writer killed mid-write
//! leaves a database that passes `PRAGMA integrity_check`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use edgestore::inspect::Filter;
use edgestore::layout::{DEFAULT_IDENTIFIER, DEFAULT_SPOOL_PATH};
use edgestore::model::ResourceTagsKey;
use edgestore::sql::Database;
use edgestore::{
    inspect, present, Metric, Model, Query, Reader, ResourceTags, Spool, SpoolConfig,
    SqliteDatabase, TimeRange,
};

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
    // The tables the database holds, each with the key syntax `db get` takes.
    let models = run_ok(node(data.path(), &["command", "db", "models"]));
    assert_eq!(
        models,
        present::models(
            &[present::ModelView {
                name: "item".into(),
                table: "item".into(),
                key: "ID".into(),
                columns: vec!["id".into(), "name".into()],
            }],
            false
        )
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
    assert_eq!(count, present::count("item", rows, false));
}

/// A data directory in the `edgestore` CLI's layout (spool in `metrics/` written as `agent`,
/// the database `edgestore.sqlite` with resource_tags), written through the core as the CLI
/// writes it: the standalone command under jco, with no flags at all, prints exactly what
/// `edgestore::present` prints for it, which is what the CLI prints.
#[test]
fn standalone_reads_the_cli_layout_with_no_flags() {
    let data = tempfile::tempdir().unwrap();
    let segments = {
        let spool: Spool<Metric> = Spool::open_path(
            data.path().join(DEFAULT_SPOOL_PATH),
            SpoolConfig::new(DEFAULT_IDENTIFIER),
        )
        .unwrap();
        let mut metrics = edgestore::sample::MetricGenerator::new(7, 1_700_000_000_000);
        spool.put(&metrics.batch(40)).unwrap();
        spool.flush().unwrap();
        spool.put(&metrics.batch(40)).unwrap();
        spool.flush().unwrap();
        spool.segments(TimeRange::all()).unwrap()
    };
    assert_eq!(segments.len(), 2);
    assert!(segments.iter().all(|s| s.name.starts_with("agent_")));

    let (tags, rows) = common::write_resource_tags(data.path());
    let (web, sent) = (&rows[0], &rows[2]);
    // What the CLI prints: `present` over the typed layer's reads.
    let count = present::count(ResourceTags::TABLE, 3, false);
    let line = |key: &ResourceTagsKey| {
        format!("{}\n", present::json_line(&tags.get(key).unwrap()).unwrap())
    };
    let web_line = line(&web.key());
    let node_line = line(&sent.key());
    let schema = ResourceTags::schema();
    let query = |conditions: &[&str]| {
        let mut q = Query::all();
        for c in conditions {
            q = q.filter(Filter::parse(c).unwrap().condition(&schema).unwrap());
        }
        let mut out = String::new();
        for row in tags.find_all(&q).unwrap() {
            out.push_str(&present::json_line(&row).unwrap());
            out.push('\n');
        }
        out
    };
    let unsent_prod = query(&["namespace=prod", "sent_at=null"]);
    let sent_rows = query(&["sent_at=2023-11-14T22:13:20.500Z"]);
    assert_eq!(unsent_prod.lines().count(), 2);
    assert_eq!(sent_rows, node_line);
    drop(tags);

    let cmd = |args: &[&str]| {
        let mut all = vec!["command"];
        all.extend_from_slice(args);
        run_ok(node(data.path(), &all))
    };
    assert_eq!(
        cmd(&["spool", "list", "--json"]),
        present::segments(&segments, true)
    );
    assert_eq!(cmd(&["spool", "list"]), present::segments(&segments, false));
    // --since/--until: RFC3339 or UTC milliseconds, as in the CLI.
    let second = &segments[1];
    assert_eq!(
        cmd(&["spool", "list", "--since", &second.start_ms.to_string()]),
        present::segments(
            &segments
                .iter()
                .filter(|s| s.stop_ms >= second.start_ms)
                .cloned()
                .collect::<Vec<_>>(),
            false
        )
    );
    assert_eq!(
        cmd(&["spool", "list", "--since", "2999-01-01T00:00:00Z"]),
        present::segments(&[], false)
    );
    assert_eq!(
        cmd(&["spool", "list", "--until", "1970-01-01T00:00:01Z"]),
        present::segments(&[], false)
    );
    assert_eq!(cmd(&["db", "count", "resource_tags"]), count);
    assert_eq!(
        cmd(&["db", "count", "resource_tags", "--json"]),
        present::count(ResourceTags::TABLE, 3, true)
    );
    assert_eq!(
        cmd(&["db", "get", "resource_tags", "pod/prod/web-0"]),
        web_line
    );
    assert_eq!(
        cmd(&[
            "db",
            "get",
            "resource_tags",
            "node/worker-1",
            "pod/prod/web-0"
        ]),
        format!("{node_line}{web_line}")
    );
    assert_eq!(
        cmd(&[
            "db",
            "find",
            "resource_tags",
            "--where",
            "namespace=prod",
            "--where",
            "sent_at=null"
        ]),
        unsent_prod
    );
    assert_eq!(
        cmd(&[
            "db",
            "find",
            "resource_tags",
            "--where",
            "sent_at=2023-11-14T22:13:20.500Z"
        ]),
        sent_rows
    );

    // The data directory itself is no spool directory (the database and the lock file live
    // there): refused, as by both engines of the host.
    let root = node(data.path(), &["command", "spool", "list", "--path", ""])
        .output()
        .unwrap();
    assert!(!root.status.success());
    assert!(
        String::from_utf8_lossy(&root.stderr).contains("invalid-input: spool path \"\""),
        "{}",
        String::from_utf8_lossy(&root.stderr)
    );

    // A bad key is refused with the CLI's message.
    let bad = node(
        data.path(),
        &["command", "db", "get", "resource_tags", "pod"],
    )
    .output()
    .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("bad resource_tags key \"pod\""),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // `spool ack` prints what the CLI prints, and an unknown name moves nothing.
    let unknown = node(
        data.path(),
        &[
            "command",
            "spool",
            "ack",
            &segments[0].name,
            "agent_1_2.json.br",
        ],
    )
    .output()
    .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such segment: agent_1_2.json.br"));
    assert_eq!(
        cmd(&["spool", "ack", &segments[0].name]),
        present::count("marked uploaded", 1, false)
    );
    let listed: serde_json::Value =
        serde_json::from_str(&cmd(&["spool", "list", "--json"])).unwrap();
    for s in listed.as_array().unwrap() {
        let acked = s["name"] == segments[0].name.as_str();
        let want = if acked { "uploaded" } else { "pending" };
        assert_eq!(s["state"], want, "{listed}");
    }
}
