//! The typed async client, [`Store`]: the core's generic API (`Storage<M, Id>` and `tx`, the
//! spool) over either engine. One engine instance per store lives on a blocking thread owned by
//! a tokio task; callers send it jobs over a channel and await the replies, so a store handle is
//! cheap to clone and safe to use from many tasks. The same task's timer calls `flush-due` on
//! every open spool.
//!
//! Every operation goes through one dispatch ([`Store::call`]): it is timed and counted in the
//! store's [`Metrics`], guarded by its [`CircuitBreaker`], and retried with backoff when it
//! fails transiently ([`crate::resilience`]).

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgestore::model::{from_row, to_key, to_row, Key, Row};
use edgestore::spool::{PurgeReport, SegmentInfo, Usage, VerifyReport};
use edgestore::{Metric, Model, Query, Schema, SpoolConfig, TimeRange, TxMode};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::grants::{Grants, Labels};
use crate::metrics::Metrics;
use crate::native::NativeBackend;
use crate::ops::{on_spool, on_table, Backend, ReadFrom};
use crate::owner::DirLock;
use crate::resilience::{retry, BreakerConfig, BreakerState, CircuitBreaker, RetryConfig};
use crate::tx::TxStorage;

/// Which engine runs the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// The core linked into this process.
    Native,
    /// The core as a WebAssembly component in Wasmtime, sandboxed to the grants.
    Component(ComponentSource),
}

/// Where the component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A `.wasm` component file.
    File(PathBuf),
    /// The component's bytes.
    Bytes(Arc<[u8]>),
}

/// Everything a store needs. [`StoreConfig::new`] has the defaults.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Native or component.
    pub engine: Engine,
    /// The one directory the store may touch.
    pub data_dir: PathBuf,
    /// Open the data directory for inspection only: no ownership taken, spools opened without
    /// recovery (nothing written; mutations are `permission-denied`), databases read-only (a
    /// WAL reader beside the owner). Without it the store *owns* the data directory: it takes
    /// the directory's lock ([`crate::owner`]) for its whole life, and opening fails with
    /// [`Error::Owned`] while another store owns it.
    pub read_only: bool,
    /// Who this store is, for the owner record in the lock file (e.g. `edgestore serve`).
    pub command: String,
    /// Calls that may wait in the store's queue; more callers wait for room (up to
    /// `queue_wait`), so a burst of callers never turns into unbounded memory.
    pub queue_capacity: usize,
    /// How long a caller waits for room in a full queue before the call fails with `busy`
    /// (transient: the dispatch retries it).
    pub queue_wait: Duration,
    /// SQLite labels: what backs them and which are granted. The typed repository uses
    /// [`crate::grants::DEFAULT_LABEL`].
    pub labels: Labels,
    /// Cap on the instance's linear memory, bytes (component only; config `host.memoryLimit`).
    pub memory_limit: usize,
    /// Time bound of one call into the instance (component only; config `host.callTimeout`).
    pub call_timeout: Duration,
    /// Where compiled components are cached (component only); `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// How often the store calls `flush-due` on its spools; `None` never.
    pub flush_interval: Option<Duration>,
    /// Retry of transient failures (config `resilience.retry`).
    pub retry: RetryConfig,
    /// The circuit breaker in front of the engine (config `resilience.breaker`).
    pub breaker: BreakerConfig,
    /// SQLite connections the native engine may hold: one writer plus readers (the config's
    /// `database.maxConnections`). The component's SQLite runs one connection per store.
    pub max_connections: u32,
    /// Native engine: a second thread per spool compresses rotated segments (config
    /// `storage.finishWorker`; off by default). The component has no threads and ignores it.
    pub finish_worker: bool,
}

