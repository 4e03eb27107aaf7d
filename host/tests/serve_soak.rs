//! Soak: `edgestore serve` taking remote write at a steady rate (10,000 rows/s by default) for
//! a while, segments rotating every second, nothing shipped. Its resident memory and open
//! file descriptors are sampled from `/proc` throughout and written as a curve
//! (`target/tmp/soak-ENGINE.csv`: seconds, RSS MiB, fds, rows acknowledged); neither may grow
//! once warmed up, and every acknowledged row must be stored.
//!
//! The test run soaks for 20 s per engine. The long run is an hour:
//! `EDGESTORE_SOAK_SECS=3600 cargo test --release -p edgestore-host --test serve_soak -- --nocapture`
//! (`EDGESTORE_SOAK_RATE` rows/s, `EDGESTORE_SOAK_ENGINES=native` or `component`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgestore_host::ingest::remote_write::proto::v1;

mod common;

use common::{edgestore, start_serve, terminate, ENGINES};

/// Rows per remote write request.
const ROWS_PER_REQUEST: u64 = 100;
/// Concurrent senders sharing the rate.
const SENDERS: u64 = 4;
const T0: i64 = 1_700_000_000_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One request of `ROWS_PER_REQUEST` distinct series, numbered `n`.
fn request(n: u64) -> Vec<u8> {
    let timeseries: Vec<v1::TimeSeries> = (0..ROWS_PER_REQUEST)
        .map(|k| v1::TimeSeries {
            labels: vec![
                v1::Label {
                    name: "__name__".into(),
                    value: "soak".into(),
                },
                v1::Label {
                    name: "request".into(),
                    value: n.to_string(),
                },
                v1::Label {
                    name: "series".into(),
                    value: k.to_string(),
                },
            ],
            samples: vec![v1::Sample {
                value: k as f64,
                timestamp: T0 + n as i64,
            }],
            ..Default::default()
        })
        .collect();
    common::remote_write_v1(timeseries)
}

/// Send requests `sender`, `sender + SENDERS`, ... each at its due time for `rate` rows/s,
/// until `stop`; count the rows acknowledged.
fn sender(base: String, sender: u64, rate: u64, stop: Arc<AtomicBool>, acked: Arc<AtomicU64>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let per_second = (rate / ROWS_PER_REQUEST).max(1) as f64;
    let started = Instant::now();
    let mut n = sender;
    while !stop.load(Ordering::Relaxed) {
        let due = started + Duration::from_secs_f64(n as f64 / per_second);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let body = request(n);
        loop {
            let mut response = agent
                .post(format!("{base}/api/v1/write"))
                .header("Content-Type", "application/x-protobuf")
                .header("Content-Encoding", "snappy")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .send(&body[..])
                .unwrap_or_else(|e| panic!("request {n}: {e}"));
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            if status == 429 {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            assert!((200..300).contains(&status), "request {n}: {status} {text}");
            acked.fetch_add(ROWS_PER_REQUEST, Ordering::Relaxed);
            break;
        }
        n += SENDERS;
    }
}

/// Resident memory (MiB) and open descriptors of process `pid`.
fn rss_and_fds(pid: u32) -> (f64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (kib / 1024.0, fds)
}

/// Rows in every finished segment (`spool cat`, counted as lines: no JSON parsed).
fn stored_rows(data: &Path) -> u64 {
    let mut child = edgestore(data, "native")
        .args(["spool", "cat"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines().count() as u64;
    assert!(child.wait().unwrap().success(), "spool cat failed");
    lines
}

/// The largest value of `f` over `samples`.
fn max_of(samples: &[(f64, f64, usize, u64)], f: impl Fn(&(f64, f64, usize, u64)) -> f64) -> f64 {
    samples.iter().map(f).fold(0.0, f64::max)
}

#[test]
fn serve_holds_memory_and_descriptors_flat_under_steady_ingest() {
    let secs: u64 = env_or("EDGESTORE_SOAK_SECS", 20);
    let rate: u64 = env_or("EDGESTORE_SOAK_RATE", 10_000);
    let engines: String = env_or("EDGESTORE_SOAK_ENGINES", ENGINES.join(","));
    // About 60 points on the curve, at least one a second.
    let every = Duration::from_secs((secs / 60).max(1));
    for engine in engines.split(',') {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut serve = start_serve(&data, engine, &[]);
        let pid = serve.child.id();
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let (base, stop, acked) = (serve.url(), stop.clone(), acked.clone());
                std::thread::spawn(move || sender(base, s, rate, stop, acked))
            })
            .collect();

        let started = Instant::now();
        let mut samples = Vec::new();
        let mut curve = String::from("seconds,rss_mib,fds,rows_acknowledged\n");
        while started.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(every);
            let (rss, fds) = rss_and_fds(pid);
            let t = started.elapsed().as_secs_f64();
            let rows = acked.load(Ordering::Relaxed);
            samples.push((t, rss, fds, rows));
            curve.push_str(&format!("{t:.1},{rss:.1},{fds},{rows}\n"));
        }
        stop.store(true, Ordering::Relaxed);
        for s in senders {
            s.join().expect("a sender failed");
        }
        let elapsed = started.elapsed();
        let acknowledged = acked.load(Ordering::Relaxed);
        let status = terminate(&mut serve.child);
        assert!(status.success(), "{engine}: serve exited with {status}");

        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("soak-{engine}.csv"));
        std::fs::write(&out, &curve).unwrap();
        let third = samples.len() / 3;
        let (middle, last) = (&samples[third..2 * third], &samples[2 * third..]);
        let (rss_mid, rss_last) = (max_of(middle, |s| s.1), max_of(last, |s| s.1));
        let (fds_mid, fds_last) = (max_of(middle, |s| s.2 as f64), max_of(last, |s| s.2 as f64));
        eprintln!(
            "{engine}: {secs} s at {rate} rows/s asked: {acknowledged} rows acknowledged \
             ({:.0} rows/s); RSS max {rss_mid:.1} MiB (middle third) -> {rss_last:.1} MiB (last \
             third), fds {fds_mid} -> {fds_last}; curve in {}",
            acknowledged as f64 / elapsed.as_secs_f64(),
            out.display()
        );
        for (t, rss, fds, rows) in &samples {
            eprintln!("  {t:>7.1} s  {rss:>7.1} MiB  {fds:>4} fds  {rows:>10} rows");
        }
        assert!(
            rss_last <= rss_mid * 1.25 + 16.0,
            "{engine}: resident memory grew from {rss_mid:.1} to {rss_last:.1} MiB"
        );
        assert!(
            fds_last <= fds_mid + 4.0,
            "{engine}: descriptors grew from {fds_mid} to {fds_last}"
        );
        assert_eq!(
            stored_rows(&data),
            acknowledged,
            "{engine}: every acknowledged row stored once"
        );
    }
}
