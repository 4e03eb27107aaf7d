//! Compatibility: a database and a spool written by one engine are read by another: native and
//! the plugin component both ways, and the standalone component (SQLite inside, exclusive
//! locking + WAL) against both.

mod common;

use edgestore::model::ResourceTagsKey;
use edgestore::sample::MetricGenerator;
use edgestore::{ResourceTags, SpoolConfig};
use edgestore_host::{AsyncStorage, Engine};

async fn write_then_read(writer: Engine, reader: Engine) {
    let data = tempfile::tempdir().unwrap();
    let rows = MetricGenerator::new(9, 1_700_000_000_000).batch(500);
    let tags: Vec<_> = (0..100)
        .map(|i| common::tag("pod", &format!("p{i}"), Some("prod")))
        .collect();
    {
        let store = common::open(writer, data.path()).await;
        let s: AsyncStorage<ResourceTags, ResourceTagsKey> = store.storage().await.unwrap();
        assert_eq!(s.create_many(&tags).await.unwrap(), 100);
        let spool = store
            .spool("metrics", SpoolConfig::new("compat"))
            .await
            .unwrap();
        spool.put(rows.clone()).await.unwrap();
        spool.flush().await.unwrap();
        store.close().await.unwrap();
    }
    let store = common::open(reader, data.path()).await;
    let s: AsyncStorage<ResourceTags, ResourceTagsKey> = store.storage().await.unwrap();
    assert_eq!(s.count().await.unwrap(), 100);
    let got = s
        .get(&common::key("pod", "p42", Some("prod")))
        .await
        .unwrap();
    assert_eq!((&got.id, &got.labels), (&tags[42].id, &tags[42].labels));
    let spool = store
        .spool("metrics", SpoolConfig::new("compat"))
        .await
        .unwrap();
    let back = common::read_all(&spool).await;
    assert_eq!(back, rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_writes_native_reads() {
    if let Some(component) = common::engine("component") {
        write_then_read(component, Engine::Native).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_writes_component_reads() {
    if let Some(component) = common::engine("component") {
        write_then_read(Engine::Native, component).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_writes_native_reads() {
    write_then_read(common::engine("standalone").unwrap(), Engine::Native).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_writes_standalone_reads() {
    write_then_read(Engine::Native, common::engine("standalone").unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_writes_plugin_reads() {
    if let Some(plugin) = common::engine("component") {
        write_then_read(common::engine("standalone").unwrap(), plugin).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_writes_standalone_reads() {
    if let Some(plugin) = common::engine("component") {
        write_then_read(plugin, common::engine("standalone").unwrap()).await;
    }
}

/// The finished segments under `spool_dir`, oldest first (names sort by time).
fn segment_bytes(spool_dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut names: Vec<_> = std::fs::read_dir(spool_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(edgestore::spool::SEGMENT_SUFFIX))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| std::fs::read(spool_dir.join(n)).unwrap())
        .collect()
}

/// The plugin component has its host compress (natively), the standalone component compresses
/// in wasm, the native engine in process; the host hands both components its rows as one
/// buffer of JSON lines: all three write the same bytes, at the fastest, the default and the
/// smallest quality, and read the same rows back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_engine_writes_the_same_segment_bytes() {
    let mut rows = MetricGenerator::new(3, 1_700_000_000_000).batch(1_200);
    // Text a line-based crossing must keep whole: newlines, quotes, escapes, non-ASCII.
    rows[7].labels.insert(
        "note".into(),
        "line\nbreak\r\n \"quoted\" back\\slash \u{e9}t\u{e9} \u{2028} \u{1f600}".into(),
    );
    let mut engines = vec![
        ("native", Engine::Native),
        ("standalone", common::engine("standalone").unwrap()),
    ];
    if let Some(plugin) = common::engine("component") {
        engines.push(("plugin", plugin));
    }
    for level in [1, 6, 11] {
        let mut first: Option<(&str, Vec<Vec<u8>>)> = None;
        for (name, engine) in &engines {
            let data = tempfile::tempdir().unwrap();
            let store = common::open(engine.clone(), data.path()).await;
            let mut config = SpoolConfig::new("bytes");
            config.compression_level = level;
            config.max_records = 500;
            let spool = store.spool("metrics", config).await.unwrap();
            spool.put(rows.clone()).await.unwrap();
            spool.flush().await.unwrap();
            assert_eq!(
                common::read_all(&spool).await,
                rows,
                "{name} at level {level}"
            );
            store.close().await.unwrap();
            let segments = segment_bytes(&data.path().join("metrics"));
            assert_eq!(segments.len(), 3, "{name} at level {level}");
            match &first {
                None => first = Some((name, segments)),
                Some((other, want)) => assert!(
                    want == &segments,
                    "{name} and {other} wrote different bytes at level {level}"
                ),
            }
        }
    }
}
