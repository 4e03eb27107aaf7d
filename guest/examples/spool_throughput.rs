//! Ingest N realistic metrics into a temporary spool and read them back.
//!
//! ```text
//! cargo run --release -p edgestore --example spool_throughput -- [rows=1000000] [level=6]
//! ```
//!
//! Generation is not timed: rows are generated in batches of `max_records` and only `put` and
//! `flush` are measured. JSON bytes are the bytes of the segments' JSON arrays.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use edgestore::sample::MetricGenerator;
use edgestore::spool::{Metric, Spool, SpoolConfig, TimeRange};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let level: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(6);

    let tmp = tempfile::tempdir()?;
    let mut cfg = SpoolConfig::new("bench");
    cfg.compression_level = level;
    let batch = cfg.max_records as usize;
    let spool: Spool<Metric> = Spool::open_path(tmp.path(), cfg)?;

    let mut generator = MetricGenerator::new(2024, 1_700_000_000_000);
    let mut ingest = Duration::ZERO;
    let mut json_bytes = 0u64;
    let mut left = rows;
    while left > 0 {
        let n = left.min(batch);
        let metrics = generator.batch(n);
        for m in &metrics {
            json_bytes += serde_json::to_vec(m)?.len() as u64 + 1; // element + separator
        }
        let t = Instant::now();
        spool.put(&metrics)?;
        ingest += t.elapsed();
        left -= n;
    }
    let t = Instant::now();
    spool.flush()?;
    ingest += t.elapsed();

    let segments = spool.segments(TimeRange::all())?;
    let compressed: u64 = segments.iter().map(|s| s.bytes).sum();
    let secs = ingest.as_secs_f64();
    println!("rows                 {rows}");
    println!("brotli level         {level}");
    println!("segments             {}", segments.len());
    println!("ingest time          {secs:.3} s");
    println!("ingest rows/s        {:.0}", rows as f64 / secs);
    println!("ingest MB/s (JSON)   {:.1}", json_bytes as f64 / 1e6 / secs);
    println!("JSON bytes           {json_bytes}");
    println!("compressed bytes     {compressed}");
    println!(
        "ratio                {:.1}:1",
        json_bytes as f64 / compressed as f64
    );
    println!(
        "space saving         {:.1} %",
        100.0 * (1.0 - compressed as f64 / json_bytes as f64)
    );

    let t = Instant::now();
    let mut reader = spool.read_range(TimeRange::all())?;
    let mut read = 0usize;
    loop {
        let got = reader.next(batch)?;
        if got.is_empty() {
            break;
        }
        read += got.len();
    }
    let rsecs = t.elapsed().as_secs_f64();
    assert_eq!(read, rows, "every row reads back");
    println!("read time            {rsecs:.3} s");
    println!("read rows/s          {:.0}", read as f64 / rsecs);
    Ok(())
}
