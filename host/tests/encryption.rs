//! Encryption at rest through the `edgestore` binary, checked with the reference `age` CLI:
//! segments written by both engines decrypt with `age -d -i KEY | brotli -d | jq`; a wrong or
//! missing key is `key-missing`, never corruption, and quarantines nothing; rotation keeps old
//! segments readable with the old identity while the old key alone cannot read new ones;
//! `keys destroy` makes everything unreadable; a process killed during encrypted ingest loses
//! no acknowledged row and leaves nothing that does not decrypt; shipping carries the
//! ciphertext as it is.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::keyed::{keyed_store, KeyedStore};
use common::{edgestore, ok, run, run_with_input, text, tool_available, ENGINES};

const AGE: &str = "apt-get install age (./test.sh does)";

type Setup = KeyedStore;

fn setup() -> Setup {
    keyed_store("")
}

fn cli(s: &Setup, engine: &str) -> Command {
    s.cmd(engine)
}

fn rows(from: u32, to: u32) -> String {
    (from..to)
        .map(|i| format!("{{\"i\":{i},\"secret\":\"plaintext-row-{i}\"}}\n"))
        .collect()
}

/// `spool put` of rows `from..to`, acknowledged (exit 0), then `spool flush`.
fn put(s: &Setup, engine: &str, from: u32, to: u32) {
    put_only(s, engine, from, to);
    ok(cli(s, engine).args(["spool", "flush"]));
}

/// `spool put` of rows `from..to`, acknowledged (exit 0).
fn put_only(s: &Setup, engine: &str, from: u32, to: u32) {
    let out = run_with_input(
        cli(s, engine).args(["spool", "put", "--documents"]),
        &rows(from, to),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn segments(s: &Setup) -> Vec<PathBuf> {
    let dir = s.data.join("metrics");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".json.br.age"))
        })
        .collect();
    names.sort();
    names
}

/// Rows of `segment` as `age -d -i key | brotli -d | jq length` counts them; `None` if age
/// refuses.
fn age_rows(segment: &Path, key: &Path) -> Option<u64> {
    let script = format!(
        "set -o pipefail; age -d -i '{}' '{}' | brotli -d | jq length",
        key.display(),
        segment.display()
    );
    let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
    if !out.status.success() {
        return None;
    }
    Some(text(&out.stdout).trim().parse().unwrap())
}

#[test]
fn both_engines_write_segments_the_age_cli_decrypts() {
    if !tool_available("age", AGE) {
        return;
    }
    for engine in ENGINES {
        let s = setup();
        let recipient = ok(cli(&s, engine).args(["keys", "generate"]));
        assert!(recipient.trim().starts_with("age1"), "{recipient}");
        let shown = ok(cli(&s, engine).args(["keys", "show-recipient"]));
        assert_eq!(shown, recipient);
        put(&s, engine, 0, 250);
        let segs = segments(&s);
        assert_eq!(segs.len(), 1, "{engine}: {segs:?}");
        assert_eq!(age_rows(&segs[0], &s.key), Some(250), "{engine}");
        // Not plaintext: brotli refuses it, and no row text is in the file.
        let raw = std::fs::read(&segs[0]).unwrap();
        assert!(raw.starts_with(b"age-encryption.org/v1\n"));
        assert!(!raw.windows(14).any(|w| w == b"plaintext-row-"));
        let br = Command::new("brotli")
            .args(["-d", "-c"])
            .arg(&segs[0])
            .output()
            .unwrap();
        assert!(
            !br.status.success(),
            "{engine}: brotli decoded an encrypted segment"
        );
        // The store reads it back with the key.
        let cat = ok(cli(&s, engine).args(["spool", "cat"]));
        assert_eq!(cat.lines().count(), 250, "{engine}");
        assert!(cat.contains("plaintext-row-249"));
        let verify = ok(cli(&s, engine).args(["spool", "verify"]));
        assert!(verify.contains('1'), "{verify}");
    }
}

