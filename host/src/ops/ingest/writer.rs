//! The one writer between ingest requests and the spool: group commit and back-pressure.
//!
//! Requests hand their decoded rows to one task over a bounded channel. The task takes every
//! request waiting at that moment, puts all their rows in one call (rows cross the component
//! boundary in one batch), syncs the journal once for all of them (`ingest.sync: request`),
//! and only then answers each request. Under load one fsync covers many requests; alone, a
//! request pays exactly one put and one sync.
//!
//! Before a request's body is even read, [`Writer::pressure`] says whether storage can take
//! it: the spool over its byte cap, the file system over the health limit or the circuit
//! breaker open answer 429 with `Retry-After` instead of buffering rows nobody can write.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgestore::{ErrorClass, ErrorCode, Metric};
use tokio::sync::{mpsc, oneshot};

use super::SyncMode;
use crate::client::{AsyncSpool, Store};
use crate::error::Error;
use crate::resilience::BreakerState;

/// Requests waiting for the writer at most (their rows are in memory: this bounds it, with
/// the in-flight limit of the listener).
const QUEUE: usize = 64;

/// Rows one group commit takes at most before it puts and syncs (later requests wait for the
/// next round).
const MAX_ROWS_PER_COMMIT: usize = 200_000;

/// How long a known storage condition (usage, disk) is trusted before it is read again.
const REFRESH: Duration = Duration::from_secs(1);

/// Why storage cannot take a request now: answered 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pressure {
    /// What is wrong, for the response body and the log.
    pub reason: String,
    /// When to try again.
    pub retry_after: Duration,
}

/// What the writer needs to know about its storage.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// When a request's rows must be synced.
    pub sync: SyncMode,
    /// The spool's byte cap (`retention.maxBytes`), if any.
    pub max_spool_bytes: Option<u64>,
    /// Refuse new rows above this share of the file system in use, percent.
    pub max_disk_used_percent: f64,
}

struct Job {
    rows: Vec<Metric>,
    /// Whether this job's answer waits for the sync (`ingest.sync: request`); the earlier
    /// chunks of a request do not, its last job does, and covers them (jobs run in order).
    sync: bool,
    reply: oneshot::Sender<std::result::Result<(), WriteFailure>>,
}

/// Storage conditions last read, shared by the listener's checks.
#[derive(Default)]
struct Gauges {
    /// Spool bytes at the last read.
    spool_bytes: AtomicU64,
    /// File system use at the last read, in hundredths of a percent.
    disk_used_centi: AtomicU64,
    /// Whether the journal holds rows not yet synced (`interval` mode).
    dirty: AtomicBool,
    /// When the gauges were last read; held while they are read again, so requests arriving
    /// meanwhile wait for the fresh values instead of trusting stale (or never-read) ones.
    read_at: tokio::sync::Mutex<Option<Instant>>,
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    store: Store,
    spool: AsyncSpool,
    options: Arc<WriterOptions>,
    gauges: Arc<Gauges>,
}

