//! Behaviour of the spool over the in-memory directory and a manual clock.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::*;
use crate::clock::ManualClock;
use crate::dir::MemDir;
use crate::sample::MetricGenerator;
use crate::ErrorCode;

const T0: i64 = 1_700_000_000_000;

fn open<R>(dir: &MemDir, clock: &ManualClock, cfg: SpoolConfig) -> Spool<R> {
    Spool::open(Arc::new(dir.clone()), cfg, Arc::new(clock.clone())).unwrap()
}

pub(super) fn cfg(max: u64) -> SpoolConfig {
    let mut c = SpoolConfig::new("agent-1");
    c.max_records = max;
    c
}

pub(super) fn read_all<R: DeserializeOwned>(s: &Spool<R>) -> Vec<R> {
    let mut r = s.read_range(TimeRange::all()).unwrap();
    let mut out = Vec::new();
    loop {
        let b = r.next(97).unwrap();
        if b.is_empty() {
            return out;
        }
        out.extend(b);
    }
}

pub(super) fn values(n: std::ops::Range<u64>) -> Vec<Value> {
    n.map(|i| json!({"i": i, "s": format!("row {i}\nwith \"quotes\"")}))
        .collect()
}

#[test]
fn round_trip_at_levels_0_6_11() {
    for level in [0, 6, 11] {
        let dir = MemDir::new();
        let clock = ManualClock::new(T0);
        let mut c = cfg(400);
        c.compression_level = level;
        let spool: Spool<Metric> = open(&dir, &clock, c);
        let rows = MetricGenerator::new(1, T0).batch(1000);
        spool.put(&rows).unwrap();
        spool.flush().unwrap();
        assert_eq!(spool.pending(), 0);
        assert_eq!(read_all(&spool), rows, "level {level}");
    }
}

#[test]
fn rotation_is_exact_at_max_records() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let spool: Spool<Value> = open(&dir, &clock, cfg(100));
    spool.put(&values(0..130)).unwrap();
    assert_eq!(spool.pending(), 30);
    spool.put(&values(130..300)).unwrap();
    assert_eq!(spool.pending(), 0, "300 rows with limit 100 need no flush");
    let segs = spool.segments(TimeRange::all()).unwrap();
    assert_eq!(segs.len(), 3);
    assert!(segs.iter().all(|s| s.rows == Some(100)), "{segs:?}");
    let names: std::collections::HashSet<_> = segs.iter().map(|s| &s.name).collect();
    assert_eq!(names.len(), 3, "the clock stood still, names still differ");
    assert_eq!(read_all(&spool), values(0..300));
}

#[test]
fn interval_rotation_with_a_manual_clock() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let spool: Spool<Value> = open(&dir, &clock, cfg(1000));
    spool.put(&values(0..5)).unwrap();
    clock.advance_ms(29_999);
    spool.put(&values(5..6)).unwrap();
    assert_eq!(spool.flush_due(clock.now_ms()).unwrap(), 0);
    clock.advance_ms(1);
    spool.put(&values(6..8)).unwrap();
    let segs = spool.segments(TimeRange::all()).unwrap();
    assert_eq!(segs.len(), 1, "put rotated once max_interval passed");
    assert_eq!((segs[0].start_ms, segs[0].rows), (T0, Some(6)));
    assert_eq!(spool.pending(), 2);
    clock.advance_ms(30_000);
    assert_eq!(
        spool.flush_due(clock.now_ms()).unwrap(),
        1,
        "the host timer rotates"
    );
    assert_eq!(spool.pending(), 0);
    let segs = spool
        .segments(TimeRange::between(T0 + 30_001, T0 + 90_000))
        .unwrap();
    assert_eq!(segs.len(), 1, "range filter by name");
    assert_eq!(read_all(&spool), values(0..8));
}

#[test]
fn torn_journal_tail_is_recovered_on_open() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    {
        let spool: Spool<Value> = open(&dir, &clock, cfg(1000));
        spool.put(&values(0..10)).unwrap();
        spool.sync().unwrap();
    }
    let journal = dir
        .names()
        .into_iter()
        .find(|n| n.ends_with(".journal"))
        .unwrap();
    let mut bytes = dir.read_bytes(&journal).unwrap();
    bytes.extend_from_slice(b"0badc0de {\"i\": 1");
    dir.write_bytes(&journal, &bytes);
    dir.crash();
    let spool: Spool<Value> = open(&dir, &clock, cfg(1000));
    let st = spool.stats();
    assert_eq!((st.journals_recovered, st.torn_rows_dropped), (1, 1));
    assert_eq!(read_all(&spool), values(0..10));
    assert!(spool.journals().unwrap().is_empty());
}

