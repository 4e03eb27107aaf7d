//! Per-subject erasure through the `edgestore` binary: `spool erase --where label=value` on
//! both engines and forwarded to a running owner leaves no segment (decoded with the `brotli`
//! CLI) holding the value, keeps every other row, and is audited without the value;
//! `db delete` leaves no trace of the deleted row in the database files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{edgestore, run, run_with_input, text, ENGINES};

const SUBJECT: &str = "alice-7f3a9c";

fn put(data: &Path, engine: &str, from: u32, to: u32, flush: bool) {
    let mut cmd = edgestore(data, engine);
    cmd.args(["spool", "put", "--documents", "--max-records", "25"]);
    if flush {
        cmd.arg("--flush");
    }
    let mut input = String::new();
    for i in from..to {
        let user = if i % 4 == 0 { SUBJECT } else { "bob" };
        input.push_str(&format!(
            "{{\"i\":{i},\"labels\":{{\"user\":\"{user}\"}},\"note\":\"by {user}\"}}\n"
        ));
    }
    let out = run_with_input(&mut cmd, &input);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Every segment under the spool (root and uploaded/).
fn segment_files(data: &Path) -> Vec<PathBuf> {
    let spool = data.join("metrics");
    let mut out = Vec::new();
    for dir in [spool.clone(), spool.join("uploaded")] {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.path().to_string_lossy().ends_with(".json.br") {
                out.push(e.path());
            }
        }
    }
    out
}

/// The decoded JSON of every segment, by the `brotli` CLI.
fn decoded(data: &Path) -> String {
    segment_files(data)
        .iter()
        .map(|p| {
            let out = Command::new("brotli")
                .args(["-d", "-c"])
                .arg(p)
                .output()
                .unwrap();
            assert!(out.status.success(), "brotli -d {}", p.display());
            text(&out.stdout)
        })
        .collect()
}

fn cat_ids(data: &Path, engine: &str) -> Vec<u64> {
    let out = run(edgestore(data, engine).args(["spool", "cat"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut ids: Vec<u64> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["i"]
                .as_u64()
                .unwrap()
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn erase_leaves_no_segment_holding_the_subject_on_both_engines() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        put(&data, engine, 0, 60, true);
        // One segment acknowledged (uploaded/), rows left in the journal.
        let list = run(edgestore(&data, engine).args(["spool", "list", "--json"]));
        let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        let first = listed["segments"][0]["name"]
            .as_str()
            .or_else(|| listed[0]["name"].as_str())
            .unwrap()
            .to_owned();
        let out = run(edgestore(&data, engine).args(["spool", "ack", &first]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        put(&data, engine, 60, 70, false);
        assert!(decoded(&data).contains(SUBJECT));

        // `edgestore erase` on one engine, `edgestore spool erase` on the other: one command.
        let mut args = vec!["--json"];
        if engine == "native" {
            args.push("spool");
        }
        let filter = format!("user={SUBJECT}");
        args.extend(["erase", "--where", &filter]);
        let out = run(edgestore(&data, engine).args(&args));
        assert!(out.status.success(), "{engine}: {}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["rows_erased"], 18, "{engine}: {report}");
        assert!(!decoded(&data).contains(SUBJECT), "{engine}");
        let expected: Vec<u64> = (0..70).filter(|i| i % 4 != 0).collect();
        assert_eq!(cat_ids(&data, engine), expected, "{engine}");
        let verify = run(edgestore(&data, engine).args(["spool", "verify"]));
        assert!(verify.status.success(), "{}", text(&verify.stderr));

        // The audit line says what was erased without keeping the value.
        let audit: String = std::fs::read_dir(data.join(".audit"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        let line = audit
            .lines()
            .find(|l| l.contains("spool.erase"))
            .unwrap_or_else(|| panic!("{engine}: no erase line in {audit}"));
        assert!(line.contains("user=sha256:"), "{line}");
        assert!(
            !audit.contains(SUBJECT),
            "{engine}: the audit log keeps the value"
        );
    }
}

#[test]
fn erase_is_forwarded_to_a_running_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    put(&data, "native", 0, 40, true);
    let serving = common::start_serve(&data, "native", &[]);
    let out = run(edgestore(&data, "native").args([
        "spool",
        "erase",
        "--where",
        &format!("user={SUBJECT}"),
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("erased 10 rows"),
        "{}",
        text(&out.stdout)
    );
    drop(serving);
    assert!(!decoded(&data).contains(SUBJECT));
    assert_eq!(cat_ids(&data, "native").len(), 30);
}

#[test]
fn a_deleted_database_row_leaves_no_trace_in_the_files() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let rows = format!(
            "{{\"type\":\"pod\",\"name\":\"keep\",\"namespace\":\"prod\"}}\n\
             {{\"type\":\"pod\",\"name\":\"{SUBJECT}\",\"namespace\":\"prod\",\"labels\":{{\"owner\":\"{SUBJECT}\"}}}}\n"
        );
        let out = run_with_input(
            edgestore(&data, engine).args(["db", "put", "resource_tags"]),
            &rows,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = run(edgestore(&data, engine).args([
            "db",
            "delete",
            "resource_tags",
            &format!("pod/prod/{SUBJECT}"),
        ]));
        assert!(out.status.success(), "{engine}: {}", text(&out.stderr));
        // Every file the database has on disk, raw.
        for e in std::fs::read_dir(&data).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("edgestore.sqlite") {
                let raw = std::fs::read(e.path()).unwrap();
                assert!(
                    !raw.windows(SUBJECT.len()).any(|w| w == SUBJECT.as_bytes()),
                    "{engine}: {name} still holds the deleted row"
                );
            }
        }
    }
}