impl Writer {
    /// The store it writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Start the writer task on the current runtime. It ends when every handle is dropped.
    pub fn start(store: Store, spool: AsyncSpool, options: WriterOptions) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        let options = Arc::new(options);
        let gauges = Arc::new(Gauges::default());
        tokio::spawn(run(rx, spool.clone(), options.clone(), gauges.clone()));
        Writer {
            tx,
            store,
            spool,
            options,
            gauges,
        }
    }

    /// Put `rows` and return once they are in the journal and synced as `ingest.sync` says.
    /// Empty requests return at once: there is nothing to make durable.
    pub async fn write(&self, rows: Vec<Metric>) -> std::result::Result<(), WriteFailure> {
        if rows.is_empty() {
            return Ok(());
        }
        self.submit(rows, true).await?.await.map_err(|_| closed())?
    }

    /// Put the rows arriving on `chunks` (in order) as they come, while the sender builds the
    /// next, and return once all are in the journal and synced as `ingest.sync` says: one
    /// sync after the last chunk covers them all. A request's rows are then never all in
    /// memory at once, and building rows overlaps with writing them.
    pub async fn write_chunks(
        &self,
        mut chunks: mpsc::Receiver<Vec<Metric>>,
    ) -> std::result::Result<(), WriteFailure> {
        let mut answers = Vec::new();
        while let Some(rows) = chunks.recv().await {
            if !rows.is_empty() {
                answers.push(self.submit(rows, false).await?);
            }
        }
        if answers.is_empty() {
            return Ok(());
        }
        // An empty job that waits for the sync: it runs after every chunk above.
        answers.push(self.submit(Vec::new(), true).await?);
        let mut outcome = Ok(());
        for answer in answers {
            let result = answer.await.map_err(|_| closed()).and_then(|r| r);
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }

    /// Queue one job; its answer comes on the returned channel.
    async fn submit(
        &self,
        rows: Vec<Metric>,
        sync: bool,
    ) -> std::result::Result<oneshot::Receiver<std::result::Result<(), WriteFailure>>, WriteFailure>
    {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { rows, sync, reply })
            .await
            .map_err(|_| closed())?;
        Ok(answer)
    }

    /// Whether storage can take more rows now; `Some` is the reason it cannot. Reads the
    /// spool's usage and the file system at most once a [`REFRESH`] (and the breaker always),
    /// so a flood of refused requests costs no storage calls.
    pub async fn pressure(&self) -> Option<Pressure> {
        if self.store.breaker_state() == BreakerState::Open {
            let last = self.store.breaker_last_failure().unwrap_or_default();
            return Some(Pressure {
                reason: format!("storage is failing, the circuit breaker is open: {last}"),
                retry_after: REFRESH,
            });
        }
        self.refresh().await;
        if let Some(cap) = self.options.max_spool_bytes {
            let bytes = self.gauges.spool_bytes.load(Ordering::Relaxed);
            if bytes >= cap {
                return Some(Pressure {
                    reason: format!(
                        "the spool holds {bytes} bytes, at its cap of {cap} (retention.maxBytes); \
                         it takes rows again once shipped segments are purged"
                    ),
                    retry_after: Duration::from_secs(5),
                });
            }
        }
        let used = self.gauges.disk_used_centi.load(Ordering::Relaxed) as f64 / 100.0;
        if used > self.options.max_disk_used_percent {
            return Some(Pressure {
                reason: format!(
                    "the file system is {used:.1}% used, above {:.1}% (health.maxDiskUsedPercent)",
                    self.options.max_disk_used_percent
                ),
                retry_after: Duration::from_secs(5),
            });
        }
        None
    }

    /// Read the spool's usage again if the last read is older than [`REFRESH`]. A failed read
    /// keeps the last values: the write itself will report a broken store.
    async fn refresh(&self) {
        let mut at = self.gauges.read_at.lock().await;
        if at.is_some_and(|t| t.elapsed() < REFRESH) {
            return;
        }
        *at = Some(Instant::now());
        if let Ok(usage) = self.spool.usage().await {
            self.gauges
                .spool_bytes
                .store(usage.total_bytes(), Ordering::Relaxed);
            if let Some(c) = usage.capacity.filter(|c| c.total > 0) {
                let used = c.total.saturating_sub(c.available) as f64 / c.total as f64;
                self.gauges
                    .disk_used_centi
                    .store((used * 10_000.0) as u64, Ordering::Relaxed);
            }
        }
    }
}

