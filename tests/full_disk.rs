//! Real full disks: the data directory on a small tmpfs the test mounts (it needs root and
//! permission to mount, as CI has; otherwise it is skipped with a note). Through both engines
//! the spool and the repository fill it until the file system refuses: the error is
//! `disk-full` (class `resource`) on both, nothing acknowledged is lost, no partial segment is
//! visible, and once space is freed the same open store goes on without a restart.

mod common;
#[path = "../host/tests/common/tmpfs.rs"]
mod tmpfs;

use std::path::Path;

use edgestore::model::ResourceTagsKey;
use edgestore::sample::MetricGenerator;
use edgestore::{ErrorClass, ErrorCode, ResourceTags, SpoolConfig};
use edgestore_host::{AsyncStorage, Store};
use tmpfs::Tmpfs;

fn temporaries(spool_dir: &Path) -> Vec<String> {
    std::fs::read_dir(spool_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_system_is_disk_full_on_both_engines_and_work_resumes_when_space_is_freed() {
    for name in ["native", "component"] {
        let Some(engine) = common::engine(name) else {
            continue;
        };
        let Some(fs) = Tmpfs::mount("12m") else {
            return;
        };
        let spool_room = fs.filler("filler-spool", 2);
        let db_room = fs.filler("filler-db", 2);
        let data = fs.path().join("data");
        let store = Store::open(common::config(engine, &data)).await.unwrap();
        let tags: AsyncStorage<ResourceTags, ResourceTagsKey> = store.storage().await.unwrap();
        let mut c = SpoolConfig::new("full");
        c.max_records = 2_000;
        let spool = store.spool("metrics", c).await.unwrap();

        // The spool until the file system refuses.
        let mut gen = MetricGenerator::new(3, 1_700_000_000_000);
        let mut acked = Vec::new();
        let err = loop {
            let batch = gen.batch(500);
            match spool.put(batch.clone()).await {
                Ok(()) => acked.extend(batch),
                Err(e) => break e,
            }
            assert!(
                acked.len() < 500_000,
                "{name}: the file system never filled"
            );
        };
        assert_eq!(err.code(), ErrorCode::DiskFull, "{name}: {err}");
        assert_eq!(err.class(), ErrorClass::Resource, "{name}: {err}");
        assert!(
            temporaries(&data.join("metrics")).is_empty(),
            "{name}: a partial segment is visible"
        );
        // Space comes back: the same store goes on, and every acknowledged row is there once.
        std::fs::remove_file(&spool_room).unwrap();
        let more = gen.batch(100);
        spool.put(more.clone()).await.unwrap();
        acked.extend(more);
        spool.flush().await.unwrap();
        let back = common::read_all(&spool).await;
        assert_eq!(back.len(), acked.len(), "{name}");
        assert!(back == acked, "{name}: rows changed, lost or repeated");

        // The repository the same way.
        let mut stored = 0u64;
        let err = loop {
            let batch: Vec<_> = (0..500)
                .map(|i| {
                    let mut t = common::tag("pod", &format!("p{stored}-{i}"), Some("ns"));
                    t.labels.insert("pad".into(), "x".repeat(400));
                    t
                })
                .collect();
            match tags.create_many(&batch).await {
                Ok(n) => stored += n,
                Err(e) => break e,
            }
            assert!(stored < 500_000, "{name}: the file system never filled");
        };
        assert_eq!(err.code(), ErrorCode::DiskFull, "{name}: {err}");
        assert_eq!(tags.count().await.unwrap(), stored, "{name}");
        std::fs::remove_file(&db_room).unwrap();
        tags.create(&common::tag("pod", "after", Some("ns")))
            .await
            .unwrap();
        assert_eq!(tags.count().await.unwrap(), stored + 1, "{name}");

        drop((tags, spool));
        store.close().await.unwrap();
        drop(fs);
    }
}
