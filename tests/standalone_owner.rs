//! One owner per data directory, as the standalone component keeps it (run under jco on
//! Node.js, and under the `wasmtime` CLI when it is on PATH): inspection commands never recover
//! a journal or write anything and name the owner on stderr; mutating commands take the lock
//! file `.edgestore.lock` (its existence is the lock inside WASI), are refused with nothing
//! touched while another holds it, and remove it when they end.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use edgestore::owner::{LockKind, OwnerRecord, LOCK_FILE};
use edgestore::spool::SegmentInfo;
use edgestore::{
    present, Creator, ResourceTags, Spool, SpoolConfig, SqlStorage, SqliteDatabase, TimeRange,
    Timestamp,
};

use common::standalone::{node, standalone_component};

/// Rows in the finished segment, and in the journal left behind.
const FINISHED: usize = 30;
const JOURNALED: usize = 20;

/// Every file under `dir` (relative path -> bytes; directories as `None`).
fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn journals(spool: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".journal"))
        .collect();
    out.sort();
    out
}

fn doc(i: usize) -> serde_json::Value {
    serde_json::json!({"timestamp": "2024-01-01T00:00:00Z", "i": i})
}

/// A data directory with a spool in `metrics`: one finished segment, and a journal holding
/// rows a writer accepted but never finished (dropping a spool does not finish its journal).
/// Returns the finished segments.
fn spool_with_journal(data: &Path) -> Vec<SegmentInfo> {
    let spool: Spool<serde_json::Value> =
        Spool::open_path(data.join("metrics"), SpoolConfig::new("native")).unwrap();
    spool
        .put(&(0..FINISHED).map(doc).collect::<Vec<_>>())
        .unwrap();
    spool.flush().unwrap();
    let finished = spool.segments(TimeRange::all()).unwrap();
    spool
        .put(
            &(FINISHED..FINISHED + JOURNALED)
                .map(doc)
                .collect::<Vec<_>>(),
        )
        .unwrap();
    spool.sync().unwrap();
    drop(spool);
    assert_eq!(
        journals(&data.join("metrics")).len(),
        1,
        "a journal is left"
    );
    finished
}

