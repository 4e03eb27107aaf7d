//! Inspection (read-only open) beside a writing owner: nothing an inspector does changes the
//! directory, and the owner goes on losing and duplicating nothing.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::clock::ManualClock;
use crate::dir::{Capacity, Directory, Entry, MemDir, ReadFile, WriteFile};
use crate::spool::{SegmentState, Spool, SpoolConfig, SyncPolicy, TimeRange};
use crate::ErrorCode;

use crate::spool::tests::{cfg, read_all, values};

const T0: i64 = 1_700_000_000_000;

/// A directory that refuses (and counts) every call that would change anything, so a test
/// proves the inspector never even tries.
#[derive(Debug)]
struct NoWrites {
    inner: MemDir,
    attempts: AtomicU64,
}

impl NoWrites {
    fn new(inner: &MemDir) -> Arc<Self> {
        Arc::new(NoWrites {
            inner: inner.clone(),
            attempts: AtomicU64::new(0),
        })
    }

    fn refuse<T>(&self, what: &str) -> io::Result<T> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("inspector tried to {what}"),
        ))
    }

    fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }
}

impl Directory for NoWrites {
    fn create_new(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        self.refuse(&format!("create {name}"))
    }
    fn open_read(&self, name: &str) -> io::Result<ReadFile> {
        self.inner.open_read(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.refuse(&format!("rename {from} to {to}"))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.refuse(&format!("remove {name}"))
    }
    fn list(&self, dir: &str) -> io::Result<Vec<Entry>> {
        self.inner.list(dir)
    }
    fn create_dir(&self, name: &str) -> io::Result<()> {
        self.refuse(&format!("create directory {name}"))
    }
    fn sync_dir(&self, name: &str) -> io::Result<()> {
        self.refuse(&format!("sync directory {name:?}"))
    }
    fn capacity(&self) -> io::Result<Option<Capacity>> {
        self.inner.capacity()
    }
}

fn owner(dir: &MemDir, clock: &ManualClock, c: SpoolConfig) -> Spool<Value> {
    Spool::open(Arc::new(dir.clone()), c, Arc::new(clock.clone())).unwrap()
}

fn inspector(dir: &Arc<NoWrites>, clock: &ManualClock, c: SpoolConfig) -> Spool<Value> {
    Spool::inspect(dir.clone(), c, Arc::new(clock.clone())).unwrap()
}

/// Every file and directory with its exact bytes.
fn snapshot(dir: &MemDir) -> BTreeMap<String, Option<Vec<u8>>> {
    dir.names()
        .into_iter()
        .map(|n| {
            let bytes = dir.read_bytes(&n);
            (n, bytes)
        })
        .collect()
}

/// The `i` of every row, sorted; panics on a duplicate.
fn ids(rows: &[Value]) -> Vec<u64> {
    let mut ids: Vec<u64> = rows.iter().filter_map(|r| r["i"].as_u64()).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a row was read twice");
    ids
}

/// Run `f` on the inspector and assert the directory is exactly as before, and that the
/// inspector did not even try to change it.
fn untouched<T>(dir: &MemDir, guard: &NoWrites, f: impl FnOnce() -> T) -> T {
    let before = snapshot(dir);
    let attempts = guard.attempts();
    let out = f();
    assert_eq!(snapshot(dir), before, "the inspector changed the directory");
    assert_eq!(guard.attempts(), attempts, "the inspector tried to write");
    out
}

fn denied<T: std::fmt::Debug>(r: crate::Result<T>) {
    let e = r.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
    assert!(
        e.message().contains("open for inspection (read-only)")
            && e.message()
                .contains("only the data directory's owner writes it"),
        "{e}"
    );
}

#[test]
fn inspecting_an_empty_directory_creates_nothing() {
    let dir = MemDir::new();
    let guard = NoWrites::new(&dir);
    let clock = ManualClock::new(T0);
    let s = inspector(&guard, &clock, cfg(10));
    untouched(&dir, &guard, || {
        assert!(s.is_read_only());
        assert!(s.segments(TimeRange::all()).unwrap().is_empty());
        assert_eq!(s.usage().unwrap().total_bytes(), 0);
        assert_eq!(s.journal_rows().unwrap(), 0);
        assert!(s.journals().unwrap().is_empty());
        assert_eq!(s.verify().unwrap(), Default::default());
        assert!(read_all(&s).is_empty());
    });
    assert!(dir.names().is_empty(), "{:?}", dir.names());
    // A bad config is refused as on open.
    let e = Spool::<Value>::inspect(guard.clone(), cfg(0), Arc::new(clock)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
}

#[test]
fn an_inspector_reads_beside_a_writer_and_changes_nothing() {
    let dir = MemDir::new();
    let guard = NoWrites::new(&dir);
    let clock = ManualClock::new(T0);
    let w = owner(&dir, &clock, cfg(100));
    let r = inspector(&guard, &clock, cfg(100));

    // Rows in the journal only.
    w.put(&values(0..30)).unwrap();
    untouched(&dir, &guard, || {
        assert_eq!(r.journal_rows().unwrap(), 30);
        assert_eq!(w.journal_rows().unwrap(), 30, "the owner counts the same");
        assert!(r.segments(TimeRange::all()).unwrap().is_empty());
        assert!(read_all(&r).is_empty());
        assert_eq!(r.pending(), 0, "the inspector accepted nothing");
        let u = r.usage().unwrap();
        assert_eq!((u.journals.files, u.pending.files), (1, 0));
        assert_eq!(r.journals().unwrap().len(), 1);
    });
    assert_eq!(w.pending(), 30);

    // Two rotations: 200 rows in segments, 50 in the journal.
    w.put(&values(30..250)).unwrap();
    let segs = untouched(&dir, &guard, || {
        let segs = r.segments(TimeRange::all()).unwrap();
        assert_eq!(segs.len(), 2);
        assert!(segs.iter().all(|s| s.rows == Some(100)), "{segs:?}");
        assert_eq!(r.journal_rows().unwrap(), 50);
        assert_eq!(ids(&read_all(&r)), (0..200).collect::<Vec<_>>());
        for s in &segs {
            let mut one = r.read_segment(&s.name).unwrap();
            assert_eq!(one.next(1000).unwrap().len(), 100);
        }
        let v = r.verify().unwrap();
        assert_eq!((v.checked, v.bad()), (2, 0));
        segs
    });

    // Every mutation is refused, the no-ops stay no-ops.
    untouched(&dir, &guard, || {
        denied(r.put(&values(900..901)));
        denied(r.flush());
        denied(r.mark_uploaded(&[&segs[0].name]));
        denied(r.purge());
        denied(r.finish_next());
        assert_eq!(r.flush_due(T0 + 86_400_000).unwrap(), 0);
        r.sync().unwrap();
        assert_eq!(r.pending(), 0);
    });

    // A corrupted segment is reported, never moved.
    let good = dir.read_bytes(&segs[0].name).unwrap();
    let mut bad = good.clone();
    bad[7] ^= 0x04;
    dir.write_bytes(&segs[0].name, &bad);
    untouched(&dir, &guard, || {
        let v = r.verify().unwrap();
        assert_eq!(v.checked, 2);
        assert!(v.quarantined.is_empty(), "{v:?}");
        assert_eq!(v.left_in_place, [segs[0].name.clone()]);
        let e = r.read_segment(&segs[0].name).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Corrupt);
        assert!(e.message().contains("left in place"), "{e}");
        let mut range = r.read_range(TimeRange::all()).unwrap();
        let mut rows = Vec::new();
        loop {
            let b = range.next(64).unwrap();
            if b.is_empty() {
                break;
            }
            rows.extend(b);
        }
        assert_eq!(ids(&rows), (100..200).collect::<Vec<_>>());
        assert_eq!(range.left_in_place(), [segs[0].name.clone()]);
        assert!(range.quarantined().is_empty());
    });
    assert!(
        dir.read_bytes(&segs[0].name).is_some(),
        "the bad segment stays"
    );
    assert_eq!(r.stats().segments_left_in_place, 3);
    assert_eq!(r.stats().segments_quarantined, 0);
    // The owner repairs it (here: the good bytes come back) and goes on.
    dir.write_bytes(&segs[0].name, &good);

    w.mark_uploaded(&[&segs[0].name]).unwrap();
    w.put(&values(250..420)).unwrap();
    untouched(&dir, &guard, || {
        let listed = r.segments(TimeRange::all()).unwrap();
        assert_eq!(listed.len(), 4);
        assert_eq!(listed[0].state, SegmentState::Uploaded);
        assert_eq!(r.journal_rows().unwrap(), 20);
        assert_eq!(r.usage().unwrap().uploaded.files, 2, "segment and sidecar");
    });
    w.flush().unwrap();
    untouched(&dir, &guard, || {
        assert_eq!(r.journal_rows().unwrap(), 0);
        assert_eq!(ids(&read_all(&r)), (0..420).collect::<Vec<_>>());
    });
    assert_eq!(ids(&read_all(&w)), (0..420).collect::<Vec<_>>());
    assert_eq!(w.verify().unwrap().bad(), 0);
}

#[test]
fn an_owners_verify_still_quarantines_and_leaves_nothing_in_place() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let w = owner(&dir, &clock, cfg(10));
    w.put(&values(0..20)).unwrap();
    let name = w.segments(TimeRange::all()).unwrap()[1].name.clone();
    dir.write_bytes(&name, b"not brotli");
    let v = w.verify().unwrap();
    assert_eq!(
        (v.quarantined.clone(), v.left_in_place.len()),
        (vec![name], 0)
    );
    assert_eq!(w.stats().segments_left_in_place, 0);
}

