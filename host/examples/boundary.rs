//! What the component boundary costs, native against component, through the same typed
//! client: empty call, get-by-id, 1 KiB and 1 MiB round trips, `create_many` and spool
//! ingest, and store open cold and warm. A focused view of `edgestore bench`; the measuring
//! code is the host library's (`edgestore_host::bench`), shared with the report and
//! `cargo bench`.
//!
//! `cargo run --release -p edgestore-host --example boundary [standalone.wasm]`: a path adds
//! the standalone component (SQLite inside; the tests build it into
//! `target/standalone/edgestore-standalone.wasm`) as a third side.

#![forbid(unsafe_code)]

use edgestore_host::bench::stats::{median, secs};
use edgestore_host::bench::{repo, spool, startup, Host, Side};

fn main() -> anyhow::Result<()> {
    let host = Host::new()?;
    let cold = startup::cold_compile(Some(host.cache_dir()))?;
    let warm = startup::warm_open(&host)?;
    println!("open: cold compile {cold:.1?}, warm from the cache {warm:.1?}");
    let create = repo::CreateMany::new(100_000)?;
    let ingest = spool::IngestWorkload::new(200_000, 6);
    let mut sides = vec![Side::Native, Side::Component];
    if let Some(path) = std::env::args_os().nth(1) {
        std::env::set_var(edgestore_host::bench::fixture::STANDALONE_ENV, path);
        sides.push(Side::Standalone);
    }
    for side in sides {
        let p = repo::HostPoints::new(&host, side, 10_000)?;
        let us = |v: Vec<f64>| median(&v) * 1e6;
        println!(
            "{:>9}: ping {:>6.1} µs | get {:>6.1} µs | 1 KiB round trip {:>7.1} µs | 1 MiB {:>8.1} µs | create_many 100k {:>7.0} rows/s | spool put+flush 200k L6 {:>7.0} rows/s",
            side.name(),
            us(p.ping(&host, 5_000)?),
            us(p.get(&host, 5_000, 1)?),
            us(p.round_trip(&host, 1 << 10, 500)?),
            us(p.round_trip(&host, 1 << 20, 50)?),
            100_000.0 / secs(create.host(&host, side)?),
            200_000.0 / secs(ingest.host(&host, side)?),
        );
        p.close(&host)?;
    }
    Ok(())
}
