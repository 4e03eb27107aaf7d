//! Limits: a call that exceeds the memory cap or the time bound returns a typed limit error;
//! the next call succeeds on a fresh instance; everything committed or flushed before is intact.

mod common;

use std::time::Duration;

use edgestore::model::ResourceTagsKey;
use edgestore::sample::MetricGenerator;
use edgestore::{ResourceTags, SpoolConfig};
use edgestore_host::{AsyncStorage, Error, LimitKind, Store};

type Tags = AsyncStorage<ResourceTags, ResourceTagsKey>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cap_is_a_typed_error_and_the_instance_is_rebuilt() {
    let Some(engine) = common::engine("component") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut config = common::config(engine, data.path());
    config.memory_limit = 48 << 20;
    let store = Store::open(config).await.unwrap();
    let tags: Tags = store.storage().await.unwrap();
    let before: Vec<_> = (0..100)
        .map(|i| common::tag("pod", &format!("p{i}"), None))
        .collect();
    tags.create_many(&before).await.unwrap();
    let spool = store
        .spool("metrics", SpoolConfig::new("mem"))
        .await
        .unwrap();
    let rows = MetricGenerator::new(5, 1_700_000_000_000).batch(200);
    spool.put(rows.clone()).await.unwrap();
    spool.flush().await.unwrap();

    // 64 rows with 1 MiB of labels each: more than the cap once copied into the guest.
    let huge: Vec<_> = (0..64)
        .map(|i| {
            let mut t = common::tag("huge", &format!("h{i}"), None);
            t.labels.insert("blob".into(), "x".repeat(1 << 20));
            t
        })
        .collect();
    let err = tags.create_many(&huge).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                kind: LimitKind::Memory,
                ..
            }
        ),
        "{err:?}"
    );

    // The next call runs on a fresh instance; nothing acknowledged was lost.
    assert_eq!(tags.count().await.unwrap(), 100);
    let back = common::read_all(&spool).await;
    assert_eq!(back, rows);
    tags.create(&common::tag("pod", "after", None))
        .await
        .unwrap();
    assert_eq!(tags.count().await.unwrap(), 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_bound_is_a_typed_error_and_the_instance_is_rebuilt() {
    let Some(engine) = common::engine("component") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut config = common::config(engine, data.path());
    // Generous for the small calls even on a loaded machine (a 2,000-row put is ~40 ms when
    // quiet); far too short for the heavy one (minutes).
    config.call_timeout = Duration::from_secs(5);
    let store = Store::open(config).await.unwrap();
    let tags: Tags = store.storage().await.unwrap();
    tags.create(&common::tag("pod", "before", None))
        .await
        .unwrap();
    let kept = store
        .spool("metrics", SpoolConfig::new("kept"))
        .await
        .unwrap();
    let small = MetricGenerator::new(6, 1_700_000_000_000).batch(10);
    kept.put(small.clone()).await.unwrap();
    kept.flush().await.unwrap();

    let mut c = SpoolConfig::new("slow");
    c.compression_level = 11;
    // The last put rotates and compresses the segment itself: one call that cannot end in
    // time (a flush would go on over several calls, see below).
    c.max_records = 200_000;
    c.max_interval = Duration::from_secs(3600);
    let slow = store.spool("slow", c).await.unwrap();
    let mut gen = MetricGenerator::new(7, 1_700_000_100_000);
    for _ in 0..99 {
        slow.put(gen.batch(2_000)).await.unwrap();
    }
    // Brotli level 11 over 200,000 rows (~60 MB of JSON) takes far longer than 5 s.
    let err = slow.put(gen.batch(2_000)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                kind: LimitKind::Time,
                ..
            }
        ),
        "{err:?}"
    );

    assert_eq!(err.code(), edgestore::ErrorCode::TimeLimit, "{err}");
    assert_eq!(err.class(), edgestore::ErrorClass::Resource, "{err}");

    // A fresh instance answers; what was committed and flushed before is intact.
    assert_eq!(tags.count().await.unwrap(), 1);
    let back = common::read_all(&kept).await;
    assert_eq!(back, small);
}

