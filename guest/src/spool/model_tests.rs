//! Model-based test of the spool: random sequences of put, sync, flush, the timer's
//! `flush_due`, upload marks, verification and power cuts (unsynced data dropped, or writes
//! torn at 512 B and 4 KiB) over the in-memory crash directory, checked against a model that
//! is only a list of rows and how many of them were acknowledged as durable.
//!
//! After every power cut and reopen the spool must hold exactly a prefix of the rows put, in
//! order, no row twice, and at least every row a `sync` or `flush` acknowledged. Cases:
//! `PROPTEST_CASES` (default 512 here; a long run: `PROPTEST_CASES=1000000 cargo test -p
//! edgestore --lib spool::model_tests --release`).

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::clock::ManualClock;
use crate::dir::MemDir;

const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Put(u64),
    Sync,
    Flush,
    /// The timer's hook after this many milliseconds.
    FlushDue(i64),
    /// Upload marks for the oldest pending segment.
    MarkUploaded,
    Verify,
    /// A power cut: unsynced data dropped (`block` 0) or torn after `blocks` whole blocks.
    Crash {
        block: usize,
        blocks: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u64..40).prop_map(Op::Put),
        2 => Just(Op::Sync),
        2 => Just(Op::Flush),
        2 => (0i64..3_000).prop_map(Op::FlushDue),
        1 => Just(Op::MarkUploaded),
        1 => Just(Op::Verify),
        2 => (prop_oneof![Just(0usize), Just(512), Just(4096)], 0usize..6)
            .prop_map(|(block, blocks)| Op::Crash { block, blocks }),
    ]
}

fn config(level: u32) -> SpoolConfig {
    let mut c = SpoolConfig::new("model");
    c.max_records = 25;
    c.max_interval = std::time::Duration::from_millis(2_000);
    c.compression_level = level;
    c
}

fn row(i: u64) -> Value {
    json!({"i": i, "pad": "y".repeat(usize::try_from(i % 97).unwrap_or(0) * 7)})
}

fn everything(spool: &Spool<Value>) -> Vec<u64> {
    super::tests::read_all(spool)
        .iter()
        .map(|v| v["i"].as_u64().unwrap())
        .collect()
}

fn open(dir: &MemDir, clock: &ManualClock, level: u32) -> Spool<Value> {
    Spool::open(
        Arc::new(dir.clone()),
        config(level),
        Arc::new(clock.clone()),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_spool_keeps_an_acknowledged_prefix_through_any_sequence(
        ops in proptest::collection::vec(op(), 1..50),
        level in prop_oneof![Just(0u32), Just(1), Just(6)],
    ) {
        let dir = MemDir::new();
        let clock = ManualClock::new(T0);
        let mut spool = open(&dir, &clock, level);
        // The model: every row put (ids 0..), and how many are acknowledged as durable.
        let mut put: Vec<u64> = Vec::new();
        let mut durable = 0usize;
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Put(n) => {
                    let rows: Vec<Value> = (next..next + n).map(row).collect();
                    spool.put(&rows).unwrap();
                    put.extend(next..next + n);
                    next += n;
                    clock.advance_ms(7);
                }
                Op::Sync => {
                    spool.sync().unwrap();
                    durable = put.len();
                }
                Op::Flush => {
                    spool.flush().unwrap();
                    durable = put.len();
                    prop_assert_eq!(everything(&spool), put.clone());
                }
                Op::FlushDue(ms) => {
                    clock.advance_ms(ms);
                    spool.flush_due(clock.now_ms()).unwrap();
                }
                Op::MarkUploaded => {
                    let pending: Vec<String> = spool
                        .segments(TimeRange::all())
                        .unwrap()
                        .into_iter()
                        .filter(|s| s.state == SegmentState::Pending)
                        .map(|s| s.name)
                        .take(1)
                        .collect();
                    spool.mark_uploaded(&pending).unwrap();
                }
                Op::Verify => {
                    let report = spool.verify().unwrap();
                    prop_assert!(report.quarantined.is_empty(), "{:?}", report);
                }
                Op::Crash { block, blocks } => {
                    drop(spool);
                    if block == 0 {
                        dir.crash();
                    } else {
                        dir.crash_torn(block, blocks);
                    }
                    spool = open(&dir, &clock, level);
                    spool.flush().unwrap();
                    let got = everything(&spool);
                    prop_assert!(
                        got.len() >= durable,
                        "{} rows survived, {} were acknowledged",
                        got.len(),
                        durable
                    );
                    prop_assert_eq!(&got[..], &put[..got.len()], "a prefix, in order, once");
                    // What survived is the model from now on (and it is durable now).
                    put.truncate(got.len());
                    durable = put.len();
                    next = put.last().map_or(0, |l| l + 1);
                    prop_assert_eq!(spool.stats().segments_quarantined, 0);
                }
            }
        }
        spool.flush().unwrap();
        prop_assert_eq!(everything(&spool), put);
    }
}
