//! Encrypted segments over the in-memory directory: round trip, keys missing or wrong (never
//! quarantined), rotation, the stored recipients, tampering.

use std::io::{Read, Write};
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use age::x25519::Identity;
use serde_json::Value;

use super::tests::{read_all, values};
use super::*;
use crate::clock::ManualClock;
use crate::dir::{Directory, MemDir};
use crate::ErrorCode;

const T0: i64 = 1_700_000_000_000;

struct Key {
    secret: String,
    public: String,
}

fn key() -> Key {
    let id = Identity::generate();
    Key {
        secret: id.to_string().expose_secret().to_string(),
        public: id.to_public().to_string(),
    }
}

/// A config encrypting to `to` and reading with `read` (identity file text).
fn cfg(to: &[&Key], read: &[&Key]) -> SpoolConfig {
    let mut c = SpoolConfig::new("agent-1");
    c.max_records = 100;
    c.keys.recipients = to.iter().map(|k| k.public.clone()).collect();
    c.keys.identities = read
        .iter()
        .map(|k| format!("# created: by a test\n{}\n", k.secret))
        .collect();
    c
}

fn open(dir: &MemDir, clock: &ManualClock, c: SpoolConfig) -> Spool<Value> {
    Spool::open(Arc::new(dir.clone()), c, Arc::new(clock.clone())).unwrap()
}

fn bytes(dir: &MemDir, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    dir.open_read(path).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn replace(dir: &MemDir, path: &str, data: &[u8]) {
    dir.remove(path).unwrap();
    let mut f = dir.create_new(path).unwrap();
    f.write_all(data).unwrap();
}

fn segment_names(dir: &MemDir, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = dir
        .list(sub)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .filter(|n| SegmentName::parse(n).is_some())
        .collect();
    names.sort();
    names
}

fn read_err(spool: &Spool<Value>) -> Error {
    let mut r = spool.read_range(TimeRange::all()).unwrap();
    loop {
        match r.next(1000) {
            Ok(rows) if rows.is_empty() => panic!("read everything, expected an error"),
            Ok(_) => {}
            Err(e) => return e,
        }
    }
}

#[test]
fn encrypted_segments_round_trip_and_are_age_files() {
    let (dir, clock, k) = (MemDir::new(), ManualClock::new(T0), key());
    let spool = open(&dir, &clock, cfg(&[&k], &[&k]));
    spool.put(&values(0..250)).unwrap();
    spool.flush().unwrap();
    let names = segment_names(&dir, "");
    assert_eq!(names.len(), 3, "{names:?}");
    for n in &names {
        assert!(n.ends_with(".json.br.age"), "{n}");
        assert!(bytes(&dir, n).starts_with(AGE_MAGIC), "{n}");
        let sidecar = segment::read_sidecar(&dir, &format!("{n}.sum"))
            .unwrap()
            .unwrap();
        assert_eq!(sidecar.recipients, std::slice::from_ref(&k.public));
    }
    assert_eq!(read_all(&spool), values(0..250));
    let report = spool.verify().unwrap();
    assert_eq!((report.checked, report.quarantined.len()), (3, 0));
    // A segment holds no plaintext row.
    let raw = bytes(&dir, &names[0]);
    assert!(!raw.windows(5).any(|w| w == b"row 1"));
}

#[test]
fn without_the_right_key_reading_is_key_missing_and_nothing_is_quarantined() {
    let (dir, clock, k, other) = (MemDir::new(), ManualClock::new(T0), key(), key());
    let writer = open(&dir, &clock, cfg(&[&k], &[]));
    writer.put(&values(0..50)).unwrap();
    writer.flush().unwrap();
    drop(writer);

    // No identity at all (a writer that only holds the public key).
    let spool = open(&dir, &clock, cfg(&[&k], &[]));
    let e = read_err(&spool);
    assert_eq!(e.code(), ErrorCode::KeyMissing, "{e}");
    assert!(e.message().contains("no age identity"), "{e}");
    // Verification needs no key: the checksum covers the ciphertext.
    let report = spool.verify().unwrap();
    assert_eq!((report.checked, report.quarantined.len()), (1, 0));

    // The wrong identity: named by its public key, and the segment's recipients too.
    let spool = open(&dir, &clock, cfg(&[&k], &[&other]));
    let e = read_err(&spool);
    assert_eq!(e.code(), ErrorCode::KeyMissing, "{e}");
    assert!(e.message().contains(&other.public[..16]), "{e}");
    assert!(e.message().contains(&k.public[..16]), "{e}");
    assert!(!e.message().contains("AGE-SECRET-KEY"), "{e}");
    let seg = &spool.segments(TimeRange::all()).unwrap()[0].name;
    let e = spool.read_segment(seg).unwrap_err();
    assert_eq!(e.code(), ErrorCode::KeyMissing, "{e}");
    assert_eq!(segment_names(&dir, QUARANTINE_DIR), Vec::<String>::new());
    assert_eq!(segment_names(&dir, "").len(), 1);

    // Without the sidecar the wrong key is still a key problem, never corruption.
    dir.remove(&format!("{seg}.sum")).unwrap();
    let e = read_err(&spool);
    assert_eq!(e.code(), ErrorCode::KeyMissing, "{e}");
    assert_eq!(segment_names(&dir, QUARANTINE_DIR), Vec::<String>::new());

    // And the right key reads it.
    let spool = open(&dir, &clock, cfg(&[&k], &[&other, &k]));
    assert_eq!(read_all(&spool), values(0..50));
}

#[test]
fn rotation_keeps_old_segments_readable_with_the_old_identity_only() {
    let (dir, clock, old, new) = (MemDir::new(), ManualClock::new(T0), key(), key());
    let spool = open(&dir, &clock, cfg(&[&old], &[&old]));
    spool.put(&values(0..100)).unwrap();
    drop(spool);
    clock.advance_ms(1000);
    let spool = open(&dir, &clock, cfg(&[&new], &[&new, &old]));
    spool.put(&values(100..200)).unwrap();
    assert_eq!(read_all(&spool), values(0..200));
    drop(spool);

    // The old key alone reads the old segment and not the new one.
    let spool = open(&dir, &clock, cfg(&[&new], &[&old]));
    let mut r = spool.read_range(TimeRange::all()).unwrap();
    assert_eq!(r.next(100).unwrap(), values(0..100));
    assert_eq!(r.next(100).unwrap_err().code(), ErrorCode::KeyMissing);
}

#[test]
fn the_spool_remembers_its_recipients_so_a_keyless_flush_still_encrypts() {
    let (dir, clock, k) = (MemDir::new(), ManualClock::new(T0), key());
    let spool = open(&dir, &clock, cfg(&[&k], &[]));
    spool.put(&values(0..10)).unwrap();
    drop(spool); // rows left in the journal
    let stored = bytes(&dir, RECIPIENTS_FILE);
    assert!(String::from_utf8_lossy(&stored).contains(&k.public));

    // A process without keys of its own (a maintenance flush) finishes it encrypted.
    let spool: Spool<Value> = open(&dir, &clock, SpoolConfig::new("agent-1"));
    spool.put(&values(10..20)).unwrap();
    spool.flush().unwrap();
    let names = segment_names(&dir, "");
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| n.ends_with(".json.br.age")),
        "{names:?}"
    );
    let spool = open(&dir, &clock, cfg(&[], &[&k]));
    assert_eq!(read_all(&spool), values(0..20));
}

