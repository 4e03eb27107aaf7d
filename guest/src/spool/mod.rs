//! The disk spool: rows in, Brotli segments out, nothing lost in between.
//!
//! `put` appends rows to a *journal* (checksummed JSON lines under a hidden name); rotation
//! (exactly `max_records` rows, or `max_interval` after the first row) and `flush` *finish*
//! the journal into a segment `<identifier>_<startMs>_<stopMs>.json.br` that the reference
//! agent's shippers read unchanged. On open every journal an earlier process left behind is
//! finished the same way. The format, the recovery rules and the durability contract are in
//! `docs/spool-format.md`; the short version:
//!
//! * `flush()` returning `Ok` means every row accepted before it is in a finished, fsynced
//!   segment whose directory entry is fsynced.
//! * Between flushes, rows are as durable as the [`SyncPolicy`] makes the journal; whatever
//!   was synced is recovered on the next open (a torn last row is dropped and counted).
//! * A failed step never deletes the only copy of a row: the journal stays until its segment
//!   is published, and `flush`/`flush_due` retry it.
//!
//! Only the data directory's owner opens a spool with [`Spool::open`]; everyone else uses
//! [`Spool::inspect`], which runs no recovery and never writes (see [`crate::owner`]).
//!
//! ```
//! use std::sync::Arc;
//! use edgestore::dir::MemDir;
//! use edgestore::sample::MetricGenerator;
//! use edgestore::{ManualClock, Metric, Spool, SpoolConfig, TimeRange};
//!
//! // Natively: `Spool::open_path("/var/lib/agent/spool", config)`.
//! let dir = Arc::new(MemDir::new());
//! let spool: Spool<Metric> =
//!     Spool::open(dir, SpoolConfig::new("agent-1"), Arc::new(ManualClock::new(0)))?;
//! spool.put(&MetricGenerator::new(1, 0).batch(3))?;
//! spool.flush()?; // durable in `agent-1_0_0.json.br`
//! let segments = spool.segments(TimeRange::all())?;
//! assert_eq!(segments[0].rows, Some(3));
//! let mut reader = spool.read_range(TimeRange::all())?;
//! assert_eq!(reader.next(100)?.len(), 3);
//! spool.mark_uploaded(&[&segments[0].name])?;
//! # Ok::<(), edgestore::Error>(())
//! ```
//!
//! | concept | file |
//! |---|---|
//! | configuration and sync policy | `config.rs` |
//! | names, parsing from the right, time ranges | `name.rs` |
//! | `put`: appending, splitting at `max_records`, rotation | `put.rs` |
//! | the journal line format (check, then parse) | `journal.rs` |
//! | finishing a journal, checksum sidecar | `segment.rs` |
//! | age encryption of segments, the spool's recipients | `cipher.rs` |
//! | erasing the rows that match a label from finished segments (two passes, staged sidecar) | `erase.rs` |
//! | recovery on open | `recovery.rs` |
//! | streaming reader | `reader.rs` |
//! | listing, upload marks, purge, usage | `lifecycle.rs` |
//! | inspection (read-only open): `journal_rows` (`Spool::inspect` itself is in `mod.rs`) | `inspect.rs` |
//! | the reference agent's metric record | `metric.rs` |
//! | JSON documents as records (validated text), metrics as documents | `document.rs` |
//! | counters worth alerting on | `stats.rs` |

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::dir::{Directory, WriteFile};
use crate::error::{Error, ErrorCode, Result};

#[cfg(feature = "c-brotli")]
mod c_brotli;
mod cipher;
pub mod compress;
mod config;
mod document;
mod erase;
mod inspect;
mod journal;
mod json_line;
mod lifecycle;
mod metric;
mod name;
mod place;
mod put;
mod reader;
mod recovery;
mod segment;
mod stats;
#[cfg(feature = "native")]
mod worker;