impl StoreConfig {
    /// Defaults, the same as the `edgestore` configuration's: the `default` label on
    /// `edgestore.sqlite`, read-write, a queue of [`DEFAULT_QUEUE_CAPACITY`] calls,
    /// [`DEFAULT_MEMORY_LIMIT`] (256 MiB), [`DEFAULT_CALL_TIMEOUT`] (30 s) per call,
    /// [`DEFAULT_MAX_CONNECTIONS`] (4) SQLite connections, [`RetryConfig::default`] and
    /// [`BreakerConfig::default`], no artifact cache, `flush-due` every second.
    pub fn new(engine: Engine, data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            engine,
            data_dir: data_dir.into(),
            read_only: false,
            command: "edgestore".to_owned(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_wait: Duration::from_secs(10),
            labels: Labels::default(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            cache_dir: None,
            flush_interval: Some(Duration::from_secs(1)),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            finish_worker: false,
        }
    }
}

/// Default [`StoreConfig::queue_capacity`] (config `host.maxQueuedCalls`).
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// Default [`StoreConfig::memory_limit`] (config `host.memoryLimit`): 256 MiB.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;

/// Default [`StoreConfig::call_timeout`] (config `host.callTimeout`): 30 s, room for a large
/// batch or a flush at a high compression level before the instance is stopped as hung.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Default [`StoreConfig::max_connections`] (config `database.maxConnections`): the writer
/// and three readers.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

type Work = Box<dyn FnOnce(&mut dyn Backend) + Send>;

enum Job {
    Run(Work),
    Shutdown(oneshot::Sender<()>),
}

/// What the store is doing, readable without going through its (possibly busy) owning task.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    /// When the last operation ended, UTC ms (0: none yet).
    last_op_ms: AtomicI64,
    /// When the transaction running now began, UTC ms (0: none).
    tx_since_ms: AtomicI64,
}

/// Marks a transaction as running on the owning thread until dropped (also on a panic).
struct TxMark<'a>(&'a Activity);

impl<'a> TxMark<'a> {
    fn begin(activity: &'a Activity) -> Self {
        activity
            .tx_since_ms
            .store(now_ms().max(1), Ordering::Relaxed);
        TxMark(activity)
    }
}

impl Drop for TxMark<'_> {
    fn drop(&mut self) {
        self.0.tx_since_ms.store(0, Ordering::Relaxed);
    }
}

/// What every handle on one store shares besides the job queue.
struct Shared {
    engine: &'static str,
    metrics: Metrics,
    breaker: CircuitBreaker,
    retry: RetryConfig,
    activity: Arc<Activity>,
    queue_wait: Duration,
    read_only: bool,
    /// The data directory's lock while this store owns it (the store's thread holds the only
    /// strong reference and drops it after the engine).
    lock: std::sync::Weak<std::sync::Mutex<DirLock>>,
    /// Spools open in this store by path: opening the same path again shares the spool (two
    /// spools on one directory would recover each other's journals).
    spools: tokio::sync::Mutex<std::collections::HashMap<String, (u64, SpoolConfig)>>,
}

/// A handle on one store. Clones share the same engine instance.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.shared.engine)
            .field("breaker", &self.shared.breaker)
            .finish_non_exhaustive()
    }
}

/// How long each side of the hop to the store's thread spins for the other before it sleeps.
/// Waking a sleeping thread costs tens of microseconds on a virtual machine (a futex wake-up
/// and, when the CPU idled, a halted vCPU to resume), twice per call; spinning this long
/// first turns a small call's round trip into a few microseconds, and costs at most this much
/// CPU after the last call of a burst.
const SPIN: Duration = Duration::from_micros(50);

/// The store thread's next job: spin on the queue for [`SPIN`], then sleep on it.
fn next_job(rx: &mut mpsc::Receiver<Job>) -> Option<Job> {
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) if start.elapsed() < SPIN => {
                std::hint::spin_loop();
            }
            Err(mpsc::error::TryRecvError::Empty) => return rx.blocking_recv(),
        }
    }
}

