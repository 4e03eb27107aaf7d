//! Encrypted databases through the `edgestore` binary, checked with readers that are not ours:
//! SQLCipher 4's Python binding (`sqlcipher3`, pinned by `./test.sh` in `target/sqlcipher-venv`
//! or at `$EDGESTORE_SQLCIPHER_VENV`) opens the database with the key `keys database-key`
//! prints, the plain `sqlite3` CLI cannot, and no row's text is anywhere in the files. A wrong
//! key is `key-missing`; a plaintext database is encrypted when a key is configured; `keys
//! rotate` re-keys it (the old key alone no longer opens it); backups stay encrypted and
//! restore to a database the key opens; `keys destroy` leaves it unreadable.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::keyed::{keyed_store, KeyedStore};
use common::{edgestore, ok, run, run_with_input, text, tool_available, ENGINES};

const INSTALL: &str = "run ./test.sh --install-only (it creates the venv target/sqlcipher-venv \
                       with sqlcipher3-binary), or set EDGESTORE_SQLCIPHER_VENV to a venv with it";

type Setup = KeyedStore;

fn setup(extra: &str) -> Setup {
    keyed_store(extra)
}

impl Setup {
    fn ok(&self, engine: &str, args: &[&str]) -> String {
        ok(self.cmd(engine).args(args))
    }

    /// `db put resource_tags` of one pod per name.
    fn put(&self, engine: &str, names: &[&str]) {
        let input: String = names
            .iter()
            .map(|n| {
                format!(r#"{{"type":"pod","namespace":"ns","name":"{n}","labels":{{}}}}"#) + "\n"
            })
            .collect();
        let out = run_with_input(
            self.cmd(engine).args(["db", "put", "resource_tags"]),
            &input,
        );
        assert!(out.status.success(), "db put: {}", text(&out.stderr));
    }

    fn database_key(&self) -> String {
        self.ok("native", &["keys", "database-key"])
            .trim()
            .to_owned()
    }

    fn db(&self) -> PathBuf {
        self.data.join("edgestore.sqlite")
    }
}

fn venv() -> PathBuf {
    match std::env::var_os("EDGESTORE_SQLCIPHER_VENV") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/sqlcipher-venv"),
    }
}

fn python() -> PathBuf {
    venv().join("bin").join("python")
}

fn reader_available() -> bool {
    tool_available(python().to_str().expect("utf-8 path"), INSTALL)
}

/// The names of the resource tags SQLCipher 4 (Python's `sqlcipher3`) reads from `db` with
/// the raw-key literal `key`, after its own integrity check; `Err` with its message when it
/// cannot open the file.
fn sqlcipher_names(db: &Path, key: &str) -> Result<Vec<String>, String> {
    const SCRIPT: &str = r#"
import sys
from sqlcipher3 import dbapi2 as sqlcipher
c = sqlcipher.connect(sys.argv[1])
c.execute('PRAGMA key = "%s"' % sys.argv[2])
assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
for (name,) in c.execute("SELECT name FROM resource_tags ORDER BY name"):
    print(name)
"#;
    let out = Command::new(python())
        .args(["-c", SCRIPT])
        .arg(db)
        .arg(key)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(text(&out.stdout).lines().map(str::to_owned).collect())
    } else {
        Err(text(&out.stderr))
    }
}

/// Every byte of the database file and its log.
fn raw_files(db: &Path) -> Vec<u8> {
    let mut all = std::fs::read(db).unwrap();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    all.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

#[test]
fn both_engines_write_a_database_sqlcipher_opens_with_the_key_and_nothing_else_reads() {
    if !reader_available() {
        return;
    }
    for engine in ENGINES {
        let s = setup("");
        s.ok(engine, &["keys", "generate"]);
        let secret = format!("secret-pod-{engine}");
        s.put(engine, &[&secret, "web-1"]);
        let got = s.ok(
            engine,
            &["db", "get", "resource_tags", &format!("pod/ns/{secret}")],
        );
        assert!(got.contains(&secret), "{engine}: {got}");

        let raw = raw_files(&s.db());
        assert!(!contains(&raw, &secret), "{engine}: row text in the files");
        assert!(
            !contains(&raw, "SQLite format 3"),
            "{engine}: a plaintext header"
        );
        assert!(
            !contains(&raw, "CREATE TABLE"),
            "{engine}: schema text in the files"
        );

        let key = s.database_key();
        assert!(key.starts_with("x'") && key.len() == 67, "{key}");
        assert_eq!(
            sqlcipher_names(&s.db(), &key).unwrap(),
            [secret.clone(), "web-1".to_owned()],
            "{engine}"
        );
        let wrong = format!("x'{}'", "00".repeat(32));
        let e = sqlcipher_names(&s.db(), &wrong).unwrap_err();
        assert!(e.contains("not a database"), "{engine}: {e}");
        if tool_available("sqlite3", "apt-get install sqlite3 (./test.sh does)") {
            let out = Command::new("sqlite3")
                .arg(s.db())
                .arg("SELECT count(*) FROM resource_tags;")
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "{engine}: sqlite3 read it in plaintext"
            );
        }

        // Another key: one clear error, and the database is left as it was.
        let other_key = s.tmp.path().join("keys").join("other.txt");
        ok(s.cmd(engine)
            .args(["keys", "generate", "--key-file"])
            .arg(&other_key));
        let other_config = s.tmp.path().join("other.yaml");
        std::fs::write(
            &other_config,
            format!("encryption: {{keyFile: '{}'}}\n", other_key.display()),
        )
        .unwrap();
        let out = run(edgestore(&s.data, engine)
            .arg("--config")
            .arg(&other_config)
            .args(["db", "count", "resource_tags"]));
        let e = failure(&out);
        assert!(e.contains("key-missing"), "{engine}: {e}");
        assert!(!e.contains("corrupt"), "{engine}: {e}");
        // No key at all: the same error, not "file is not a database".
        let out = run(edgestore(&s.data, engine).args(["db", "count", "resource_tags"]));
        let e = failure(&out);
        assert!(e.contains("key-missing"), "{engine}: {e}");
        assert_eq!(
            s.ok(engine, &["db", "count", "resource_tags"]).trim(),
            "resource_tags: 2"
        );
    }
}