#[cfg(feature = "encryption")]
pub use cipher::{generate_identity, identity_recipients};
pub use cipher::{SpoolKeys, AGE_MAGIC, RECIPIENTS_FILE};
pub use compress::{encoder_params, window_for};
pub use config::{SpoolConfig, SyncPolicy};
pub use document::{
    document, document_lines, document_metric, documents, json_lines, metric_document, Document,
};
pub use erase::{EraseFilter, EraseReport};
pub use lifecycle::{Counts, PurgeReport, SegmentInfo, SegmentState, Usage, VerifyReport};
pub use metric::Metric;
pub use name::{
    SegmentName, TimeRange, ENCRYPTED_SUFFIX, MAX_IDENTIFIER_LEN, QUARANTINE_DIR, SEGMENT_SUFFIX,
    UPLOADED_DIR,
};
pub use reader::{RangeReader, SegmentReader, MAX_ELEMENT_BYTES};
pub use segment::Sidecar;
pub use stats::SpoolStats;
#[cfg(feature = "native")]
pub use worker::FinishWorker;

use cipher::Cipher;
use journal::{KeptSize, RowsInMemory};
use name::JournalName;

/// State shared by the spool and its readers.
pub(crate) struct Shared {
    pub(crate) dir: Arc<dyn Directory>,
    pub(crate) config: SpoolConfig,
    pub(crate) clock: Arc<dyn Clock>,
    /// Opened by [`Spool::inspect`]: nothing is ever created, renamed, removed or written.
    pub(crate) read_only: bool,
    /// The keys segments are encrypted to and read with.
    pub(crate) cipher: Cipher,
    /// Held by operations that move, rewrite or remove finished segments (upload marks,
    /// purge, erase), so none of them acts on a segment another is replacing.
    lifecycle: Mutex<()>,
    stats: Mutex<SpoolStats>,
}

impl Shared {
    /// The shared state of a spool on `dir` with a validated `config`.
    fn new(
        dir: Arc<dyn Directory>,
        config: SpoolConfig,
        clock: Arc<dyn Clock>,
        read_only: bool,
    ) -> Result<Arc<Shared>> {
        config.validate()?;
        let stored = cipher::stored_recipients(&*dir)?;
        let cipher = Cipher::new(&config.keys, &stored)?;
        if !read_only && !config.keys.recipients.is_empty() {
            cipher::store_recipients(&*dir, &cipher.recipients())?;
        }
        Ok(Arc::new(Shared {
            dir,
            config,
            clock,
            read_only,
            cipher,
            lifecycle: Mutex::new(()),
            stats: Mutex::new(SpoolStats::default()),
        }))
    }

