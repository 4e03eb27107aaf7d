//! Criterion benches over the measuring code in `edgestore_host::bench` (the same code
//! `edgestore bench` runs): each subject sits in one group with its baseline, so criterion
//! reports them side by side in one run.
//!
//! `cargo bench -p edgestore-suite` runs everything; `cargo bench -p edgestore-suite -- spool`
//! one group. Sizes are smaller than the report's full mode so a criterion run stays minutes:
//! the report (`edgestore bench`) is where targets are judged.

#![forbid(unsafe_code)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use edgestore_host::bench::{
    fixture::tempdir, ingest, memory, repo, spool, startup, stats, Host, Side,
};

/// Spool ingest at levels 1, 6, 11: native, raw Brotli on the same bytes (the pure-Rust
/// `brotli` crate, and the C encoder segments are written with), the plugin component (its
/// host compresses), the native engine behind the same host client, the standalone component
/// (it compresses in wasm).
fn ingest(c: &mut Criterion, host: &Host) {
    for (level, rows) in [(1u32, 50_000usize), (6, 20_000), (11, 5_000)] {
        let w = spool::IngestWorkload::new(rows, level);
        let segments = w
            .native()
            .and_then(|r| r.segments())
            .expect("warm-up ingest");
        let mut g = c.benchmark_group(format!("spool_ingest_l{level}"));
        g.sample_size(10);
        g.throughput(Throughput::Bytes(segments.json_bytes()));
        g.bench_function("native", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| w.native().expect("native ingest").elapsed)
                    .sum()
            })
        });
        g.bench_function("raw_brotli", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| spool::raw_brotli(&segments, level).expect("raw brotli").0)
                    .sum()
            })
        });
        g.bench_function("raw_brotli_c", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        spool::raw_local_encoder(&segments, level)
                            .expect("raw C brotli")
                            .0
                    })
                    .sum()
            })
        });
        g.bench_function("component", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| w.host(host, Side::Component).expect("component ingest"))
                    .sum()
            })
        });
        // The native engine behind the same host client: the component's cost without the
        // client's.
        g.bench_function("host_native", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| w.host(host, Side::Native).expect("host native ingest"))
                    .sum()
            })
        });
        // Brotli compiled to wasm, beside the plugin whose host compresses (when the tests
        // built the standalone component, or EDGESTORE_STANDALONE_WASM names it).
        if edgestore_host::bench::fixture::standalone_file().is_some() {
            g.bench_function("standalone", |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| w.host(host, Side::Standalone).expect("standalone ingest"))
                        .sum()
                })
            });
        }
        g.finish();
        if level == 6 {
            println!(
                "spool_ingest_l6: space savings {:.2} % ({} -> {} bytes); brotli -q 6: {:?} bytes",
                segments.savings() * 100.0,
                segments.json_bytes(),
                segments.compressed_bytes,
                spool::brotli_cli_bytes(&segments, 6).expect("brotli CLI")
            );
        }
    }
}

/// create_many of 100k rows: repository, raw rusqlite, host native engine, component.
fn create_many(c: &mut Criterion, host: &Host) {
    let cm = repo::CreateMany::new(100_000).expect("rows");
    let mut g = c.benchmark_group("repo_create_many_100k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(cm.rows.len() as u64));
    g.bench_function("native", |b| {
        b.iter_custom(|n| (0..n).map(|_| cm.native().expect("native")).sum())
    });
    g.bench_function("native_sqlcipher", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| cm.native_encrypted().expect("sqlcipher"))
                .sum()
        })
    });
    g.bench_function("raw_rusqlite", |b| {
        b.iter_custom(|n| (0..n).map(|_| cm.raw().expect("raw")).sum())
    });
    g.bench_function("host_native", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| cm.host(host, Side::Native).expect("host"))
                .sum()
        })
    });
    g.bench_function("component", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| cm.host(host, Side::Component).expect("component"))
                .sum()
        })
    });
    g.finish();
}

fn total(latencies: Vec<f64>) -> Duration {
    Duration::from_secs_f64(latencies.iter().sum())
}

/// Total time of full 100-key `get_many` batches from their per-key samples.
fn batches_total(per_key: Vec<f64>) -> Duration {
    Duration::from_secs_f64(per_key.iter().sum::<f64>() * 100.0)
}

/// Point operations on the core: get (cache off and on, and raw rusqlite beside it), get_many
/// of 100 keys, indexed find, create, update.
fn points(c: &mut Criterion) {
    let mut p = repo::Points::new(100_000).expect("rows");
    let mut g = c.benchmark_group("repo_point_native");
    g.bench_function("get_cache_off", |b| {
        b.iter_custom(|n| total(p.get(n as usize, false, n).expect("get")))
    });
    g.bench_function("get_cache_on", |b| {
        b.iter_custom(|n| total(p.get(n as usize, true, n).expect("get")))
    });
    g.bench_function("get_raw_rusqlite", |b| {
        b.iter_custom(|n| total(p.get_raw(n as usize, n).expect("raw get")))
    });
    // One iteration: a batch of 100 keys in one read transaction.
    g.bench_function("get_many_100", |b| {
        b.iter_custom(|n| batches_total(p.get_many(n as usize * 100, 100, n).expect("get_many")))
    });
    g.bench_function("find_indexed", |b| {
        b.iter_custom(|n| total(p.find_indexed(n as usize, n).expect("find")))
    });
    g.bench_function("update", |b| {
        b.iter_custom(|n| total(p.update(n as usize, n).expect("update")))
    });
    g.bench_function("create", |b| {
        b.iter_custom(|n| total(p.create(n as usize).expect("create")))
    });
    g.finish();
}

