//! The typed async client, [`Store`]: the core's generic API (`Storage<M, Id>` and `tx`, the
//! spool) over either engine. One engine instance per store lives on a blocking thread owned by
//! a tokio task; callers send it jobs over a channel and await the replies, so a store handle is
//! cheap to clone and safe to use from many tasks. The same task's timer calls `flush-due` on
//! every open spool.
//!
//! Every operation goes through one dispatch (`Store::call`): it is timed and counted in the
//! store's [`Metrics`], guarded by its [`CircuitBreaker`], and retried with backoff when it
//! fails transiently ([`crate::resilience`]).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgestore::model::{Key, Row};
use edgestore::{Model, Schema, SpoolConfig, TxMode};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use self::owner::DirLock;
use crate::backend::native::NativeBackend;
use crate::backend::{on_table, Backend};
use crate::error::{Error, Result};
use crate::grants::Grants;
use crate::metrics::Metrics;
use crate::resilience::{retry, BreakerConfig, BreakerState, CircuitBreaker, RetryConfig};

mod config;
pub mod owner;
mod spool;
mod storage;
pub mod tx;

pub use self::config::{
    Engine, StoreConfig, DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MEMORY_LIMIT,
    DEFAULT_QUEUE_CAPACITY,
};
pub use self::spool::{AsyncReader, AsyncSpool};
pub use self::storage::AsyncStorage;
pub use crate::component::ComponentSource;
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
    /// The audit log, when this store owns the directory and keeps one.
    audit: Option<Arc<crate::audit::AuditLog>>,
}

/// An access the sandbox, a grant or a permission refused.
fn is_refusal(e: &Error) -> bool {
    matches!(
        e.code(),
        edgestore::ErrorCode::AccessDenied | edgestore::ErrorCode::PermissionDenied
    )
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
        let grants = Arc::new(
            Grants::new(&config.data_dir, config.read_only, config.labels.clone())?
                .with_database_keys(config.database_keys.clone()),
        );
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
            // Owner only, before either engine opens a database: encrypt or re-key in place.
            let built: Result<Box<dyn Backend>> = match grants.prepare_databases() {
                Err(e) => Err(Error::Store(e)),
                Ok(_) => match engine {
                    Engine::Native => Ok(Box::new(NativeBackend::new(
                        grants,
                        cfg.max_connections,
                        cfg.finish_worker,
                    ))),
                    Engine::Component(source) => crate::component::instance::ComponentBackend::new(
                        grants,
                        &cfg.component_limits(),
                        &source,
                    )
                    .map(|b| Box::new(b) as Box<dyn Backend>),
                },
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
        let audit = match (config.read_only, config.audit_max_bytes) {
            (false, Some(max)) => Some(Arc::new(
                crate::audit::AuditLog::open(&config.data_dir, max, engine_name, &config.command)
                    .and_then(|log| match &config.audit_mac_key {
                        Some(key) => {
                            let log = log.with_mac_key(key.clone());
                            log.checkpoint().map(|()| log)
                        }
                        None => Ok(log),
                    })
                    .map_err(|e| {
                        Error::Store(edgestore::Error::io(
                            format!("open the audit log in {}", config.data_dir.display()),
                            e,
                        ))
                    })?,
            )),
            _ => None,
        };
        if let Some(log) = &audit {
            // Who took the directory, with which configuration (a changed one reads as a new
            // digest here).
            let _ = log.append(&crate::audit::AuditEvent {
                op: "store.open".into(),
                target: config.config_digest.clone().unwrap_or_default(),
                ..crate::audit::AuditEvent::default()
            });
        }
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
                audit,
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
            if is_refusal(e) {
                self.audit(op, "", None, Err(e));
            }
        }
        out
    }

    /// Append to the audit log (when this store keeps one): `op` on `target`, touching
    /// `count`, with its outcome. A refused access is logged by the dispatch itself, so a
    /// caller's refusal is not logged twice. Failing to write the log is reported once on
    /// stderr; the operation's own outcome stands.
    pub fn audit(&self, op: &str, target: &str, count: Option<u64>, outcome: Result<(), &Error>) {
        let Some(log) = &self.shared.audit else {
            return;
        };
        let refused = outcome.as_ref().err().is_some_and(|e| is_refusal(e));
        let event = crate::audit::AuditEvent {
            op: op.to_owned(),
            target: target.to_owned(),
            count,
            error: outcome
                .err()
                .map(|e| (e.code().as_str().to_owned(), e.to_string())),
            refused,
            via: crate::audit::current_via(),
        };
        if let Err(e) = log.append(&event) {
            static WARNED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                eprintln!("edgestore: cannot write the audit log: {e}");
            }
        }
    }

    /// [`Store::audit`] of a mutation's result, unless it was a refusal (already logged).
    pub(crate) fn audit_result<R>(
        &self,
        op: &str,
        target: &str,
        count: impl FnOnce(&R) -> Option<u64>,
        out: &Result<R>,
    ) {
        match out {
            Ok(r) => self.audit(op, target, count(r), Ok(())),
            Err(e) if !is_refusal(e) => self.audit(op, target, None, Err(e)),
            Err(_) => {}
        }
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

    /// The breaker's settings (`resilience.breaker`): services that guard a dependency of their
    /// own (the shipper's target) use the same.
    pub fn breaker_config(&self) -> BreakerConfig {
        self.shared.breaker.config()
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
        let table = schema.table.clone();
        let out = self
            .call_once("tx", move |b| {
                let _mark = TxMark::begin(&activity);
                on_table(b, &schema.table, |ops| {
                    ops.nest(TxMode::Immediate, &mut |tx| {
                        rows.iter().try_for_each(|row| tx.upsert(row))
                    })
                })
            })
            .await;
        self.audit_result("db.upsert", &table, |_| Some(n), &out);
        out.map(|()| n)
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
        let deleted = out.iter().filter(|f| **f).count() as u64;
        self.audit("db.delete", &schema.table, Some(deleted), Ok(()));
        Ok(out)
    }

    /// One round trip through the owning task and the engine, doing nothing (a component
    /// calls `admin.ping`): the per-call overhead.
    pub async fn ping(&self) -> Result<()> {
        self.call("ping", |b| b.ping()).await
    }
}