    /// The lock of the operations that move, rewrite or remove finished segments.
    pub(crate) fn lifecycle(&self) -> MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn note(&self, f: impl FnOnce(&mut SpoolStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// `Ok` on a spool that may write; `PermissionDenied` naming `operation` on an inspecting
    /// one.
    pub(crate) fn writable(&self, operation: &str) -> Result<()> {
        if !self.read_only {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::PermissionDenied,
            format!(
                "spool {operation}: the spool {:?} is open for inspection (read-only): only \
                 the data directory's owner writes it",
                self.config.identifier
            ),
        ))
    }
}

/// The journal being appended to.
struct Active {
    journal: JournalName,
    file: Box<dyn WriteFile>,
    /// Bytes of accepted rows written to the file.
    committed: u64,
    rows: u64,
    unsynced_rows: u64,
    last_sync_ms: i64,
    dir_synced: bool,
    /// The accepted rows' JSON, while they fit (finishing then reads no journal back).
    memory: Option<RowsInMemory>,
}

impl Active {
    /// The rows in memory if they are exactly the journal's accepted rows.
    fn rows_in_memory(&mut self) -> Option<RowsInMemory> {
        self.memory.take().filter(|m| m.rows() == self.rows)
    }
}

/// How long one [`Spool::flush_due`] (or a rotation inside `put`) goes on finishing waiting
/// journals after the first: a backlog (a large journal recovered in pieces) is worked off
/// tick by tick, each call far inside a component call's time bound.
const FINISH_BUDGET_MS: i64 = 2_000;

/// A closed journal waiting to be finished (after rotation, flush, a failure, or on open).
pub(crate) struct Sealed {
    pub(crate) journal: JournalName,
    /// Only this many bytes belong to accepted rows (`None`: all of it, as on recovery).
    pub(crate) limit: Option<u64>,
    pub(crate) rows: u64,
    pub(crate) published: Option<String>,
    /// The journal's handle when it was sealed without `fdatasync` because it is finished at
    /// once: the segment's own fsync makes the rows durable, so syncing the journal as well
    /// would write every row to disk twice. Should finishing fail, [`Spool::finish_sealed`]
    /// syncs the journal through this handle before reporting the error.
    pub(crate) unsynced: Option<Box<dyn WriteFile>>,
    /// Its rows, kept in memory by the process that wrote them (see [`RowsInMemory`]).
    pub(crate) memory: Option<RowsInMemory>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("journal", &self.journal)
            .field("limit", &self.limit)
            .field("rows", &self.rows)
            .field("published", &self.published)
            .field("unsynced", &self.unsynced.is_some())
            .field("memory", &self.memory.as_ref().map(RowsInMemory::rows))
            .finish()
    }
}

struct Writer {
    active: Option<Active>,
    sealed: Vec<Sealed>,
    last_stop: i64,
    /// Journals taken by [`Spool::finish_next`] and being finished outside the lock.
    in_flight: usize,
    /// Their rows (still pending).
    in_flight_rows: u64,
    /// What the journals sealed lately kept in memory: a new journal reserves about as much.
    kept: KeptSize,
}

impl Writer {
    /// Note the size of `memory`, the rows in memory of a journal being sealed.
    fn note_kept(&mut self, memory: Option<&RowsInMemory>) {
        if let Some(m) = memory {
            self.kept = self.kept.after(m.size());
        }
    }
}

/// With deferred finishing, `put` finishes a sealed journal itself only once more than this
/// many wait: the backlog on disk stays bounded when the finishing side falls behind, and the
/// `put` thread then compresses alongside the worker.
const DEFERRED_BACKLOG: usize = 1;

/// A spool of records of type `R` (any serde type: [`Metric`], `serde_json::Value`, ...).
///
/// `Spool<R>` is `Send + Sync`: `put`, `flush` and readers may run on different threads; the
/// writer side is serialised by a mutex, readers only ever open finished segments.
pub struct Spool<R> {
    shared: Arc<Shared>,
    writer: Mutex<Writer>,
    /// Signalled whenever an in-flight finish ends (`flush` waits for them).
    finished: Condvar,
    /// Signalled whenever a journal is sealed for deferred finishing (a worker waits on it).
    sealed_signal: Condvar,
    /// Rotation only seals (see [`Spool::defer_finishing`]).
    deferred: AtomicBool,
    _records: PhantomData<fn(R) -> R>,
}

