//! `edgestore spool ship` to a `file://` target through the CLI, checked with independent
//! tools: every object is byte-identical to its segment (`cmp`), decodes with `brotli -d` into
//! a JSON array of the segment's rows (`jq length`), and `spool list` shows the segments
//! uploaded only after that. Also: a second run ships nothing, a conflicting object is never
//! overwritten and fails the command and `health`, and a running `serve` ships on its own and
//! takes `spool ship --once` through its admin socket.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use edgestore::sample::MetricGenerator;
use edgestore_host::ship::KeyTemplate;
use serde_json::Value;

mod common;

use common::{edgestore, run, terminate, text, tool_available, Serving, ENGINES};

const INSTALL: &str = "apt-get install brotli jq (./test.sh installs them)";

/// The binary on `data` with `engine`, shipping to `outbox`.
fn shipping(data: &Path, engine: &str, outbox: &Path) -> Command {
    let mut cmd = edgestore(data, engine);
    cmd.env(
        "EDGESTORE_SHIP_TARGET",
        format!("file://{}", outbox.display()),
    );
    cmd
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `spool put --flush` of `rows` generated metrics, `per_segment` to a segment (none: the
/// owner's setting, as a forwarded put must).
fn put(
    data: &Path,
    engine: &str,
    outbox: &Path,
    seed: u64,
    rows: usize,
    per_segment: Option<usize>,
) {
    let mut input = Vec::new();
    for m in MetricGenerator::new(seed, 1_700_000_000_000).batch(rows) {
        serde_json::to_writer(&mut input, &m).unwrap();
        input.push(b'\n');
    }
    let mut cmd = shipping(data, engine, outbox);
    cmd.args(["spool", "put", "--flush"]);
    if let Some(n) = per_segment {
        cmd.args(["--max-records", &n.to_string()]);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    ok(&out, "spool put");
}

/// `spool list --json`: (name, state, rows, bytes).
fn list(data: &Path, engine: &str, outbox: &Path) -> Vec<(String, String, u64, u64)> {
    let out = run(shipping(data, engine, outbox).args(["--json", "spool", "list"]));
    ok(&out, "spool list");
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
                s["rows"].as_u64().unwrap(),
                s["bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn object_path(outbox: &Path, name: &str) -> PathBuf {
    outbox.join(KeyTemplate::default().render(name).unwrap())
}

fn cmp(a: &Path, b: &Path) -> bool {
    Command::new("cmp")
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

/// `brotli -d < object | jq length`.
fn rows_in(object: &Path) -> u64 {
    let script = format!("brotli -d < '{}' | jq length", object.display());
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{script}: {}", text(&out.stderr));
    text(&out.stdout).trim().parse().unwrap()
}

#[test]
fn spool_ship_once_puts_one_verified_object_per_segment() {
    if !tool_available("brotli", INSTALL) || !tool_available("jq", INSTALL) {
        return;
    }
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let outbox = tmp.path().join("outbox");
        std::fs::create_dir(&outbox).unwrap();
        put(&data, engine, &outbox, 5, 250, Some(100));
        let before = list(&data, engine, &outbox);
        assert_eq!(before.len(), 3, "{engine}: {before:?}");
        assert!(before.iter().all(|s| s.1 == "pending"), "{before:?}");
        // The segments as they were before shipping (and acknowledging) them.
        let spool = data.join("metrics");
        let snapshot = tmp.path().join("snapshot");
        std::fs::create_dir(&snapshot).unwrap();
        for (name, ..) in &before {
            std::fs::copy(spool.join(name), snapshot.join(name)).unwrap();
        }

        let out = run(shipping(&data, engine, &outbox).args(["spool", "ship", "--once"]));
        ok(&out, "spool ship --once");
        let bytes: u64 = before.iter().map(|s| s.3).sum();
        assert_eq!(
            text(&out.stdout),
            format!(
                "shipped 3 segments ({bytes} bytes) to file://{}\n",
                outbox.display()
            ),
            "{engine}"
        );

        let mut total = 0;
        for (name, _, rows, _) in &before {
            let object = object_path(&outbox, name);
            assert!(
                cmp(&object, &snapshot.join(name)),
                "{engine}: {name} differs"
            );
            assert!(
                cmp(&object, &spool.join("uploaded").join(name)),
                "{engine}: {name} differs from the acknowledged segment"
            );
            assert_eq!(rows_in(&object), *rows, "{engine}: {name}");
            total += rows;
        }
        assert_eq!(total, 250);
        let after = list(&data, engine, &outbox);
        assert_eq!(after.len(), 3);
        assert!(
            after.iter().all(|s| s.1 == "uploaded"),
            "{engine}: {after:?}"
        );

        // Nothing pending: nothing shipped, nothing touched.
        let out = run(shipping(&data, engine, &outbox).args(["spool", "ship", "--once"]));
        ok(&out, "the second spool ship --once");
        assert!(
            text(&out.stdout).starts_with("shipped 0 segments (0 bytes)"),
            "{}",
            text(&out.stdout)
        );
        let out = run(shipping(&data, engine, &outbox).arg("health"));
        ok(&out, "health");
    }
}

#[test]
fn a_conflicting_object_is_kept_and_the_segment_stays_pending() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let outbox = tmp.path().join("outbox");
    std::fs::create_dir(&outbox).unwrap();
    put(&data, "native", &outbox, 6, 20, None);
    let segments = list(&data, "native", &outbox);
    let name = segments[0].0.clone();
    let object = object_path(&outbox, &name);
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, b"another device's bytes").unwrap();

    let out = run(shipping(&data, "native", &outbox).args(["spool", "ship", "--once"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let target = format!("file://{}", outbox.display());
    assert!(
        err.contains("already exists with different content") && err.contains(&target),
        "{err}"
    );
    assert_eq!(std::fs::read(&object).unwrap(), b"another device's bytes");
    assert_eq!(list(&data, "native", &outbox)[0].1, "pending");

    // Health names the target and the failure (from another process: the status file).
    let out = run(shipping(&data, "native", &outbox).arg("health"));
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(
        report.contains(&format!("shipping to {target} fails")) && report.contains(&name),
        "{report}"
    );

    // A missing target directory is one clear error naming it.
    let missing = tmp.path().join("not-mounted");
    let out = run(shipping(&data, "native", &missing).args(["spool", "ship", "--once"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("file://{}", missing.display())) && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn serve_ships_on_its_own_and_takes_a_forwarded_ship_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let outbox = tmp.path().join("outbox");
    std::fs::create_dir(&outbox).unwrap();

    // Shipping every 200 ms: a segment finished by a forwarded put goes without being asked.
    let mut cmd = shipping(&data, "native", &outbox);
    cmd.env("EDGESTORE_SHIP_INTERVAL", "200ms");
    let mut s = Serving::start(cmd, &[]);
    put(&data, "native", &outbox, 7, 30, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let name = loop {
        let segments = list(&data, "native", &outbox);
        if let Some(seg) = segments.iter().find(|s| s.1 == "uploaded") {
            break seg.0.clone();
        }
        assert!(
            Instant::now() < deadline,
            "serve never shipped: {segments:?}\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(cmp(
        &object_path(&outbox, &name),
        &data.join("metrics").join("uploaded").join(&name)
    ));
    let status = terminate(&mut s.child);
    assert!(status.success(), "serve exited with {status}");

    // Shipping once an hour: `spool ship --once` asks the running owner to ship now.
    let mut cmd = shipping(&data, "native", &outbox);
    cmd.env("EDGESTORE_SHIP_INTERVAL", "1h");
    let mut s = Serving::start(cmd, &[]);
    put(&data, "native", &outbox, 8, 40, None);
    let pending: Vec<String> = list(&data, "native", &outbox)
        .into_iter()
        .filter(|s| s.1 == "pending")
        .map(|s| s.0)
        .collect();
    assert_eq!(pending.len(), 1);
    let out = run(shipping(&data, "native", &outbox).args(["spool", "ship", "--once"]));
    ok(&out, "forwarded spool ship --once");
    assert!(
        text(&out.stderr).contains("forwarded to the owner"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with("shipped 1 segments"),
        "{}",
        text(&out.stdout)
    );
    assert!(cmp(
        &object_path(&outbox, &pending[0]),
        &data.join("metrics").join("uploaded").join(&pending[0])
    ));
    // Without --once, a command beside the owner is told the owner ships on its own.
    let out = run(shipping(&data, "native", &outbox).args(["spool", "ship"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ships on its own"),
        "{}",
        text(&out.stderr)
    );
    let status = terminate(&mut s.child);
    assert!(status.success(), "serve exited with {status}");
}