#[test]
fn a_damaged_encrypted_segment_is_corrupt_and_quarantined() {
    let (dir, clock, k) = (MemDir::new(), ManualClock::new(T0), key());
    let spool = open(&dir, &clock, cfg(&[&k], &[&k]));
    spool.put(&values(0..100)).unwrap();
    spool.put(&values(100..150)).unwrap();
    spool.flush().unwrap();
    let names = segment_names(&dir, "");
    // One flipped payload byte with its sidecar: the checksum catches it before decryption.
    let mut data = bytes(&dir, &names[0]);
    let last = data.len() - 5;
    data[last] ^= 1;
    replace(&dir, &names[0], &data);
    // The other without a sidecar: age's authentication catches it.
    let mut data = bytes(&dir, &names[1]);
    let last = data.len() - 5;
    data[last] ^= 1;
    replace(&dir, &names[1], &data);
    dir.remove(&format!("{}.sum", names[1])).unwrap();
    let mut r = spool.read_range(TimeRange::all()).unwrap();
    while !r.next(1000).unwrap().is_empty() {}
    assert_eq!(r.quarantined(), names.as_slice());
}

#[test]
fn bad_keys_are_named_without_printing_a_secret() {
    let k = key();
    let mut c = SpoolConfig::new("agent-1");
    c.keys.recipients = vec!["age1notakey".into()];
    let e = c.validate().unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(e.message().contains("keys.recipients"), "{e}");
    let mut c = SpoolConfig::new("agent-1");
    let typo = k.secret.replacen('1', "2", 2);
    c.keys.identities = format!("# a comment\n\n{}\n{typo}\n", k.secret);
    let e = c.validate().unwrap_err();
    assert!(e.message().contains("line 4"), "{e}");
    assert!(
        !e.message().contains(&k.secret) && !e.message().contains(&typo),
        "{e}"
    );
    let shown = format!("{:?}", c);
    assert!(!shown.contains("AGE-SECRET-KEY-1"), "{shown}");
}

#[test]
fn erase_rewrites_encrypted_segments_encrypted() {
    let (dir, clock, k) = (MemDir::new(), ManualClock::new(T0), key());
    let spool = open(&dir, &clock, cfg(&[&k], &[&k]));
    spool.put(&values(0..150)).unwrap();
    spool.flush().unwrap();
    let report = spool.erase(&EraseFilter::parse("i=7").unwrap()).unwrap();
    assert_eq!((report.rows_erased, report.rewritten.len()), (1, 1));
    let names = segment_names(&dir, "");
    assert!(
        names.iter().all(|n| n.ends_with(".json.br.age")),
        "{names:?}"
    );
    assert!(bytes(&dir, &report.rewritten[0]).starts_with(AGE_MAGIC));
    let mut expected = values(0..150);
    expected.remove(7);
    assert_eq!(read_all(&spool), expected);
}

#[test]
fn a_journal_already_published_as_an_encrypted_segment_is_not_finished_twice() {
    let (dir, clock, k) = (MemDir::new(), ManualClock::new(T0), key());
    let spool = open(&dir, &clock, cfg(&[&k], &[&k]));
    spool.put(&values(0..10)).unwrap();
    spool.sync().unwrap();
    let journal = dir
        .list("")
        .unwrap()
        .into_iter()
        .find(|e| e.name.ends_with(".journal"))
        .unwrap()
        .name;
    let rows = bytes(&dir, &journal);
    spool.flush().unwrap();
    drop(spool);
    // A crash after the rename, before the journal's removal.
    replace_or_create(&dir, &journal, &rows);
    let spool = open(&dir, &clock, cfg(&[&k], &[&k]));
    assert_eq!(read_all(&spool), values(0..10));
    assert_eq!(segment_names(&dir, "").len(), 1);
}

fn replace_or_create(dir: &MemDir, path: &str, data: &[u8]) {
    let _ = dir.remove(path);
    dir.create_new(path).unwrap().write_all(data).unwrap();
}