impl<R> std::fmt::Debug for Spool<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("identifier", &self.shared.config.identifier)
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl<R> Spool<R> {
    /// Open a spool in `dir`, recovering whatever an earlier process left (see
    /// `docs/spool-format.md`). Fails only on a bad config or if the directory cannot be
    /// listed or prepared; a bad file never stops the open.
    pub fn open(
        dir: Arc<dyn Directory>,
        config: SpoolConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let shared = Shared::new(dir, config, clock, false)?;
        let (sealed, last_stop) = recovery::recover(&shared)?;
        Ok(Spool::with_state(shared, sealed, last_stop))
    }

    fn with_state(shared: Arc<Shared>, sealed: Vec<Sealed>, last_stop: i64) -> Self {
        Spool {
            shared,
            writer: Mutex::new(Writer {
                active: None,
                sealed,
                last_stop,
                in_flight: 0,
                in_flight_rows: 0,
                kept: KeptSize::default(),
            }),
            finished: Condvar::new(),
            sealed_signal: Condvar::new(),
            deferred: AtomicBool::new(false),
            _records: PhantomData,
        }
    }

    /// Open a spool in `dir` for *inspection*: read-only, beside the process that owns the
    /// directory and may be writing it right now (see [`crate::owner`]). No recovery runs
    /// (the journals another process appends to are left alone), nothing is created, and no
    /// file is ever opened for writing, renamed or removed: a missing `uploaded/` or
    /// `quarantine/` lists as empty, and a segment that fails verification is reported but
    /// left where it is for the owner to quarantine.
    ///
    /// Listing, usage, reading and [`Spool::verify`] work as on an owner's spool, tolerating
    /// files that the owner finishes, moves or removes meanwhile; [`Spool::journal_rows`]
    /// counts the rows not yet in a segment. `put`, `flush`, `mark_uploaded`, `purge` and
    /// `finish_next` are `PermissionDenied`; `flush_due` and `sync` do nothing, and
    /// [`Spool::pending`] is 0 (this handle accepted no rows).
    pub fn inspect(
        dir: Arc<dyn Directory>,
        config: SpoolConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let shared = Shared::new(dir, config, clock, true)?;
        Ok(Spool::with_state(shared, Vec::new(), 0))
    }

    /// True if this spool was opened by [`Spool::inspect`] (read-only).
    pub fn is_read_only(&self) -> bool {
        self.shared.read_only
    }

    /// Open a spool in the directory at `path` (created if missing) with the system clock.
    #[cfg(feature = "native")]
    pub fn open_path(path: impl AsRef<std::path::Path>, config: SpoolConfig) -> Result<Self> {
        let path = path.as_ref();
        let dir = crate::dir::CapDir::open(path)
            .map_err(|e| Error::io(format!("open spool directory {}", path.display()), e))?;
        Spool::open(Arc::new(dir), config, Arc::new(crate::clock::SystemClock))
    }

    /// Inspect the spool in the existing directory at `path` with the system clock (see
    /// [`Spool::inspect`]). The directory is never created: a missing one is `NotFound`.
    #[cfg(feature = "native")]
    pub fn inspect_path(path: impl AsRef<std::path::Path>, config: SpoolConfig) -> Result<Self> {
        let path = path.as_ref();
        let dir = cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .map_err(|e| Error::io(format!("open spool directory {}", path.display()), e))?;
        Spool::inspect(
            Arc::new(crate::dir::CapDir::from_dir(dir)),
            config,
            Arc::new(crate::clock::SystemClock),
        )
    }

    /// The configuration in force.
    pub fn config(&self) -> &SpoolConfig {
        &self.shared.config
    }

    /// Counters since open (recovery included).
    pub fn stats(&self) -> SpoolStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // A panic mid-put leaves the writer consistent enough: at worst an active journal
        // whose tail is torn, which finishing handles.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rows accepted but not yet in a finished segment. A journal inherited from an earlier
    /// process that could not be finished on open (disk full) is not counted: its row count
    /// is only known once it is read; [`Spool::journals`] lists it and [`Spool::journal_rows`]
    /// counts the rows of every journal on disk. An inspecting spool accepted no rows: 0.
    pub fn pending(&self) -> u64 {
        let w = self.writer();
        w.active.as_ref().map_or(0, |a| a.rows)
            + w.sealed.iter().map(|s| s.rows).sum::<u64>()
            + w.in_flight_rows
    }

    /// Deferred finishing (off by default). When on, a rotation only *seals* the journal
    /// (fdatasync it and its directory entry: crash-safe, recovery finishes it on open) and
    /// leaves compressing it to [`Spool::finish_next`], which the embedder calls from another
    /// thread; `put` compresses one itself only when more than one sealed journal waits.
    /// The core stays thread-free: the worker is the embedder's. `flush` still returns only
    /// once every accepted row is in a published segment, waiting for finishes in flight.
    pub fn defer_finishing(&self, on: bool) {
        self.deferred.store(on, Ordering::Relaxed);
    }

    /// Journals sealed and waiting to be finished (not counting those in flight).
    pub fn sealed_waiting(&self) -> usize {
        self.writer().sealed.len()
    }

    /// Block until a sealed journal waits or `timeout` passes; true if one waits. A worker
    /// that calls [`Spool::finish_next`] sleeps here instead of polling.
    pub fn wait_sealed(&self, timeout: std::time::Duration) -> bool {
        let w = self.writer();
        let (w, _) = self
            .sealed_signal
            .wait_timeout_while(w, timeout, |w| w.sealed.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        !w.sealed.is_empty()
    }

    /// Finish the oldest sealed journal into a segment, compressing outside the writer lock,
    /// so `put` and other `finish_next` calls (on other journals) go on meanwhile. `Ok(false)`:
    /// nothing was waiting. On error the journal is queued again (nothing is lost) and
    /// `flush`/`flush_due`/the next call retry it.
    pub fn finish_next(&self) -> Result<bool> {
        self.shared.writable("finish_next")?;
        let (mut job, seg) = {
            let mut w = self.writer();
            if w.sealed.is_empty() {
                return Ok(false);
            }
            let job = w.sealed.remove(0);
            // Reserve the name now: finishes in flight never collide.
            let seg = match &job.published {
                Some(_) => None,
                None => match segment::next_segment_name(&self.shared, &job.journal, w.last_stop) {
                    Ok(seg) => {
                        w.last_stop = seg.stop_ms;
                        Some(seg)
                    }
                    Err(e) => {
                        w.sealed.insert(0, job);
                        return Err(e);
                    }
                },
            };
            w.in_flight += 1;
            w.in_flight_rows += job.rows;
            (job, seg)
        };
        let res = match &seg {
            Some(seg) => segment::finish_as(
                &self.shared,
                (&job.journal, job.limit, job.memory.as_ref()),
                seg,
                &mut job.published,
            )
            .and_then(|f| f.inspect(|_| ())),
            None => {
                let mut unused = 0;
                segment::finish_journal(
                    &self.shared,
                    (&job.journal, job.limit, job.memory.as_ref()),
                    &mut unused,
                    &mut job.published,
                )
            }
        };
        let mut w = self.writer();
        w.in_flight -= 1;
        w.in_flight_rows -= job.rows;
        let out = match res {
            Ok(f) => {
                self.note_finished(&f);
                Ok(true)
            }
            Err(e) => {
                w.sealed.insert(0, job);
                Err(e)
            }
        };
        drop(w);
        self.finished.notify_all();
        out
    }

    fn note_finished(&self, f: &segment::Finished) {
        let c = f.counts;
        self.shared.note(|st| {
            st.segments_written += u64::from(f.segment.is_some());
            st.rows_written += c.rows;
            st.torn_rows_dropped += c.torn;
            st.corrupt_lines += c.corrupt;
        });
    }

    /// Finish the active journal and any journal still waiting (from a failed flush or from
    /// recovery) into segments. `Ok` means every row accepted before the call is durable in a
    /// finished segment. On error nothing is lost: the journal stays and the next `flush` or
    /// `flush_due` retries.
    pub fn flush(&self) -> Result<()> {
        self.shared.writable("flush")?;
        let mut w = self.writer();
        self.seal_to_finish(&mut w);
        loop {
            self.finish_sealed(&mut w)?;
            if w.in_flight == 0 {
                return Ok(());
            }
            // Finishes running elsewhere; one that fails puts its journal back, and the
            // next round finishes it here.
            w = self.finished.wait(w).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The host's timer hook: finish the active segment if `max_interval` has passed since
    /// its first row, sync the journal if the [`SyncPolicy::EveryMillis`] period is due, and
    /// retry journals a failed flush left. Returns how many segments were finished.
    ///
    /// On an inspecting spool ([`Spool::inspect`]) there is nothing to finish: `Ok(0)`.
    pub fn flush_due(&self, now_ms: i64) -> Result<usize> {
        if self.shared.read_only {
            return Ok(0);
        }
        let mut w = self.writer();
        if let Some(a) = &w.active {
            if now_ms.saturating_sub(a.journal.start_ms) >= self.shared.config.max_interval_ms() {
                self.seal_to_finish(&mut w);
            }
        }
        self.sync_if_due(&mut w, now_ms)?;
        if w.sealed.is_empty() {
            return Ok(0);
        }
        self.finish_sealed_within(&mut w, Some(FINISH_BUDGET_MS))
    }

    /// Make the active journal durable now (`fdatasync` and, the first time, the directory),
    /// without finishing a segment: after `Ok`, every accepted row survives a crash. On an
    /// inspecting spool there is nothing to sync: `Ok`.
    pub fn sync(&self) -> Result<()> {
        if self.shared.read_only {
            return Ok(());
        }
        let mut w = self.writer();
        self.sync_active(&mut w)
    }

    fn sync_if_due(&self, w: &mut Writer, now: i64) -> Result<()> {
        if w.active.as_ref().is_some_and(|a| self.sync_due(a, now)) {
            self.sync_active(w)?;
        }
        Ok(())
    }

    fn sync_due(&self, a: &Active, now: i64) -> bool {
        match self.shared.config.sync_policy {
            SyncPolicy::OnFlush => false,
            SyncPolicy::EveryRows(n) => a.unsynced_rows >= n,
            SyncPolicy::EveryMillis(ms) => {
                a.unsynced_rows > 0
                    && now.saturating_sub(a.last_sync_ms) >= i64::try_from(ms).unwrap_or(i64::MAX)
            }
        }
    }

    /// `fdatasync` the journal and, the first time, the directory holding its entry.
    fn sync_file(&self, a: &mut Active) -> Result<()> {
        let res = a.file.sync_data().and_then(|_| {
            if !a.dir_synced {
                self.shared.dir.sync_dir("")?;
            }
            Ok(())
        });
        match res {
            Ok(()) => {
                a.dir_synced = true;
                a.unsynced_rows = 0;
                a.last_sync_ms = self.shared.clock.now_ms();
                Ok(())
            }
            Err(e) => Err(Error::io(
                format!("sync journal {}", a.journal.file_name()),
                e,
            )),
        }
    }

    fn sync_active(&self, w: &mut Writer) -> Result<()> {
        let Some(a) = w.active.as_mut() else {
            return Ok(());
        };
        if let Err(e) = self.sync_file(a) {
            // After a failed fsync the page cache cannot be trusted to reach the disk later;
            // stop appending to this journal and re-write its rows into a segment.
            self.seal_active(w, None);
            return Err(e);
        }
        Ok(())
    }

    /// Close the active journal (its handle dropped) and queue it for finishing. `limit`
    /// overrides the committed length after a failed write.
    fn seal_active(&self, w: &mut Writer, limit: Option<u64>) {
        if let Some(mut a) = w.active.take() {
            // A refused chunk may be partly in the file: cut it off, so a later process (this
            // one may exit before finishing, e.g. on a full disk) does not recover rows the
            // caller was told are not accepted. If even that fails, `limit` still keeps them
            // out of this process's segment.
            if let Some(len) = limit {
                if a.file.set_len(len).is_err() {
                    self.shared.note(|s| s.deferred_errors += 1);
                }
            }
            // Best effort: the segment's own fsync is the durability point; this only helps
            // rows survive a crash if finishing fails.
            if a.file.sync_data().is_err() {
                self.shared.note(|s| s.deferred_errors += 1);
            } else if self.deferred.load(Ordering::Relaxed)
                && !a.dir_synced
                && self.shared.dir.sync_dir("").is_err()
            {
                // Deferred, the sealed journal may wait a while: make its entry durable too.
                self.shared.note(|s| s.deferred_errors += 1);
            }
            // After a refused chunk (`limit`) the journal is read back: only it was cut.
            let memory = a.rows_in_memory().filter(|_| limit.is_none());
            w.note_kept(memory.as_ref());
            w.sealed.push(Sealed {
                journal: a.journal,
                limit: Some(limit.unwrap_or(a.committed)),
                rows: a.rows,
                published: None,
                unsynced: None,
                memory,
            });
            self.sealed_signal.notify_one();
        }
    }

    /// Close the active journal for finishing right away, without `fdatasync` (see
    /// [`Sealed::unsynced`]). With deferred finishing the journal may wait, so it is synced.
    fn seal_to_finish(&self, w: &mut Writer) {
        if self.deferred.load(Ordering::Relaxed) {
            return self.seal_active(w, None);
        }
        if let Some(mut a) = w.active.take() {
            let memory = a.rows_in_memory();
            w.note_kept(memory.as_ref());
            w.sealed.push(Sealed {
                journal: a.journal,
                limit: Some(a.committed),
                rows: a.rows,
                published: None,
                unsynced: Some(a.file),
                memory,
            });
        }
    }

    fn finish_sealed(&self, w: &mut Writer) -> Result<usize> {
        self.finish_sealed_within(w, None)
    }

    /// [`Spool::finish_sealed`], stopping once `budget_ms` has passed (at least one journal
    /// is finished): the timer's share, so one call stays well inside a component's time
    /// bound even with a backlog, and the rest waits for the next tick.
    fn finish_sealed_within(&self, w: &mut Writer, budget_ms: Option<i64>) -> Result<usize> {
        let res = self.finish_sealed_inner(w, budget_ms);
        // Journals left for later (a failure, or the budget spent) are made as durable as
        // sealing normally makes them.
        for s in &mut w.sealed {
            if let Some(mut f) = s.unsynced.take() {
                if f.sync_data().is_err() {
                    self.shared.note(|st| st.deferred_errors += 1);
                }
            }
        }
        res
    }

    fn finish_sealed_inner(&self, w: &mut Writer, budget_ms: Option<i64>) -> Result<usize> {
        let mut done = 0;
        let started = self.shared.clock.now_ms();
        let mut attempted = false;
        while let Some(s) = w.sealed.first_mut() {
            if attempted
                && budget_ms
                    .is_some_and(|b| self.shared.clock.now_ms().saturating_sub(started) >= b)
            {
                break;
            }
            attempted = true;
            let f = segment::finish_journal(
                &self.shared,
                (&s.journal, s.limit, s.memory.as_ref()),
                &mut w.last_stop,
                &mut s.published,
            )?;
            self.note_finished(&f);
            done += usize::from(f.segment.is_some());
            w.sealed.remove(0);
        }
        Ok(done)
    }

    /// A new active journal; its rows in memory get room for `kept`.
    fn open_journal(&self, now: i64, kept: KeptSize) -> Result<Active> {
        let journal = JournalName {
            identifier: self.shared.config.identifier.clone(),
            start_ms: now.max(0),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
        };
        let name = journal.file_name();
        let file = self
            .shared
            .dir
            .create_new(&name)
            .map_err(|e| Error::io(format!("create journal {name}"), e))?;
        Ok(Active {
            journal,
            file,
            committed: 0,
            rows: 0,
            unsynced_rows: 0,
            last_sync_ms: now,
            dir_synced: false,
            memory: Some(RowsInMemory::with_capacity(kept)),
        })
    }
}

#[cfg(all(test, feature = "encryption"))]
mod cipher_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
