//! The backup engine end to end on a directory target: point-in-time restore, increments
//! proportional to the change, a log restarted under load, damage refused, verification.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::runner::BackupRunner;
use super::{restore, BackupConfig, BackupError, BackupTargetConfig, RestoreOptions};
use crate::metrics::Metrics;

struct Fixture {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    target_dir: std::path::PathBuf,
    app: Connection,
    runner: BackupRunner,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let target_dir = dir.path().join("target");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&target_dir).unwrap();
    let app = Connection::open(data.join("edgestore.sqlite")).unwrap();
    app.pragma_update(None, "journal_mode", "WAL").unwrap();
    app.execute_batch("CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, n INTEGER);")
        .unwrap();
    let config = BackupConfig {
        targets: vec![BackupTargetConfig::new(format!(
            "file://{}",
            target_dir.display()
        ))],
        ..BackupConfig::default()
    };
    let runner = plain_runner(&config, &data);
    Fixture {
        _dir: dir,
        data,
        target_dir,
        app,
        runner,
    }
}

fn rows(path: &Path) -> Vec<(i64, String, i64)> {
    let c = Connection::open(path).unwrap();
    let mut s = c
        .prepare("SELECT id, name, n FROM item ORDER BY id")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn now() -> i64 {
    super::capture::now_ms()
}

async fn restore_at(f: &Fixture, at: Option<i64>) -> Result<Vec<(i64, String, i64)>, BackupError> {
    let to = tempfile::tempdir().unwrap();
    let report = restore(
        &f.runner.targets()[0],
        &RestoreOptions {
            label: "default".into(),
            at_ms: at,
            to: to.path().to_path_buf(),
            spool: None,
            keys: Vec::new(),
        },
    )
    .await?;
    assert_eq!(report.path, to.path().join("edgestore.sqlite"));
    Ok(rows(&report.path))
}

async fn tick() {
    // Stamps are milliseconds: keep the steps apart.
    tokio::time::sleep(Duration::from_millis(5)).await;
}

/// A runner for `config` over the plain (unencrypted) databases in `data`.
fn plain_runner(config: &BackupConfig, data: &std::path::Path) -> BackupRunner {
    BackupRunner::open(
        config,
        data,
        None,
        Vec::new(),
        Metrics::new("native").unwrap(),
        false,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_exactly_the_state_at_each_point_in_time() {
    let f = fixture();
    f.runner.backup_now().await.unwrap();
    let t0 = now();
    tick().await;
    // T1: inserts, one in a transaction with a savepoint rolled back.
    f.app
        .execute_batch(
            "BEGIN; INSERT INTO item VALUES (1, 'a', 1); SAVEPOINT s; INSERT INTO item VALUES (9, 'gone', 0); \
             ROLLBACK TO s; RELEASE s; INSERT INTO item VALUES (2, 'b', 2); COMMIT;",
        )
        .unwrap();
    f.runner.backup_now().await.unwrap();
    let t1 = now();
    tick().await;
    // T2: an update.
    let b2 = now();
    tick().await;
    f.app
        .execute("UPDATE item SET n = 20 WHERE id = 2", [])
        .unwrap();
    f.runner.backup_now().await.unwrap();
    let t2 = now();
    tick().await;
    // T3: a delete.
    let b3 = now();
    tick().await;
    f.app.execute("DELETE FROM item WHERE id = 1", []).unwrap();
    f.runner.backup_now().await.unwrap();
    let t3 = now();

    let at1 = vec![(1, "a".into(), 1), (2, "b".into(), 2)];
    let at2 = vec![(1, "a".into(), 1), (2, "b".into(), 20)];
    let at3 = vec![(2, "b".into(), 20)];
    assert_eq!(restore_at(&f, Some(t0)).await.unwrap(), vec![]);
    assert_eq!(restore_at(&f, Some(t1)).await.unwrap(), at1);
    assert_eq!(
        restore_at(&f, Some(b2)).await.unwrap(),
        at1,
        "just before T2"
    );
    assert_eq!(restore_at(&f, Some(t2)).await.unwrap(), at2);
    assert_eq!(
        restore_at(&f, Some(b3)).await.unwrap(),
        at2,
        "just before T3"
    );
    assert_eq!(restore_at(&f, Some(t3)).await.unwrap(), at3);
    assert_eq!(restore_at(&f, None).await.unwrap(), at3);
    // Before the first snapshot: nothing to restore, said so.
    let early = restore_at(&f, Some(1_000)).await.unwrap_err();
    assert!(early.to_string().contains("earliest"), "{early}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_database_writes_nothing_and_one_row_is_a_small_increment() {
    let f = fixture();
    // A 100 MB database, then a snapshot.
    f.app
        .execute_batch(
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000) \
             INSERT INTO item SELECT i, printf('%01000d', i), i FROM c;",
        )
        .unwrap();
    let size = std::fs::metadata(f.data.join("edgestore.sqlite"))
        .unwrap()
        .len()
        + std::fs::metadata(f.data.join("edgestore.sqlite-wal")).map_or(0, |m| m.len());
    assert!(size > 100_000_000, "{size} bytes");
    f.runner.backup_now().await.unwrap();
    let files = || walk(&f.target_dir);
    let before = files();
    for _ in 0..3 {
        f.runner.backup_now().await.unwrap();
    }
    assert_eq!(files(), before, "idle rounds wrote something");
    f.app
        .execute("UPDATE item SET n = -1 WHERE id = 12345", [])
        .unwrap();
    f.runner.backup_now().await.unwrap();
    let after = files();
    let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let size = std::fs::metadata(new[0]).unwrap().len();
    eprintln!("one changed row in a 100 MB database: a {size}-byte increment");
    assert!(size < 64 * 1024, "one changed row: {size} bytes");
    let rows = restore_at(&f, None).await.unwrap();
    assert_eq!(rows.len(), 100_000);
    assert_eq!(rows[12344].2, -1);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_restarted_under_load_loses_nothing() {
    let f = fixture();
    f.runner.backup_now().await.unwrap();
    // Well past the rollover size, in many transactions, captured as they come.
    let mut id = 0;
    for round in 0..12 {
        let tx = f.app.unchecked_transaction().unwrap();
        for _ in 0..2_000 {
            id += 1;
            tx.execute(
                "INSERT INTO item VALUES (?1, printf('%01000d', ?1), ?2)",
                (id, round),
            )
            .unwrap();
        }
        tx.commit().unwrap();
        f.runner.backup_now().await.unwrap();
    }
    let wal = std::fs::metadata(f.data.join("edgestore.sqlite-wal"))
        .unwrap()
        .len();
    assert!(
        wal < 2 * super::capture::ROLLOVER_BYTES,
        "the log keeps growing: {wal} bytes"
    );
    let reports = f.runner.verify().await.unwrap();
    assert!(reports.iter().all(|r| r.ok()), "{reports:?}");
    assert_eq!(reports[0].rows, 24_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_increment_is_named_and_never_applied() {
    let f = fixture();
    f.runner.backup_now().await.unwrap();
    f.app
        .execute("INSERT INTO item VALUES (1, 'a', 1)", [])
        .unwrap();
    f.runner.backup_now().await.unwrap();
    f.app
        .execute("INSERT INTO item VALUES (2, 'b', 2)", [])
        .unwrap();
    f.runner.backup_now().await.unwrap();
    let incs: Vec<_> = walk(&f.target_dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "inc"))
        .collect();
    assert_eq!(incs.len(), 2, "{incs:?}");
    // Truncated: refused, naming the object.
    let bytes = std::fs::read(&incs[1]).unwrap();
    std::fs::write(&incs[1], &bytes[..bytes.len() - 7]).unwrap();
    let e = restore_at(&f, None).await.unwrap_err();
    let name = incs[1].file_name().unwrap().to_str().unwrap();
    assert!(
        matches!(e, BackupError::Damaged { .. }) && e.to_string().contains(name),
        "{e}"
    );
    let reports = f.runner.verify().await.unwrap();
    assert!(!reports[0].ok(), "{reports:?}");
    assert!(reports[0].result.contains(name), "{reports:?}");
    // Missing, with a later one there: restore stops at the last good point and says so.
    f.app
        .execute("INSERT INTO item VALUES (3, 'c', 3)", [])
        .unwrap();
    f.runner.backup_now().await.unwrap();
    std::fs::remove_file(&incs[1]).unwrap();
    let to = tempfile::tempdir().unwrap();
    let report = restore(
        &f.runner.targets()[0],
        &RestoreOptions {
            label: "default".into(),
            at_ms: None,
            to: to.path().to_path_buf(),
            spool: None,
            keys: Vec::new(),
        },
    )
    .await;
    let report = report.unwrap();
    assert!(
        report.stopped.as_deref().is_some_and(|s| s.contains(name)),
        "{report:?}"
    );
    assert_eq!(rows(&report.path), vec![(1, "a".into(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_never_overwrites_and_two_targets_both_restore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let app = Connection::open(data.join("edgestore.sqlite")).unwrap();
    app.pragma_update(None, "journal_mode", "WAL").unwrap();
    app.execute_batch("CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, n INTEGER); INSERT INTO item VALUES (1, 'x', 1);")
        .unwrap();
    let targets: Vec<_> = ["one", "two"]
        .iter()
        .map(|n| {
            let d = dir.path().join(n);
            std::fs::create_dir_all(&d).unwrap();
            BackupTargetConfig::new(format!("file://{}", d.display()))
        })
        .collect();
    let config = BackupConfig {
        targets,
        ..BackupConfig::default()
    };
    let runner = plain_runner(&config, &data);
    runner.backup_now().await.unwrap();
    app.execute("INSERT INTO item VALUES (2, 'y', 2)", [])
        .unwrap();
    runner.backup_now().await.unwrap();
    for target in runner.targets() {
        let to = tempfile::tempdir().unwrap();
        let options = RestoreOptions {
            label: "default".into(),
            at_ms: None,
            to: to.path().to_path_buf(),
            spool: None,
            keys: Vec::new(),
        };
        let report = restore(target, &options).await.unwrap();
        assert_eq!(rows(&report.path).len(), 2, "{}", target.name());
        // Again into the same place: refused, the first restore untouched.
        let again = restore(target, &options).await.unwrap_err();
        assert!(matches!(again, BackupError::Refused(_)), "{again}");
        assert_eq!(rows(&report.path).len(), 2);
    }
    // Into the live data directory, which has a database: refused.
    let live = restore(
        &runner.targets()[0],
        &RestoreOptions {
            label: "default".into(),
            at_ms: None,
            to: data.clone(),
            spool: None,
            keys: Vec::new(),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(live, BackupError::Refused(_)), "{live}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_through_the_hosts_connections_carry_their_own_time() {
    let f = fixture();
    crate::commit_hooks::install(&f.app, &f.data.join("edgestore.sqlite"));
    f.runner.backup_now().await.unwrap();
    tick().await;
    // No round between the commits: each is stamped when it committed, not when found.
    let before_1 = now();
    tick().await;
    f.app
        .execute("INSERT INTO item VALUES (1, 'a', 1)", [])
        .unwrap();
    let t1 = now();
    tick().await;
    f.app
        .execute("UPDATE item SET n = 2 WHERE id = 1", [])
        .unwrap();
    let t2 = now();
    tick().await;
    f.app.execute("DELETE FROM item", []).unwrap();
    let t3 = now();
    tick().await;
    f.runner.backup_now().await.unwrap();
    assert_eq!(restore_at(&f, Some(before_1)).await.unwrap(), vec![]);
    assert_eq!(
        restore_at(&f, Some(t1)).await.unwrap(),
        vec![(1, "a".into(), 1)]
    );
    assert_eq!(
        restore_at(&f, Some(t2)).await.unwrap(),
        vec![(1, "a".into(), 2)]
    );
    assert_eq!(restore_at(&f, Some(t3)).await.unwrap(), vec![]);
    // Many commits, a rollover, a new generation: still every one at its time.
    let mut times = Vec::new();
    for i in 10..400 {
        f.app
            .execute(
                "INSERT INTO item VALUES (?1, printf('%0100000d', ?1), ?1)",
                [i],
            )
            .unwrap();
        if (i - 10) % 97 == 0 {
            // A sampled point: the next commit is a later millisecond.
            times.push((i, now()));
            tick().await;
        }
        if i == 200 {
            f.runner.backup_now().await.unwrap();
            f.runner.rotate();
        }
    }
    f.runner.backup_now().await.unwrap();
    for (i, at) in &times {
        let rows = restore_at(&f, Some(*at)).await.unwrap();
        assert_eq!(rows.last().map(|r| r.0), Some(*i), "at row {i}");
    }
}