fn serve_record() -> OwnerRecord {
    OwnerRecord {
        pid: Some(4242),
        command: "edgestore serve".into(),
        since_ms: 1_700_000_000_000,
        admin: None,
        lock: LockKind::Os,
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(mut cmd: Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .expect("run the standalone component (Node.js 20+ / wasmtime)");
    Run {
        ok: status.success(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A host that runs the standalone command: jco on Node.js always, the `wasmtime` CLI when it
/// is on PATH.
#[derive(Debug, Clone, Copy)]
enum Host {
    Jco,
    Wasmtime,
}

impl Host {
    fn all() -> Vec<Host> {
        if Command::new("wasmtime").arg("--version").output().is_ok() {
            vec![Host::Jco, Host::Wasmtime]
        } else {
            eprintln!("wasmtime CLI not on PATH: jco only");
            vec![Host::Jco]
        }
    }

    /// `edgestore-standalone ARGS...` with `data` preopened as `/data`.
    fn run(self, data: &Path, args: &[&str]) -> Run {
        match self {
            Host::Jco => jco(data, args),
            Host::Wasmtime => {
                let mut cmd = Command::new("wasmtime");
                cmd.arg("run")
                    .arg("--dir")
                    .arg(format!("{}::/data", data.display()))
                    .arg(standalone_component())
                    .args(args);
                run(cmd)
            }
        }
    }
}

/// The standalone command under jco.
fn jco(data: &Path, args: &[&str]) -> Run {
    let mut all = vec!["command"];
    all.extend_from_slice(args);
    run(node(data, &all))
}

/// (a) Inspection leaves a journal another writer may still be appending to exactly as it
/// is, prints what `present` prints, and says on stderr how many rows wait in journals: for
/// the next owner when nobody owns the directory, naming the owner when one does.
#[test]
fn inspection_leaves_the_journal_and_names_the_owner() {
    for host in Host::all() {
        let data = tempfile::tempdir().unwrap();
        let finished = spool_with_journal(data.path());
        let before = snapshot(data.path());

        let list = host.run(data.path(), &["spool", "list", "--path", "metrics"]);
        assert!(list.ok, "{host:?}: {}", list.stderr);
        assert_eq!(list.stdout, present::segments(&finished, false), "{host:?}");
        assert!(
            list.stderr.contains(&format!("hold {JOURNALED} rows"))
                && list.stderr.contains("next owner"),
            "{host:?}: {}",
            list.stderr
        );
        assert_eq!(snapshot(data.path()), before, "{host:?}: list wrote");

        let cat = host.run(data.path(), &["spool", "cat", "--path", "metrics"]);
        assert!(cat.ok, "{host:?}: {}", cat.stderr);
        assert_eq!(
            cat.stdout.lines().count(),
            FINISHED,
            "{host:?}: finished rows only"
        );
        let usage = host.run(
            data.path(),
            &["spool", "usage", "--path", "metrics", "--json"],
        );
        assert!(usage.ok, "{host:?}: {}", usage.stderr);
        let u: serde_json::Value = serde_json::from_str(&usage.stdout).unwrap();
        assert_eq!(u["journals"]["files"], 1, "{host:?}: {u}");
        assert_eq!(snapshot(data.path()), before, "{host:?}: cat/usage wrote");

        // Beside an owner: the same output, and the owner named with its journals' rows.
        std::fs::write(data.path().join(LOCK_FILE), serve_record().to_bytes()).unwrap();
        let before = snapshot(data.path());
        let list = host.run(data.path(), &["spool", "list", "--path", "metrics"]);
        assert!(list.ok, "{host:?}: {}", list.stderr);
        assert_eq!(list.stdout, present::segments(&finished, false), "{host:?}");
        assert!(
            list.stderr.contains(&format!(
                "data directory /data is owned by {}",
                serve_record().describe()
            )) && list
                .stderr
                .contains(&format!("its journals hold {JOURNALED} rows")),
            "{host:?}: {}",
            list.stderr
        );
        let usage = host.run(data.path(), &["spool", "usage", "--path", "metrics"]);
        assert!(usage.ok, "{host:?}: {}", usage.stderr);
        assert!(
            usage.stderr.contains("edgestore serve (pid 4242"),
            "{host:?}"
        );
        assert_eq!(snapshot(data.path()), before, "{host:?}: inspection wrote");
    }
}

/// (b) While `.edgestore.lock` exists (a record, or an empty file), `ack`, `purge` and
/// `flush` fail at once naming the holder and the file to remove, and touch nothing.
#[test]
fn mutations_are_refused_while_another_holds_the_lock() {
    let data = tempfile::tempdir().unwrap();
    let finished = spool_with_journal(data.path());
    let lock = data.path().join(LOCK_FILE);
    for host in Host::all() {
        for (content, who) in [
            (serve_record().to_bytes(), serve_record().describe()),
            (Vec::new(), "an unknown holder".to_owned()),
        ] {
            std::fs::write(&lock, &content).unwrap();
            let before = snapshot(data.path());
            for args in [
                vec!["spool", "ack", "--path", "metrics", &finished[0].name],
                vec!["spool", "purge", "--path", "metrics"],
                vec!["spool", "flush", "--path", "metrics"],
            ] {
                let r = host.run(data.path(), &args);
                assert!(!r.ok, "{host:?} {args:?}: succeeded beside an owner");
                assert!(r.stdout.is_empty(), "{host:?} {args:?}: {}", r.stdout);
                assert!(
                    r.stderr.contains("data directory /data is owned by")
                        && r.stderr.contains(&who)
                        && r.stderr
                            .contains("if it is no longer running remove /data/.edgestore.lock"),
                    "{host:?} {args:?}: {}",
                    r.stderr
                );
                assert_eq!(snapshot(data.path()), before, "{host:?} {args:?} wrote");
            }
        }
    }
}

/// (c) Without a lock file, `flush` takes ownership, recovers the journal into a segment (and
/// prints that segment), and removes the lock file when it ends; a refused `ack` of an unknown segment removes it too.
#[test]
fn flush_owns_recovers_and_releases() {
    for host in Host::all() {
        let data = tempfile::tempdir().unwrap();
        let finished = spool_with_journal(data.path());
        let r = host.run(data.path(), &["spool", "flush", "--path", "metrics"]);
        assert!(r.ok, "{host:?}: {}", r.stderr);
        assert!(
            !data.path().join(LOCK_FILE).exists(),
            "{host:?}: lock file left"
        );
        assert!(
            journals(&data.path().join("metrics")).is_empty(),
            "{host:?}: journal not recovered"
        );
        let spool: Spool<serde_json::Value> =
            Spool::open_path(data.path().join("metrics"), SpoolConfig::new("native")).unwrap();
        let segments = spool.segments(TimeRange::all()).unwrap();
        // It prints what it finished: the journal's segment.
        let new: Vec<SegmentInfo> = segments
            .iter()
            .filter(|s| !finished.iter().any(|f| f.name == s.name))
            .cloned()
            .collect();
        assert_eq!(new.len(), 1, "{host:?}");
        assert_eq!(new[0].rows, Some(JOURNALED as u64), "{host:?}");
        assert_eq!(r.stdout, present::segments(&new, false), "{host:?}");
        let rows: u64 = segments.iter().filter_map(|s| s.rows).sum();
        assert_eq!(rows, (FINISHED + JOURNALED) as u64, "{host:?}");
        drop(spool);

        // A failing mutation releases the lock too.
        let r = host.run(
            data.path(),
            &["spool", "ack", "--path", "metrics", "nope_1_2.json.br"],
        );
        assert!(!r.ok, "{host:?}: acked an unknown segment");
        assert!(
            !data.path().join(LOCK_FILE).exists(),
            "{host:?}: lock file left after a failure"
        );
    }
}

/// `verify` beside an owner checks read-only: a bad segment is reported, left in place, and
/// the command fails; without an owner it is quarantined as before.
#[test]
fn verify_beside_an_owner_leaves_bad_segments_in_place() {
    let data = tempfile::tempdir().unwrap();
    let finished = spool_with_journal(data.path());
    let bad = data.path().join("metrics").join(&finished[0].name);
    let mut bytes = std::fs::read(&bad).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&bad, &bytes).unwrap();
    std::fs::write(data.path().join(LOCK_FILE), serve_record().to_bytes()).unwrap();
    let before = snapshot(data.path());

    let r = jco(data.path(), &["spool", "verify", "--path", "metrics"]);
    assert!(!r.ok, "verify passed a bad segment");
    assert!(r.stdout.contains("1 segments checked"), "{}", r.stdout);
    assert!(
        r.stderr.contains(&finished[0].name) && r.stderr.contains("left in place"),
        "{}",
        r.stderr
    );
    assert_eq!(
        snapshot(data.path()),
        before,
        "verify beside an owner wrote"
    );

    // As the owner, it quarantines (and recovers the journal, as every owner does).
    std::fs::remove_file(data.path().join(LOCK_FILE)).unwrap();
    let r = jco(data.path(), &["spool", "verify", "--path", "metrics"]);
    assert!(
        r.stdout.contains("1 quarantined"),
        "{}: {}",
        r.stdout,
        r.stderr
    );
    assert!(!bad.exists(), "the bad segment was not quarantined");
    assert!(!data.path().join(LOCK_FILE).exists(), "lock file left");
}

/// `db` commands read a database a native writer has open (WAL, uncheckpointed frames)
/// without writing it: the database and its WAL keep their bytes.
#[test]
fn db_reads_beside_a_native_writer_without_writing() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("edgestore.sqlite");
    let db: Arc<dyn edgestore::Database> =
        Arc::new(SqliteDatabase::open(file.to_str().unwrap()).unwrap());
    let tags: SqlStorage<ResourceTags, edgestore::model::ResourceTagsKey> =
        SqlStorage::open(db.clone()).unwrap();
    for i in 0..25 {
        tags.create(&ResourceTags::new(
            "pod",
            &format!("web-{i}"),
            Some("prod"),
            Timestamp(1_700_000_000_000),
        ))
        .unwrap();
    }
    let wal = data.path().join("edgestore.sqlite-wal");
    assert!(wal.exists(), "the native writer keeps a WAL");
    let read = |p: &Path| std::fs::read(p).unwrap();
    let (db_before, wal_before) = (read(&file), read(&wal));

    let r = jco(data.path(), &["db", "count", "resource_tags"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout, present::count("resource_tags", 25, false));
    assert_eq!(read(&file), db_before, "the database file was written");
    assert_eq!(read(&wal), wal_before, "the WAL was written");
    assert!(
        !data.path().join("edgestore.sqlite.lock").exists(),
        "the reader's dot-file lock was left"
    );
    drop(tags);
    drop(db);

    // Once the writer closed (WAL checkpointed and removed), the reader still writes nothing
    // to the database file (SQLite may leave an empty `-wal`: see `local.rs`).
    let db_before = read(&file);
    let r = jco(data.path(), &["db", "count", "resource_tags"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout, present::count("resource_tags", 25, false));
    assert_eq!(read(&file), db_before, "the database file was written");
    if wal.exists() {
        assert!(read(&wal).is_empty(), "the reader wrote to the WAL");
    }

    // A label without a database is not created.
    let r = jco(data.path(), &["db", "models", "--label", "other"]);
    assert!(!r.ok);
    assert!(r.stderr.contains("no database"), "{}", r.stderr);
    assert!(!data.path().join("other.sqlite").exists());
}

/// An encrypted spool stays encrypted whoever finishes it: the standalone component, given no
/// key, finishes a journal the native core left into an age segment (the spool's
/// `.recipients`), which the reference `age` CLI decrypts; reading it without an identity is
/// `key-missing` and quarantines nothing.
#[test]
fn the_standalone_component_writes_the_same_encrypted_format() {
    let age = Command::new("age").arg("--version").output();
    if age.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the age CLI is required under CI (./test.sh installs it)"
        );
        eprintln!("SKIPPED: the age CLI is not installed");
        return;
    }
    let host = Host::Jco;
    let data = tempfile::tempdir().unwrap();
    let (identity, recipient) = edgestore::spool::generate_identity("test");
    let key = data.path().join("key.txt");
    std::fs::write(&key, identity).unwrap();
    let mut config = SpoolConfig::new("native");
    config.keys.recipients = vec![recipient];
    let spool: Spool<serde_json::Value> =
        Spool::open_path(data.path().join("metrics"), config).unwrap();
    spool
        .put(&(0..JOURNALED).map(doc).collect::<Vec<_>>())
        .unwrap();
    spool.sync().unwrap();
    drop(spool);

    let r = host.run(data.path(), &["spool", "flush", "--path", "metrics"]);
    assert!(r.ok, "{}", r.stderr);
    let segments: Vec<_> = std::fs::read_dir(data.path().join("metrics"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".json.br.age"))
        .collect();
    assert_eq!(segments.len(), 1, "{:?}", r.stdout);
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; age -d -i '{}' '{}' | brotli -d | jq length",
            key.display(),
            segments[0].display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        JOURNALED.to_string()
    );

    let r = host.run(data.path(), &["spool", "cat", "--path", "metrics"]);
    assert!(!r.ok);
    assert!(r.stderr.contains("key-missing"), "{}", r.stderr);
    // With the identity in EDGESTORE_KEY it reads them.
    let mut cmd = node(
        data.path(),
        &["command", "spool", "cat", "--path", "metrics"],
    );
    cmd.env("EDGESTORE_KEY", std::fs::read_to_string(&key).unwrap());
    let r = run(cmd);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), JOURNALED);
    let quarantined = std::fs::read_dir(data.path().join("metrics").join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(quarantined, 0);
}

/// SQLite compiled to WebAssembly has no SQLCipher: given a key, the standalone component
/// refuses to write a database rather than write it in plaintext, and a database the edgestore
/// CLI encrypted is `key-missing` to it, never "corrupt".
#[test]
fn the_standalone_component_refuses_database_encryption_and_names_an_encrypted_database() {
    let data = tempfile::tempdir().unwrap();
    let (identity, _) = edgestore::spool::generate_identity("test");
    let mut cmd = node(data.path(), &["roundtrip"]);
    cmd.env("EDGESTORE_KEY", &identity);
    let r = run(cmd);
    assert!(!r.ok, "{}", r.stdout);
    assert!(
        r.stderr.contains("cannot encrypt databases"),
        "{}",
        r.stderr
    );
    assert!(!data.path().join("edgestore.sqlite").exists());

    if !edgestore::sql::sqlite::cipher::available() {
        return;
    }
    let path = data.path().join("edgestore.sqlite");
    let mut options = edgestore::SqliteOptions::new(path.to_str().unwrap());
    options.keys = vec![edgestore::sql::sqlite::DatabaseKey::from_bytes([7; 32])];
    let db = SqliteDatabase::open_with(options).unwrap();
    edgestore::sql::with_writer(&db, |c| c.execute("CREATE TABLE resource_tags(x)", &[])).unwrap();
    drop(db);
    let r = jco(data.path(), &["db", "count", "resource_tags"]);
    assert!(!r.ok, "{}", r.stdout);
    assert!(r.stderr.contains("key-missing"), "{}", r.stderr);
    let r = run(node(data.path(), &["roundtrip"]));
    assert!(!r.ok, "{}", r.stdout);
    assert!(r.stderr.contains("is encrypted"), "{}", r.stderr);
}
