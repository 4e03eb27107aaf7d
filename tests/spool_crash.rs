//! Process-level crash test: a child process ingests and flushes while the parent kills it with
//! SIGKILL at random moments, many times. After reopening, every row a returned `flush`
//! acknowledged is present exactly once, and no row is present twice.
//!
//! The child is this test binary re-executed with `--exact <test>` and an environment
//! variable, so it works under `cargo test` and `cargo nextest` alike.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgestore::spool::{Spool, SpoolConfig, TimeRange};
use serde_json::{json, Value};

const CHILD_DIR: &str = "EDGESTORE_CRASH_CHILD_DIR";
const CHILD_RUN: &str = "EDGESTORE_CRASH_CHILD_RUN";
const TEST_NAME: &str = "acknowledged_rows_survive_sigkill_exactly_once";
const RUNS: u64 = 30;

fn config() -> SpoolConfig {
    let mut c = SpoolConfig::new("crash");
    c.max_records = 97;
    c.compression_level = 1;
    c
}

/// Child: put batches of rows with ids `run * 1e9 + seq`, flush, and report the highest
/// acknowledged `seq` after each flush returns.
fn child(dir: &str, run: u64) {
    let spool: Spool<Value> = Spool::open_path(dir, config()).expect("child open");
    let mut out = std::io::stdout().lock();
    let mut seq = 0u64;
    let mut state = run
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while seq < 200_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = 1 + (state >> 33) % 150;
        let batch: Vec<Value> = (seq..seq + n)
            .map(|s| json!({"id": run * 1_000_000_000 + s, "v": "payload-".repeat(4)}))
            .collect();
        spool.put(&batch).expect("put");
        seq += n;
        if (state >> 40).is_multiple_of(3) {
            continue; // sometimes leave rows unflushed
        }
        spool.flush().expect("flush");
        writeln!(out, "ACK {}", seq - 1).expect("stdout");
        out.flush().expect("stdout");
    }
}

#[test]
fn acknowledged_rows_survive_sigkill_exactly_once() {
    if let (Ok(dir), Ok(run)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_RUN)) {
        child(&dir, run.parse().unwrap());
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spool");
    let exe = std::env::current_exe().unwrap();
    let mut acked: BTreeMap<u64, Option<u64>> = BTreeMap::new();
    let mut rng = 0x5EEDu64;
    for run in 1..=RUNS {
        let mut child = Command::new(&exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &dir)
            .env(CHILD_RUN, run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut high = None;
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                // A line cut by the kill has no newline and is ignored.
                if let Some(n) = line.strip_suffix('\n').and_then(|l| l.strip_prefix("ACK ")) {
                    high = n.trim().parse::<u64>().ok().or(high);
                }
                line.clear();
            }
            high
        });
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = 15 + (rng >> 33) % 120;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        acked.insert(run, reader.join().unwrap());
    }

    let spool: Spool<Value> = Spool::open_path(&dir, config()).unwrap();
    let mut reader = spool.read_range(TimeRange::all()).unwrap();
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    loop {
        let rows = reader.next(1000).unwrap();
        if rows.is_empty() {
            break;
        }
        for r in rows {
            *seen.entry(r["id"].as_u64().unwrap()).or_default() += 1;
        }
    }
    let dups: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dups.is_empty(), "duplicated rows: {dups:?}");
    let mut total_acked = 0;
    for (run, high) in &acked {
        if let Some(high) = high {
            for s in 0..=*high {
                assert!(
                    seen.contains_key(&(run * 1_000_000_000 + s)),
                    "run {run} row {s} lost"
                );
            }
            total_acked += high + 1;
        }
    }
    assert!(
        total_acked > 0,
        "no flush was ever acknowledged: the test proved nothing"
    );
    assert!(reader.quarantined().is_empty());
    eprintln!(
        "{RUNS} kills, {total_acked} acknowledged rows, {} rows present, stats {:?}, {:?}",
        seen.len(),
        spool.stats(),
        started.elapsed()
    );
}
