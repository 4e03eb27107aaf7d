//! The conformance suite: every repository and spool case, run through the host's typed client
//! on every engine: the native core, the plugin component (SQL from the host) and the standalone
//! component (SQLite inside; built on demand by `common::standalone`). A case is an async fn taking the store
//! and its data directory; `conformance!` instantiates it once per engine.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{key, tag};
use edgestore::model::{Column, ColumnType, OnDelete, ResourceTagsKey};
use edgestore::sample::MetricGenerator;
use edgestore::{
    Condition, Creator, Deleter, ErrorCode, Model, Query, Reader, ResourceTags, Schema,
    SpoolConfig, StorageCommon, TimeRange, Timestamp, Updater,
};
use edgestore_host::{AsyncStorage, Store};
use serde::{Deserialize, Serialize};

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod native {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let engine = crate::common::engine("native").unwrap();
                    let store = crate::common::open(engine, dir.path()).await;
                    super::$case(store, dir.path()).await;
                }
            )*
        }
        mod component {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(engine) = crate::common::engine("component") else { return };
                    let dir = tempfile::tempdir().unwrap();
                    let store = crate::common::open(engine, dir.path()).await;
                    super::$case(store, dir.path()).await;
                }
            )*
        }
        mod standalone {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let engine = crate::common::engine("standalone").unwrap();
                    let dir = tempfile::tempdir().unwrap();
                    let store = crate::common::open(engine, dir.path()).await;
                    super::$case(store, dir.path()).await;
                }
            )*
        }
    };
}

conformance!(
    crud_every_trait_method,
    get_many_in_order_with_missing_rows,
    composite_keys_json_generated_and_nulls,
    find_conditions_order_limit_offset,
    foreign_key_and_duplicate_errors,
    transactions_commit_roll_back_and_nest,
    spool_round_trip,
    spool_segments_are_the_cores_bytes,
    spool_rotates_at_max_records,
    spool_interval_rotation_with_flush_due,
    spool_mark_uploaded_purge_usage,
    spool_corrupted_segment_is_quarantined,
    spool_bad_names_are_rejected,
);

type Tags = AsyncStorage<ResourceTags, ResourceTagsKey>;

async fn crud_every_trait_method(store: Store, _dir: &Path) {
    let tags: Tags = store.storage().await.unwrap();
    let a = tag("pod", "a", Some("prod"));
    assert!(tags.create(&a).await.unwrap());
    // ResourceTags creates insert-or-ignore.
    assert!(!tags.create(&a).await.unwrap());
    assert_eq!(
        tags.get(&key("pod", "a", Some("prod"))).await.unwrap().name,
        "a"
    );
    let mut b = tag("pod", "b", Some("prod"));
    assert!(tags.insert_or_ignore(&b).await.unwrap());
    assert!(!tags.insert_or_ignore(&b).await.unwrap());
    b.labels.insert("tier".into(), "web".into());
    tags.update(&b).await.unwrap();
    let got = tags.get(&key("pod", "b", Some("prod"))).await.unwrap();
    assert_eq!(got.labels.get("tier").map(String::as_str), Some("web"));
    let mut c = tag("node", "c", None);
    tags.upsert(&c).await.unwrap();
    c.annotations.insert("note".into(), "x".into());
    tags.upsert(&c).await.unwrap();
    assert_eq!(tags.count().await.unwrap(), 3);
    let many: Vec<_> = (0..50)
        .map(|i| tag("svc", &format!("s{i}"), None))
        .collect();
    assert_eq!(tags.create_many(&many).await.unwrap(), 50);
    assert_eq!(tags.count().await.unwrap(), 53);
    let first = tags
        .find_first(&Query::all().filter(Condition::eq("type", "node")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.annotations.get("note").map(String::as_str), Some("x"));
    assert!(tags.delete(&key("pod", "a", Some("prod"))).await.unwrap());
    assert!(!tags.delete(&key("pod", "a", Some("prod"))).await.unwrap());
    let missing = tags.get(&key("pod", "a", Some("prod"))).await.unwrap_err();
    assert_eq!(missing.code(), ErrorCode::NotFound);
    let missing = tags.update(&tag("pod", "zz", None)).await.unwrap_err();
    assert_eq!(missing.code(), ErrorCode::NotFound);
    assert_eq!(tags.delete_all().await.unwrap(), 52);
    assert_eq!(tags.count().await.unwrap(), 0);
}

async fn get_many_in_order_with_missing_rows(store: Store, _dir: &Path) {
    let tags: Tags = store.storage().await.unwrap();
    let rows: Vec<_> = (0..20)
        .map(|i| tag("pod", &format!("m{i}"), (i % 2 == 0).then_some("prod")))
        .collect();
    tags.create_many(&rows).await.unwrap();
    assert!(tags.get_many(&[]).await.unwrap().is_empty());
    let keys = vec![
        rows[7].key(),
        key("pod", "absent", None),
        rows[0].key(),
        rows[7].key(),
        // The namespace is part of the key: m3 is stored without one.
        key("pod", "m3", Some("prod")),
    ];
    let got: Vec<_> = tags
        .get_many(&keys)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.map(|t| (t.id, t.labels)))
        .collect();
    let want = |i: usize| Some((rows[i].id, rows[i].labels.clone()));
    assert_eq!(got, [want(7), None, want(0), want(7), None]);
    // Inside a transaction, its own uncommitted rows are seen.
    let fresh = tag("node", "fresh", None);
    let (new, old) = (fresh.clone(), rows[1].key());
    let inside = tags
        .tx(move |tx| {
            tx.create(&new)?;
            tx.get_many(&[new.key(), old.clone()])
        })
        .await
        .unwrap();
    assert_eq!(inside[0].as_ref().map(|t| t.id), Some(fresh.id));
    assert_eq!(inside[1].as_ref().map(|t| t.id), Some(rows[1].id));
}