#[test]
fn recovery_removes_only_its_own_derived_files() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    dir.write_bytes(".agent-1_5_6.json.br.tmp", b"half a segment");
    dir.write_bytes("agent-1_5_6.json.br.sum", b"{}");
    dir.write_bytes(".editor-swap.tmp", b"not ours");
    dir.write_bytes("notes.txt", b"not ours");
    let spool: Spool<Value> = open(&dir, &clock, cfg(10));
    assert_eq!(spool.stats().temp_files_removed, 2);
    let names = dir.names();
    assert!(names.contains(&".editor-swap.tmp".to_string()));
    assert!(names.contains(&"notes.txt".to_string()));
    assert!(!names.iter().any(|n| n.contains("agent-1_5_6")));
}

#[test]
fn corrupt_journal_lines_are_counted_and_the_journal_kept() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    {
        let spool: Spool<Value> = open(&dir, &clock, cfg(1000));
        spool.put(&values(0..3)).unwrap();
    }
    let journal = dir
        .names()
        .into_iter()
        .find(|n| n.ends_with(".journal"))
        .unwrap();
    let mut bytes = dir.read_bytes(&journal).unwrap();
    let pos = bytes.iter().position(|&b| b == b'\n').unwrap() + 12;
    bytes[pos] ^= 0x20;
    dir.write_bytes(&journal, &bytes);
    let spool: Spool<Value> = open(&dir, &clock, cfg(1000));
    assert_eq!(spool.stats().corrupt_lines, 1);
    assert_eq!(
        read_all(&spool),
        vec![values(0..3)[0].clone(), values(0..3)[2].clone()]
    );
    assert!(dir
        .read_bytes(&format!("{QUARANTINE_DIR}/{journal}"))
        .is_some());
}

#[test]
fn corrupted_segments_are_quarantined_and_reading_goes_on() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let spool: Spool<Value> = open(&dir, &clock, cfg(10));
    spool.put(&values(0..30)).unwrap();
    let segs = spool.segments(TimeRange::all()).unwrap();
    let mut flipped = dir.read_bytes(&segs[0].name).unwrap();
    flipped[7] ^= 0x04;
    dir.write_bytes(&segs[0].name, &flipped);
    let truncated = dir.read_bytes(&segs[2].name).unwrap();
    dir.write_bytes(&segs[2].name, &truncated[..truncated.len() / 2]);
    let mut r = spool.read_range(TimeRange::all()).unwrap();
    let mut rows = Vec::new();
    loop {
        let b = r.next(4).unwrap();
        if b.is_empty() {
            break;
        }
        rows.extend(b);
    }
    assert_eq!(rows, values(10..20));
    assert_eq!(r.quarantined().len(), 2);
    assert_eq!(spool.stats().segments_quarantined, 2);
    assert_eq!(spool.segments(TimeRange::all()).unwrap().len(), 1);
    let e = spool.read_segment(&segs[0].name).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    // And the spool still opens.
    drop(spool);
    let spool: Spool<Value> = open(&dir, &clock, cfg(10));
    assert_eq!(spool.usage().unwrap().quarantined.files, 4);
}

#[test]
fn segments_without_sidecar_are_read_and_verified_by_decoding() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let spool: Spool<Value> = open(&dir, &clock, cfg(10));
    spool.put(&values(0..10)).unwrap();
    let name = spool.segments(TimeRange::all()).unwrap()[0].name.clone();
    let bytes = dir.read_bytes(&name).unwrap();
    dir.write_bytes("other_5_6.json.br", &bytes);
    assert_eq!(spool.verify().unwrap().quarantined, Vec::<String>::new());
    assert_eq!(read_all(&spool).len(), 20);
    dir.write_bytes("other_7_8.json.br", b"not brotli");
    assert_eq!(spool.verify().unwrap().quarantined, ["other_7_8.json.br"]);
}

