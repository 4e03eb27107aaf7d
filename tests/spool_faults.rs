//! Fault injection through the directory seam: disk full, failed fsync, failed rename and power
//! cuts at every step of a flush. After each, every row the spool acknowledged is present
//! exactly once, and no row is ever duplicated.

use std::collections::BTreeMap;
use std::sync::Arc;

use edgestore::clock::ManualClock;
use edgestore::dir::{Directory, FaultyDir, MemDir, Op, EIO, ENOSPC};
use edgestore::spool::{Spool, SpoolConfig, TimeRange};
use edgestore::ErrorCode;
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;

struct Rig {
    mem: MemDir,
    faulty: Arc<FaultyDir<MemDir>>,
    clock: ManualClock,
    max_records: u64,
}

impl Rig {
    fn new(max_records: u64) -> Rig {
        let mem = MemDir::new();
        Rig {
            faulty: Arc::new(FaultyDir::new(mem.clone())),
            mem,
            clock: ManualClock::new(T0),
            max_records,
        }
    }

    fn open(&self) -> Spool<Value> {
        let mut c = SpoolConfig::new("edge");
        c.max_records = self.max_records;
        let dir: Arc<dyn Directory> = self.faulty.clone();
        Spool::open(dir, c, Arc::new(self.clock.clone())).unwrap()
    }
}

fn rows(ids: std::ops::Range<u64>) -> Vec<Value> {
    ids.map(|i| json!({"id": i, "payload": "x".repeat(40)}))
        .collect()
}

/// id -> how many times it is in the spool.
fn census(spool: &Spool<Value>) -> BTreeMap<u64, u32> {
    let mut r = spool.read_range(TimeRange::all()).unwrap();
    let mut seen = BTreeMap::new();
    loop {
        let batch = r.next(500).unwrap();
        if batch.is_empty() {
            return seen;
        }
        for v in batch {
            *seen.entry(v["id"].as_u64().unwrap()).or_insert(0) += 1;
        }
    }
}

fn assert_exactly(spool: &Spool<Value>, want: impl IntoIterator<Item = u64>) {
    let seen = census(spool);
    let want: Vec<u64> = want.into_iter().collect();
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), want);
}

#[test]
fn disk_full_during_put_refuses_the_batch_and_keeps_earlier_rows() {
    let rig = Rig::new(1000);
    let spool = rig.open();
    spool.put(&rows(0..50)).unwrap();
    rig.faulty.tear_write_after(0, ENOSPC);
    let err = spool.put(&rows(50..60)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::DiskFull);
    assert_eq!(spool.pending(), 50);
    spool.put(&rows(60..70)).unwrap();
    spool.flush().unwrap();
    assert_eq!(
        spool.stats().torn_rows_dropped,
        0,
        "the torn write is past the limit"
    );
    let mut want: Vec<u64> = (0..50).collect();
    want.extend(60..70);
    assert_exactly(&spool, want.clone());
    drop(spool);
    assert_exactly(&rig.open(), want);
}

/// The process that was refused may end before its journal is finished (a command on a full
/// disk exits): the next one must not recover the refused rows a torn append left behind.
#[test]
fn a_refused_batch_does_not_come_back_in_the_next_process() {
    let rig = Rig::new(1000);
    let spool = rig.open();
    spool.put(&rows(0..50)).unwrap();
    rig.faulty.tear_write_after(0, ENOSPC);
    let err = spool.put(&rows(50..70)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::DiskFull);
    // The disk stays full: finishing fails too, and the process ends with the journal left.
    rig.faulty.fail_after_latched(Op::Write, 0, ENOSPC);
    assert_eq!(spool.flush().unwrap_err().code(), ErrorCode::DiskFull);
    drop(spool);
    rig.faulty.disarm();
    let spool = rig.open();
    spool.flush().unwrap();
    assert_exactly(&spool, 0..50);
    assert_eq!(
        spool.stats().torn_rows_dropped,
        0,
        "the torn tail was cut off"
    );
}