#[test]
fn a_killed_writers_journal_is_counted_but_left_for_the_next_open() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let mut c = cfg(1000);
    c.sync_policy = SyncPolicy::EveryRows(1);
    {
        let w = owner(&dir, &clock, c.clone());
        w.put(&values(0..10)).unwrap();
        w.put(&values(10..25)).unwrap();
        // Killed: dropped without a flush, then the power goes.
    }
    dir.crash();
    let journal = dir
        .names()
        .into_iter()
        .find(|n| n.ends_with(".journal"))
        .unwrap();
    // The kill tore the last row.
    let mut bytes = dir.read_bytes(&journal).unwrap();
    bytes.extend_from_slice(b"0badc0de {\"i\": 2");
    dir.write_bytes(&journal, &bytes);

    let guard = NoWrites::new(&dir);
    let r = inspector(&guard, &clock, c.clone());
    untouched(&dir, &guard, || {
        assert_eq!(r.journal_rows().unwrap(), 25, "the torn row is not counted");
        assert_eq!(r.journals().unwrap(), std::slice::from_ref(&journal));
        assert!(r.segments(TimeRange::all()).unwrap().is_empty());
        assert_eq!(r.usage().unwrap().journals.files, 1);
        assert_eq!(r.stats().journals_recovered, 0);
    });
    drop(r);
    assert!(dir.read_bytes(&journal).is_some(), "not recovered");

    let w = owner(&dir, &clock, c);
    assert_eq!(w.stats().journals_recovered, 1);
    assert_eq!(w.stats().torn_rows_dropped, 1);
    assert_eq!(ids(&read_all(&w)), (0..25).collect::<Vec<_>>());
    assert!(w.journals().unwrap().is_empty());
    assert_eq!(w.journal_rows().unwrap(), 0);
}