/// The boundary and get-by-id through the host client on both engines.
fn boundary(c: &mut Criterion, host: &Host) {
    let sides = [Side::Native, Side::Component];
    let stores: Vec<_> = sides
        .iter()
        .map(|&s| repo::HostPoints::new(host, s, 10_000).expect("store"))
        .collect();
    let mut g = c.benchmark_group("boundary");
    for (side, p) in sides.iter().zip(&stores) {
        let name = side.name();
        g.bench_function(BenchmarkId::new("empty_call", name), |b| {
            b.iter_custom(|n| total(p.ping(host, n as usize).expect("ping")))
        });
        g.bench_function(BenchmarkId::new("get_by_id", name), |b| {
            b.iter_custom(|n| total(p.get(host, n as usize, n).expect("get")))
        });
        g.bench_function(BenchmarkId::new("get_many_100", name), |b| {
            b.iter_custom(|n| {
                batches_total(
                    p.get_many(host, n as usize * 100, 100, n)
                        .expect("get_many"),
                )
            })
        });
        for (label, bytes) in [
            ("round_trip_1kb", 1usize << 10),
            ("round_trip_1mb", 1 << 20),
        ] {
            g.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter_custom(|n| total(p.round_trip(host, bytes, n as usize).expect("rt")))
            });
        }
    }
    g.finish();
    for p in stores {
        p.close(host).expect("close");
    }
}

/// Prometheus remote write 1.0 (2,000-sample requests, level 6) through `serve`'s HTTP route
/// in process against `spool put` of the same rows, on both engines; then, printed, the
/// latency of 8 concurrent senders with group commit and the RSS growth of a flood refused at
/// the spool's byte cap (`edgestore bench` judges those).
fn remote_write(c: &mut Criterion, host: &Host) {
    let w = ingest::RemoteWrite::new(20_000, ingest::LEVEL).expect("requests");
    let mut g = c.benchmark_group("ingest_remote_write_l6");
    g.sample_size(10);
    g.throughput(Throughput::Elements(w.samples as u64));
    g.bench_function("decode", |b| {
        b.iter_custom(|n| (0..n).map(|_| w.decode().expect("decode")).sum())
    });
    for side in [Side::Native, Side::Component] {
        g.bench_function(BenchmarkId::new("http", side.name()), |b| {
            b.iter_custom(|n| (0..n).map(|_| w.http(host, side).expect("http")).sum())
        });
        g.bench_function(BenchmarkId::new("spool_put", side.name()), |b| {
            b.iter_custom(|n| (0..n).map(|_| w.put(host, side).expect("put")).sum())
        });
    }
    g.finish();
    let senders = w
        .concurrent(host, Side::Native, ingest::SENDERS, 25)
        .expect("concurrent senders");
    println!(
        "ingest: {} senders, sync per request: p50 {:.1} ms, p99 {:.1} ms, {:.0} samples/s",
        ingest::SENDERS,
        stats::median(&senders.latencies) * 1e3,
        stats::percentile(&senders.latencies, 0.99) * 1e3,
        senders.samples as f64 / senders.elapsed.as_secs_f64()
    );
    let dir = tempdir().expect("dir");
    let flood = ingest::flood_rss(Duration::from_secs(3), dir.path()).expect("flood");
    println!(
        "ingest: flood at the byte cap, {} senders: RSS growth {:.1} MiB, {} x 429, {} failed on \
         the connection",
        ingest::FLOOD_SENDERS,
        flood.growth_bytes as f64 / 1048576.0,
        flood.refused,
        flood.failed
    );
}

/// Cold compile and warm open of the component.
fn start_up(c: &mut Criterion, host: &Host) {
    let mut g = c.benchmark_group("startup");
    g.sample_size(10);
    g.bench_function("cold_compile", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| startup::cold_compile(None).expect("compile"))
                .sum()
        })
    });
    g.bench_function("warm_open", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| startup::warm_open(host).expect("open"))
                .sum()
        })
    });
    g.finish();
}

/// Peak RSS of streaming ingest and read (1M rows here; `edgestore bench` runs 10M), each in
/// a child process; criterion times the children, the peaks are printed.
fn peak_memory(c: &mut Criterion) {
    let rows = 1_000_000;
    let dir = tempdir().expect("dir");
    let ingest = memory::peak_rss(memory::Work::Ingest, rows, dir.path()).expect("ingest");
    let read = memory::peak_rss(memory::Work::Read, rows, dir.path()).expect("read");
    println!(
        "memory: peak RSS ingest {rows} rows {:.1} MiB, streaming read {:.1} MiB",
        ingest.bytes as f64 / 1048576.0,
        read.bytes as f64 / 1048576.0
    );
    let mut g = c.benchmark_group("memory_1m_rows");
    g.sample_size(10);
    g.bench_function("streaming_read_child", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    memory::peak_rss(memory::Work::Read, rows, dir.path())
                        .expect("read")
                        .elapsed
                })
                .sum()
        })
    });
    g.finish();
}

fn main() {
    // The memory and flood figures re-run this binary as a measuring child.
    if let Some(code) = memory::child_main_if_requested() {
        std::process::exit(code);
    }
    let host = Host::new().expect("runtime");
    host.warm().expect("compile the component into the cache");
    let mut c = Criterion::default().configure_from_args();
    ingest(&mut c, &host);
    create_many(&mut c, &host);
    points(&mut c);
    boundary(&mut c, &host);
    start_up(&mut c, &host);
    peak_memory(&mut c);
    remote_write(&mut c, &host);
    c.final_summary();
}
