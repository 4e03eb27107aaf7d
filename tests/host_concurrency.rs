//! Concurrency and load: 64 tokio tasks doing mixed operations through one store (1,000 each
//! here; the full load run is `EDGESTORE_LOAD_OPS=10000`) lose and duplicate nothing, on both
//! engines; each operation's latency is measured and p50/p99 printed.

mod common;

use std::collections::BTreeSet;

use edgestore::model::ResourceTagsKey;
use edgestore::sample::MetricGenerator;
use edgestore::{Creator, ResourceTags, SpoolConfig, StorageCommon};
use edgestore_host::{AsyncStorage, DbTarget, Engine, Labels, Store};

const TASKS: usize = 64;

/// Operations per task: 1,000, or `EDGESTORE_LOAD_OPS`.
fn ops() -> usize {
    std::env::var("EDGESTORE_LOAD_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

async fn many_tasks(engine: Engine, name: &str) {
    let ops = ops();
    let data = tempfile::tempdir().unwrap();
    let mut config = common::config(engine, data.path());
    // In memory: the point is the store's concurrency, not 8,000 fsyncs.
    config.labels = Labels::new().grant("default", DbTarget::Memory);
    let store = Store::open(config).await.unwrap();
    let tags: AsyncStorage<ResourceTags, ResourceTagsKey> = store.storage().await.unwrap();
    let mut spool_config = SpoolConfig::new("conc");
    spool_config.compression_level = 1;
    let spool = store.spool("metrics", spool_config).await.unwrap();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let tags = tags.clone();
        let spool = spool.clone();
        handles.push(tokio::spawn(async move {
            let mut gen = MetricGenerator::new(t as u64, 1_700_000_000_000);
            let mut created = 0u64;
            let mut metrics = 0u64;
            let mut latencies = Vec::with_capacity(ops);
            for i in 0..ops {
                let started = std::time::Instant::now();
                let name = format!("t{t}-{i}");
                match i % 5 {
                    0 | 1 => {
                        assert!(tags.create(&common::tag("pod", &name, None)).await.unwrap());
                        created += 1;
                    }
                    2 => {
                        let prev = format!("t{t}-{}", i - 1);
                        let got = tags.get(&common::key("pod", &prev, None)).await.unwrap();
                        tags.update(&got).await.unwrap();
                    }
                    3 => {
                        let batch = gen.batch(3);
                        spool.put(batch).await.unwrap();
                        metrics += 3;
                    }
                    _ => {
                        let n = tags
                            .tx(move |tx| {
                                tx.create(&common::tag("svc", &name, None))?;
                                tx.count()
                            })
                            .await
                            .unwrap();
                        assert!(n > 0);
                        created += 1;
                    }
                }
                latencies.push(started.elapsed());
            }
            (created, metrics, latencies)
        }));
    }
    let started = std::time::Instant::now();
    let mut created = 0;
    let mut metrics = 0;
    let mut latencies = Vec::new();
    for h in handles {
        let (c, m, l) = h.await.unwrap();
        created += c;
        metrics += m;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    eprintln!(
        "{name}: {TASKS} tasks x {ops} mixed operations in {elapsed:.1?} ({:.0} ops/s); \
         latency p50 {:?}, p99 {:?}, max {:?}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    assert_eq!(tags.count().await.unwrap(), created);
    let all = tags.find_all(&edgestore::Query::all()).await.unwrap();
    let keys: BTreeSet<_> = all
        .iter()
        .map(|t| (t.kind.clone(), t.name.clone()))
        .collect();
    assert_eq!(keys.len() as u64, created, "no duplicates");
    spool.flush().await.unwrap();
    let back = common::read_all(&spool).await;
    assert_eq!(back.len() as u64, metrics);
    let ids: BTreeSet<_> = back.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids.len() as u64, metrics, "no duplicated metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn native_many_tasks() {
    many_tasks(Engine::Native, "native").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn component_many_tasks() {
    if let Some(engine) = common::engine("component") {
        many_tasks(engine, "component").await;
    }
}

/// The queue in front of a store is bounded: with the store busy and the queue full, a further
/// caller waits `queue_wait` and then gets a transient `busy`; the queued call still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_busy_instead_of_growing() {
    let data = tempfile::tempdir().unwrap();
    let mut config = common::config(Engine::Native, data.path());
    config.labels = Labels::new().grant("default", DbTarget::Memory);
    config.queue_capacity = 1;
    config.queue_wait = std::time::Duration::from_millis(100);
    config.retry.max_attempts = 1;
    let store = Store::open(config).await.unwrap();
    let tags: AsyncStorage<ResourceTags, ResourceTagsKey> = store.storage().await.unwrap();
    // Occupy the store's thread: a transaction runs there until its closure returns.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let busy = tags.clone();
    let hold = tokio::spawn(async move {
        busy.tx(move |_| {
            let _ = started_tx.send(());
            std::thread::sleep(std::time::Duration::from_millis(1_500));
            Ok(())
        })
        .await
    });
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    // The one queue slot.
    let queued = tags.clone();
    let waiting = tokio::spawn(async move { queued.count().await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let e = tags.count().await.unwrap_err();
    assert_eq!(e.code(), edgestore::ErrorCode::Busy, "{e}");
    assert!(e.to_string().contains("queue"), "{e}");
    hold.await.unwrap().unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), 0);
    store.close().await.unwrap();
}
