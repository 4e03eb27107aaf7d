//! Measures what the component boundary costs, native against component, through the same
//! typed client: per-call overhead, batch create rows/s, spool put rows/s, and store open
//! (instantiation) cold and warm from the compiled-component cache.
//!
//! `cargo run --release -p edgestore-host --example boundary [component.wasm] [standalone.wasm]`
//! (default: the plugin component embedded in the host; a second path adds a third row for the
//! standalone component, which the tests build into `target/standalone/edgestore-standalone.wasm`)

use std::time::{Duration, Instant};

use edgestore::model::ResourceTagsKey;
use edgestore::sample::MetricGenerator;
use edgestore::{ResourceTags, SpoolConfig, Timestamp};
use edgestore_host::{AsyncStorage, ComponentSource, Engine, Store, StoreConfig};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn measure(name: &str, engine: Engine, cache: &std::path::Path) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = StoreConfig::new(engine, dir.path());
    config.cache_dir = Some(cache.to_path_buf());
    config.flush_interval = None;
    config.call_timeout = Duration::from_secs(600);
    config.memory_limit = 2 << 30;
    let t = Instant::now();
    let store = Store::open(config.clone()).await?;
    let open = t.elapsed();
    let tags: AsyncStorage<ResourceTags, ResourceTagsKey> = store.storage().await?;

    let mut calls = Vec::new();
    for _ in 0..5_000 {
        let t = Instant::now();
        store.ping().await?;
        calls.push(t.elapsed());
    }
    let mut counts = Vec::new();
    for _ in 0..2_000 {
        let t = Instant::now();
        tags.count().await?;
        counts.push(t.elapsed());
    }

    let rows: Vec<_> = (0..100_000)
        .map(|i| {
            let mut t = ResourceTags::new("pod", &format!("pod-{i}"), Some("prod"), Timestamp(1));
            t.labels.insert("app".into(), format!("app-{}", i % 100));
            t
        })
        .collect();
    let t = Instant::now();
    let n = tags.create_many(&rows).await?;
    let create = t.elapsed();
    assert_eq!(n, 100_000);

    let spool = store.spool("metrics", SpoolConfig::new("bench")).await?;
    let mut gen = MetricGenerator::new(1, 1_700_000_000_000);
    let batches: Vec<_> = (0..20).map(|_| gen.batch(10_000)).collect();
    let t = Instant::now();
    for b in batches {
        spool.put(b).await?;
    }
    spool.flush().await?;
    let put = t.elapsed();
    store.close().await?;

    let t = Instant::now();
    let again = Store::open(config).await?;
    let warm = t.elapsed();
    again.close().await?;

    println!(
        "{name:>10}: open {:>8.1?} (again {:>7.1?}) | ping median {:>6.1?} | count median {:>6.1?} | create_many 100k {:>7.0} rows/s | spool put+flush 200k L6 {:>7.0} rows/s",
        open,
        warm,
        median(calls),
        median(counts),
        100_000.0 / create.as_secs_f64(),
        200_000.0 / put.as_secs_f64(),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    measure("native", Engine::Native, cache.path()).await?;
    // The component embedded in the host unless a path is given.
    let component = std::env::args()
        .nth(1)
        .map(|p| ComponentSource::File(p.into()))
        .unwrap_or_else(|| {
            ComponentSource::Bytes(edgestore_host::artifacts::PLUGIN_COMPONENT.into())
        });
    measure("component", Engine::Component(component), cache.path()).await?;
    if let Some(standalone) = std::env::args().nth(2) {
        let source = ComponentSource::File(standalone.into());
        measure("standalone", Engine::Component(source), cache.path()).await?;
    }
    Ok(())
}