async fn composite_keys_json_generated_and_nulls(store: Store, _dir: &Path) {
    let tags: Tags = store.storage().await.unwrap();
    let mut no_ns = tag("node", "n1", None);
    no_ns.sent_at = None;
    let with_ns = tag("node", "n1", Some("kube-system"));
    assert!(tags.create(&no_ns).await.unwrap());
    assert!(tags.create(&with_ns).await.unwrap());
    let got = tags.get(&key("node", "n1", None)).await.unwrap();
    assert_eq!(got.namespace, None);
    assert_eq!(got.sent_at, None);
    assert_eq!(got.labels.get("app").map(String::as_str), Some("n1"));
    // size = bytes of name + namespace + labels JSON + annotations JSON.
    let expected = "n1".len() + r#"{"app":"n1"}"#.len() + "{}".len();
    assert_eq!(got.size, expected as i64);
    let nulls = tags
        .find_all(&Query::all().filter(Condition::is_null("namespace")))
        .await
        .unwrap();
    assert_eq!(nulls.len(), 1);
    let mut sent = with_ns.clone();
    sent.sent_at = Some(Timestamp(1_700_000_000_123));
    tags.update(&sent).await.unwrap();
    let got = tags
        .get(&key("node", "n1", Some("kube-system")))
        .await
        .unwrap();
    assert_eq!(got.sent_at, Some(Timestamp(1_700_000_000_123)));
}

