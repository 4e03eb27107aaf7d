//! The store's own timer calls `flush-due` on every open spool: a segment whose interval has
//! passed is finished without any caller flushing it.

mod common;

use std::time::Duration;

use edgestore::sample::MetricGenerator;
use edgestore::{SpoolConfig, TimeRange};
use edgestore_host::{Engine, Store};

async fn timer_finishes_due_segments(engine: Engine) {
    let data = tempfile::tempdir().unwrap();
    let mut config = common::config(engine, data.path());
    config.flush_interval = Some(Duration::from_millis(20));
    let store = Store::open(config).await.unwrap();
    let mut c = SpoolConfig::new("timer");
    c.max_interval = Duration::from_millis(50);
    let spool = store.spool("metrics", c).await.unwrap();
    spool
        .put(MetricGenerator::new(1, 1_700_000_000_000).batch(10))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while spool.pending().await.unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the timer never flushed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(spool.segments(TimeRange::all()).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_timer_finishes_due_segments() {
    timer_finishes_due_segments(Engine::Native).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_timer_finishes_due_segments() {
    if let Some(engine) = common::engine("component") {
        timer_finishes_due_segments(engine).await;
    }
}

/// `storage.finishWorker` on the native engine: rotated segments are finished by the worker
/// thread (or by `put` helping once two wait); `flush` returns only when every row is in a
/// published segment, and the rows read back whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_finish_worker_finishes_rotated_segments() {
    let data = tempfile::tempdir().unwrap();
    let mut config = common::config(Engine::Native, data.path());
    config.finish_worker = true;
    let store = Store::open(config).await.unwrap();
    let mut c = SpoolConfig::new("worker");
    c.max_records = 100;
    let spool = store.spool("metrics", c).await.unwrap();
    let rows = MetricGenerator::new(5, 1_700_000_000_000).batch(1_050);
    for chunk in rows.chunks(150) {
        spool.put(chunk.to_vec()).await.unwrap();
    }
    spool.flush().await.unwrap();
    assert_eq!(spool.pending().await.unwrap(), 0);
    let segments = spool.segments(TimeRange::all()).await.unwrap();
    assert_eq!(segments.len(), 11);
    assert_eq!(segments.iter().filter_map(|s| s.rows).sum::<u64>(), 1_050);
    let back = common::read_all(&spool).await;
    assert_eq!(back, rows);
    store.close().await.unwrap();
}
