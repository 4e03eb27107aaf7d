//! The `edgestore` binary end to end, on temporary data directories, with both engines.
//!
//! This lives in the host package (not the root `tests/`) because Cargo only hands a package's
//! own integration tests the path of its binaries (`CARGO_BIN_EXE_edgestore`). Every scenario
//! runs as one test per engine, so the component is instantiated once per process but the
//! process count stays small; compiled components are cached in the target's temp dir.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use edgestore::sample::MetricGenerator;
use predicates::prelude::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_edgestore");

struct Env {
    dir: tempfile::TempDir,
    engine: &'static str,
}

impl Env {
    fn new(engine: &'static str) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            engine,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `edgestore --engine E --data D ARGS`, run from the temp dir, no ambient config.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .env_clear()
            .env(
                "EDGESTORE_HOST_CACHE_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
            )
            .args(["--engine", self.engine, "--data"])
            .arg(self.data())
            .args(args);
        c
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self
            .cmd(&all)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    }

    fn segments(&self) -> Vec<String> {
        self.json(&["spool", "list"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "pending")
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    }

    fn cat(&self, segment: &str) -> String {
        let out = self.cmd(&["spool", "cat", segment]).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }
}

/// Metric lines in the canonical serialisation.
fn metric_lines(n: usize, seed: u64) -> String {
    MetricGenerator::new(seed, 1_700_000_000_000)
        .batch(n)
        .iter()
        .map(|m| serde_json::to_string(m).unwrap() + "\n")
        .collect()
}

fn spool_roundtrip_and_lifecycle(engine: &'static str) {
    let env = Env::new(engine);
    // Metrics: `cat` prints exactly what `put` took (canonical input).
    let metrics = metric_lines(50, 1);
    env.cmd(&["spool", "put", "--flush"])
        .write_stdin(metrics.clone())
        .assert()
        .success()
        .stderr(predicate::str::contains("50 rows written (segment)"));
    let segs = env.segments();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!(env.cat(&segs[0]), metrics);
    // A path into the spool directory works as well as the bare name.
    let by_path = env.data().join("metrics").join(&segs[0]);
    assert_eq!(env.cat(by_path.to_str().unwrap()), metrics);

    // Documents: byte-identical, whatever their spacing and key order.
    let docs = "{\"z\": 1,  \"a\": [1, 2, {\"k\": \"v\"}]}\n\"just a string\"\n42\nnull\n{\"unicode\":\"h\\u00e9llo é\"}\n";
    env.cmd(&[
        "spool",
        "put",
        "--documents",
        "--flush",
        "--identifier",
        "docs",
    ])
    .write_stdin(docs)
    .assert()
    .success();
    let doc_seg = env
        .segments()
        .into_iter()
        .find(|s| s.starts_with("docs_"))
        .unwrap();
    assert_eq!(env.cat(&doc_seg), docs);

    // Bad JSON on line 3: one clear line naming it, non-zero, the two lines before are kept.
    let bad = "{\"a\":1}\n[2]\n{oops\n{\"never\":true}\n";
    let out = env
        .cmd(&["spool", "put", "--documents", "--identifier", "bad"])
        .write_stdin(bad)
        .assert()
        .failure()
        .stderr(predicate::str::contains("line 3"));
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let bad_seg = env
        .segments()
        .into_iter()
        .find(|s| s.starts_with("bad_"))
        .unwrap();
    assert_eq!(env.cat(&bad_seg), "{\"a\":1}\n[2]\n");
    // A bad metric is reported the same way.
    env.cmd(&["spool", "put"])
        .write_stdin(format!("{}{{\"metric_name\":5}}\n", metric_lines(1, 9)))
        .assert()
        .failure()
        .stderr(predicate::str::contains("line 2").and(predicate::str::contains("metric")));

    // Without --flush the rows are synced to the journal; `spool flush` finishes them.
    let before = env.segments().len();
    env.cmd(&["spool", "put"])
        .write_stdin(metric_lines(3, 2))
        .assert()
        .success()
        .stderr(predicate::str::contains("(journal)"));
    env.cmd(&["spool", "flush"]).assert().success();
    assert_eq!(env.segments().len(), before + 1);

    // list --since/--until filter by time.
    let future = env.json(&["spool", "list", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(future.as_array().unwrap().len(), 0);
    let past = env.json(&["spool", "list", "--until", "1000"]);
    assert_eq!(past.as_array().unwrap().len(), 0);

    // ack, usage, purge.
    env.cmd(&["spool", "ack", &segs[0]]).assert().success();
    let usage = env.json(&["spool", "usage"]);
    // The segment and its checksum sidecar.
    assert!(usage["uploaded"]["files"].as_u64().unwrap() >= 1, "{usage}");
    let purged = env.json(&["spool", "purge", "--older-than", "0s"]);
    assert_eq!(purged["expired"][0], segs[0].as_str(), "{purged}");
    // Pending segments survive purging.
    assert!(env.segments().contains(&doc_seg));

    // Errors a user can cause: one line, non-zero, nothing lost.
    env.cmd(&["spool", "cat", "agent_1_2.json.br"])
        .assert()
        .failure();
    env.cmd(&["spool", "cat", "../../etc/passwd"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("outside the spool directory"));
    env.cmd(&["spool", "ack", "agent_1_2.json.br"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no such segment"));

    // verify: clean, then a corrupted segment is reported, quarantined, non-zero.
    env.cmd(&["spool", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("0 quarantined"));
    let victim = env.data().join("metrics").join(&bad_seg);
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    env.cmd(&["spool", "verify"])
        .assert()
        .failure()
        .stdout(predicate::str::contains(bad_seg.as_str()))
        .stderr(predicate::str::contains("quarantined"));
    assert!(!env.segments().contains(&bad_seg));
    assert_eq!(env.cat(&doc_seg), docs, "other segments untouched");
}

fn db_commands(engine: &'static str) {
    let env = Env::new(engine);
    let rows = "{\"type\":\"pod\",\"name\":\"web-0\",\"namespace\":\"prod\",\"labels\":{\"app\":\"web\"}}\n\
                {\"type\":\"pod\",\"name\":\"web-1\",\"namespace\":\"prod\"}\n\
                {\"type\":\"node\",\"name\":\"worker-1\",\"id\":\"6f1c1b1e-8c9a-4d7e-9a53-2b8f8f3c1a00\",\"record_created\":5,\"record_updated\":6}\n";
    env.cmd(&["db", "put", "resource_tags"])
        .write_stdin(rows)
        .assert()
        .success();
    assert_eq!(env.json(&["db", "count", "resource_tags"])["count"], 3);
    // The models whose tables the database holds, with the key syntax `db get` takes.
    env.cmd(&["db", "models"]).assert().success().stdout(
        predicate::str::contains("resource_tags")
            .and(predicate::str::contains("TYPE/NAMESPACE/NAME")),
    );

    let out = env
        .cmd(&[
            "db",
            "get",
            "resource_tags",
            "pod/prod/web-0",
            "node/worker-1",
        ])
        .assert()
        .success();
    let got: Vec<Value> = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["labels"]["app"], "web");
    assert!(got[0]["id"].as_str().unwrap().len() == 36, "id generated");
    assert!(got[0]["record_created"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(got[1]["id"], "6f1c1b1e-8c9a-4d7e-9a53-2b8f8f3c1a00");
    assert_eq!(got[1]["record_created"], 5);
    assert!(got[1]["namespace"].is_null());

    let out = env
        .cmd(&[
            "db",
            "find",
            "resource_tags",
            "--where",
            "namespace=prod",
            "--where",
            "type=pod",
            "--limit",
            "1",
        ])
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout)
            .lines()
            .count(),
        1
    );
    let out = env
        .cmd(&["db", "find", "resource_tags", "--where", "namespace=null"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("worker-1"));

    // Bad line 2: line 1 is committed, the error names line 2.
    env.cmd(&["db", "put", "resource_tags"])
        .write_stdin("{\"type\":\"pod\",\"name\":\"ok\",\"namespace\":\"x\"}\n{\"type\":\n")
        .assert()
        .failure()
        .stderr(predicate::str::contains("line 2"));
    assert_eq!(env.json(&["db", "count", "resource_tags"])["count"], 4);

    env.cmd(&["db", "delete", "resource_tags", "pod/prod/web-1"])
        .assert()
        .success();
    env.cmd(&["db", "get", "resource_tags", "pod/prod/web-1"])
        .assert()
        .failure();
    env.cmd(&["db", "delete", "resource_tags", "pod/prod/nope"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not found"));
    env.cmd(&["db", "count", "widgets"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown model \"widgets\""));
    env.cmd(&["db", "get", "resource_tags", "pod"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("bad resource_tags key"));
    assert_eq!(env.json(&["db", "count", "resource_tags"])["count"], 3);
}

fn demo(engine: &'static str) {
    let env = Env::new(engine);
    env.cmd(&[
        "demo",
        "--metrics",
        "3000",
        "--tags",
        "50",
        "--max-records",
        "1000",
    ])
    .assert()
    .success()
    .stdout(
        predicate::str::contains("transaction committed")
            .and(predicate::str::contains("transaction rolled back"))
            .and(predicate::str::contains("3 new segments"))
            .and(predicate::str::contains("summary:"))
            .and(predicate::str::contains("50 database rows")),
    );
    assert!(env.data().join("edgestore.sqlite").exists());
    assert_eq!(env.json(&["db", "count", "resource_tags"])["count"], 50);
}

macro_rules! both_engines {
    ($($scenario:ident),*) => {
        mod native {
            $( #[test] fn $scenario() { super::$scenario("native") } )*
        }
        mod component {
            $( #[test] fn $scenario() { super::$scenario("component") } )*
        }
    };
}

both_engines!(spool_roundtrip_and_lifecycle, db_commands, demo);

#[test]
fn config_errors_name_their_key() {
    let env = Env::new("native");
    let file = env.dir.path().join("edgestore.yaml");
    std::fs::write(&file, "storage:\n  compressionLevel: 12\n").unwrap();
    env.cmd(&["--config", file.to_str().unwrap(), "spool", "usage"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("storage.compressionLevel")
                .and(predicate::str::contains("12")),
        );
    std::fs::write(&file, "storage:\n  maxRecord: 3\n").unwrap();
    env.cmd(&["--config", file.to_str().unwrap(), "spool", "usage"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("storage.maxRecord"));
    env.cmd(&["spool", "usage"])
        .env("EDGESTORE_STORAGE_LEVEL", "3")
        .assert()
        .failure()
        .stderr(predicate::str::contains("EDGESTORE_STORAGE_LEVEL"));
    env.cmd(&["spool", "usage"])
        .env("EDGESTORE_STORAGE_PATH", "../outside")
        .assert()
        .failure()
        .stderr(predicate::str::contains("storage.path"));
    // Nothing was created for a configuration that was refused.
    assert!(!env.data().exists());
}

#[test]
fn precedence_file_env_flag() {
    let env = Env::new("native");
    let file = env.dir.path().join("edgestore.yaml");
    std::fs::write(&file, "storage:\n  maxRecords: 1\n").unwrap();
    let cfg = file.to_str().unwrap();
    let put = |extra: &[&str], var: Option<&str>| {
        let mut args = vec!["--config", cfg, "spool", "put", "--flush"];
        args.extend_from_slice(extra);
        let mut c = env.cmd(&args);
        if let Some(v) = var {
            c.env("EDGESTORE_STORAGE_MAX_RECORDS", v);
        }
        c.write_stdin(metric_lines(4, 3)).assert().success();
    };
    let count = || env.segments().len();
    put(&[], None); // file: 1 row per segment
    assert_eq!(count(), 4);
    put(&[], Some("2")); // env beats file
    assert_eq!(count(), 6);
    put(&["--max-records", "4"], Some("2")); // flag beats env
    assert_eq!(count(), 7);
}