/// `(relative path, size)` of everything under `root`, directories with size 0.
#[cfg(feature = "native")]
fn tree(root: &std::path::Path) -> Vec<(String, u64)> {
    fn walk(root: &std::path::Path, at: &std::path::Path, out: &mut Vec<(String, u64)>) {
        for e in std::fs::read_dir(at).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if meta.is_dir() {
                out.push((rel, 0));
                walk(root, &path, out);
            } else {
                out.push((rel, meta.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[cfg(feature = "native")]
#[test]
fn inspect_path_never_creates_and_reads_while_the_owner_writes() {
    use crate::spool::{QUARANTINE_DIR, UPLOADED_DIR};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("spool");
    let e = Spool::<Value>::inspect_path(&path, cfg(50)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
    assert!(!path.exists(), "inspect_path created the directory");
    std::fs::create_dir(&path).unwrap();
    let r: Spool<Value> = Spool::inspect_path(&path, cfg(50)).unwrap();
    assert!(r.segments(TimeRange::all()).unwrap().is_empty());
    assert!(tree(&path).is_empty(), "{:?}", tree(&path));

    let w: Spool<Value> = Spool::open_path(&path, cfg(50)).unwrap();
    w.put(&values(0..20)).unwrap();
    let before = tree(&path);
    assert_eq!(r.journal_rows().unwrap(), 20);
    assert_eq!(tree(&path), before);

    // The owner writes, uploads and flushes on another thread while the inspector lists,
    // counts, verifies and reads: no call fails, no row is read twice.
    const ROWS: u64 = 3000;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for start in (20..ROWS).step_by(70) {
                w.put(&values(start..(start + 70).min(ROWS))).unwrap();
                if start % 350 == 20 {
                    w.flush().unwrap();
                }
                let pending: Vec<String> = w
                    .segments(TimeRange::all())
                    .unwrap()
                    .into_iter()
                    .filter(|s| s.state == SegmentState::Pending)
                    .take(2)
                    .map(|s| s.name)
                    .collect();
                w.mark_uploaded(&pending).unwrap();
            }
            w.flush().unwrap();
            done.store(true, Ordering::SeqCst);
        });
        let mut rounds = 0;
        while !done.load(Ordering::SeqCst) || rounds < 3 {
            rounds += 1;
            r.segments(TimeRange::all()).unwrap();
            r.usage().unwrap();
            assert!(r.journal_rows().unwrap() <= ROWS);
            let v = r.verify().unwrap();
            assert_eq!(v.bad(), 0, "{v:?}");
            let rows = read_all(&r);
            assert!(ids(&rows).iter().all(|&i| i < ROWS));
        }
        writer.join().unwrap();
    });
    let before = tree(&path);
    assert_eq!(ids(&read_all(&r)), (0..ROWS).collect::<Vec<_>>());
    assert_eq!(r.journal_rows().unwrap(), 0);
    assert_eq!(tree(&path), before, "the inspector changed the directory");
    assert!(before.iter().any(|(n, _)| n == UPLOADED_DIR));
    assert!(before.iter().any(|(n, _)| n == QUARANTINE_DIR));
    assert_eq!(ids(&read_all(&w)), (0..ROWS).collect::<Vec<_>>());
}

/// Lists like a strict file system (a missing directory is `NotFound`, not empty) and lets the
/// "owner" act right after the root was listed: the races an inspector meets.
#[derive(Debug)]
struct Racy {
    inner: MemDir,
    after_root_list: std::sync::Mutex<Vec<(String, String)>>,
}

impl Directory for Racy {
    fn create_new(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        self.inner.create_new(name)
    }
    fn open_read(&self, name: &str) -> io::Result<ReadFile> {
        self.inner.open_read(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<Entry>> {
        if !dir.is_empty() && !self.inner.names().iter().any(|n| n == dir) {
            return Err(io::Error::new(io::ErrorKind::NotFound, dir.to_string()));
        }
        let out = self.inner.list(dir)?;
        if dir.is_empty() {
            let moves = std::mem::take(&mut *self.after_root_list.lock().unwrap());
            for (from, to) in moves {
                self.inner.create_dir(UPLOADED).unwrap();
                self.inner.rename(&from, &to).unwrap();
            }
        }
        Ok(out)
    }
    fn create_dir(&self, name: &str) -> io::Result<()> {
        self.inner.create_dir(name)
    }
    fn sync_dir(&self, name: &str) -> io::Result<()> {
        self.inner.sync_dir(name)
    }
    fn capacity(&self) -> io::Result<Option<Capacity>> {
        self.inner.capacity()
    }
}

const UPLOADED: &str = crate::spool::UPLOADED_DIR;

#[test]
fn missing_subdirectories_and_segments_moving_between_listings() {
    // Segments planted by a writer that never created `uploaded/` or `quarantine/` (the
    // owner's spool in another directory layout, or a copy): a strict listing of the missing
    // directories is `NotFound`, which lists as empty.
    let src = MemDir::new();
    let clock = ManualClock::new(T0);
    let w = owner(&src, &clock, cfg(10));
    w.put(&values(0..30)).unwrap();
    let segs = w.segments(TimeRange::all()).unwrap();
    let dir = MemDir::new();
    for name in src.names() {
        if let Some(bytes) = src.read_bytes(&name).filter(|_| !name.contains('/')) {
            dir.write_bytes(&name, &bytes);
        }
    }
    let racy = Arc::new(Racy {
        inner: dir.clone(),
        after_root_list: std::sync::Mutex::new(Vec::new()),
    });
    let r: Spool<Value> = Spool::inspect(racy.clone(), cfg(10), Arc::new(clock)).unwrap();
    assert_eq!(r.segments(TimeRange::all()).unwrap().len(), 3);
    assert_eq!(r.usage().unwrap().pending.files, 6);
    assert_eq!(r.verify().unwrap().checked, 3);
    assert!(!dir.names().iter().any(|n| n == UPLOADED));

    // The owner moves a segment (and its sidecar) to `uploaded/` right after the inspector
    // listed the root: it is listed once, as uploaded, and read once.
    let moved = segs[1].name.clone();
    let sum = format!("{moved}.sum");
    let plan = |names: &[&String]| {
        *racy.after_root_list.lock().unwrap() = names
            .iter()
            .map(|n| (n.to_string(), format!("{UPLOADED}/{n}")))
            .collect();
    };
    plan(&[&moved, &sum]);
    let listed = r.segments(TimeRange::all()).unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let one = listed.iter().find(|s| s.name == moved).unwrap();
    assert_eq!((one.state, one.rows), (SegmentState::Uploaded, Some(10)));
    // Back, then the same race under a range read.
    for n in [&moved, &sum] {
        dir.rename(&format!("{UPLOADED}/{n}"), n).unwrap();
    }
    plan(&[&moved, &sum]);
    assert_eq!(ids(&read_all(&r)), (0..30).collect::<Vec<_>>());
}
