//! The streaming reader's memory does not grow with the spool: a counting global allocator
//! measures the peak heap while reading spools of very different sizes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use edgestore::sample::MetricGenerator;
use edgestore::spool::{Metric, Spool, SpoolConfig, TimeRange};

/// Counts live heap bytes and their high-water mark, delegating every call to `System`.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's exact arguments, so `System`'s
// guarantees (alignment, size, ownership of the returned block) are passed through unchanged;
// the counters are plain atomics and never touch the memory being managed.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`/`realloc`).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Fill a spool with `rows` metrics, then return (peak extra heap while streaming it back with
/// `next(100)`, rows read, JSON bytes read).
fn peak_while_reading(rows: usize) -> (usize, usize, usize) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = SpoolConfig::new("mem");
    cfg.max_records = 2_000;
    cfg.compression_level = 1;
    let spool: Spool<Metric> = Spool::open_path(tmp.path(), cfg).unwrap();
    let mut generator = MetricGenerator::new(9, 1_700_000_000_000);
    for _ in 0..rows / 1000 {
        spool.put(&generator.batch(1000)).unwrap();
    }
    spool.flush().unwrap();
    let mut reader = spool.read_range(TimeRange::all()).unwrap();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let (mut n, mut json) = (0, 0);
    loop {
        let batch = reader.next(100).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 100, "rows held per call are bounded by max");
        n += batch.len();
        json += batch
            .iter()
            .map(|m| serde_json::to_vec(m).unwrap().len())
            .sum::<usize>();
    }
    (PEAK.load(Ordering::Relaxed) - base, n, json)
}

#[test]
fn streaming_reader_memory_is_bounded() {
    let (small_peak, small_rows, _) = peak_while_reading(4_000);
    let (big_peak, big_rows, big_json) = peak_while_reading(20_000);
    assert_eq!((small_rows, big_rows), (4_000, 20_000));
    eprintln!("peak extra heap: {small_peak} B for 4k rows, {big_peak} B for 20k rows ({big_json} B of JSON)");
    // Decoder window + buffers + one batch of 100 rows: a few MiB at most, far below the data.
    const BOUND: usize = 8 << 20;
    assert!(big_peak < BOUND, "{big_peak} >= {BOUND}");
    assert!(
        big_peak < big_json / 2,
        "memory must not scale with the spool"
    );
    assert!(
        big_peak < small_peak * 2 + (1 << 20),
        "5x the data, about the same memory"
    );
}
