//! Concurrency: 32 tokio tasks doing 1,000 mixed operations each through one store lose and
//! duplicate nothing, on both engines.

mod common;

use std::collections::BTreeSet;

use edgestore::model::ResourceTagsKey;
use edgestore::sample::MetricGenerator;
use edgestore::{Creator, ResourceTags, SpoolConfig, StorageCommon};
use edgestore_host::{AsyncStorage, DbTarget, Engine, Labels, Store};

const TASKS: usize = 32;
const OPS: usize = 1_000;

async fn thirty_two_tasks(engine: Engine) {
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
            for i in 0..OPS {
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
            }
            (created, metrics)
        }));
    }
    let mut created = 0;
    let mut metrics = 0;
    for h in handles {
        let (c, m) = h.await.unwrap();
        created += c;
        metrics += m;
    }
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
async fn native_thirty_two_tasks() {
    thirty_two_tasks(Engine::Native).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn component_thirty_two_tasks() {
    if let Some(engine) = common::engine("component") {
        thirty_two_tasks(engine).await;
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
