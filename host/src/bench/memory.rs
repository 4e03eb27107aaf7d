//! Peak resident memory of streaming spool work, each measured in a child process of its own
//! so one measurement's heap cannot inflate the next one's high-water mark.
//!
//! The child is the current executable (the `edgestore` binary or the bench binary) started
//! with [`CHILD_ENV`] set; its `main` calls [`child_main_if_requested`] first. The child runs
//! the work, then prints `VmHWM` from `/proc/self/status` (Linux). The ingest flood figure
//! ([`super::ingest::flood_rss`]) runs in such a child too, for the same reason, and so does
//! the ship figures' upload ([`super::ship`]) and the backup figures' restore
//! ([`super::backup`]), whose whole process is what is timed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use edgestore::sample::MetricGenerator;
use edgestore::{Metric, Spool, SpoolConfig, TimeRange};

use super::error::{BenchError, Result};
use super::spool::BATCH;

/// Set to `<ingest|read>:<rows>:<dir>` (or `flood:<millis>:<dir>`, see
/// [`super::ingest::flood_rss`], `ship:<segments>:<job>`, see [`super::ship`], or
/// `restore:<increments>:<job>`, see [`super::backup`]) to make the executable a measuring
/// child.
pub const CHILD_ENV: &str = "EDGESTORE_BENCH_CHILD";

/// The child work of the ingest flood figure.
pub const FLOOD: &str = "flood";

/// Brotli quality of the memory workloads. Peak memory hardly depends on it (the window is
/// 4 MiB at every quality), while 10M rows at quality 6 would take minutes longer.
pub const MEMORY_LEVEL: u32 = 1;

/// Which streaming work a child does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Generate and `put` rows in batches of [`BATCH`], then `flush`.
    Ingest,
    /// Read the whole spool back with a range reader, [`BATCH`] rows at a time.
    Read,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Ingest => "ingest",
            Work::Read => "read",
        }
    }
}

/// What a child measured.
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    /// `VmHWM` in bytes.
    pub bytes: u64,
    /// Wall time of the child's work.
    pub elapsed: Duration,
}

fn config() -> SpoolConfig {
    let mut config = SpoolConfig::new("memory");
    config.compression_level = MEMORY_LEVEL;
    config.max_records = BATCH as u64;
    config
}

/// Run the current executable as a measuring child doing `spec` ([`CHILD_ENV`]'s value);
/// what it printed.
pub(super) fn run_child(spec: &str) -> Result<String> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io("find the executable", e))?;
    let out = Command::new(exe)
        .env(CHILD_ENV, spec)
        .output()
        .map_err(|e| BenchError::io("start the measuring child", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(BenchError::Check(format!(
            "the measuring child ({spec}) failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(stdout)
}

/// Run `work` over `rows` rows in `dir` in a child process and return its peak RSS.
pub fn peak_rss(work: Work, rows: u64, dir: &Path) -> Result<Peak> {
    let stdout = run_child(&format!("{}:{rows}:{}", work.name(), dir.display()))?;
    let field = |name: &str| -> Option<u64> {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.parse().ok())
    };
    match (field("vmhwm_kb="), field("elapsed_us=")) {
        (Some(kb), Some(us)) => Ok(Peak {
            bytes: kb * 1024,
            elapsed: Duration::from_micros(us),
        }),
        _ => Err(BenchError::Check(format!(
            "the {} child printed no measurement: {stdout}",
            work.name()
        ))),
    }
}

/// If [`CHILD_ENV`] is set, do the child's work and return its exit code; the caller exits
/// with it. `None` when this process is not a measuring child.
pub fn child_main_if_requested() -> Option<i32> {
    let spec = std::env::var(CHILD_ENV).ok()?;
    Some(match child(&spec) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("measuring child ({spec}): {e}");
            1
        }
    })
}

fn child(spec: &str) -> Result<()> {
    let mut parts = spec.splitn(3, ':');
    let (Some(work), Some(rows), Some(dir)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(BenchError::Check(format!("bad {CHILD_ENV}: {spec}")));
    };
    let rows: u64 = rows
        .parse()
        .map_err(|_| BenchError::Check(format!("bad row count in {CHILD_ENV}: {spec}")))?;
    if work == FLOOD {
        return super::ingest::flood_child(rows, Path::new(dir));
    }
    if work == super::ship::SHIP {
        return super::ship::ship_child(rows, dir);
    }
    if work == super::backup::RESTORE {
        return super::backup::restore_child(rows, dir);
    }
    let spool: Spool<Metric> = Spool::open_path(dir, config())?;
    let t = Instant::now();
    match work {
        "ingest" => {
            let mut generator = MetricGenerator::new(7, 1_700_000_000_000);
            let mut left = rows;
            while left > 0 {
                let n = left.min(BATCH as u64);
                spool.put(&generator.batch(n as usize))?;
                left -= n;
            }
            spool.flush()?;
        }
        "read" => {
            let mut reader = spool.read_range(TimeRange::all())?;
            let mut read = 0u64;
            loop {
                let got = reader.next(BATCH)?;
                if got.is_empty() {
                    break;
                }
                read += got.len() as u64;
            }
            if read != rows {
                return Err(BenchError::Check(format!(
                    "read {read} rows, expected {rows}"
                )));
            }
        }
        other => return Err(BenchError::Check(format!("unknown child work {other}"))),
    }
    let elapsed = t.elapsed();
    let kb = vmhwm_kb()?;
    println!("vmhwm_kb={kb} elapsed_us={}", elapsed.as_micros());
    Ok(())
}

/// This process's peak resident set (`VmHWM`, kB).
pub fn vmhwm_kb() -> Result<u64> {
    status_kb("VmHWM")
}

/// This process's resident set now (`VmRSS`, kB).
pub fn vmrss_kb() -> Result<u64> {
    status_kb("VmRSS")
}

/// A kB field of `/proc/self/status` (Linux).
fn status_kb(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| BenchError::io("read /proc/self/status", e))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| BenchError::Check(format!("no {field} in /proc/self/status")))
}