#[test]
fn a_plaintext_database_is_encrypted_rotation_rekeys_it_and_destroy_leaves_it_unreadable() {
    if !reader_available() {
        return;
    }
    let s = setup("");
    // Written before encryption was configured.
    let plain = s.tmp.path().join("plain.yaml");
    std::fs::write(&plain, "").unwrap();
    let plain_cmd = || {
        let mut c = edgestore(&s.data, "native");
        c.arg("--config").arg(&plain);
        c
    };
    let input = r#"{"type":"pod","namespace":"ns","name":"before-the-key","labels":{}}"#;
    let out = run_with_input(plain_cmd().args(["db", "put", "resource_tags"]), input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(contains(&raw_files(&s.db()), "before-the-key"));

    s.ok("native", &["keys", "generate"]);
    s.put("native", &["after-the-key"]);
    let raw = raw_files(&s.db());
    assert!(
        !contains(&raw, "before-the-key"),
        "the plaintext copy is gone"
    );
    let first = s.database_key();
    assert_eq!(
        sqlcipher_names(&s.db(), &first).unwrap(),
        ["after-the-key", "before-the-key"]
    );

    // Rotation re-keys the database: the new key opens it, the old one alone no longer does.
    let out = run(s.cmd("native").args(["keys", "rotate"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("re-keyed"),
        "{}",
        text(&out.stderr)
    );
    let second = s.database_key();
    assert_ne!(first, second);
    let all = s.ok("native", &["keys", "database-key", "--all"]);
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        [second.as_str(), first.as_str()]
    );
    assert_eq!(sqlcipher_names(&s.db(), &second).unwrap().len(), 2);
    assert!(sqlcipher_names(&s.db(), &first).is_err());
    assert_eq!(
        s.ok("component", &["db", "count", "resource_tags"]).trim(),
        "resource_tags: 2"
    );

    // Crypto-erasure: without the key file nothing opens it, and nothing else reads it.
    s.ok("native", &["keys", "destroy", "--yes"]);
    assert!(!s.key.exists());
    let out = run(s.cmd("native").args(["db", "count", "resource_tags"]));
    let e = failure(&out);
    assert!(e.contains("key"), "{e}");
    let raw = raw_files(&s.db());
    assert!(!contains(&raw, "after-the-key") && !contains(&raw, "before-the-key"));
}

#[test]
fn an_encrypted_database_is_backed_up_encrypted_and_restores_to_one_the_key_opens() {
    if !reader_available() {
        return;
    }
    let target_dir = tempfile::tempdir().unwrap();
    let target = target_dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let s = setup(&format!(
        "backup: {{targets: [{{url: 'file://{}'}}]}}\n",
        target.display()
    ));
    s.ok("native", &["keys", "generate"]);
    s.put("native", &["backed-up-secret"]);
    s.ok("native", &["backup", "now"]);
    s.put("native", &["in-an-increment"]);
    s.ok("native", &["backup", "now"]);
    let verify = s.ok("native", &["backup", "verify"]);
    assert!(verify.contains("ok"), "{verify}");

    // Nothing on the target holds a row's text.
    let mut stack = vec![target.clone()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files += 1;
                let bytes = std::fs::read(&path).unwrap();
                assert!(!contains(&bytes, "backed-up-secret"), "{}", path.display());
                assert!(!contains(&bytes, "in-an-increment"), "{}", path.display());
            }
        }
    }
    assert!(
        files >= 3,
        "snapshot, increment and manifest expected on the target"
    );

    let to = s.tmp.path().join("restored");
    s.ok(
        "native",
        &["restore", "--latest", "--to", to.to_str().unwrap()],
    );
    let restored = to.join("edgestore.sqlite");
    assert!(!contains(&raw_files(&restored), "backed-up-secret"));
    assert_eq!(
        sqlcipher_names(&restored, &s.database_key()).unwrap(),
        ["backed-up-secret", "in-an-increment"]
    );
}
