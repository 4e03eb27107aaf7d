//! Throwaway perf harness: spool ingest (put + flush) against raw Brotli of the same bytes at
//! the same level, side by side, medians of several rounds.
//!
//! `cargo run --release -p edgestore --example spool_perf -- [rows=200000] [level=6] [rounds=3] [workers=0]`

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use edgestore::sample::MetricGenerator;
use edgestore::spool::{Metric, Spool, SpoolConfig};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let level: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(6);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let workers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0);
    let only = args.next().unwrap_or_default();
    let batch = 10_000usize;
    let mut generator = MetricGenerator::new(2024, 1_700_000_000_000);
    let batches: Vec<Vec<Metric>> = (0..rows / batch).map(|_| generator.batch(batch)).collect();
    // The same serialized bytes, one JSON array per segment.
    let arrays: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| serde_json::to_vec(b).unwrap())
        .collect();
    let json_bytes: usize = arrays.iter().map(Vec::len).sum();
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        if only.is_empty() || only == "raw" {
            let t = Instant::now();
            let mut out_bytes = 0;
            for a in &arrays {
                let mut out = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut out, 64 << 10, level, 22);
                    w.write_all(a)?;
                }
                out_bytes += out.len();
            }
            std::hint::black_box(out_bytes);
            raw.push(rows as f64 / t.elapsed().as_secs_f64());
        }
        if only.is_empty() || only == "ours" {
            let tmp = tempfile::tempdir()?;
            let mut cfg = SpoolConfig::new("bench");
            cfg.compression_level = level;
            let spool: Arc<Spool<Metric>> = Arc::new(Spool::open_path(tmp.path(), cfg)?);
            spool.defer_finishing(workers > 0);
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let (spool, done) = (spool.clone(), done.clone());
                    std::thread::spawn(move || {
                        while !done.load(std::sync::atomic::Ordering::Relaxed) {
                            if !spool.finish_next().unwrap() {
                                std::thread::sleep(std::time::Duration::from_millis(1));
                            }
                        }
                    })
                })
                .collect();
            let t = Instant::now();
            for b in &batches {
                spool.put(b)?;
            }
            spool.flush()?;
            ours.push(rows as f64 / t.elapsed().as_secs_f64());
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            for h in handles {
                h.join().unwrap();
            }
            let segs = spool.segments(edgestore::spool::TimeRange::all())?;
            assert_eq!(
                segs.iter().map(|s| s.rows.unwrap_or(0)).sum::<u64>(),
                (rows / batch * batch) as u64
            );
        }
    }
    let mb = json_bytes as f64 / rows as f64 / 1e6;
    if !raw.is_empty() {
        let r = median(raw.clone());
        println!(
            "raw brotli L{level}      median {r:>8.0} rows/s {:>6.1} MB/s  {:?}",
            r * mb,
            raw.iter().map(|x| *x as u64).collect::<Vec<_>>()
        );
    }
    if !ours.is_empty() {
        let o = median(ours.clone());
        println!(
            "spool put+flush L{level} median {o:>8.0} rows/s {:>6.1} MB/s  {:?}",
            o * mb,
            ours.iter().map(|x| *x as u64).collect::<Vec<_>>()
        );
        if !raw.is_empty() {
            println!("ratio spool/raw      {:.2}", o / median(raw));
        }
    }
    Ok(())
}