#[test]
fn traversal_names_are_rejected() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let spool: Spool<Value> = open(&dir, &clock, cfg(10));
    for bad in [
        "../a_1_2.json.br",
        "/etc/passwd",
        "uploaded/a_1_2.json.br",
        "a_1_2.json.br/..",
    ] {
        assert_eq!(
            spool.mark_uploaded(&[bad]).unwrap_err().code(),
            ErrorCode::InvalidInput
        );
        assert_eq!(
            spool.read_segment(bad).unwrap_err().code(),
            ErrorCode::InvalidInput
        );
    }
    let err = Spool::<Value>::open(
        Arc::new(dir.clone()),
        SpoolConfig::new("a/b"),
        Arc::new(clock),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}

#[test]
fn upload_marks_and_purge() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let mut c = cfg(10);
    c.retention = std::time::Duration::from_secs(3600);
    let spool: Spool<Value> = open(&dir, &clock, c.clone());
    spool.put(&values(0..60)).unwrap();
    let segs = spool.segments(TimeRange::all()).unwrap();
    assert_eq!(segs.len(), 6);
    let names: Vec<&str> = segs[..4].iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spool.mark_uploaded(&names).unwrap(), 4);
    assert_eq!(spool.mark_uploaded(&names).unwrap(), 0, "idempotent");
    assert_eq!(
        spool
            .mark_uploaded(&["agent-1_1_2.json.br"])
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    let u = spool.usage().unwrap();
    assert_eq!(
        (u.pending.files, u.uploaded.files),
        (4, 8),
        "segments + sidecars"
    );
    assert_eq!(
        read_all(&spool).len(),
        60,
        "uploaded segments stay readable"
    );
    assert_eq!(spool.purge().unwrap(), PurgeReport::default());
    clock.advance_ms(3_600_100);
    let r = spool.purge().unwrap();
    assert_eq!(r.expired.len(), 4);
    // Cap: only pending left; not dropped unless allowed.
    drop(spool);
    c.max_bytes = Some(1);
    let spool: Spool<Value> = open(&dir, &clock, c.clone());
    assert!(spool.purge().unwrap().dropped_pending.is_empty());
    drop(spool);
    c.drop_pending_over_cap = true;
    let spool: Spool<Value> = open(&dir, &clock, c);
    let r = spool.purge().unwrap();
    assert_eq!(r.dropped_pending.len(), 2);
    assert_eq!(spool.usage().unwrap().total_bytes(), 0);
}

#[test]
fn cap_drops_oldest_uploaded_first() {
    let dir = MemDir::new().with_capacity(1 << 30);
    let clock = ManualClock::new(T0);
    let spool: Spool<Value> = open(&dir, &clock, cfg(10));
    spool.put(&values(0..40)).unwrap();
    let segs = spool.segments(TimeRange::all()).unwrap();
    spool
        .mark_uploaded(&[&segs[0].name, &segs[1].name])
        .unwrap();
    let total = spool.usage().unwrap().total_bytes();
    drop(spool);
    let mut c = cfg(10);
    c.max_bytes = Some(total - 1);
    c.drop_pending_over_cap = true;
    let spool: Spool<Value> = open(&dir, &clock, c);
    let r = spool.purge().unwrap();
    assert_eq!(r.dropped_uploaded, [segs[0].name.clone()]);
    assert!(r.dropped_pending.is_empty());
    assert!(spool.usage().unwrap().capacity.is_some());
}

#[test]
fn sync_policy_every_rows_makes_rows_survive_a_power_cut() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let mut c = cfg(1000);
    c.sync_policy = SyncPolicy::EveryRows(10);
    {
        let spool: Spool<Value> = open(&dir, &clock, c.clone());
        spool.put(&values(0..12)).unwrap();
        spool.put(&values(12..15)).unwrap();
    }
    dir.crash();
    let spool: Spool<Value> = open(&dir, &clock, c);
    assert_eq!(
        read_all(&spool),
        values(0..12),
        "synced rows survive, unsynced do not"
    );
}

#[test]
fn unserialisable_rows_are_refused_without_side_effects() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let spool: Spool<std::collections::HashMap<Vec<u8>, u8>> = open(&dir, &clock, cfg(10));
    let bad = std::collections::HashMap::from([(vec![1u8], 1u8)]);
    assert_eq!(
        spool.put(&[bad]).unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    assert_eq!(spool.pending(), 0);
}