/// A journal a crash left that is far too large to finish within one call (the spool is
/// locked out for good if the open finishes it in one go): the open returns at once, and a
/// flush finishes it piece by piece over as many calls as it takes, every row intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_too_large_for_one_call_never_locks_the_spool_out() {
    let Some(engine) = common::engine("component") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut c = SpoolConfig::new("big");
    c.compression_level = 11;
    c.max_records = 1_000_000;
    c.max_interval = Duration::from_secs(3600);
    // ~7 MB of journal, as a writer killed before finishing it leaves it: at level 11 about
    // 20-40 s of compression inside the component, pieces of 1 MiB a few seconds each.
    let rows = MetricGenerator::new(11, 1_700_000_000_000).batch(24_000);
    {
        let spool: edgestore::Spool<edgestore::Metric> =
            edgestore::Spool::open_path(data.path().join("metrics"), c.clone()).unwrap();
        spool.put(&rows).unwrap();
        spool.sync().unwrap();
    }
    let mut config = common::config(engine, data.path());
    config.call_timeout = Duration::from_secs(12);
    let store = Store::open(config).await.unwrap();
    let started = std::time::Instant::now();
    let spool = store.spool("metrics", c).await.unwrap();
    let usage = spool.usage().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the open took {:?}",
        started.elapsed()
    );
    assert!(usage.journals.files > 4, "split into pieces: {usage:?}");
    // Health says what is going on, without calling it a failure.
    let target = edgestore_host::health::HealthTarget {
        data_dir: data.path(),
        spool_dir: Some("metrics"),
        spool: Some(&spool),
    };
    let health = edgestore_host::health::HealthConfig {
        max_disk_used_percent: 100.0,
        answer_within: Duration::from_secs(30),
        ..Default::default()
    };
    let report = edgestore_host::health::check(&store, &target, &health).await;
    assert!(report.healthy(), "{report:?}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("journals") && n.contains("waiting")),
        "{report:?}"
    );
    // A flush that runs past the call's time bound (a slow or busy machine) keeps what it
    // finished, so trying again converges: every failed try must leave less to do.
    let mut left = u64::MAX;
    for _ in 0..20 {
        match spool.flush().await {
            Ok(()) => break,
            Err(e) if e.code() == edgestore::ErrorCode::TimeLimit => {
                let now = spool.usage().await.unwrap().journals.bytes;
                assert!(
                    now < left,
                    "a flush past the time bound made no progress: {e}"
                );
                left = now;
            }
            Err(e) => panic!("flush: {e}"),
        }
    }
    let usage = spool.usage().await.unwrap();
    assert_eq!(usage.journals.bytes, 0, "{usage:?}");
    assert!(usage.pending.files > 4, "{usage:?}");
    let back = common::read_all(&spool).await;
    assert_eq!(back.len(), rows.len());
    assert!(back == rows, "the rows came back changed or out of order");
}

/// A result larger than wasmtime's default allowance for one call's data (128 MiB lifted
/// into the host) but inside the memory cap crosses the boundary: a `find` is bounded by the
/// cap, not by a fixed number (it trapped the verification of a 640,000-operation load run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_find_result_larger_than_128_mib_but_within_the_cap_comes_back() {
    let Some(engine) = common::engine("component") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut config = common::config(engine, data.path());
    config.memory_limit = 1 << 30;
    let store = Store::open(config).await.unwrap();
    let tags: Tags = store.storage().await.unwrap();
    for batch in 0..10 {
        let rows: Vec<_> = (0..20)
            .map(|i| {
                let mut t = common::tag("big", &format!("b{batch}-{i}"), None);
                t.labels.insert("blob".into(), "x".repeat(768 << 10));
                t
            })
            .collect();
        tags.create_many(&rows).await.unwrap();
    }
    let all = tags.find_all(&edgestore::Query::all()).await.unwrap();
    assert_eq!(all.len(), 200);
    assert!(all.iter().all(|t| t.labels["blob"].len() == 768 << 10));
}
