//! The sandbox: a store reaches only its grant. Escapes through the spool path (`..`, absolute
//! paths, a symlink planted inside the data directory), through a database file that is a
//! symlink, and through labels all fail with a typed error, and the outside file is untouched.
//! A read-only grant refuses writes with permission-denied.

mod common;

use edgestore::model::ResourceTagsKey;
use edgestore::{ErrorCode, ResourceTags, SpoolConfig};
use edgestore_host::{DbTarget, Engine, Error, Labels, Store};

struct Outside {
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
}

fn outside() -> Outside {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("victim.txt");
    std::fs::write(&file, b"untouched").unwrap();
    Outside { _dir: dir, file }
}

fn untouched(o: &Outside) {
    assert_eq!(std::fs::read(&o.file).unwrap(), b"untouched");
    let entries = std::fs::read_dir(o.file.parent().unwrap()).unwrap().count();
    assert_eq!(entries, 1, "nothing was created outside the grant");
}

fn typed(err: &Error) {
    assert!(
        matches!(err, Error::Store(_)),
        "expected a typed store error, got {err:?}"
    );
}

async fn spool_paths_cannot_escape(engine: Engine) {
    let data = tempfile::tempdir().unwrap();
    let out = outside();
    let out_dir = out.file.parent().unwrap().to_path_buf();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&out_dir, data.path().join("link")).unwrap();
    let store = common::open(engine, data.path()).await;
    let rel = format!("../{}", out_dir.file_name().unwrap().to_str().unwrap());
    let abs = out_dir.display().to_string();
    for path in [
        rel.as_str(),
        abs.as_str(),
        "/etc",
        "link",
        "link/metrics",
        "a/../../x",
    ] {
        match store.spool(path, SpoolConfig::new("agent")).await {
            Err(e) => typed(&e),
            Ok(spool) => {
                // Whatever opened must not write outside.
                let put = spool
                    .put(edgestore::sample::MetricGenerator::new(1, 0).batch(5))
                    .await;
                let flushed = spool.flush().await;
                panic!("spool path {path:?} was accepted ({put:?}, {flushed:?})");
            }
        }
    }
    untouched(&out);
}

async fn database_symlink_is_refused(engine: Engine) {
    let data = tempfile::tempdir().unwrap();
    let out = outside();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&out.file, data.path().join("edgestore.sqlite")).unwrap();
    let store = common::open(engine, data.path()).await;
    let err = store
        .storage::<ResourceTags, ResourceTagsKey>()
        .await
        .unwrap_err();
    typed(&err);
    assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err}");
    untouched(&out);
}

async fn labels_not_granted_or_unknown(engine: Engine) {
    let data = tempfile::tempdir().unwrap();
    let mut config = common::config(engine.clone(), data.path());
    config.labels = Labels::new().configure("default", DbTarget::File("x.sqlite".into()));
    let store = Store::open(config).await.unwrap();
    let err = store
        .storage::<ResourceTags, ResourceTagsKey>()
        .await
        .unwrap_err();
    typed(&err);
    assert_eq!(err.code(), ErrorCode::AccessDenied, "{err}");
    // One owner per data directory: the next store opens once this one closed.
    store.close().await.unwrap();
    let mut config = common::config(engine, data.path());
    config.labels = Labels::new().grant("other", DbTarget::Memory);
    let store = Store::open(config).await.unwrap();
    let err = store
        .storage::<ResourceTags, ResourceTagsKey>()
        .await
        .unwrap_err();
    typed(&err);
    assert_eq!(err.code(), ErrorCode::NoSuchDatabase, "{err}");
    assert!(!data.path().join("x.sqlite").exists());
}

async fn read_only_grant_refuses_writes(engine: Engine) {
    let data = tempfile::tempdir().unwrap();
    {
        let store = common::open(engine.clone(), data.path()).await;
        let spool = store
            .spool("metrics", SpoolConfig::new("agent"))
            .await
            .unwrap();
        spool
            .put(edgestore::sample::MetricGenerator::new(1, 0).batch(5))
            .await
            .unwrap();
        spool.flush().await.unwrap();
        store.close().await.unwrap();
    }
    let before: Vec<_> = std::fs::read_dir(data.path().join("metrics"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut config = common::config(engine, data.path());
    config.read_only = true;
    let store = Store::open(config).await.unwrap();
    let result = match store.spool("metrics", SpoolConfig::new("agent")).await {
        Err(e) => Err(e),
        Ok(spool) => spool
            .put(edgestore::sample::MetricGenerator::new(2, 0).batch(5))
            .await
            .and(spool.flush().await),
    };
    let err = result.unwrap_err();
    typed(&err);
    assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err}");
    let after: Vec<_> = std::fs::read_dir(data.path().join("metrics"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}

macro_rules! both {
    ($($case:ident),*) => {
        mod native {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(edgestore_host::Engine::Native).await;
                }
            )*
        }
        mod component {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(engine) = crate::common::engine("component") {
                        super::$case(engine).await;
                    }
                }
            )*
        }
    };
}

both!(
    spool_paths_cannot_escape,
    database_symlink_is_refused,
    labels_not_granted_or_unknown,
    read_only_grant_refuses_writes
);