#[test]
fn sync_policy_every_millis_is_driven_by_put_and_flush_due() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let mut c = cfg(1000);
    c.sync_policy = SyncPolicy::EveryMillis(1_000);
    c.max_interval = std::time::Duration::from_secs(3600);
    {
        let spool: Spool<Value> = open(&dir, &clock, c.clone());
        spool.put(&values(0..3)).unwrap();
        clock.advance_ms(1_000);
        spool.put(&values(3..5)).unwrap(); // due: synced by put
        spool.put(&values(5..6)).unwrap();
        clock.advance_ms(1_000);
        assert_eq!(spool.flush_due(clock.now_ms()).unwrap(), 0); // due: synced by the timer
        spool.put(&values(6..9)).unwrap(); // not due
    }
    dir.crash();
    let spool: Spool<Value> = open(&dir, &clock, c);
    assert_eq!(read_all(&spool), values(0..6));
}

#[test]
fn spool_works_over_path_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = crate::dir::PathDir::open(tmp.path()).unwrap();
    let clock = ManualClock::new(T0);
    let spool: Spool<Value> = Spool::open(Arc::new(dir), cfg(10), Arc::new(clock.clone())).unwrap();
    spool.put(&values(0..25)).unwrap();
    spool.flush().unwrap();
    assert_eq!(read_all(&spool), values(0..25));
    let u = spool.usage().unwrap();
    assert_eq!((u.pending.files, u.journals.files), (6, 0));
    // The owner's lock file is no journal (a spool may be the data directory itself).
    std::fs::write(tmp.path().join(crate::owner::LOCK_FILE), b"{}").unwrap();
    spool.put(&values(25..27)).unwrap();
    let u = spool.usage().unwrap();
    assert_eq!((u.pending.files, u.journals.files), (6, 1));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn tricky_string() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("\"".to_string()),
                Just("\\".to_string()),
                Just("[".to_string()),
                Just("]".to_string()),
                Just("{".to_string()),
                Just("}".to_string()),
                Just(",".to_string()),
                Just("\n".to_string()),
                Just("é€😀".to_string()),
                "[a-z ]{0,8}",
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Any strings (quotes, escapes, brackets, newlines, non-ASCII) and any batch split
        /// survive journal, rotation, Brotli and the streaming scanner unchanged.
        #[test]
        fn rows_round_trip(
            strings in proptest::collection::vec(tricky_string(), 0..60),
            max in 1u64..20,
            read_batch in 1usize..10,
        ) {
            let dir = MemDir::new();
            let clock = ManualClock::new(T0);
            let mut c = cfg(max);
            c.compression_level = 1;
            let spool: Spool<Value> = open(&dir, &clock, c);
            let rows: Vec<Value> = strings
                .iter()
                .enumerate()
                .map(|(i, s)| json!({"i": i, "s": s, "nested": [s, {"k": s}]}))
                .collect();
            for chunk in rows.chunks(7) {
                spool.put(chunk).unwrap();
            }
            spool.flush().unwrap();
            let mut r = spool.read_range(TimeRange::all()).unwrap();
            let mut got = Vec::new();
            loop {
                let b = r.next(read_batch).unwrap();
                if b.is_empty() {
                    break;
                }
                prop_assert!(b.len() <= read_batch);
                got.extend(b);
            }
            prop_assert_eq!(got, rows);
        }
    }
}

#[test]
fn bad_files_never_stop_the_open() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    {
        let spool: Spool<Value> = open(&dir, &clock, cfg(10));
        spool.put(&values(0..20)).unwrap();
    }
    let names = dir.names();
    let seg = names.iter().find(|n| n.ends_with(".json.br")).unwrap();
    dir.write_bytes(&format!("{seg}.sum"), b"garbage sidecar");
    dir.create_dir("agent-1_1_2.json.br").unwrap();
    dir.write_bytes(".agent-1_3_ff.journal", b"");
    dir.write_bytes("agent-1_9_9.json.br", b"");
    let spool: Spool<Value> = open(&dir, &clock, cfg(10));
    let rows = read_all(&spool);
    assert_eq!(
        rows,
        values(10..20),
        "the segment with a bad sidecar is quarantined"
    );
    assert_eq!(
        spool.stats().segments_quarantined,
        2,
        "bad sidecar + empty file"
    );
    assert!(
        spool.journals().unwrap().is_empty(),
        "empty journal finished into nothing"
    );
}

