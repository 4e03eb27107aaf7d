//! One owner per data directory through the typed client, in one process, on both engines: a
//! second owning store is refused naming the first, an inspecting store reads beside the owner
//! without touching its journal, and the owner's rows all arrive.

mod common;

use edgestore::model::ResourceTagsKey;
use edgestore::owner::LOCK_FILE;
use edgestore::sample::MetricGenerator;
use edgestore::{ErrorCode, ResourceTags, SpoolConfig, TimeRange};
use edgestore_host::{Error, Store};

fn journals(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn ownership(engine_name: &str) {
    let Some(engine) = common::engine(engine_name) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let owner = common::open(engine.clone(), tmp.path()).await;
    let record = owner.owner_record().expect("the owner's record");
    assert_eq!(record.pid, Some(std::process::id()));
    assert!(tmp.path().join(LOCK_FILE).exists());

    // A second owner in this process is refused, naming the first.
    match Store::open(common::config(engine.clone(), tmp.path())).await {
        Err(Error::Owned { owner: found, .. }) => assert_eq!(found, Some(record.clone())),
        other => panic!("{engine_name}: a second owner opened: {other:?}"),
    }
    // Opening the same spool path twice in one store shares it; another config is refused.
    let spool = owner
        .spool("metrics", SpoolConfig::new("agent"))
        .await
        .unwrap();
    owner
        .spool("metrics", SpoolConfig::new("agent"))
        .await
        .unwrap();
    let e = owner
        .spool("metrics", SpoolConfig::new("other"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");

    let tags = owner
        .storage::<ResourceTags, ResourceTagsKey>()
        .await
        .unwrap();
    tags.create(&common::tag("pod", "web-0", Some("prod")))
        .await
        .unwrap();
    let mut generator = MetricGenerator::new(5, 1_700_000_000_000);
    spool.put(generator.batch(700)).await.unwrap();
    spool.sync().await.unwrap();

    // An inspector beside it: no lock, no recovery, SQLite read-only.
    let mut config = common::config(engine.clone(), tmp.path());
    config.read_only = true;
    let inspector = Store::open(config).await.unwrap();
    assert!(inspector.owner_record().is_none());
    let before = journals(&tmp.path().join("metrics"));
    assert_eq!(before.len(), 1);
    let seen = inspector
        .spool("metrics", SpoolConfig::new("agent"))
        .await
        .unwrap();
    assert_eq!(seen.journal_rows().await.unwrap(), 700);
    assert!(seen.segments(TimeRange::all()).await.unwrap().is_empty());
    let e = seen.flush().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
    let e = seen.put(generator.batch(1)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
    let read_tags = inspector
        .storage::<ResourceTags, ResourceTagsKey>()
        .await
        .unwrap();
    assert_eq!(read_tags.count().await.unwrap(), 1);
    let e = read_tags
        .create(&common::tag("pod", "web-1", Some("prod")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
    assert_eq!(journals(&tmp.path().join("metrics")), before);

    // The owner goes on; the inspector sees what it finished, and committed rows.
    spool.put(generator.batch(300)).await.unwrap();
    spool.flush().await.unwrap();
    tags.create(&common::tag("pod", "web-2", Some("prod")))
        .await
        .unwrap();
    assert_eq!(read_tags.count().await.unwrap(), 2);
    assert_eq!(seen.journal_rows().await.unwrap(), 0);
    let rows = common::read_all(&seen).await;
    assert_eq!(rows.len(), 1_000, "{engine_name}");

    inspector.close().await.unwrap();
    drop((spool, tags));
    owner.close().await.unwrap();
    assert!(!tmp.path().join(LOCK_FILE).exists());
    // Released: a new owner opens.
    common::open(engine, tmp.path())
        .await
        .close()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_and_inspectors_beside_it_native() {
    ownership("native").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_and_inspectors_beside_it_component() {
    ownership("component").await;
}