/// The writer task: one group commit per round, until every [`Writer`] is dropped; then a
/// last sync of anything written in `interval` mode.
async fn run(
    mut rx: mpsc::Receiver<Job>,
    spool: AsyncSpool,
    options: Arc<WriterOptions>,
    gauges: Arc<Gauges>,
) {
    let interval = match options.sync {
        SyncMode::Request => None,
        SyncMode::Interval(every) => Some(every),
    };
    let mut tick = tokio::time::interval(interval.unwrap_or(Duration::from_secs(3600)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut jobs = Vec::new();
    loop {
        tokio::select! {
            got = rx.recv_many(&mut jobs, QUEUE) => {
                if got == 0 {
                    break;
                }
                // Whatever else is already waiting joins this round, up to the row bound.
                let mut rows: usize = jobs.iter().map(|j| j.rows.len()).sum();
                while rows < MAX_ROWS_PER_COMMIT {
                    match rx.try_recv() {
                        Ok(job) => {
                            rows += job.rows.len();
                            jobs.push(job);
                        }
                        Err(_) => break,
                    }
                }
                commit(&spool, &options, &gauges, std::mem::take(&mut jobs)).await;
            }
            _ = tick.tick(), if interval.is_some() => {
                if gauges.dirty.swap(false, Ordering::AcqRel) {
                    if let Err(e) = spool.sync().await {
                        gauges.dirty.store(true, Ordering::Release);
                        eprintln!("edgestore serve: ingest: periodic journal sync failed: {e}");
                    }
                }
            }
        }
    }
    if gauges.dirty.swap(false, Ordering::AcqRel) {
        if let Err(e) = spool.sync().await {
            eprintln!("edgestore serve: ingest: final journal sync failed: {e}");
        }
    }
}

/// The failure every waiting request hears when the writer is gone.
fn closed() -> WriteFailure {
    WriteFailure::from(&Error::Closed)
}

/// Put every job's rows in one call, sync once if the mode says so and a job waits for it,
/// then answer each job with the outcome. A failure fails every job of the round: each sender retries, and the rows'
/// name-based ids make the rows a failed put may have left in the journal de-duplicable.
async fn commit(spool: &AsyncSpool, options: &WriterOptions, gauges: &Gauges, jobs: Vec<Job>) {
    let total: usize = jobs.iter().map(|j| j.rows.len()).sum();
    let wants_sync = jobs.iter().any(|j| j.sync);
    let mut rows = Vec::with_capacity(total);
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        rows.extend(job.rows);
        replies.push(job.reply);
    }
    let put = if rows.is_empty() {
        Ok(())
    } else {
        spool.put(rows).await
    };
    let outcome = match put {
        Ok(()) => match options.sync {
            SyncMode::Request if wants_sync => spool.sync().await,
            SyncMode::Request => {
                // Synced by the job that waits for it (the same request's last one).
                Ok(())
            }
            SyncMode::Interval(_) => {
                if total > 0 {
                    gauges.dirty.store(true, Ordering::Release);
                }
                Ok(())
            }
        },
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) => {
            let failure = WriteFailure::from(&e);
            for reply in replies {
                let _ = reply.send(Err(failure.clone()));
            }
        }
    }
}

/// Why a write failed, as every request of the failed round hears it: what the listener maps
/// to a status (code and class), the message, and the breaker's wait when it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// The error's code.
    pub code: ErrorCode,
    /// Its class: `transient` is 503, `resource` 429, the rest 500.
    pub class: ErrorClass,
    /// The error, for the response body.
    pub message: String,
    /// When the circuit breaker lets calls through again, if it is open.
    pub retry_in: Option<Duration>,
}