#[test]
fn disk_full_during_flush_keeps_rows_pending_and_retry_succeeds() {
    for ok_writes in [0, 1] {
        let rig = Rig::new(1000);
        let spool = rig.open();
        spool.put(&rows(0..300)).unwrap();
        rig.faulty.fail_after(Op::Write, ok_writes, ENOSPC);
        // The journal append already happened; the next writes are the segment, then the
        // sidecar.
        let err = spool
            .flush()
            .expect_err(&format!("write {ok_writes} must fail"));
        assert_eq!(err.code(), ErrorCode::DiskFull, "{err}");
        assert_eq!(spool.pending(), 300);
        assert!(spool.segments(TimeRange::all()).unwrap().is_empty());
        assert!(
            rig.mem.names().iter().all(|n| !n.ends_with(".tmp")),
            "temporary removed"
        );
        spool.flush().unwrap();
        assert_eq!(spool.pending(), 0);
        assert_exactly(&spool, 0..300);
    }
}

#[test]
fn failed_fsync_or_rename_during_flush_is_retried_without_duplicates() {
    for (op, nth) in [
        (Op::Sync, 0),
        (Op::Sync, 1),
        (Op::Sync, 2),
        (Op::SyncDir, 0),
        (Op::SyncDir, 1),
        (Op::Rename, 0),
        (Op::Remove, 0),
        (Op::Create, 0),
        (Op::Create, 1),
    ] {
        let rig = Rig::new(1000);
        let spool = rig.open();
        spool.put(&rows(0..120)).unwrap();
        rig.faulty.fail_after(op, nth, EIO);
        let first = spool.flush();
        rig.faulty.disarm();
        spool.flush().unwrap();
        assert_eq!(spool.pending(), 0, "{op:?} {nth} {first:?}");
        assert_exactly(&spool, 0..120);
        drop(spool);
        assert_exactly(&rig.open(), 0..120);
    }
}

#[test]
fn a_latched_failure_during_rotation_defers_without_losing_rows() {
    let rig = Rig::new(100);
    let spool = rig.open();
    spool.put(&rows(0..50)).unwrap();
    rig.faulty.fail_after_latched(Op::Rename, 0, ENOSPC);
    // Rows up to the rotation are accepted (the failed finish is deferred); the rest of the
    // batch needs a new journal, which the latched failure refuses.
    let err = spool.put(&rows(50..150)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::DiskFull);
    assert_eq!(spool.pending(), 100);
    rig.faulty.disarm();
    spool.flush().unwrap();
    assert_exactly(&spool, 0..100);
    assert!(spool.stats().deferred_errors >= 1);
}

/// Count the directory operations one flush performs, then cut the power right after each of
/// them in turn (every later operation fails, then `MemDir::crash`). Rows were synced before
/// the flush, so all of them must come back, once.
#[test]
fn power_cut_at_every_step_of_a_flush() {
    let probe = Rig::new(1000);
    let spool = probe.open();
    spool.put(&rows(0..200)).unwrap();
    spool.sync().unwrap();
    let ops = [
        Op::Create,
        Op::Write,
        Op::Sync,
        Op::Rename,
        Op::Remove,
        Op::SyncDir,
    ];
    let before: Vec<u64> = ops.iter().map(|&op| probe.faulty.count(op)).collect();
    spool.flush().unwrap();
    let steps: Vec<(Op, u64)> = ops
        .iter()
        .zip(before)
        .map(|(&op, b)| (op, probe.faulty.count(op) - b))
        .collect();
    let mut cases = 0;
    for (op, n) in steps {
        for k in 0..n {
            let rig = Rig::new(1000);
            let spool = rig.open();
            spool.put(&rows(0..200)).unwrap();
            spool.sync().unwrap();
            rig.faulty.fail_after_latched(op, k, EIO);
            let _ = spool.flush();
            drop(spool);
            rig.mem.crash();
            rig.faulty.disarm();
            let reopened = rig.open();
            assert_exactly(&reopened, 0..200);
            assert!(reopened.journals().unwrap().is_empty(), "{op:?} {k}");
            cases += 1;
        }
    }
    assert!(
        cases >= 8,
        "flush performs several durable steps, got {cases}"
    );
}