async fn find_conditions_order_limit_offset(store: Store, _dir: &Path) {
    let tags: Tags = store.storage().await.unwrap();
    let all: Vec<_> = (0..20)
        .map(|i| {
            tag(
                if i % 2 == 0 { "pod" } else { "svc" },
                &format!("n{i:02}"),
                None,
            )
        })
        .collect();
    tags.create_many(&all).await.unwrap();
    let q = Query::all()
        .filter(Condition::eq("type", "pod"))
        .order_by_desc("name")
        .limit(3)
        .offset(1);
    let names: Vec<_> = tags
        .find_all(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["n16", "n14", "n12"]);
    let q = Query::all().filter(Condition::is_in("name", ["n01", "n03", "zz"]));
    assert_eq!(tags.find_all(&q).await.unwrap().len(), 2);
    let q = Query::all().filter(Condition::like("name", "n1%"));
    assert_eq!(tags.find_all(&q).await.unwrap().len(), 10);
    let q = Query::all().filter(Condition::eq("name", "'; DROP TABLE resource_tags; --"));
    assert!(tags.find_all(&q).await.unwrap().is_empty());
    assert_eq!(tags.count().await.unwrap(), 20);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Parent {
    id: i64,
    name: String,
}

impl Model for Parent {
    fn schema() -> Schema {
        Schema::new("parent")
            .column(Column::new("id", ColumnType::Integer))
            .column(Column::new("name", ColumnType::Text).unique())
            .key(&["id"])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Child {
    id: i64,
    parent_id: i64,
    at: Timestamp,
    flag: bool,
    data: Option<Vec<u8>>,
    score: Option<f64>,
}

impl Model for Child {
    fn schema() -> Schema {
        Schema::new("child")
            .column(Column::new("id", ColumnType::Integer))
            .column(Column::new("parent_id", ColumnType::Integer).indexed())
            .column(Column::new("at", ColumnType::Timestamp))
            .column(Column::new("flag", ColumnType::Bool))
            .column(Column::new("data", ColumnType::Blob).nullable())
            .column(Column::new("score", ColumnType::Real).nullable())
            .key(&["id"])
            .foreign_key(&["parent_id"], "parent", &["id"], OnDelete::Restrict)
    }
}

async fn foreign_key_and_duplicate_errors(store: Store, _dir: &Path) {
    let parents: AsyncStorage<Parent, i64> = store.storage().await.unwrap();
    let children: AsyncStorage<Child, i64> = store.storage().await.unwrap();
    let p = Parent {
        id: 1,
        name: "p".into(),
    };
    parents.create(&p).await.unwrap();
    let dup = parents.create(&p).await.unwrap_err();
    assert_eq!(dup.code(), ErrorCode::DuplicateKey);
    let other = Parent {
        id: 2,
        name: "p".into(),
    };
    assert_eq!(
        parents.create(&other).await.unwrap_err().code(),
        ErrorCode::DuplicateKey
    );
    let child = Child {
        id: 10,
        parent_id: 1,
        at: Timestamp(5),
        flag: true,
        data: Some(vec![0, 1, 255]),
        score: None,
    };
    children.create(&child).await.unwrap();
    assert_eq!(children.get(&10).await.unwrap(), child);
    let orphan = Child {
        id: 11,
        parent_id: 99,
        ..child.clone()
    };
    assert_eq!(
        children.create(&orphan).await.unwrap_err().code(),
        ErrorCode::ForeignKey
    );
    assert_eq!(
        parents.delete(&1).await.unwrap_err().code(),
        ErrorCode::ForeignKey
    );
    // A batch with one bad row inserts nothing.
    let batch = vec![
        Child {
            id: 20,
            ..child.clone()
        },
        orphan,
    ];
    assert!(children.create_many(&batch).await.is_err());
    assert_eq!(children.count().await.unwrap(), 1);
}

async fn transactions_commit_roll_back_and_nest(store: Store, _dir: &Path) {
    let tags: Tags = store.storage().await.unwrap();
    // Commit.
    let n = tags
        .tx(|tx| {
            tx.create(&tag("pod", "t1", None))?;
            tx.create(&tag("pod", "t2", None))?;
            tx.count()
        })
        .await
        .unwrap();
    assert_eq!(n, 2);
    // Rollback on Err.
    let err = tags
        .tx(|tx| {
            tx.create(&tag("pod", "t3", None))?;
            Err::<(), _>(edgestore::Error::invalid_input("changed my mind"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert_eq!(tags.count().await.unwrap(), 2);
    // Nested: a failed savepoint rolls back alone; the outer work stays.
    tags.tx(|tx| {
        tx.create(&tag("pod", "outer", None))?;
        let inner = tx.tx(|sp| {
            sp.create(&tag("pod", "inner", None))?;
            Err::<(), _>(edgestore::Error::invalid_input("inner fails"))
        });
        assert!(inner.is_err());
        tx.tx(|sp| sp.create(&tag("pod", "inner2", None)).map(|_| ()))?;
        let got = tx.get(&key("pod", "outer", None))?;
        assert_eq!(got.name, "outer");
        tx.update(&got)?;
        assert!(tx.delete(&key("pod", "t1", None))?);
        Ok(())
    })
    .await
    .unwrap();
    let names: Vec<_> = tags
        .find_all(&Query::all().order_by("name"))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["inner2", "outer", "t2"]);
}

fn spool_config(id: &str) -> SpoolConfig {
    let mut c = SpoolConfig::new(id);
    c.compression_level = 3;
    c
}

async fn spool_round_trip(store: Store, _dir: &Path) {
    let spool = store.spool("metrics", spool_config("agent")).await.unwrap();
    let rows = MetricGenerator::new(7, 1_700_000_000_000).batch(1_000);
    spool.put(rows[..600].to_vec()).await.unwrap();
    spool.put(rows[600..].to_vec()).await.unwrap();
    assert_eq!(spool.pending().await.unwrap(), 1_000);
    spool.flush().await.unwrap();
    assert_eq!(spool.pending().await.unwrap(), 0);
    let segments = spool.segments(TimeRange::all()).await.unwrap();
    assert_eq!(segments.len(), 1);
    let back = common::read_all(&spool).await;
    assert_eq!(back, rows);
    let one = spool
        .read_segment(&segments[0].name)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(one.len(), 1_000);
}

/// Each engine writes a segment byte for byte as the core does for the same rows and levels,
/// whether it compresses itself (C or Rust Brotli, native or as wasm) or has the host do it.
async fn spool_segments_are_the_cores_bytes(store: Store, dir: &Path) {
    let rows = MetricGenerator::new(11, 1_700_000_000_000).batch(3_000);
    for level in [1, 6] {
        let id = format!("level{level}");
        let mut config = spool_config("agent");
        config.compression_level = level;
        let spool = store.spool(&id, config.clone()).await.unwrap();
        spool.put(rows[..2_000].to_vec()).await.unwrap();
        spool.put(rows[2_000..].to_vec()).await.unwrap();
        spool.flush().await.unwrap();
        let segments = spool.segments(TimeRange::all()).await.unwrap();
        assert_eq!(segments.len(), 1);
        let written = std::fs::read(dir.join(&id).join(&segments[0].name)).unwrap();

        let core_dir = tempfile::tempdir().unwrap();
        let core =
            edgestore::Spool::<edgestore::Metric>::open_path(core_dir.path(), config).unwrap();
        core.put(&rows[..2_000]).unwrap();
        core.put(&rows[2_000..]).unwrap();
        core.flush().unwrap();
        let name = core.segments(TimeRange::all()).unwrap().pop().unwrap().name;
        let expected = std::fs::read(core_dir.path().join(name)).unwrap();
        assert!(
            written == expected,
            "level {level}: the segment ({} bytes) differs from the core's ({} bytes)",
            written.len(),
            expected.len()
        );
    }
}

async fn spool_rotates_at_max_records(store: Store, _dir: &Path) {
    let mut c = spool_config("rot");
    c.max_records = 100;
    let spool = store.spool("metrics", c).await.unwrap();
    let rows = MetricGenerator::new(1, 1_700_000_000_000).batch(250);
    spool.put(rows.clone()).await.unwrap();
    assert_eq!(spool.segments(TimeRange::all()).await.unwrap().len(), 2);
    spool.flush().await.unwrap();
    let segments = spool.segments(TimeRange::all()).await.unwrap();
    assert_eq!(segments.len(), 3);
    let total: u64 = segments.iter().filter_map(|s| s.rows).sum();
    assert_eq!(total, 250);
}

async fn spool_interval_rotation_with_flush_due(store: Store, _dir: &Path) {
    let mut c = spool_config("interval");
    c.max_interval = Duration::from_millis(50);
    let spool = store.spool("metrics", c).await.unwrap();
    spool
        .put(MetricGenerator::new(2, 1_700_000_000_000).batch(10))
        .await
        .unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    assert_eq!(spool.flush_due(now()).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(spool.flush_due(now()).await.unwrap(), 1);
    assert_eq!(spool.pending().await.unwrap(), 0);
    assert_eq!(spool.segments(TimeRange::all()).await.unwrap().len(), 1);
}

async fn spool_mark_uploaded_purge_usage(store: Store, _dir: &Path) {
    let mut c = spool_config("life");
    c.max_records = 50;
    c.retention = Duration::ZERO;
    let spool = store.spool("metrics", c).await.unwrap();
    spool
        .put(MetricGenerator::new(3, 1_700_000_000_000).batch(150))
        .await
        .unwrap();
    let segments = spool.segments(TimeRange::all()).await.unwrap();
    assert_eq!(segments.len(), 3);
    let usage = spool.usage().await.unwrap();
    // Files per segment: the segment and its checksum sidecar.
    let per = usage.pending.files / 3;
    assert!(per >= 1 && usage.pending.files == 3 * per);
    assert!(usage.pending.bytes > 0);
    let names = vec![segments[0].name.clone(), segments[1].name.clone()];
    assert_eq!(spool.mark_uploaded(names).await.unwrap(), 2);
    let usage = spool.usage().await.unwrap();
    assert_eq!((usage.pending.files, usage.uploaded.files), (per, 2 * per));
    let report = spool.purge().await.unwrap();
    assert_eq!(report.expired.len(), 2);
    let usage = spool.usage().await.unwrap();
    assert_eq!((usage.pending.files, usage.uploaded.files), (per, 0));
}

async fn spool_corrupted_segment_is_quarantined(store: Store, dir: &Path) {
    let mut c = spool_config("bad");
    c.max_records = 10;
    let spool = store.spool("metrics", c).await.unwrap();
    spool
        .put(MetricGenerator::new(4, 1_700_000_000_000).batch(20))
        .await
        .unwrap();
    let segments = spool.segments(TimeRange::all()).await.unwrap();
    assert_eq!(segments.len(), 2);
    let victim = dir.join("metrics").join(&segments[0].name);
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let report = spool.verify().await.unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.quarantined, vec![segments[0].name.clone()]);
    let back = common::read_all(&spool).await;
    assert_eq!(back.len(), 10);
    assert!(spool.usage().await.unwrap().quarantined.files >= 1);
}

async fn spool_bad_names_are_rejected(store: Store, _dir: &Path) {
    let bad = store.spool("metrics", spool_config("../evil")).await;
    assert_eq!(bad.unwrap_err().code(), ErrorCode::InvalidInput);
    let mut level = spool_config("ok");
    level.compression_level = 12;
    assert_eq!(
        store.spool("metrics", level).await.unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    let spool = store.spool("metrics", spool_config("ok")).await.unwrap();
    let err = spool
        .mark_uploaded(vec!["../../etc/passwd".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), ErrorCode::InvalidInput | ErrorCode::NotFound),
        "{err}"
    );
    assert!(spool.read_segment("../x.json.br").await.is_err());
}