/// The reply to a job: spin for [`SPIN`] (a small call is done by then), then await it. The
/// spin holds the calling task's thread for at most that long.
async fn reply<R>(mut rx: oneshot::Receiver<Result<R>>) -> Result<R> {
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(out) => return out,
            Err(oneshot::error::TryRecvError::Closed) => return Err(Error::Closed),
            Err(oneshot::error::TryRecvError::Empty) if start.elapsed() < SPIN => {
                std::hint::spin_loop();
            }
            Err(oneshot::error::TryRecvError::Empty) => {
                return rx.await.map_err(|_| Error::Closed).and_then(|r| r);
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Store {
    /// Open a store: validate the grants, start the owning task, build the engine instance
    /// (compiling or loading the component), start the `flush-due` timer.
    pub async fn open(config: StoreConfig) -> Result<Store> {
        let grants = Arc::new(Grants::new(
            &config.data_dir,
            config.read_only,
            config.labels.clone(),
        )?);
        // The owner's lock comes before anything is opened, so a refused store touches nothing.
        let lock = if config.read_only {
            None
        } else {
            let dir = grants.dir();
            Some(Arc::new(std::sync::Mutex::new(DirLock::acquire(
                dir,
                grants.data_dir(),
                &config.command,
            )?)))
        };
        let weak_lock = lock
            .as_ref()
            .map_or_else(std::sync::Weak::new, Arc::downgrade);
        let (jobs, mut rx) = mpsc::channel::<Job>(config.queue_capacity.max(1));
        let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
        let engine = config.engine.clone();
        let engine_name = match engine {
            Engine::Native => "native",
            Engine::Component(_) => "component",
        };
        let metrics = Metrics::new(engine_name)?;
        let cfg = config.clone();
        tokio::task::spawn_blocking(move || {
            let built: Result<Box<dyn Backend>> = match engine {
                Engine::Native => Ok(Box::new(NativeBackend::new(
                    grants,
                    cfg.max_connections,
                    cfg.finish_worker,
                ))),
                Engine::Component(source) => {
                    crate::instance::ComponentBackend::new(grants, &cfg, &source)
                        .map(|b| Box::new(b) as Box<dyn Backend>)
                }
            };
            let mut backend = match built {
                Ok(b) => {
                    let _ = ready_tx.send(Ok(()));
                    b
                }
                Err(e) => {
                    drop(lock);
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Some(job) = next_job(&mut rx) {
                match job {
                    Job::Run(work) => work(backend.as_mut()),
                    Job::Shutdown(done) => {
                        // The engine (spools, databases) closes before the lock is released.
                        drop(backend);
                        drop(lock);
                        let _ = done.send(());
                        return;
                    }
                }
            }
            drop(backend);
            drop(lock);
        });
        ready_rx.await.map_err(|_| Error::Closed)??;
        let breaker = CircuitBreaker::new(config.breaker, Arc::new(edgestore::SystemClock));
        let store = Store {
            jobs,
            shared: Arc::new(Shared {
                engine: engine_name,
                metrics,
                breaker,
                retry: config.retry,
                activity: Arc::new(Activity::default()),
                queue_wait: config.queue_wait,
                read_only: config.read_only,
                lock: weak_lock,
                spools: tokio::sync::Mutex::new(std::collections::HashMap::new()),
            }),
        };
        if let Some(every) = config.flush_interval {
            let weak = store.jobs.downgrade();
            let metrics = store.shared.metrics.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(jobs) = weak.upgrade() else { break };
                    let metrics = metrics.clone();
                    let job = Job::Run(Box::new(move |b| {
                        metrics.spool_segments(b.flush_due_all(now_ms()));
                    }));
                    // A full queue skips this tick: the next one catches up.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = jobs.try_send(job) {
                        break;
                    }
                }
            });
        }
        Ok(store)
    }

    /// The dispatch every operation goes through: run `f` on the owning thread as operation
    /// `op`, retrying transient failures (so `f` must be re-callable). Each attempt is timed,
    /// counted and guarded by the breaker.
    pub(crate) async fn call<R, F>(&self, op: &'static str, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: Fn(&mut dyn Backend) -> Result<R> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        retry(
            &self.shared.retry,
            || {
                let f = f.clone();
                self.attempt(op, move |b| f(b))
            },
            tokio::time::sleep,
            |_| self.shared.metrics.retry(op),
        )
        .await
    }

    /// [`Store::call`] for work that cannot run twice (a transaction's caller closure): one
    /// attempt, timed, counted and guarded, never retried.
    pub(crate) async fn call_once<R: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut dyn Backend) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.attempt(op, f).await
    }

    async fn attempt<R: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut dyn Backend) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let sh = &self.shared;
        let permit = match sh.breaker.admit() {
            Ok(p) => p,
            Err(e) => {
                sh.metrics.error(&e);
                return Err(e);
            }
        };
        let start = Instant::now();
        let (tx, rx) = oneshot::channel();
        let metrics = sh.metrics.clone();
        let job = Job::Run(Box::new(move |b| {
            let out = f(b);
            metrics.set_open_connections(b.open_connections());
            let _ = tx.send(out);
        }));
        let out = match tokio::time::timeout(sh.queue_wait, self.jobs.send(job)).await {
            Ok(Ok(())) => reply(rx).await,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Store(edgestore::Error::new(
                edgestore::ErrorCode::Busy,
                format!(
                    "the store's queue stayed full for {:?} ({} calls waiting)",
                    sh.queue_wait,
                    self.jobs.max_capacity()
                ),
            ))),
        };
        sh.metrics.observe(op, start.elapsed());
        sh.breaker.record(permit, &out);
        sh.metrics.set_breaker(sh.breaker.state());
        sh.activity.last_op_ms.store(now_ms(), Ordering::Relaxed);
        if let Err(e) = &out {
            sh.metrics.error(e);
        }
        out
    }

    /// This store's metrics (its own registry).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// `native` or `component`.
    pub fn engine_name(&self) -> &'static str {
        self.shared.engine
    }

    /// The circuit breaker's state now (also refreshes its gauge).
    pub fn breaker_state(&self) -> BreakerState {
        let state = self.shared.breaker.state();
        self.shared.metrics.set_breaker(state);
        state
    }

    /// The failure that opened the circuit last, in words.
    pub fn breaker_last_failure(&self) -> Option<String> {
        self.shared.breaker.last_failure()
    }

    /// When the last operation through this handle's store ended, UTC ms.
    pub fn last_operation_ms(&self) -> Option<i64> {
        match self.shared.activity.last_op_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// When the transaction running now began, UTC ms: read without queueing behind it.
    pub fn transaction_open_since_ms(&self) -> Option<i64> {
        match self.shared.activity.tx_since_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// The engine's own health checks (database `SELECT 1`, spool usage): one line per failed
    /// check, empty when healthy.
    pub async fn engine_health(&self) -> Result<Vec<String>> {
        self.call("health", |b| b.engine_health()).await
    }

    /// Register model `M` (create or migrate its table) and return its typed storage.
    pub async fn storage<M, Id>(&self) -> Result<AsyncStorage<M, Id>>
    where
        M: Model + Send + Sync + 'static,
        Id: Serialize + ?Sized,
    {
        let schema = Arc::new(M::schema());
        let s = schema.clone();
        self.call("register", move |b| b.register(&s)).await?;
        Ok(AsyncStorage {
            store: self.clone(),
            schema,
            _model: PhantomData,
        })
    }

    /// Open (and, as owner, recover) a spool in `path`, relative to the data directory; an
    /// inspecting store ([`StoreConfig::read_only`]) opens it without recovery. Opening a
    /// path this store already opened returns the same spool (with the same configuration;
    /// another is `invalid-input`).
    pub async fn spool(&self, path: &str, config: SpoolConfig) -> Result<AsyncSpool> {
        let max_records = config.max_records.max(1);
        let identifier = config.identifier.clone();
        let mut open = self.shared.spools.lock().await;
        let id = match open.get(path) {
            Some((id, existing)) if *existing == config => *id,
            Some(_) => {
                return Err(Error::Store(edgestore::Error::invalid_input(format!(
                    "the spool {path} is already open in this store with another configuration"
                ))))
            }
            None => {
                let (p, c) = (path.to_owned(), config.clone());
                let id = self
                    .call("spool.open", move |b| b.open_spool(&p, &c))
                    .await?;
                open.insert(path.to_owned(), (id, config));
                id
            }
        };
        drop(open);
        Ok(AsyncSpool {
            store: self.clone(),
            id,
            max_records,
            identifier,
        })
    }

    /// Stop the store: the engine (and its spools, databases and instance) is dropped before
    /// this returns; every other handle then gets [`Error::Closed`]. Unflushed spool rows stay
    /// in their journal and are recovered on the next open.
    pub async fn close(self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Shutdown(tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// True when this store only inspects its data directory (see [`StoreConfig::read_only`]).
    pub fn is_inspector(&self) -> bool {
        self.shared.read_only
    }

    /// The owner record this store wrote into the data directory's lock file, while it owns
    /// the directory.
    pub fn owner_record(&self) -> Option<edgestore::owner::OwnerRecord> {
        let lock = self.shared.lock.upgrade()?;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        Some(guard.record().clone())
    }

    /// Record the admin endpoint other processes forward mutations to (the owner record in
    /// the lock file). An inspecting store has no record: `invalid-input`.
    pub fn set_admin_endpoint(&self, admin: Option<String>) -> Result<()> {
        let lock = self.shared.lock.upgrade().ok_or_else(|| {
            Error::Store(edgestore::Error::invalid_input(
                "only the store that owns the data directory has an admin endpoint",
            ))
        })?;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        guard.set_admin(admin)
    }

    /// Upsert `rows` of the model `schema` describes, in one transaction, registering the
    /// model first (a matching table is left alone): the dynamic form of a batch of
    /// [`AsyncStorage::upsert`], for callers that hold rows rather than Rust types (the
    /// admin endpoint). Returns the rows written.
    pub async fn upsert_rows(&self, schema: Schema, rows: Vec<Row>) -> Result<u64> {
        let schema = Arc::new(schema);
        let s = schema.clone();
        self.call("register", move |b| b.register(&s)).await?;
        let n = rows.len() as u64;
        let activity = self.shared.activity.clone();
        self.call_once("tx", move |b| {
            let _mark = TxMark::begin(&activity);
            on_table(b, &schema.table, |ops| {
                ops.nest(TxMode::Immediate, &mut |tx| {
                    rows.iter().try_for_each(|row| tx.upsert(row))
                })
            })
        })
        .await?;
        Ok(n)
    }

    /// Delete rows of the model `schema` describes by key, in order, stopping after the first
    /// key that matches nothing: one entry per key handled, the last `false` when one was
    /// missing.
    pub async fn delete_keys(&self, schema: Schema, keys: Vec<Key>) -> Result<Vec<bool>> {
        let schema = Arc::new(schema);
        let s = schema.clone();
        self.call("register", move |b| b.register(&s)).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let table = schema.table.clone();
            let found = self
                .call("delete", move |b| {
                    on_table(b, &table, |ops| ops.delete(&key))
                })
                .await?;
            out.push(found);
            if !found {
                break;
            }
        }
        Ok(out)
    }

    /// One round trip through the owning task and the engine, doing nothing (a component
    /// calls `admin.ping`): the per-call overhead.
    pub async fn ping(&self) -> Result<()> {
        self.call("ping", |b| b.ping()).await
    }
}

/// Typed, async storage of model `M` keyed by `Id`: the core's `Storage<M, Id>` operations.
pub struct AsyncStorage<M, Id: ?Sized> {
    store: Store,
    schema: Arc<Schema>,
    _model: PhantomData<crate::tx::Marker<M, Id>>,
}

impl<M, Id: ?Sized> std::fmt::Debug for AsyncStorage<M, Id> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncStorage")
            .field("table", &self.schema.table)
            .finish_non_exhaustive()
    }
}