#[test]
fn deferred_rotation_only_seals_and_finish_next_publishes_in_order() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let spool: Spool<Value> = open(&dir, &clock, cfg(10));
    spool.defer_finishing(true);
    // 25 rows: two sealed journals and an active one. With a backlog of at most one, `put`
    // finished the first journal itself; the second waits for `finish_next`.
    spool.put(&values(0..25)).unwrap();
    assert_eq!(spool.pending(), 15);
    assert_eq!(spool.sealed_waiting(), 1);
    assert_eq!(spool.segments(TimeRange::all()).unwrap().len(), 1);
    assert!(spool.finish_next().unwrap());
    assert!(!spool.finish_next().unwrap());
    assert_eq!(spool.pending(), 5);
    spool.flush().unwrap();
    assert_eq!(spool.pending(), 0);
    assert_eq!(read_all(&spool), values(0..25));
    let segs = spool.segments(TimeRange::all()).unwrap();
    assert_eq!(segs.len(), 3);
    let mut names: Vec<_> = segs.iter().map(|s| s.name.clone()).collect();
    names.dedup();
    assert_eq!(names.len(), 3, "names are unique");
}

#[test]
fn sealed_but_unfinished_journals_survive_a_crash() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    {
        let spool: Spool<Value> = open(&dir, &clock, cfg(10));
        spool.defer_finishing(true);
        // 20 rows: two journals sealed at rotation, nothing compressed except what the
        // backlog rule made `put` finish; no flush, no sync of anything but the seals.
        spool.put(&values(0..10)).unwrap();
        spool.put(&values(10..20)).unwrap();
        assert_eq!(spool.sealed_waiting(), 1);
        // Power cut before the worker got to it.
        dir.crash();
    }
    let spool: Spool<Value> = open(&dir, &clock, cfg(10));
    assert_eq!(spool.stats().journals_recovered, 1);
    assert_eq!(spool.pending(), 0);
    assert_eq!(read_all(&spool), values(0..20));
    assert!(spool.journals().unwrap().is_empty());
}

#[test]
fn a_worker_thread_finishes_while_put_goes_on_and_flush_waits_for_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let spool: Arc<Spool<Value>> = Arc::new(open(&dir, &clock, cfg(7)));
    spool.defer_finishing(true);
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (spool, stop) = (spool.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if !spool.finish_next().unwrap() {
                    std::thread::yield_now();
                }
            }
        })
    };
    for i in 0..40 {
        spool.put(&values(i * 13..(i + 1) * 13)).unwrap();
    }
    spool.flush().unwrap();
    assert_eq!(spool.pending(), 0);
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    let mut got: Vec<u64> = read_all::<Value>(&spool)
        .iter()
        .map(|v| v["i"].as_u64().unwrap())
        .collect();
    assert_eq!(got.len(), 520, "every row once");
    got.sort_unstable();
    assert_eq!(got, (0..520).collect::<Vec<_>>());
    let segs = spool.segments(TimeRange::all()).unwrap();
    assert!(segs.iter().all(|s| s.rows.unwrap_or(0) <= 7));
}

fn big_rows(n: std::ops::Range<u64>) -> Vec<Value> {
    n.map(|i| json!({"i": i, "pad": "x".repeat(480)})).collect()
}

/// A spool at level 10 (pieces of 1 MiB) left with a ~2.5 MB journal by a killed writer.
fn crashed_with_a_large_journal(dir: &MemDir, clock: &ManualClock) -> SpoolConfig {
    let mut c = cfg(1_000_000);
    c.compression_level = 10;
    let spool: Spool<Value> = open(dir, clock, c.clone());
    spool.put(&big_rows(0..5000)).unwrap();
    spool.sync().unwrap();
    drop(spool);
    dir.crash();
    c
}

