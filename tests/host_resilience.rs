//! Metrics, the circuit breaker and health through the typed client, on both engines: errors
//! are counted by code and class, repeated engine failures open the breaker (calls then fail
//! fast), it half-opens after the cool-down and one good probe closes it; health reports it.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use edgestore::model::ResourceTagsKey;
use edgestore::sample::MetricGenerator;
use edgestore::{ErrorCode, ResourceTags, SpoolConfig, TimeRange};
use edgestore_host::health::{check, HealthConfig, HealthTarget};
use edgestore_host::resilience::{counts_as_failure, BreakerConfig, BreakerState};
use edgestore_host::{Engine, Error, Store, TxStorage};

/// The scrape as `(name, sorted labels) -> value` for counters and gauges, plus histogram
/// sample counts under `<name>_count`.
fn scrape(store: &Store) -> HashMap<(String, Vec<(String, String)>), f64> {
    let text = store.metrics().gather_text().unwrap();
    let parsed =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let mut out = HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let (name, value) = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => (s.metric, v),
            prometheus_parse::Value::Histogram(buckets) => (
                format!("{}_count", s.metric),
                buckets.last().map_or(0.0, |b| b.count),
            ),
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert((name, labels), value);
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

async fn errors_are_counted_by_code_and_class(engine: Engine, name: &str) {
    let data = tempfile::tempdir().unwrap();
    let store = common::open(engine, data.path()).await;
    let tags = store
        .storage::<ResourceTags, ResourceTagsKey>()
        .await
        .unwrap();
    tags.create(&common::tag("pod", "a", None)).await.unwrap();
    for _ in 0..2 {
        let err = tags
            .get(&common::key("pod", "missing", None))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound);
    }
    let spool = store.spool("metrics", SpoolConfig::new("m")).await.unwrap();
    spool
        .put(MetricGenerator::new(3, 1_700_000_000_000).batch(25))
        .await
        .unwrap();
    spool.flush().await.unwrap();
    let m = scrape(&store);
    let get = |k: &str, l: &[(&str, &str)]| m.get(&(k.to_owned(), labels(l))).copied();
    assert_eq!(
        get(
            "edgestore_errors_total",
            &[("code", "not-found"), ("class", "permanent")]
        ),
        Some(2.0),
        "{m:?}"
    );
    assert_eq!(
        get(
            "edgestore_operation_duration_seconds_count",
            &[("engine", name), ("operation", "get")]
        ),
        Some(2.0)
    );
    assert_eq!(
        get(
            "edgestore_operation_duration_seconds_count",
            &[("engine", name), ("operation", "create")]
        ),
        Some(1.0)
    );
    assert_eq!(get("edgestore_spool_rows_total", &[]), Some(25.0));
    assert_eq!(get("edgestore_spool_segments_total", &[]), Some(1.0));
    assert_eq!(get("edgestore_circuit_breaker_state", &[]), Some(0.0));
    assert!(
        get("edgestore_open_connections", &[]).unwrap_or(0.0) >= 1.0,
        "{m:?}"
    );
    // Caller mistakes never open the circuit.
    assert_eq!(store.breaker_state(), BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_errors_are_counted_by_code_and_class() {
    errors_are_counted_by_code_and_class(Engine::Native, "native").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_errors_are_counted_by_code_and_class() {
    if let Some(engine) = common::engine("component") {
        errors_are_counted_by_code_and_class(engine, "component").await;
    }
}

/// The spool's directory disappears under it: every flush then fails with an I/O error (the
/// engine's fault, not the caller's), so the breaker opens.
async fn breaker_opens_fails_fast_and_half_opens(engine: Engine) {
    let data = tempfile::tempdir().unwrap();
    let mut config = common::config(engine, data.path());
    let cool_down = Duration::from_millis(300);
    config.breaker = BreakerConfig {
        failure_threshold: 2,
        cool_down,
    };
    let store = Store::open(config).await.unwrap();
    let tags = store
        .storage::<ResourceTags, ResourceTagsKey>()
        .await
        .unwrap();
    let spool = store.spool("metrics", SpoolConfig::new("m")).await.unwrap();
    spool
        .put(MetricGenerator::new(1, 1_700_000_000_000).batch(10))
        .await
        .unwrap();
    std::fs::remove_dir_all(data.path().join("metrics")).unwrap();

    for _ in 0..2 {
        let err = spool.flush().await.unwrap_err();
        assert!(
            !matches!(err, Error::CircuitOpen { .. }),
            "not open yet: {err}"
        );
        assert!(counts_as_failure(&err), "an engine failure: {err}");
    }
    assert_eq!(store.breaker_state(), BreakerState::Open);
    // Open: everything fails fast, the repository too, with the cause's code.
    let err = tags.count().await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
    let err = spool.flush().await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");

    let target = HealthTarget {
        data_dir: data.path(),
        spool_dir: None,
        spool: None,
    };
    let report = check(&store, &target, &ignore_disk()).await;
    assert!(!report.healthy());
    assert!(
        report.reasons.iter().any(|r| r.contains("circuit open")),
        "{:?}",
        report.reasons
    );

    let m = scrape(&store);
    assert_eq!(
        m.get(&("edgestore_circuit_breaker_state".into(), vec![])),
        Some(&2.0)
    );
    assert!(m.keys().any(|(n, l)| n == "edgestore_errors_total"
        && l.iter().any(|(k, v)| k == "code" && v == "circuit-open")));

    // After the cool-down one probe goes through; it fails (the directory is still gone), so
    // the circuit opens again.
    tokio::time::sleep(cool_down + Duration::from_millis(50)).await;
    assert_eq!(store.breaker_state(), BreakerState::HalfOpen);
    let err = spool.flush().await.unwrap_err();
    assert!(
        !matches!(err, Error::CircuitOpen { .. }),
        "the probe ran: {err}"
    );
    assert_eq!(store.breaker_state(), BreakerState::Open);

    // Next cool-down: a probe that succeeds closes it, and the repository works again.
    tokio::time::sleep(cool_down + Duration::from_millis(50)).await;
    assert_eq!(tags.count().await.unwrap(), 0);
    assert_eq!(store.breaker_state(), BreakerState::Closed);
    let report = check(&store, &target, &ignore_disk()).await;
    assert!(report.healthy(), "{:?}", report.reasons);
    let _ = spool.segments(TimeRange::all()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_breaker_opens_fails_fast_and_half_opens() {
    breaker_opens_fails_fast_and_half_opens(Engine::Native).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_breaker_opens_fails_fast_and_half_opens() {
    if let Some(engine) = common::engine("component") {
        breaker_opens_fails_fast_and_half_opens(engine).await;
    }
}

/// A transaction open longer than the limit makes the store unhealthy while it runs, and
/// healthy again once it ends.
async fn long_transaction_is_unhealthy(engine: Engine) {
    let data = tempfile::tempdir().unwrap();
    let store = common::open(engine, data.path()).await;
    let tags = store
        .storage::<ResourceTags, ResourceTagsKey>()
        .await
        .unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let running = tokio::spawn({
        let tags = tags.clone();
        async move {
            tags.tx(move |_tx: &TxStorage<'_, ResourceTags, ResourceTagsKey>| {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
                Ok(())
            })
            .await
        }
    });
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    let config = HealthConfig {
        max_transaction_age: Duration::from_millis(20),
        answer_within: Duration::from_millis(200),
        // This test is about the transaction; the machine's disk may be nearly full.
        max_disk_used_percent: 100.0,
        ..HealthConfig::default()
    };
    tokio::time::sleep(Duration::from_millis(40)).await;
    let target = HealthTarget {
        data_dir: data.path(),
        spool_dir: None,
        spool: None,
    };
    let report = check(&store, &target, &config).await;
    assert!(
        report
            .reasons
            .iter()
            .any(|r| r.contains("transaction has been open")),
        "{:?}",
        report.reasons
    );
    release_tx.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert!(store.transaction_open_since_ms().is_none());
    let report = check(&store, &target, &config).await;
    assert!(report.healthy(), "{:?}", report.reasons);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_long_transaction_is_unhealthy() {
    long_transaction_is_unhealthy(Engine::Native).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_long_transaction_is_unhealthy() {
    if let Some(engine) = common::engine("component") {
        long_transaction_is_unhealthy(engine).await;
    }
}

/// Health checks that ignore how full the build machine's disk is (these tests are about the
/// breaker; `host/src/health.rs` tests reading the disk usage).
fn ignore_disk() -> HealthConfig {
    HealthConfig {
        max_disk_used_percent: 100.0,
        ..HealthConfig::default()
    }
}