impl<M, Id: ?Sized> Clone for AsyncStorage<M, Id> {
    fn clone(&self) -> Self {
        AsyncStorage {
            store: self.store.clone(),
            schema: self.schema.clone(),
            _model: PhantomData,
        }
    }
}

impl<M, Id> AsyncStorage<M, Id>
where
    M: Model + Send + Sync + 'static,
    Id: Serialize + ?Sized,
{
    async fn table<R: Send + 'static>(
        &self,
        op: &'static str,
        f: impl Fn(&dyn crate::ops::DynOps, &Schema) -> edgestore::Result<R> + Send + Sync + 'static,
    ) -> Result<R> {
        let schema = self.schema.clone();
        self.store
            .call(op, move |b| {
                on_table(b, &schema.table, |ops| f(ops, &schema))
            })
            .await
    }

    /// The model's schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Insert one item (per the schema's create mode); `false` when ignored.
    pub async fn create(&self, item: &M) -> Result<bool> {
        let row = to_row(&self.schema, item)?;
        self.table("create", move |ops, _| ops.create(&row)).await
    }

    /// Insert many items atomically in one call; returns how many were inserted.
    pub async fn create_many(&self, items: &[M]) -> Result<u64> {
        let rows = items
            .iter()
            .map(|m| to_row(&self.schema, m))
            .collect::<edgestore::Result<Vec<_>>>()?;
        // The dispatch may retry a transient failure, so each attempt gets its own copy (the
        // engine consumes the rows); a copy costs far less than the insert it feeds.
        self.table("create_many", move |ops, _| ops.create_many(rows.clone()))
            .await
    }

    /// Insert, or update the mutable columns of the row with the same key.
    pub async fn upsert(&self, item: &M) -> Result<()> {
        let row = to_row(&self.schema, item)?;
        self.table("upsert", move |ops, _| ops.upsert(&row)).await
    }

    /// Insert unless the key exists; `true` when inserted.
    pub async fn insert_or_ignore(&self, item: &M) -> Result<bool> {
        let row = to_row(&self.schema, item)?;
        self.table("insert_or_ignore", move |ops, _| ops.insert_or_ignore(&row))
            .await
    }

    /// The item with this id; a missing row is `not-found`.
    pub async fn get(&self, id: &Id) -> Result<M> {
        let key = to_key(&self.schema, id)?;
        self.table("get", move |ops, schema| from_row(schema, ops.get(&key)?))
            .await
    }

    /// The first item matching the query.
    pub async fn find_first(&self, query: &Query) -> Result<Option<M>> {
        let q = query.clone().limit(1);
        let mut all = self.find_all_query(q).await?;
        Ok(if all.is_empty() {
            None
        } else {
            Some(all.swap_remove(0))
        })
    }

    /// Every item matching the query.
    pub async fn find_all(&self, query: &Query) -> Result<Vec<M>> {
        self.find_all_query(query.clone()).await
    }

    async fn find_all_query(&self, q: Query) -> Result<Vec<M>> {
        self.table("find", move |ops, schema| {
            ops.find(&q)?
                .into_iter()
                .map(|r| from_row(schema, r))
                .collect()
        })
        .await
    }

    /// Overwrite the mutable columns of the row with the item's key; `not-found` if none.
    pub async fn update(&self, item: &M) -> Result<()> {
        let row = to_row(&self.schema, item)?;
        self.table("update", move |ops, _| ops.update(&row)).await
    }

    /// Delete by id; `false` when there was nothing to delete.
    pub async fn delete(&self, id: &Id) -> Result<bool> {
        let key = to_key(&self.schema, id)?;
        self.table("delete", move |ops, _| ops.delete(&key)).await
    }

    /// Delete every row; returns how many.
    pub async fn delete_all(&self) -> Result<u64> {
        self.table("delete_all", |ops, _| ops.delete_all()).await
    }

    /// Number of rows.
    pub async fn count(&self) -> Result<u64> {
        self.table("count", |ops, _| ops.count()).await
    }

    /// Run `f` in an immediate transaction on the owning thread. `f` gets a view implementing
    /// the core's sync traits (`Creator`, `Reader`, `Updater`, `Deleter`, `StorageCommon`,
    /// so `Storage<M, Id>`); `Ok` commits, `Err` rolls back, `tx.tx(..)` nests a savepoint.
    pub async fn tx<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&TxStorage<'t, M, Id>) -> edgestore::Result<R> + Send + 'static,
    {
        self.tx_with(TxMode::Immediate, f).await
    }

    /// [`AsyncStorage::tx`] with a chosen mode.
    pub async fn tx_with<R, F>(&self, mode: TxMode, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&TxStorage<'t, M, Id>) -> edgestore::Result<R> + Send + 'static,
    {
        let schema = self.schema.clone();
        let activity = self.store.shared.activity.clone();
        self.store
            .call_once("tx", move |b| {
                let _mark = TxMark::begin(&activity);
                on_table(b, &schema.table, |ops| {
                    let mut f = Some(f);
                    let mut out = None;
                    ops.nest(mode, &mut |tx| {
                        let f = f.take().ok_or_else(|| {
                            edgestore::Error::internal("transaction closure ran twice")
                        })?;
                        out = Some(f(&TxStorage::new(tx, &schema))?);
                        Ok(())
                    })?;
                    out.ok_or_else(|| edgestore::Error::internal("transaction closure did not run"))
                })
            })
            .await
    }
}

