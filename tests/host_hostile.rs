//! Hostile guests: a component (`tests/hostile-guest`, built by the test) that spins forever,
//! sleeps in WASI, allocates until the cap, traps, recurses without end, or reaches outside its
//! grant, each time after writing inside an open transaction. The host answers each with a
//! typed error within the call bound, rebuilds the instance, rolls the write back, keeps every
//! acknowledged row, and the other stores of the process (the real component, the native
//! engine) go on undisturbed meanwhile.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgestore::model::ResourceTagsKey;
use edgestore::sample::MetricGenerator;
use edgestore::{Column, ColumnType, ErrorCode, ResourceTags, Schema, SpoolConfig, Value};
use edgestore_host::resilience::BreakerConfig;
use edgestore_host::{AsyncStorage, ComponentSource, Engine, Error, LimitKind, Store};

type Tags = AsyncStorage<ResourceTags, ResourceTagsKey>;

/// The call bound of the hostile store: every misbehaviour must end within it (plus slack).
const CALL_BOUND: Duration = Duration::from_secs(3);

/// The table (and misbehaviour) `name`, as a one-row write.
fn schema(name: &str) -> Schema {
    Schema::new(name)
        .column(Column::new("id", ColumnType::Text))
        .column(Column::new("port", ColumnType::Integer).nullable())
        .key(&["id"])
}

/// What the host must answer for each misbehaviour.
fn expected(name: &str, err: &Error) -> bool {
    match name {
        "loop" | "sleep" => matches!(
            err,
            Error::Limit {
                kind: LimitKind::Time,
                ..
            }
        ),
        "alloc" => matches!(
            err,
            Error::Limit {
                kind: LimitKind::Memory,
                ..
            }
        ),
        "trap" | "recurse" => matches!(err, Error::Trap(_)),
        _ => false,
    }
}