#[test]
fn power_cut_after_flush_keeps_flushed_rows_and_drops_only_unsynced() {
    let rig = Rig::new(100);
    let spool = rig.open();
    spool.put(&rows(0..250)).unwrap();
    spool.flush().unwrap();
    spool.put(&rows(250..260)).unwrap();
    drop(spool);
    rig.mem.crash();
    let spool = rig.open();
    assert_exactly(&spool, 0..250);
    assert_eq!(spool.segments(TimeRange::all()).unwrap().len(), 3);
}

#[test]
fn recovery_failure_does_not_stop_the_open() {
    let rig = Rig::new(1000);
    let spool = rig.open();
    spool.put(&rows(0..10)).unwrap();
    spool.sync().unwrap();
    drop(spool);
    rig.faulty.fail_after_latched(Op::Rename, 0, ENOSPC);
    let spool = rig.open();
    assert_eq!(spool.stats().deferred_errors, 1);
    assert_eq!(spool.journals().unwrap().len(), 1);
    rig.faulty.disarm();
    assert_eq!(spool.flush_due(T0).unwrap(), 1, "the host timer retries");
    assert_exactly(&spool, 0..10);
}

#[test]
fn read_errors_are_io_errors_and_never_quarantine_a_healthy_segment() {
    let rig = Rig::new(50);
    let spool = rig.open();
    spool.put(&rows(0..100)).unwrap();
    for k in 0..4 {
        rig.faulty.fail_after(Op::Read, k, EIO);
        let mut r = spool.read_range(TimeRange::all()).unwrap();
        let err = loop {
            match r.next(10) {
                Ok(b) if b.is_empty() => panic!("read {k} should have failed"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(err.code(), ErrorCode::Io, "{err}");
        rig.faulty.disarm();
    }
    assert_eq!(spool.stats().segments_quarantined, 0);
    assert_eq!(spool.verify().unwrap().quarantined.len(), 0);
    assert_exactly(&spool, 0..100);
}

/// Disk full for a while (every operation fails with ENOSPC, as on a full file system): each
/// put fails at once with a `resource` error (`disk-full`), flushed segments and accepted rows
/// stay, and once space returns puts and flushes succeed again. The host adds nothing here but
/// its breaker, which turns a run of these into fail-fast refusals with the same code
/// (tests/host_resilience.rs); a real full disk cannot be staged through the host's
/// capability-opened directory, so the seam is exercised at this level.
#[test]
fn a_full_disk_refuses_puts_with_a_resource_error_until_space_returns() {
    let rig = Rig::new(1000);
    let spool = rig.open();
    spool.put(&rows(0..100)).unwrap();
    spool.flush().unwrap();
    spool.put(&rows(100..120)).unwrap();
    rig.faulty.fail_after_latched(Op::Write, 0, ENOSPC);
    for i in 0..5 {
        let err = spool.put(&rows(200 + i * 10..210 + i * 10)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::DiskFull, "{err}");
        assert_eq!(err.class(), edgestore::ErrorClass::Resource);
    }
    let err = spool.flush().unwrap_err();
    assert_eq!(err.class(), edgestore::ErrorClass::Resource, "{err}");
    rig.faulty.disarm();
    spool.put(&rows(300..310)).unwrap();
    spool.flush().unwrap();
    assert_eq!(spool.pending(), 0);
    let want: Vec<u64> = (0..120).chain(300..310).collect();
    assert_exactly(&spool, want.clone());
    drop(spool);
    assert_exactly(&rig.open(), want);
}