/// An open spool of metrics and JSON documents.
#[derive(Clone, Debug)]
pub struct AsyncSpool {
    store: Store,
    id: u64,
    max_records: u64,
    identifier: String,
}

impl AsyncSpool {
    async fn on<R: Send + 'static>(
        &self,
        op: &'static str,
        f: impl Fn(&dyn crate::ops::DynSpool) -> edgestore::Result<R> + Send + Sync + 'static,
    ) -> Result<R> {
        let id = self.id;
        self.store.call(op, move |b| on_spool(b, id, &f)).await
    }

    /// Segments finished while `finished_rows` rows left the pending count: rotation happens
    /// at `max_records`, so this is exact unless an interval rotation split a segment early.
    fn count_segments(&self, finished_rows: u64) {
        self.store
            .metrics()
            .spool_segments(finished_rows.div_ceil(self.max_records));
    }

    /// The identifier that names this spool's segments.
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// Rows in the journals on disk, not yet in finished segments: for an inspecting store,
    /// what the owner holds in its active journal (or a killed process left behind).
    pub async fn journal_rows(&self) -> Result<u64> {
        self.on("spool.journal_rows", |s| s.journal_rows()).await
    }

    /// Append metrics (one call for the whole batch).
    pub async fn put(&self, rows: Vec<Metric>) -> Result<()> {
        let n = rows.len() as u64;
        let finished = self
            .on("spool.put", move |s| {
                let before = s.pending()?;
                s.put(&rows)?;
                Ok((before + n).saturating_sub(s.pending()?))
            })
            .await?;
        self.store.metrics().spool_rows(n);
        self.count_segments(finished);
        Ok(())
    }
    /// Append JSON documents, each one JSON value as text, stored verbatim (a document that
    /// spans lines is compacted). The first malformed one fails the whole batch
    /// (`invalid-input` naming its position) and nothing of the batch is written.
    pub async fn put_documents(&self, docs: Vec<String>) -> Result<()> {
        let n = docs.len() as u64;
        // Cloned per attempt: the dispatch may retry a transient failure.
        self.on("spool.put_documents", move |s| {
            s.put_documents(docs.clone())
        })
        .await?;
        self.store.metrics().spool_rows(n);
        Ok(())
    }
    /// Finish the active segment: every row put before is durable in a finished segment.
    pub async fn flush(&self) -> Result<()> {
        let finished = self
            .on("spool.flush", |s| {
                let before = s.pending()?;
                s.flush()?;
                Ok(before.saturating_sub(s.pending()?))
            })
            .await?;
        self.count_segments(finished);
        Ok(())
    }
    /// Finish the active segment if its interval has passed at `now_ms`.
    pub async fn flush_due(&self, now_ms: i64) -> Result<u64> {
        let n = self
            .on("spool.flush_due", move |s| s.flush_due(now_ms))
            .await?;
        self.store.metrics().spool_segments(n);
        Ok(n)
    }
    /// Make the active segment's rows durable without finishing it.
    pub async fn sync(&self) -> Result<()> {
        self.on("spool.sync", |s| s.sync()).await
    }
    /// Rows not yet in a finished segment.
    pub async fn pending(&self) -> Result<u64> {
        self.on("spool.pending", |s| s.pending()).await
    }
    /// Finished segments overlapping `range`.
    pub async fn segments(&self, range: TimeRange) -> Result<Vec<SegmentInfo>> {
        self.on("spool.segments", move |s| s.segments(range)).await
    }
    /// Move segments to `uploaded/`; returns how many moved.
    pub async fn mark_uploaded(&self, names: Vec<String>) -> Result<u64> {
        self.on("spool.mark_uploaded", move |s| s.mark_uploaded(&names))
            .await
    }
    /// Apply retention and the byte cap.
    pub async fn purge(&self) -> Result<PurgeReport> {
        self.on("spool.purge", |s| s.purge()).await
    }
    /// Bytes and files by state.
    pub async fn usage(&self) -> Result<Usage> {
        self.on("spool.usage", |s| s.usage()).await
    }
    /// Verify every finished segment; quarantine the bad ones.
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.on("spool.verify", |s| s.verify()).await
    }
    /// Stream every pending segment overlapping `range`, oldest first.
    pub async fn read_range(&self, range: TimeRange) -> Result<AsyncReader> {
        self.reader(ReadFrom::Range(range)).await
    }
    /// Stream one finished segment.
    pub async fn read_segment(&self, name: &str) -> Result<AsyncReader> {
        self.reader(ReadFrom::Segment(name.to_owned())).await
    }
    async fn reader(&self, from: ReadFrom) -> Result<AsyncReader> {
        let spool = self.id;
        let id = self
            .store
            .call("reader.open", move |b| b.open_reader(spool, from.clone()))
            .await?;
        Ok(AsyncReader {
            store: self.store.clone(),
            id,
        })
    }
}

