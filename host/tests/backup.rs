//! Continuous backup and point-in-time restore through the `edgestore` binary: `serve` backs
//! up on its own, other processes' writes are forwarded to it, `restore` rebuilds the database
//! as of any point, and the result is read with the `sqlite3` CLI. Object storage is a real
//! S3-protocol server on loopback (moto), checked with the AWS CLI.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::s3::{isolate_aws_env, S3Server, ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY};
use common::{edgestore, output_within, text, tool_available, Serving, ENGINES};

const CMD_TIMEOUT: Duration = Duration::from_secs(180);
const BUCKET: &str = "edgestore-backup";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A data directory with a config backing up to `targets` (YAML flow entries).
struct Store {
    tmp: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    engine: &'static str,
}

impl Store {
    fn new(engine: &'static str, targets: &str, extra: &str) -> Store {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let config = tmp.path().join("edgestore.yaml");
        std::fs::write(
            &config,
            format!("backup: {{targets: [{targets}], interval: 200ms}}\n{extra}"),
        )
        .unwrap();
        Store {
            tmp,
            data,
            config,
            engine,
        }
    }

    /// A store backing up every 200 ms to the directory target `target/` beside its data
    /// directory; `backup_extra` adds keys to the `backup` section (`, spool: true`), `extra`
    /// more top-level YAML.
    fn with_dir_target(engine: &'static str, backup_extra: &str, extra: &str) -> (Store, PathBuf) {
        let store = Store::new(engine, "", "");
        let target = store.dir("target");
        std::fs::write(
            &store.config,
            format!(
                "backup: {{targets: [{{url: 'file://{}'}}], interval: 200ms{backup_extra}}}\n{extra}",
                target.display()
            ),
        )
        .unwrap();
        (store, target)
    }

