//! What a store is opened with: [`StoreConfig`] (engine, data directory, grants, limits,
//! resilience) and its defaults, which are also the YAML configuration's
//! ([`crate::config`] maps that file onto this).

use std::path::PathBuf;
use std::time::Duration;

use crate::component::{ComponentLimits, ComponentSource};
use crate::grants::Labels;
use crate::resilience::{BreakerConfig, RetryConfig};

/// Which engine runs the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// The core linked into this process.
    Native,
    /// The core as a WebAssembly component in Wasmtime, sandboxed to the grants.
    Component(ComponentSource),
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
    /// [`crate::Error::Owned`] while another store owns it.
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
    /// The audit log (`DATA/.audit/`, [`crate::audit`]): its file size before rotating;
    /// `None` writes none. Only an owning store writes it.
    pub audit_max_bytes: Option<u64>,
    /// The key the audit log's checkpoints are written with (`None`: no checkpoints).
    pub audit_mac_key: Option<Vec<u8>>,
    /// Keys of the encrypted file databases, current first (empty: not encrypted). Opening
    /// as the owner encrypts a plaintext database in place and re-keys one under an older key.
    pub database_keys: Vec<edgestore::sql::sqlite::DatabaseKey>,
    /// The effective configuration's SHA-256 (`sha256:...`), recorded in the audit log when
    /// the store opens, so a configuration change shows there.
    pub config_digest: Option<String>,
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
            audit_max_bytes: None,
            audit_mac_key: None,
            database_keys: Vec::new(),
            config_digest: None,
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

impl StoreConfig {
    /// What the component's instance is held to.
    pub(crate) fn component_limits(&self) -> ComponentLimits {
        ComponentLimits {
            memory_limit: self.memory_limit,
            call_timeout: self.call_timeout,
            cache_dir: self.cache_dir.clone(),
        }
    }
}
