//! One owner per data directory, through the built `edgestore` binary on both engines: an
//! operator inspects a running `serve` from a second terminal without losing a row, mutations
//! from a second process are applied through the owner's admin socket (or refused, exit 2,
//! naming the owner, when it serves none), a second `serve` is refused at once, and a SIGKILLed
//! owner leaves no stale lock and no lost row.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{edgestore, run, run_with_input, signal, terminate, text, Serving, ENGINES};
use edgestore::owner::{OwnerRecord, LOCK_FILE};
use edgestore::sample::MetricGenerator;
use edgestore::{Spool, SpoolConfig, TimeRange};

/// JSON lines of `n` generated metrics.
fn metric_lines(n: usize, seed: u64) -> Vec<String> {
    MetricGenerator::new(seed, 1_700_000_000_000)
        .batch(n)
        .iter()
        .map(|m| serde_json::to_string(m).unwrap())
        .collect()
}

/// The id of every row in the finished segments of `data`'s spool, read by the core directly
/// (after the owner stopped).
fn segment_ids(data: &Path) -> Vec<String> {
    let spool: Spool<edgestore::Metric> =
        Spool::open_path(data.join("metrics"), SpoolConfig::new("agent")).unwrap();
    let mut reader = spool.read_range(TimeRange::all()).unwrap();
    let mut ids = Vec::new();
    loop {
        let batch = reader.next(10_000).unwrap();
        if batch.is_empty() {
            return ids;
        }
        ids.extend(batch.into_iter().map(|m| m.id));
    }
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Wait until an inspecting `spool list` says the owner's journals hold `rows` rows.
fn wait_for_journal_rows(data: &Path, engine: &str, rows: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = run(edgestore(data, engine).args(["spool", "list"]));
        assert_ok("spool list", &out);
        if text(&out.stderr).contains(&format!("journals hold {rows} rows")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the journal never held {rows} rows: {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn inspecting_a_running_serve_loses_no_row() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut cmd = edgestore(&data, engine);
        cmd.env("EDGESTORE_STORAGE_MAX_RECORDS", "5000");
        let mut serve = Serving::start(cmd, &[]);
        let pid = serve.child.id();

        // 30,000 rows, 300 lines every 100 ms, from a feeder thread.
        let lines = metric_lines(30_000, 7);
        let mut stdin = serve.child.stdin.take().expect("stdin");
        let feed = lines.clone();
        let feeder = std::thread::spawn(move || {
            for chunk in feed.chunks(300) {
                let mut block = chunk.join("\n");
                block.push('\n');
                stdin.write_all(block.as_bytes()).unwrap();
                stdin.flush().unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
            stdin
        });

        // Meanwhile, every 0.5 s, everything an operator inspects with.
        let mut rounds = 0;
        let mut saw_owner = false;
        while !feeder.is_finished() || rounds < 2 {
            for args in [
                &["spool", "list"][..],
                &["spool", "usage"],
                &["spool", "verify"],
                &["db", "count", "resource_tags"],
                &["health"],
            ] {
                let out = run(edgestore(&data, engine).args(args));
                assert_ok(&format!("{engine} {args:?}"), &out);
                saw_owner |=
                    text(&out.stderr).contains(&format!("owned by edgestore serve (pid {pid}"));
            }
            rounds += 1;
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(saw_owner, "{engine}: the inspections never named the owner");
        let stdin = feeder.join().unwrap();
        drop(stdin);
        wait_for_journal_rows_or_segments(&data, engine, lines.len());

        let status = terminate(&mut serve.child);
        assert!(status.success(), "{engine}: serve exited with {status}");
        assert!(!data.join(LOCK_FILE).exists(), "{engine}: lock left behind");

        let ids = segment_ids(&data);
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{engine}: duplicated rows");
        assert_eq!(ids.len(), lines.len(), "{engine}: rows lost");
    }
}

/// Wait until every one of `rows` rows is put (in the journal or in segments), as an
/// inspecting `spool list --json` and its note tell.
fn wait_for_journal_rows_or_segments(data: &Path, engine: &str, rows: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = run(edgestore(data, engine).args(["spool", "list", "--json"]));
        assert_ok("spool list", &out);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let in_segments: u64 = list
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rows"].as_u64().unwrap_or(0))
            .sum();
        let note = text(&out.stderr);
        let in_journal: u64 = note
            .split("journals hold ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if in_segments + in_journal == rows as u64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {in_segments} + {in_journal} of {rows} rows arrived: {note}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mutations_from_a_second_process_go_through_the_owner() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut serve = Serving::start(edgestore(&data, engine), &[]);
        drop(serve.child.stdin.take());

        let lines = metric_lines(1_000, 3);
        let out = run_with_input(
            edgestore(&data, engine).args(["spool", "put", "--flush"]),
            &(lines.join("\n") + "\n"),
        );
        assert_ok("spool put", &out);
        assert!(text(&out.stderr).contains("forwarded to the owner"));
        // Owner settings are the owner's: a put asking for others is refused.
        let out = run_with_input(
            edgestore(&data, engine).args(["spool", "put", "--level", "9"]),
            &lines[0],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("--level"),
            "{}",
            text(&out.stderr)
        );

        let out = run(edgestore(&data, engine).args(["spool", "list", "--json"]));
        assert_ok("spool list", &out);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let first = list[0]["name"].as_str().expect("a segment").to_owned();
        let out = run(edgestore(&data, engine).args(["spool", "ack", &first]));
        assert_ok("spool ack", &out);
        assert!(data.join("metrics/uploaded").join(&first).exists());
        let out = run(edgestore(&data, engine).args(["spool", "ack", "agent_1_2.json.br"]));
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("no such segment"),
            "{}",
            text(&out.stderr)
        );

        let tags: Vec<String> = (0..10)
            .map(|i| {
                format!(r#"{{"type":"pod","name":"web-{i}","namespace":"prod","labels":{{}},"annotations":{{}}}}"#)
            })
            .collect();
        let out = run_with_input(
            edgestore(&data, engine).args(["db", "put", "resource_tags"]),
            &(tags.join("\n") + "\n"),
        );
        assert_ok("db put", &out);
        let out = run(edgestore(&data, engine).args(["db", "count", "resource_tags"]));
        assert_ok("db count", &out);
        assert!(text(&out.stdout).contains("10"), "{}", text(&out.stdout));
        let out =
            run(edgestore(&data, engine).args(["db", "delete", "resource_tags", "pod/prod/web-0"]));
        assert_ok("db delete", &out);
        let out =
            run(edgestore(&data, engine).args(["db", "get", "resource_tags", "pod/prod/web-1"]));
        assert_ok("db get", &out);
        assert!(text(&out.stdout).contains("web-1"));

        let status = terminate(&mut serve.child);
        assert!(status.success(), "{engine}: serve exited with {status}");
        // Every forwarded row is in a segment; the acknowledged one is uploaded.
        let spool: Spool<edgestore::Metric> =
            Spool::open_path(data.join("metrics"), SpoolConfig::new("agent")).unwrap();
        let segments = spool.segments(TimeRange::all()).unwrap();
        let rows: u64 = segments.iter().map(|s| s.rows.unwrap_or(0)).sum();
        assert_eq!(rows, lines.len() as u64, "{engine}");
        let acked = segments.iter().find(|s| s.name == first).expect("acked");
        assert_eq!(acked.state, edgestore::spool::SegmentState::Uploaded);
    }
}

#[test]
fn without_an_admin_socket_mutations_are_refused_naming_the_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut cmd = edgestore(&data, "native");
    cmd.env("EDGESTORE_SERVE_ADMIN", "false");
    let mut serve = Serving::start(cmd, &[]);
    let pid = serve.child.id();
    let before = listing(&data);
    for args in [
        &["spool", "flush"][..],
        &["spool", "ack", "agent_1_2.json.br"],
        &["spool", "purge"],
        &["db", "delete", "resource_tags", "pod/x"],
        &["demo"],
    ] {
        let out = run(edgestore(&data, "native").args(args));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("is owned by edgestore serve (pid {pid}, since ")),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        listing(&data),
        before,
        "a refused command touched the directory"
    );
    let status = terminate(&mut serve.child);
    assert!(status.success());
}

/// Every file under `dir` with its size, except the owner's lock file (its record is
/// rewritten in place) and SQLite's shared-memory index.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().display().to_string(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_second_serve_is_refused_at_once_naming_the_first() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut first = Serving::start(edgestore(&data, engine), &[]);
        let started = Instant::now();
        let out = run(edgestore(&data, engine).args(["serve", "--listen", "127.0.0.1:0"]));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{engine}: {}",
            text(&out.stderr)
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "refusal took {:?}",
            started.elapsed()
        );
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!(
                "owned by edgestore serve (pid {}",
                first.child.id()
            )),
            "{engine}: {err}"
        );
        let status = terminate(&mut first.child);
        assert!(status.success());
    }
}