    fn dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn cmd(&self) -> Command {
        let mut cmd = edgestore(&self.data, self.engine);
        cmd.arg("--config").arg(&self.config);
        isolate_aws_env(&mut cmd, ACCESS_KEY_ID, SECRET_ACCESS_KEY);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        output_within(self.cmd().args(args), CMD_TIMEOUT)
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "edgestore {args:?} failed ({}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `db put resource_tags` of JSON lines on stdin.
    fn put(&self, lines: &[&str]) {
        let mut child = self
            .cmd()
            .args(["db", "put", "resource_tags"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "db put: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    /// Wait until `url` holds a finished generation (60 s at most).
    fn wait_for_generation(&self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.run(&["backup", "list", "--json", "--from", url]);
            if out.status.success() && text(&out.stdout).contains("generation") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no generation on {url}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn serve(&self) -> Serving {
        Serving::start(self.cmd(), &[])
    }

    /// `restore ... --to DIR`: the rows sqlite3 reads from the restored file.
    fn restore(&self, args: &[&str], to: &Path) -> Vec<String> {
        let mut all = vec!["restore", "--to", to.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run_ok(&all);
        sqlite3(&to.join("edgestore.sqlite"))
    }
}

fn sqlite_available() -> bool {
    tool_available(
        "sqlite3",
        "install the sqlite3 CLI (apt-get install sqlite3; ./test.sh does)",
    )
}

/// `name=labels` of every resource tag, by name, read with the sqlite3 CLI after it says the
/// file passes `PRAGMA integrity_check`.
fn sqlite3(db: &Path) -> Vec<String> {
    let check = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA integrity_check;")
        .output()
        .unwrap();
    assert_eq!(text(&check.stdout).trim(), "ok", "{}", text(&check.stderr));
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("SELECT name || '=' || labels FROM resource_tags ORDER BY name;")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// Let `serve` (interval 200 ms) capture and upload what was just written.
fn settle() {
    std::thread::sleep(Duration::from_millis(700));
}

#[test]
fn serve_backs_up_and_restore_returns_each_point_in_time() {
    if !sqlite_available() {
        return;
    }
    for engine in ENGINES {
        let (store, _) = Store::with_dir_target(engine, "", "");
        let serving = store.serve();
        store.put(&[r#"{"type":"pod","namespace":"ns","name":"a","labels":{"v":"1"}}"#]);
        settle();
        let t1 = now_ms();
        store.put(&[
            r#"{"type":"pod","namespace":"ns","name":"a","labels":{"v":"2"}}"#,
            r#"{"type":"pod","namespace":"ns","name":"b","labels":{"v":"1"}}"#,
        ]);
        settle();
        let t2 = now_ms();
        store.run_ok(&["db", "delete", "resource_tags", "pod/ns/a"]);
        settle();
        let t3 = now_ms();

        // The owner verifies on request (forwarded), and is healthy.
        let verified = store.run_ok(&["backup", "verify"]);
        assert!(verified.contains(": ok"), "{engine}: {verified}");
        store.run_ok(&["health"]);

        let at = |t: i64, name: &str| {
            let to = store.dir(&format!("restored-{engine}-{name}"));
            store.restore(&["--at", &t.to_string()], &to)
        };
        assert_eq!(at(t1, "t1"), vec![r#"a={"v":"1"}"#], "{engine}");
        assert_eq!(
            at(t2, "t2"),
            vec![r#"a={"v":"2"}"#, r#"b={"v":"1"}"#],
            "{engine}"
        );
        assert_eq!(at(t3, "t3"), vec![r#"b={"v":"1"}"#], "{engine}");
        // RFC 3339 works too, and the newest is the default.
        let rfc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t1) * 1_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert_eq!(at_rfc(&store, &rfc), vec![r#"a={"v":"1"}"#]);
        let latest = store.dir(&format!("latest-{engine}"));
        assert_eq!(
            store.restore(&["--latest"], &latest),
            vec![r#"b={"v":"1"}"#]
        );
        // The restored directory opens as a store of its own, on this engine.
        let count = output_within(
            edgestore(&latest, engine).args(["db", "count", "resource_tags"]),
            CMD_TIMEOUT,
        );
        assert!(count.status.success(), "{}", text(&count.stderr));
        assert!(text(&count.stdout).contains('1'), "{}", text(&count.stdout));
        // Never into the live data directory (it is owned, and holds the database).
        let refused = store.run(&["restore", "--to", store.data.to_str().unwrap()]);
        assert!(!refused.status.success());
        assert!(
            text(&refused.stderr).contains("restore into"),
            "{}",
            text(&refused.stderr)
        );
        drop(serving);
    }
}

fn at_rfc(store: &Store, rfc: &str) -> Vec<String> {
    let to = store.dir(&format!("rfc-{}", store.engine));
    store.restore(&["--at", rfc], &to)
}

#[test]
fn two_targets_on_object_storage_both_receive_everything_and_idle_is_silent() {
    if !sqlite_available() {
        return;
    }
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket(BUCKET);
    let store = Store::new("native", "", "");
    let dir_target = store.dir("target");
    let endpoint = server.endpoint();
    std::fs::write(
        &store.config,
        format!(
            "backup: {{interval: 200ms, targets: [\
             {{url: 's3://{BUCKET}/east', endpoint: '{endpoint}', region: {REGION}, pathStyle: true, allowHttp: true}}, \
             {{url: 'file://{}'}}]}}\n",
            dir_target.display()
        ),
    )
    .unwrap();
    let _serving = store.serve();
    // The first write makes the database; the snapshot that starts the generation is on the
    // targets before the other writes, so they come as increments.
    let put = |i: usize| {
        store.put(&[&format!(
            r#"{{"type":"pod","namespace":"ns","name":"p{i:02}","labels":{{"i":"{i}"}}}}"#
        )])
    };
    put(0);
    store.wait_for_generation(&format!("file://{}", dir_target.display()));
    for i in 1..20 {
        put(i);
    }
    settle();
    // Idle: no request to the server for 3 s.
    let before = server.requests().len();
    std::thread::sleep(Duration::from_secs(3));
    let idle = server.requests()[before..].to_vec();
    assert!(idle.is_empty(), "an idle database sent {idle:?}");

    let listed = server.aws_ok(&["s3", "ls", "--recursive", &format!("s3://{BUCKET}/east/")]);
    assert!(
        listed.contains("snapshot.db") && listed.contains("snapshot.json"),
        "{listed}"
    );
    assert!(listed.contains(".inc"), "{listed}");

    let from_s3 = store.dir("from-s3");
    let rows = {
        let mut cmd = store.cmd();
        cmd.args(["restore", "--from", &format!("s3://{BUCKET}/east"), "--to"])
            .arg(&from_s3);
        let out = output_within(&mut cmd, CMD_TIMEOUT);
        assert!(out.status.success(), "{}", text(&out.stderr));
        sqlite3(&from_s3.join("edgestore.sqlite"))
    };
    assert_eq!(rows.len(), 20, "{rows:?}");
    let from_dir = store.dir("from-dir");
    let url = format!("file://{}", dir_target.display());
    assert_eq!(store.restore(&["--from", &url], &from_dir), rows);
    // The snapshot the AWS CLI downloads is the one the manifest describes.
    let listed = store.run_ok(&["backup", "list", "--json"]);
    let generations: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(generations.as_array().unwrap().len(), 2, "{listed}");
}

#[test]
fn a_killed_owner_leaves_a_restorable_backup_with_everything_older_than_the_interval() {
    if !sqlite_available() {
        return;
    }
    let (store, _) = Store::with_dir_target("native", "", "");
    let mut acked: Vec<(String, Instant)> = Vec::new();
    for round in 0..4 {
        let mut serving = store.serve();
        let started = Instant::now();
        let run_for = Duration::from_millis(1_000 + 400 * round);
        let mut i = 0;
        while started.elapsed() < run_for {
            let name = format!("r{round}-{i:03}");
            store.put(&[&format!(
                r#"{{"type":"pod","namespace":"ns","name":"{name}","labels":{{}}}}"#
            )]);
            acked.push((name, Instant::now()));
            i += 1;
        }
        let killed = Instant::now();
        serving.child.kill().unwrap();
        serving.child.wait().unwrap();
        let to = store.dir(&format!("after-kill-{round}"));
        let rows = store.restore(&["--latest"], &to);
        // Every write acknowledged longer than the interval (plus an upload's time) before the
        // kill is in the newest backup.
        let must: Vec<_> = acked
            .iter()
            .filter(|(_, at)| killed.duration_since(*at) > Duration::from_millis(200 + 800))
            .map(|(n, _)| format!("{n}={{}}"))
            .collect();
        for name in &must {
            assert!(
                rows.contains(name),
                "round {round}: {name} is missing from {rows:?}"
            );
        }
        drop(serving);
    }
}

#[test]
fn a_killed_restore_leaves_no_database_and_the_next_one_succeeds() {
    if !sqlite_available() {
        return;
    }
    let (store, _) = Store::with_dir_target("native", "", "");
    // A few MB, so a restore takes long enough to be killed in its middle.
    let lines: Vec<String> = (0..3000)
        .map(|i| {
            format!(
                r#"{{"type":"pod","namespace":"ns","name":"n{i:05}","labels":{{"pad":"{}"}}}}"#,
                "x".repeat(1000)
            )
        })
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    store.put(&refs);
    store.run_ok(&["backup", "now"]);
    let to = store.dir("restored");
    let db = to.join("edgestore.sqlite");
    for delay_ms in [5u64, 20, 40, 80, 150] {
        let mut child = store
            .cmd()
            .args(["restore", "--latest", "--to"])
            .arg(&to)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if db.exists() {
            // It finished before the kill: whole and sound.
            assert_eq!(
                sqlite3(&db).len(),
                3000,
                "after a kill at {delay_ms} ms ({status})"
            );
            std::fs::remove_file(&db).unwrap();
        }
    }
    // A restore killed between creating the lock file and writing its record leaves an empty
    // lock file, which counts as an owner starting up for 2 s (see the ownership rules).
    std::thread::sleep(Duration::from_millis(2_100));
    assert_eq!(store.restore(&["--latest"], &to).len(), 3000);
    let leftovers: Vec<_> = std::fs::read_dir(&to)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn pending_spool_segments_come_back_with_the_database() {
    if !sqlite_available() {
        return;
    }
    let (store, _) = Store::with_dir_target(
        "native",
        ", spool: true",
        "storage: {maxRecords: 500}
",
    );
    let _serving = store.serve();
    store.put(&[r#"{"type":"pod","namespace":"ns","name":"a","labels":{}}"#]);
    // Rows into the spool through the owner, finished into segments, not shipped.
    let rows: String = (0..1200)
        .map(|i| {
            format!(
                "{{\"cloud_account_id\":\"c\",\"cluster_name\":\"k\",\"created_at\":\"2024-01-01T00:00:00Z\",\
                 \"id\":\"{i}\",\"labels\":{{}},\"metric_name\":\"m\",\"node_name\":\"n\",\
                 \"timestamp\":\"{}\",\"value\":\"1\"}}\n",
                1_700_000_000_000i64 + i
            )
        })
        .collect();
    let mut put = store
        .cmd()
        .args(["spool", "put", "--flush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    put.stdin
        .take()
        .unwrap()
        .write_all(rows.as_bytes())
        .unwrap();
    let out = put.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    settle();
    let spool = store.data.join("metrics");
    let mut segments: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json.br"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");

    let to = store.dir("device-lost");
    store.run_ok(&[
        "restore",
        "--latest",
        "--spool",
        "--to",
        to.to_str().unwrap(),
    ]);
    for name in &segments {
        let original = std::fs::read(spool.join(name)).unwrap();
        let restored = std::fs::read(to.join("metrics").join(name)).unwrap();
        assert!(original == restored, "{name} differs");
        assert!(to.join("metrics").join(format!("{name}.sum")).exists());
    }
    // The restored directory is a store of its own: its spool lists them pending.
    let listed = output_within(
        edgestore(&to, "native").args(["spool", "list", "--json"]),
        CMD_TIMEOUT,
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let pending = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "pending")
        .count();
    assert_eq!(pending, segments.len(), "{listed}");
}

#[test]
fn a_failing_target_fails_health_naming_it_and_recovers() {
    if !sqlite_available() {
        return;
    }
    let (store, target) = Store::with_dir_target("native", "", "");
    let serving = store.serve();
    store.put(&[r#"{"type":"pod","namespace":"ns","name":"a","labels":{}}"#]);
    store.wait_for_generation(&format!("file://{}", target.display()));
    store.run_ok(&["health"]);
    // The generation's directory on the target is set aside and a plain file takes its
    // place: every write there fails (as a broken mount would), even for root.
    let generation_dir = std::fs::read_dir(target.join("default"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let aside = generation_dir.with_extension("aside");
    std::fs::rename(&generation_dir, &aside).unwrap();
    std::fs::write(&generation_dir, b"not a directory").unwrap();
    store.put(&[r#"{"type":"pod","namespace":"ns","name":"b","labels":{}}"#]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let said = loop {
        let out = store.run(&["health"]);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        if !out.status.success() && said.contains("backup of database") {
            break said;
        }
        assert!(
            Instant::now() < deadline,
            "health never reported the backup failure: {said}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(said.contains(&target.display().to_string()), "{said}");
    std::fs::remove_file(&generation_dir).unwrap();
    std::fs::rename(&aside, &generation_dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = store.run(&["health"]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health stayed failing after the target came back: {}",
            text(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let to = store.dir("after");
    assert_eq!(store.restore(&["--latest"], &to).len(), 2);
    drop(serving);
}