/// A streaming reader of metrics; closed when dropped.
#[derive(Debug)]
pub struct AsyncReader {
    store: Store,
    id: u64,
}

impl AsyncReader {
    /// Up to `max` next metrics; empty at the end.
    pub async fn next(&mut self, max: u32) -> Result<Vec<Metric>> {
        let id = self.id;
        self.store
            .call("reader.next", move |b| b.read(id, max))
            .await
    }

    /// Up to `max` next rows as the JSON text stored (a metric's canonical serialisation, a
    /// document's own bytes); empty at the end.
    pub async fn next_documents(&mut self, max: u32) -> Result<Vec<String>> {
        let id = self.id;
        self.store
            .call("reader.next_documents", move |b| b.read_documents(id, max))
            .await
    }

    /// Every remaining metric.
    pub async fn collect(mut self) -> Result<Vec<Metric>> {
        let mut all = Vec::new();
        loop {
            let batch = self.next(10_000).await?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }
}

impl Drop for AsyncReader {
    fn drop(&mut self) {
        let id = self.id;
        let job = Job::Run(Box::new(move |b| b.close_reader(id)));
        // A full queue: close it once there is room (a closed store dropped it already).
        if let Err(mpsc::error::TrySendError::Full(job)) = self.store.jobs.try_send(job) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let jobs = self.store.jobs.clone();
                rt.spawn(async move {
                    let _ = jobs.send(job).await;
                });
            }
        }
    }
}