/// `sqlite3 DATABASE SQL` (the SQLite CLI, not the host): its output, or its failure.
fn sqlite3(data: &Path, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("sqlite3")
        .arg(data.join(edgestore::layout::DEFAULT_DATABASE_FILE))
        .arg(sql)
        .output()
        .expect("run sqlite3 (apt-get install sqlite3)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A store that keeps working beside the hostile one: creates tags and spools rows until told
/// to stop, failing the test on any error; returns the tags created and rows put.
async fn bystander(store: Arc<Store>, stop: Arc<AtomicBool>, who: &'static str) -> (u64, u64) {
    let tags: Tags = store.storage().await.unwrap();
    let spool = store.spool("metrics", SpoolConfig::new(who)).await.unwrap();
    let mut generator = MetricGenerator::new(3, 1_700_000_000_000);
    let (mut created, mut put) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let tag = common::tag("pod", &format!("{who}-{created}"), None);
        tags.create(&tag)
            .await
            .unwrap_or_else(|e| panic!("{who}: create failed beside the hostile guest: {e}"));
        created += 1;
        let rows = generator.batch(50);
        spool
            .put(rows)
            .await
            .unwrap_or_else(|e| panic!("{who}: put failed beside the hostile guest: {e}"));
        put += 50;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    spool.flush().await.unwrap();
    assert_eq!(tags.count().await.unwrap(), created, "{who}: tags");
    assert_eq!(
        common::read_all(&spool).await.len() as u64,
        put,
        "{who}: rows"
    );
    (created, put)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_guest_gets_typed_errors_loses_nothing_and_disturbs_no_other_store() {
    if common::component().is_none() {
        eprintln!("no component in this build: hostile-guest test skipped");
        return;
    }
    let hostile = common::hostile::hostile_component();

    // Outside the grant: a secret beside the data directory, and links to it from inside.
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let outside = root.path().join("outside");
    fs::create_dir_all(&data).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let secret = "top-secret-5e1f0c";
    fs::write(root.path().join("secret.txt"), secret).unwrap();
    fs::write(outside.join("passwd"), secret).unwrap();
    std::os::unix::fs::symlink(&outside, data.join("link-out")).unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), data.join("file-link")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let mut config = common::config(Engine::Component(ComponentSource::File(hostile)), &data);
    config.call_timeout = CALL_BOUND;
    config.memory_limit = 64 << 20;
    // Every misbehaviour is a failure in a row; the breaker must not hide the next one.
    config.breaker = BreakerConfig {
        failure_threshold: 100,
        ..BreakerConfig::default()
    };
    let store = Store::open(config).await.unwrap();
    let tags: Tags = store.storage().await.unwrap();
    let acknowledged: Vec<_> = (0..40)
        .map(|i| common::tag("pod", &format!("p{i}"), None))
        .collect();
    assert_eq!(tags.create_many(&acknowledged).await.unwrap(), 40);

    // The bystanders: the real component and the native engine, in this process.
    let stop = Arc::new(AtomicBool::new(false));
    let others = tempfile::tempdir().unwrap();
    let mut running = Vec::new();
    for (who, engine) in [
        ("component", common::engine("component").unwrap()),
        ("native", Engine::Native),
    ] {
        let dir = others.path().join(who);
        fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(common::open(engine, &dir).await);
        running.push(tokio::spawn(bystander(store, stop.clone(), who)));
    }

    for name in ["loop", "sleep", "alloc", "trap", "recurse"] {
        let started = Instant::now();
        let err = store
            .upsert_rows(
                schema(name),
                vec![vec![Value::Text(name.into()), Value::Null]],
            )
            .await
            .expect_err(name);
        let took = started.elapsed();
        eprintln!("{name}: {err} (after {took:?})");
        assert!(expected(name, &err), "{name}: unexpected error {err:?}");
        assert!(
            took < CALL_BOUND + Duration::from_secs(10),
            "{name}: the call took {took:?}, far past its bound"
        );
        // A fresh instance answers; the acknowledged rows are all there, the write inside the
        // broken transaction is not.
        store.ping().await.unwrap();
        assert_eq!(tags.count().await.unwrap(), 40, "after {name}");
    }

    // A short wait inside the bound is not a misbehaviour: the row is written.
    assert_eq!(
        store
            .upsert_rows(
                schema("nap"),
                vec![vec![Value::Text("nap".into()), Value::Null]]
            )
            .await
            .unwrap(),
        1
    );

    // Reaching out: every attempt is refused, and nothing outside changed.
    let err = store
        .upsert_rows(
            schema("escape"),
            vec![vec![
                Value::Text("secret.txt".into()),
                Value::Integer(i64::from(port)),
            ]],
        )
        .await
        .expect_err("escape");
    eprintln!("escape attempts:\n{err}");
    assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err:?}");
    let report = err.to_string();
    assert!(report.contains("read /etc/passwd: refused"), "{report}");
    assert!(
        report.contains("sqlite open ../outside: refused"),
        "{report}"
    );
    assert!(!report.contains("ESCAPED"), "{report}");
    assert!(!report.contains(secret), "{report}");
    assert!(!root.path().join("escaped.txt").exists());
    assert!(!outside.join("escaped.txt").exists());
    assert_eq!(fs::read_to_string(outside.join("passwd")).unwrap(), secret);
    assert!(
        listener.accept().is_err(),
        "the guest reached a loopback socket"
    );

    // Still a working store: more rows go in, and the bystanders never saw a failure.
    let more: Vec<_> = (40..50)
        .map(|i| common::tag("pod", &format!("p{i}"), None))
        .collect();
    assert_eq!(tags.create_many(&more).await.unwrap(), 10);
    assert_eq!(tags.count().await.unwrap(), 50);
    stop.store(true, Ordering::Relaxed);
    for task in running {
        let (created, put) = task.await.unwrap();
        assert!(created > 0 && put > 0);
    }
    store.close().await.unwrap();

    // On disk, read by SQLite itself: every acknowledged row, none of the rolled-back writes,
    // and no lock left behind (a write transaction starts at once).
    assert_eq!(
        sqlite3(
            &data,
            "SELECT tbl, count(*) FROM hostile_row GROUP BY tbl ORDER BY tbl"
        ),
        Ok("nap|1\nresource_tags|50\n".to_owned())
    );
    sqlite3(&data, "BEGIN IMMEDIATE; COMMIT;").expect("the database is not left locked");
}