#[test]
fn a_killed_owner_leaves_no_stale_lock_and_loses_no_row() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut serve = Serving::start(edgestore(&data, engine), &[]);
        let lines = metric_lines(2_000, 11);
        {
            let stdin = serve.child.stdin.as_mut().expect("stdin");
            stdin
                .write_all((lines.join("\n") + "\n").as_bytes())
                .unwrap();
            stdin.flush().unwrap();
        }
        wait_for_journal_rows(&data, engine, lines.len());
        signal(&serve.child, libc::SIGKILL);
        let _ = serve.child.wait();
        // The record stays, but nobody holds its lock: the next owner takes over.
        let record = OwnerRecord::parse(&std::fs::read(data.join(LOCK_FILE)).unwrap())
            .unwrap()
            .expect("a record");
        assert_eq!(record.command, "edgestore serve");
        let out = run(edgestore(&data, engine).args(["spool", "list"]));
        assert_ok("spool list", &out);
        assert!(
            text(&out.stderr).contains(&format!(
                "no owner is running; journals in {} hold {} rows",
                data.display(),
                lines.len()
            )),
            "{engine}: {}",
            text(&out.stderr)
        );
        let out = run(edgestore(&data, engine).args(["spool", "flush"]));
        assert_ok("spool flush", &out);
        assert!(!data.join(LOCK_FILE).exists());
        let mut ids = segment_ids(&data);
        ids.sort();
        let mut want: Vec<String> = lines
            .iter()
            .map(|l| serde_json::from_str::<edgestore::Metric>(l).unwrap().id)
            .collect();
        want.sort();
        assert_eq!(ids, want, "{engine}");
    }
}
