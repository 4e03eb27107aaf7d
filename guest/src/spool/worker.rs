//! A second worker for the native build: compresses sealed journals on its own thread while
//! `put` goes on appending, so ingest at high Brotli levels uses two cores. The core itself
//! stays thread-free (the component has no threads); this is the native wrapper the design
//! allows, built on [`Spool::defer_finishing`], [`Spool::wait_sealed`] and
//! [`Spool::finish_next`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::Spool;
use crate::error::{Error, Result};

/// How long the worker sleeps between looks at its stop flag when nothing is sealed, and
/// after a failed finish before it retries (a full disk should not make it spin).
const IDLE: Duration = Duration::from_millis(100);

/// A thread finishing `spool`'s sealed journals. Turning it on switches the spool to deferred
/// finishing; dropping it (or [`FinishWorker::stop`]) stops the thread after the finish in
/// hand and switches deferred finishing off again, so later rotations finish inline. Journals
/// still sealed then are finished by the next `flush`, or by recovery on the next open.
pub struct FinishWorker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Wakes the thread if it waits for a sealed journal.
    wake: Box<dyn Fn() + Send + Sync>,
    /// Turns deferred finishing off once the thread is gone.
    undefer: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for FinishWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishWorker")
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl FinishWorker {
    /// Start a worker for `spool`.
    pub fn spawn<R: 'static>(spool: Arc<Spool<R>>) -> Result<FinishWorker> {
        spool.defer_finishing(true);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let worker_spool = spool.clone();
        let thread = std::thread::Builder::new()
            .name("edgestore-finish".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    if !worker_spool.wait_sealed(IDLE) {
                        continue;
                    }
                    // A failure leaves the journal queued (nothing lost; the next `flush`
                    // reports the error to its caller); wait before retrying.
                    if worker_spool.finish_next().is_err() {
                        std::thread::sleep(IDLE);
                    }
                }
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                spool.defer_finishing(false);
                return Err(Error::internal(format!("start the finishing worker: {e}")));
            }
        };
        let weak = Arc::downgrade(&spool);
        let weak_wake = weak.clone();
        Ok(FinishWorker {
            stop,
            thread: Some(thread),
            wake: Box::new(move || {
                if let Some(s) = weak_wake.upgrade() {
                    s.sealed_signal.notify_all();
                }
            }),
            undefer: Box::new(move || {
                if let Some(s) = weak.upgrade() {
                    s.defer_finishing(false);
                }
            }),
        })
    }

    /// Stop the thread (after the finish in hand) and turn deferred finishing off.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        (self.wake)();
        if let Some(t) = self.thread.take() {
            // A panic on the worker only lost its own finish (the journal stays queued).
            let _ = t.join();
        }
        (self.undefer)();
    }
}

impl Drop for FinishWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dir::MemDir;
    use crate::sample::MetricGenerator;
    use crate::{ManualClock, Metric, SpoolConfig, TimeRange};

    #[test]
    fn the_worker_finishes_rotated_segments_and_flush_waits_for_it() {
        let dir = Arc::new(MemDir::new());
        let mut config = SpoolConfig::new("w");
        config.max_records = 100;
        let spool: Arc<Spool<Metric>> =
            Arc::new(Spool::open(dir.clone(), config, Arc::new(ManualClock::new(0))).unwrap());
        let worker = FinishWorker::spawn(spool.clone()).unwrap();
        let mut generator = MetricGenerator::new(7, 0);
        for _ in 0..20 {
            spool.put(&generator.batch(50)).unwrap();
        }
        // 1000 rows, 10 rotations: the worker finishes (or put helps); flush waits for both.
        spool.flush().unwrap();
        assert_eq!(spool.pending(), 0);
        let segments = spool.segments(TimeRange::all()).unwrap();
        assert_eq!(segments.len(), 10);
        assert!(segments.iter().all(|s| s.rows == Some(100)));
        let mut reader = spool.read_range(TimeRange::all()).unwrap();
        let mut rows = 0;
        loop {
            let got = reader.next(1000).unwrap();
            if got.is_empty() {
                break;
            }
            rows += got.len();
        }
        assert_eq!(rows, 1000);
        worker.stop();
        // Deferred finishing is off again: a rotation finishes inline.
        spool.put(&generator.batch(100)).unwrap();
        assert_eq!(spool.sealed_waiting(), 0);
        assert_eq!(spool.segments(TimeRange::all()).unwrap().len(), 11);
    }
}