#[test]
fn a_wrong_key_is_key_missing_and_rotation_keeps_old_segments_readable() {
    if !tool_available("age", AGE) {
        return;
    }
    let s = setup();
    let engine = "native";
    let first = ok(cli(&s, engine).args(["keys", "generate"]));
    put(&s, engine, 0, 10);
    let old_key = s.key.with_file_name("old.txt");
    std::fs::copy(&s.key, &old_key).unwrap();

    // A different key: one clear error, nothing quarantined.
    let other = s.key.with_file_name("other.txt");
    ok(cli(&s, engine)
        .args(["keys", "generate", "--key-file"])
        .arg(&other));
    let wrong = s.config.with_file_name("wrong.yaml");
    std::fs::write(
        &wrong,
        format!("encryption: {{keyFile: '{}'}}\n", other.display()),
    )
    .unwrap();
    let out = run(edgestore(&s.data, engine)
        .arg("--config")
        .arg(&wrong)
        .args(["spool", "cat"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("key-missing") || err.contains("none of the"),
        "{err}"
    );
    assert!(!err.contains("corrupt"), "{err}");
    let quarantine = s.data.join("metrics").join("quarantine");
    assert_eq!(std::fs::read_dir(&quarantine).unwrap().count(), 0);

    // Rotate: new segments to the new recipient, old ones still readable.
    let rotated = ok(cli(&s, engine).args(["keys", "rotate"]));
    assert_ne!(rotated, first);
    let all = ok(cli(&s, engine).args(["keys", "show-recipient", "--all"]));
    assert_eq!(all, format!("{rotated}{first}"));
    put(&s, engine, 10, 30);
    let segs = segments(&s);
    assert_eq!(segs.len(), 2, "{segs:?}");
    let cat = ok(cli(&s, engine).args(["spool", "cat"]));
    assert_eq!(cat.lines().count(), 30);
    assert_eq!(age_rows(&segs[0], &old_key), Some(10));
    assert_eq!(
        age_rows(&segs[1], &old_key),
        None,
        "the old key reads a new segment"
    );
    assert_eq!(age_rows(&segs[1], &s.key), Some(20));

    // Audited, and refused while a store owns the directory is covered by the lock.
    let audit = std::fs::read_to_string(s.data.join(".audit").join("audit-0000000001.jsonl"))
        .unwrap_or_default();
    assert!(audit.contains("keys.rotate"), "{audit}");
    // Every store that opened signed the chain before it with the key: verify checks them.
    let verified = ok(cli(&s, engine).args(["audit", "verify"]));
    assert!(
        verified.contains("checkpoints signed with the store's key"),
        "{verified}"
    );
    let keyless = run(edgestore(&s.data, engine).args(["audit", "verify"]));
    assert!(
        text(&keyless.stdout).contains("not checked"),
        "{}",
        text(&keyless.stdout)
    );

    // Crypto-erasure: without --yes nothing happens; with it nothing is readable any more.
    let out = run(cli(&s, engine).args(["keys", "destroy"]));
    assert!(!out.status.success());
    assert!(s.key.exists());
    ok(cli(&s, engine).args(["keys", "destroy", "--yes"]));
    assert!(!s.key.exists());
    std::fs::remove_file(&old_key).unwrap();
    let out = run(cli(&s, engine).args(["spool", "cat"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("key-missing") || text(&out.stderr).contains("does not exist")
    );
    for seg in segments(&s) {
        assert_eq!(age_rows(&seg, &other), None);
    }
}

#[test]
fn a_key_file_inside_the_data_directory_or_readable_by_others_is_refused() {
    let s = setup();
    ok(cli(&s, "native").args(["keys", "generate"]));
    put(&s, "native", 0, 1);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&s.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(cli(&s, "native").args(["spool", "list"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
    let inside = s.data.join("key.txt");
    std::fs::write(
        &s.config,
        format!("encryption: {{keyFile: '{}'}}\n", inside.display()),
    )
    .unwrap();
    ok(cli(&s, "native").args(["keys", "generate"]));
    let out = run(cli(&s, "native").args(["spool", "list"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("inside the data directory"),
        "{}",
        text(&out.stderr)
    );
}

/// SIGKILL in the middle of encrypted ingest (while batches are journaled and full segments
/// are compressed and encrypted): after recovery every row an acknowledged `spool put` wrote
/// is in a segment the `age` CLI decrypts, and nothing is quarantined.
#[test]
fn a_kill_during_encrypted_ingest_loses_no_acknowledged_row_and_everything_decrypts() {
    use std::collections::BTreeSet;
    use std::io::Write as _;
    use std::process::Stdio;
    if !tool_available("age", AGE) {
        return;
    }
    for engine in ENGINES {
        let s = keyed_store("storage: {maxRecords: 200}\n");
        ok(cli(&s, engine).args(["keys", "generate"]));
        let mut acked = BTreeSet::new();
        for round in 0..3u32 {
            let base = round * 100_000;
            put_only(&s, engine, base, base + 450);
            acked.extend(base..base + 450);
            // A put killed while it writes: nothing of it was acknowledged.
            let mut child = cli(&s, engine)
                .args(["spool", "put", "--documents"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let input = rows(base + 1_000, base + 60_000);
            let writer = std::thread::spawn(move || {
                // Fails with a broken pipe once the process is killed.
                let _ = stdin.write_all(input.as_bytes());
            });
            std::thread::sleep(std::time::Duration::from_millis(
                150 + 150 * u64::from(round),
            ));
            child.kill().unwrap();
            child.wait().unwrap();
            writer.join().unwrap();
        }
        // The next owner recovers the journal and finishes it, encrypted.
        ok(cli(&s, engine).args(["spool", "flush"]));
        let mut seen = BTreeSet::new();
        for seg in segments(&s) {
            let script = format!(
                "set -o pipefail; age -d -i '{}' '{}' | brotli -d | jq -r '.[].i'",
                s.key.display(),
                seg.display()
            );
            let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
            assert!(
                out.status.success(),
                "{engine}: {} does not decrypt: {}",
                seg.display(),
                text(&out.stderr)
            );
            for line in text(&out.stdout).lines() {
                assert!(
                    seen.insert(line.parse::<u32>().unwrap()),
                    "{engine}: {line} twice"
                );
            }
        }
        eprintln!(
            "{engine}: {} acknowledged rows, {} more from the killed puts, {} segments",
            acked.len(),
            seen.len() - acked.len().min(seen.len()),
            segments(&s).len()
        );
        let lost: Vec<_> = acked.difference(&seen).take(5).collect();
        assert!(
            lost.is_empty(),
            "{engine}: acknowledged rows lost, e.g. {lost:?}"
        );
        let quarantine = s.data.join("metrics").join("quarantine");
        let quarantined = std::fs::read_dir(&quarantine).map_or(0, |d| d.count());
        assert_eq!(quarantined, 0, "{engine}");
        assert!(segments(&s).iter().all(|p| {
            !std::fs::read(p)
                .unwrap()
                .windows(14)
                .any(|w| w == b"plaintext-row-")
        }));
    }
}

/// Shipping carries encrypted segments as they are: the object is byte-identical to the
/// segment, keeps its `.age` name, decrypts with the `age` CLI, and the segment is marked
/// uploaded. No key is needed to ship (a device holding only recipients ships too).
#[test]
fn encrypted_segments_ship_as_ciphertext_the_age_cli_reads() {
    if !tool_available("age", AGE) {
        return;
    }
    let s = setup();
    ok(cli(&s, "native").args(["keys", "generate"]));
    put(&s, "native", 0, 300);
    let local = segments(&s);
    assert_eq!(local.len(), 1);
    let segment_bytes = std::fs::read(&local[0]).unwrap();
    let outbox = s.tmp.path().join("outbox");
    std::fs::create_dir(&outbox).unwrap();
    let target = format!("file://{}", outbox.display());
    // The shipping process has no key file: recipients alone (the spool's `.recipients`).
    let keyless = s.tmp.path().join("keyless.yaml");
    std::fs::write(&keyless, "").unwrap();
    let mut ship = edgestore(&s.data, "native");
    ship.arg("--config")
        .arg(&keyless)
        .env("EDGESTORE_SHIP_TARGET", &target)
        .args(["spool", "ship", "--once"]);
    ok(&mut ship);
    let mut objects = Vec::new();
    let mut stack = vec![outbox.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                objects.push(e.path());
            }
        }
    }
    assert_eq!(objects.len(), 1, "{objects:?}");
    let object = &objects[0];
    assert!(
        object.to_string_lossy().ends_with(".json.br.age"),
        "{}",
        object.display()
    );
    assert_eq!(std::fs::read(object).unwrap(), segment_bytes);
    assert_eq!(age_rows(object, &s.key), Some(300));
    let list = ok(cli(&s, "native").args(["--json", "spool", "list"]));
    assert!(list.contains("uploaded"), "{list}");
}