#[test]
fn a_large_journal_is_split_on_open_and_finished_later_piece_by_piece() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let c = crashed_with_a_large_journal(&dir, &clock);
    let spool: Spool<Value> = open(&dir, &clock, c.clone());
    let st = spool.stats();
    assert_eq!(st.journals_split, 1);
    assert_eq!(
        st.journals_recovered, 0,
        "nothing that large is finished by the open"
    );
    assert_eq!(
        spool.journals().unwrap().len(),
        3,
        "three pieces of at most 1 MiB"
    );
    assert_eq!(spool.sealed_waiting(), 3);
    assert!(spool.segments(TimeRange::all()).unwrap().is_empty());

    // One piece finished, then the process dies: that piece's rows are in a segment, the
    // other pieces are still journals, and nothing is split or finished twice.
    assert!(spool.finish_next().unwrap());
    assert_eq!(spool.segments(TimeRange::all()).unwrap().len(), 1);
    drop(spool);
    dir.crash();
    let spool: Spool<Value> = open(&dir, &clock, c);
    assert_eq!(spool.stats().journals_split, 0);
    assert_eq!(spool.journals().unwrap().len(), 2);
    // The timer's hook finishes the backlog (with a clock that stands still, in one call).
    assert_eq!(spool.flush_due(T0).unwrap(), 2);
    assert!(spool.journals().unwrap().is_empty());
    assert_eq!(read_all(&spool), big_rows(0..5000));
}

#[test]
fn pieces_of_a_split_cut_short_are_redone_from_the_whole_journal() {
    let dir = MemDir::new();
    let clock = ManualClock::new(T0);
    let c = crashed_with_a_large_journal(&dir, &clock);
    // A split that died after writing its first piece: the whole journal is still there.
    let journal = dir
        .names()
        .into_iter()
        .find(|n| n.ends_with(".journal"))
        .unwrap();
    let whole = super::name::JournalName::parse(&journal).unwrap();
    let piece = super::name::JournalName {
        nonce: format!("{}00000000", whole.nonce),
        ..whole.clone()
    };
    let bytes = dir.read_bytes(&journal).unwrap();
    let cut = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    dir.write_bytes(&piece.file_name(), &bytes[..cut]);
    let spool: Spool<Value> = open(&dir, &clock, c);
    assert_eq!(spool.stats().journals_split, 1);
    assert_eq!(spool.journals().unwrap().len(), 3);
    spool.flush().unwrap();
    assert_eq!(
        read_all(&spool),
        big_rows(0..5000),
        "no row twice, none lost"
    );
}

/// The segments' bytes, oldest first.
fn segment_bytes(dir: &MemDir) -> Vec<Vec<u8>> {
    let mut names: Vec<String> = dir
        .names()
        .into_iter()
        .filter(|n| n.ends_with(name::SEGMENT_SUFFIX))
        .collect();
    names.sort();
    names.iter().map(|n| dir.read_bytes(n).unwrap()).collect()
}

/// A journal written by this process is finished from the rows it kept in memory (no journal
/// read); one left by another process is read back. Both give the same bytes.
#[test]
fn own_rows_are_finished_from_memory_into_the_same_bytes_as_from_the_journal() {
    use crate::dir::{FaultyDir, Op};
    for level in [1, 6] {
        let rows = MetricGenerator::new(5, T0).batch(2_500);
        let mut c = cfg(1_000);
        c.compression_level = level;

        let mem = MemDir::new();
        let faulty = Arc::new(FaultyDir::new(mem.clone()));
        let clock = ManualClock::new(T0);
        let spool: Spool<Metric> =
            Spool::open(faulty.clone(), c.clone(), Arc::new(clock.clone())).unwrap();
        let reads = faulty.count(Op::Read);
        spool.put(&rows).unwrap();
        spool.flush().unwrap();
        assert_eq!(
            faulty.count(Op::Read),
            reads,
            "level {level}: no journal read back"
        );
        let from_memory = segment_bytes(&mem);
        assert_eq!(from_memory.len(), 3);
        assert_eq!(read_all(&spool), rows);

        // The same rows left in journals (a process that ended before finishing them):
        // recovery reads them back.
        let left = MemDir::new();
        {
            let spool: Spool<Metric> = open(&left, &clock, c.clone());
            spool.defer_finishing(true);
            spool.put(&rows).unwrap();
            spool.sync().unwrap();
        }
        let spool: Spool<Metric> = open(&left, &clock, c);
        spool.flush().unwrap();
        // Two were left: `put` finished the first itself (the deferred backlog is bounded).
        assert_eq!(spool.stats().journals_recovered, 2);
        // (The clock stands still, so the journals' names do not order them: compare as sets.)
        let (mut got, mut want) = (segment_bytes(&left), from_memory);
        got.sort();
        want.sort();
        assert!(got == want, "level {level}: other bytes");
    }
}
