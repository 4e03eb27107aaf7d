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