impl From<&Error> for WriteFailure {
    fn from(e: &Error) -> Self {
        WriteFailure {
            code: e.code(),
            class: e.class(),
            message: e.to_string(),
            retry_in: match e {
                Error::CircuitOpen { retry_in, .. } => Some(*retry_in),
                _ => None,
            },
        }
    }
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Engine, StoreConfig};
    use edgestore::sample::MetricGenerator;
    use edgestore::{SpoolConfig, TimeRange};

    async fn open(dir: &std::path::Path) -> (Store, AsyncSpool) {
        let store = Store::open(StoreConfig::new(Engine::Native, dir))
            .await
            .unwrap();
        let spool = store
            .spool("metrics", SpoolConfig::new("agent"))
            .await
            .unwrap();
        (store, spool)
    }

    /// How many times the store ran `operation`, from its own Prometheus histogram.
    fn calls(store: &Store, operation: &str) -> u64 {
        let text = store.metrics().gather_text().unwrap();
        let needle = format!("operation=\"{operation}\"}}");
        text.lines()
            .find(|l| {
                l.starts_with("edgestore_operation_duration_seconds_count") && l.contains(&needle)
            })
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |n| n.parse().unwrap())
    }

    fn options(sync: SyncMode, cap: Option<u64>) -> WriterOptions {
        WriterOptions {
            sync,
            max_spool_bytes: cap,
            max_disk_used_percent: 100.0,
        }
    }

    /// Requests waiting together are one put and one sync; each hears success only after it.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_requests_share_one_put_and_one_sync() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, spool) = open(tmp.path()).await;
        let writer = Writer::start(
            store.clone(),
            spool.clone(),
            options(SyncMode::Request, None),
        );
        let mut generator = MetricGenerator::new(7, 1_700_000_000_000);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let w = writer.clone();
            let rows = generator.batch(100);
            // On one thread, all eight are queued before the writer task runs again.
            tasks.spawn(async move { w.write(rows).await });
        }
        while let Some(outcome) = tasks.join_next().await {
            outcome.unwrap().unwrap();
        }
        assert_eq!(calls(&store, "spool.put"), 1);
        assert_eq!(calls(&store, "spool.sync"), 1);
        spool.flush().await.unwrap();
        let rows = spool
            .read_range(TimeRange::all())
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(rows.len(), 800);
        // An empty request costs nothing.
        writer.write(Vec::new()).await.unwrap();
        assert_eq!(calls(&store, "spool.put"), 1);
    }

    /// A request written in chunks: at most one put per chunk, one sync after the last, then
    /// the answer.
    #[tokio::test(flavor = "current_thread")]
    async fn chunks_are_put_in_order_and_synced_once() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, spool) = open(tmp.path()).await;
        let writer = Writer::start(
            store.clone(),
            spool.clone(),
            options(SyncMode::Request, None),
        );
        let rows = MetricGenerator::new(5, 1_700_000_000_000).batch(30);
        let (tx, rx) = mpsc::channel(2);
        let sent = rows.clone();
        let producer = tokio::spawn(async move {
            for chunk in sent.chunks(10) {
                tx.send(chunk.to_vec()).await.unwrap();
            }
        });
        writer.write_chunks(rx).await.unwrap();
        producer.await.unwrap();
        // Chunks queued together share a put; never more puts than chunks.
        assert!((1..=3).contains(&calls(&store, "spool.put")));
        assert_eq!(calls(&store, "spool.sync"), 1);
        spool.flush().await.unwrap();
        let back = spool
            .read_range(TimeRange::all())
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(back, rows, "every row, in order");
        // No chunk at all: nothing is put or synced.
        let (tx, rx) = mpsc::channel(1);
        drop(tx);
        writer.write_chunks(rx).await.unwrap();
        assert_eq!(calls(&store, "spool.sync"), 1);
    }

    /// `interval` answers before the sync; the timer syncs what was written, once.
    #[tokio::test(flavor = "current_thread")]
    async fn interval_mode_syncs_on_the_timer() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, spool) = open(tmp.path()).await;
        let every = Duration::from_millis(50);
        let writer = Writer::start(
            store.clone(),
            spool,
            options(SyncMode::Interval(every), None),
        );
        let rows = MetricGenerator::new(1, 0).batch(10);
        writer.write(rows).await.unwrap();
        assert_eq!(calls(&store, "spool.sync"), 0, "answered before any sync");
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls(&store, "spool.sync") == 0 && Instant::now() < deadline {
            tokio::time::sleep(every).await;
        }
        assert_eq!(calls(&store, "spool.sync"), 1);
        tokio::time::sleep(every * 4).await;
        assert_eq!(calls(&store, "spool.sync"), 1, "nothing new, no sync");
    }

    /// A spool at its byte cap is pressure, named, with a delay; under the cap there is none.
    #[tokio::test(flavor = "current_thread")]
    async fn a_spool_at_its_cap_is_pressure() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, spool) = open(tmp.path()).await;
        spool
            .put(MetricGenerator::new(3, 0).batch(50))
            .await
            .unwrap();
        spool.flush().await.unwrap();
        let used = spool.usage().await.unwrap().total_bytes();
        let free = Writer::start(
            store.clone(),
            spool.clone(),
            options(SyncMode::Request, Some(used + 1)),
        );
        assert_eq!(free.pressure().await, None);
        let full = Writer::start(store, spool, options(SyncMode::Request, Some(used)));
        // Requests arriving together before anything was read all wait for the first read:
        // none of them sees the never-read zero.
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let w = full.clone();
            checks.spawn(async move { w.pressure().await });
        }
        while let Some(p) = checks.join_next().await {
            let p = p.unwrap().expect("at the cap");
            assert!(p.reason.contains("retention.maxBytes"), "{}", p.reason);
            assert!(p.retry_after >= Duration::from_secs(1));
        }
    }
}
