//! The operator's commands through the built `edgestore` binary, on both engines: `health`
//! (unhealthy where no data directory exists, healthy once a spool is there, exit 1 when the
//! spool directory cannot be written),
//! `diag`, `metrics` (parsed as Prometheus text), and `serve` (metrics and health over HTTP on
//! loopback; SIGTERM flushes every row read into finished segments and exits 0).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use edgestore::sample::MetricGenerator;
use edgestore::{SpoolConfig, TimeRange};
use edgestore_host::{Engine, Store, StoreConfig};

mod common;

use common::{edgestore, run, start_serve, terminate, text, ENGINES};

#[test]
fn health_is_ok_on_a_fresh_data_directory_and_fails_when_the_spool_cannot_be_written() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        // Health only reads: a data directory nobody created is unhealthy, not created.
        let out = run(edgestore(&data, engine).arg("health"));
        assert_eq!(out.status.code(), Some(1), "{engine}");
        assert!(
            text(&out.stdout).contains("no data directory"),
            "{engine}: {}",
            text(&out.stdout)
        );
        assert!(!data.exists());
        // A spool with no database yet is healthy (a spool-only owner has none).
        let out = run(edgestore(&data, engine).args(["spool", "flush"]));
        assert!(out.status.success(), "{engine}: {}", text(&out.stderr));
        let out = run(edgestore(&data, engine).arg("health"));
        assert!(
            out.status.success(),
            "{engine}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "healthy\n");

        // The spool's directory is a regular file: nobody, root included, can write in it (a
        // permission bit would not stop root; this does).
        let bad = tmp.path().join("bad");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("metrics"), b"not a directory").unwrap();
        let out = run(edgestore(&bad, engine).arg("health").arg("--json"));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{engine}: {}",
            text(&out.stdout)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["healthy"], false);
        let reasons = report["reasons"].to_string();
        assert!(reasons.contains("metrics"), "{engine}: {reasons}");
        assert!(
            text(&out.stderr).contains("unhealthy"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn health_fails_on_a_read_only_data_directory() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    let out = run(edgestore(&data, "native").args(["spool", "flush"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(data.join("metrics"), std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits, and CI runs as root: then run the check as `nobody`
    // (setpriv, util-linux), from a copy of the binary that `nobody` can reach.
    let root = std::fs::write(data.join("probe"), b"x").is_ok();
    let out = if root {
        let _ = std::fs::remove_file(data.join("probe"));
        let bin = tmp.path().join("edgestore");
        std::fs::copy(env!("CARGO_BIN_EXE_edgestore"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        run(Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .arg("--data")
            .arg(&data)
            .args(["--engine", "native", "health"]))
    } else {
        run(edgestore(&data, "native").arg("health"))
    };
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("not writable"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn diag_and_metrics_report_on_both_engines() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        // diag and metrics only read: something must have made the data directory.
        let out = run(edgestore(&data, engine).args(["spool", "flush"]));
        assert!(out.status.success(), "{engine}: {}", text(&out.stderr));
        let out = run(edgestore(&data, engine).args(["diag", "--json"]));
        assert!(out.status.success(), "{engine}: {}", text(&out.stderr));
        let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(d["engine"], engine);
        assert_eq!(d["connection_status"], "ok");
        assert_eq!(d["circuit"], "closed");
        assert_eq!(d["record_counts"]["resource_tags"], 0);
        assert!(d["disk_usage"]["total_bytes"].is_u64(), "{d}");
        assert!(d["last_operation_ms"].is_i64(), "{d}");

        let out = run(edgestore(&data, engine).arg("metrics"));
        assert!(out.status.success(), "{engine}: {}", text(&out.stderr));
        let body = text(&out.stdout);
        let scrape = parse(&body);
        assert!(has(
            &scrape,
            "edgestore_disk_usage_bytes",
            &[("state", "pending")]
        ));
        assert!(has(&scrape, "edgestore_circuit_breaker_state", &[]));
        assert!(has(
            &scrape,
            "edgestore_operation_duration_seconds",
            &[("engine", engine), ("operation", "spool.usage")]
        ));
    }
}

fn parse(body: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{body}"))
}

fn has(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> bool {
    scrape
        .samples
        .iter()
        .any(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

fn value(scrape: &prometheus_parse::Scrape, name: &str) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => Some(v),
            _ => None,
        })
}

/// One HTTP/1.0 GET: status, content type, body.
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

#[test]
fn serve_exports_metrics_and_health_and_flushes_on_sigterm() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut s = start_serve(&data, engine, &[]);

        let rows = MetricGenerator::new(9, 1_700_000_000_000).batch(250);
        {
            let stdin = s.child.stdin.as_mut().expect("stdin");
            for m in &rows {
                serde_json::to_writer(&mut *stdin, m).unwrap();
                stdin.write_all(b"\n").unwrap();
            }
            stdin.write_all(b"{not json}\n").unwrap();
            stdin.flush().unwrap();
        }
        // Wait until the server has put every row, as its own counter says.
        let deadline = Instant::now() + Duration::from_secs(60);
        let scrape = loop {
            let (status, content_type, body) = get(s.addr, "/metrics");
            assert_eq!(status, 200);
            assert!(
                content_type.starts_with("text/plain; version=0.0.4"),
                "{content_type}"
            );
            let scrape = parse(&body);
            if value(&scrape, "edgestore_spool_rows_total") == Some(rows.len() as f64) {
                break scrape;
            }
            assert!(Instant::now() < deadline, "rows never arrived:\n{body}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(has(
            &scrape,
            "edgestore_operation_duration_seconds",
            &[("engine", engine), ("operation", "spool.put")]
        ));
        assert!(has(
            &scrape,
            "edgestore_disk_usage_bytes",
            &[("state", "journals")]
        ));

        let (status, _, body) = get(s.addr, "/healthz");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, "healthy\n");
        let (status, _, _) = get(s.addr, "/nope");
        assert_eq!(status, 404);

        let status = terminate(&mut s.child);
        assert!(status.success(), "{engine}: serve exited with {status}");

        // Every row read before the signal is in a finished segment.
        let got = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = Store::open(StoreConfig::new(Engine::Native, &data))
                .await
                .unwrap();
            let spool = store
                .spool("metrics", SpoolConfig::new("agent"))
                .await
                .unwrap();
            assert_eq!(spool.pending().await.unwrap(), 0);
            assert!(!spool.segments(TimeRange::all()).await.unwrap().is_empty());
            let got = spool
                .read_range(TimeRange::all())
                .await
                .unwrap()
                .collect()
                .await;
            got.unwrap()
        });
        let mut want: Vec<String> = rows.iter().map(|m| m.id.clone()).collect();
        let mut ids: Vec<String> = got.iter().map(|m| m.id.clone()).collect();
        want.sort();
        ids.sort();
        assert_eq!(ids, want, "{engine}");
    }
}

#[test]
fn serve_generates_rows_and_health_reports_an_unwritable_spool() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut s = start_serve(&data, "native", &["--generate", "200"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, body) = get(s.addr, "/metrics");
        if value(&parse(&body), "edgestore_spool_rows_total").unwrap_or(0.0) >= 20.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no rows generated:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Make the spool directory unwritable for everyone: replace it with a file.
    let spool = data.join("metrics");
    let moved = data.join("metrics.moved");
    std::fs::rename(&spool, &moved).unwrap();
    std::fs::write(&spool, b"x").unwrap();
    let (status, _, body) = get(s.addr, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("unhealthy\n") && body.contains("not writable"),
        "{body}"
    );
    std::fs::remove_file(&spool).unwrap();
    std::fs::rename(&moved, &spool).unwrap();
    let status = terminate(&mut s.child);
    assert!(status.success(), "{status}");
}
