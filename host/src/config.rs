//! The `edgestore` configuration: one YAML shape (camelCase keys), merged in a fixed order
//! — built-in defaults < config file < `EDGESTORE_<SECTION>_<KEY>` environment variables <
//! command-line flags — then validated and mapped to the client's [`StoreConfig`] and the
//! core's [`SpoolConfig`] here, in one place.
//!
//! How the layers merge: every layer is a YAML tree. The defaults are [`Config::default`]
//! serialised, so the set of known keys (and the environment variable of each) is derived from
//! the types themselves, never from a hand-kept list. An unknown key in the file, an
//! `EDGESTORE_*` variable that names no key, a value of the wrong type and a value out of range
//! all fail with a [`ConfigError`] that names the dotted key (`storage.compressionLevel`), the
//! bad value and where it came from.
//!
//! One set of defaults: the sections `resilience.retry`, `resilience.breaker` and `health` are
//! the library's own [`RetryConfig`], [`BreakerConfig`] and [`HealthConfig`], and the other
//! limits take their defaults from the same constants as [`StoreConfig::new`] and
//! [`SpoolConfig::new`], so a store opened with no configuration behaves like the CLI with
//! none.
//!
//! Paths: `database.dsn` and `storage.path` are relative to `host.dataDir` (absolute paths are
//! accepted only when they point inside it); anything that would leave the data directory is an
//! error naming the key. With no file and no variables, the embedded default is
//! `./edgestore-data/` holding `edgestore.sqlite` and `metrics/`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use edgestore::sql::sqlite::DatabaseKey;
use edgestore::SpoolConfig;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use crate::client::{
    ComponentSource, Engine, StoreConfig, DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MEMORY_LIMIT, DEFAULT_QUEUE_CAPACITY,
};
use crate::grants::{DbTarget, Labels, DEFAULT_LABEL};
pub use crate::ops::health::HealthConfig;
pub use crate::ops::ingest::IngestConfig;
pub use crate::ops::ship::ShipConfig;
pub use crate::ops::tls::TlsConfig;
pub use crate::resilience::{BreakerConfig, RetryConfig};

use crate::duration;

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "EDGESTORE_";

/// `EDGESTORE_*` variables that are not config keys: the build's and the tools' own (the
/// embedded component's path that cargo also exports to tests, the bench's child marker, the
/// standalone component's path, sysroot, data directory and journal mode). They are left alone;
/// any other unknown `EDGESTORE_*` name is an error, so a typo never goes unnoticed.
pub const RESERVED_VARIABLES: &[&str] = &[
    crate::keys::KEY_ENV,
    "EDGESTORE_PLUGIN_COMPONENT",
    "EDGESTORE_BENCH_CHILD",
    "EDGESTORE_STANDALONE_WASM",
    "EDGESTORE_WASI_SYSROOT",
    "EDGESTORE_DATA",
    "EDGESTORE_JOURNAL",
    "EDGESTORE_COMPONENT",
    "EDGESTORE_REQUIRE_COMPONENT",
];

/// A configuration that cannot be used. Every variant names the dotted key.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("config file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is not YAML, or its top level is not a mapping.
    #[error("config file {path}: not a YAML mapping: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A key the configuration does not have.
    #[error("unknown config key `{key}` (from {origin})")]
    UnknownKey {
        /// Dotted key.
        key: String,
        /// File, variable or flag.
        origin: String,
    },
    /// An `EDGESTORE_*` variable that names no key.
    #[error("unknown environment variable {name}: no config key has this name")]
    UnknownVariable {
        /// The variable.
        name: String,
    },
    /// A value of the wrong type.
    #[error("config key `{key}`: bad value {value} (from {origin}): {reason}")]
    BadType {
        /// Dotted key.
        key: String,
        /// The value as given.
        value: String,
        /// File, variable or flag.
        origin: String,
        /// What was expected.
        reason: String,
    },
    /// A value of the right type outside its range, or a path leaving the data directory.
    #[error("config key `{key}`: bad value {value}: {reason}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// The value.
        value: String,
        /// The rule it breaks.
        reason: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// The repository's SQLite database.
    pub database: DatabaseConfig,
    /// The metrics spool.
    pub storage: StorageConfig,
    /// The engine and its sandbox.
    pub host: HostConfig,
    /// Spool retention.
    pub retention: RetentionConfig,
    /// Retry and circuit breaker of every store the commands open.
    pub resilience: ResilienceConfig,
    /// Health thresholds (`health` and `serve`'s `/healthz`), the library's own type.
    pub health: HealthConfig,
    /// The HTTP endpoint of `serve`.
    pub serve: ServeConfig,
    /// Prometheus remote write and OTLP received by `serve`, the library's own type.
    pub ingest: IngestConfig,
    /// Finished segments shipped to object storage, the library's own type.
    pub ship: ShipConfig,
    /// Continuous backup of the databases, the library's own type.
    pub backup: crate::ops::backup::BackupConfig,
    /// The hash-chained audit log, the library's own type.
    pub audit: crate::audit::AuditConfig,
    /// Encryption at rest: the key file and extra recipients, the library's own type.
    pub encryption: crate::keys::EncryptionConfig,
}

/// `database.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseType {
    /// A SQLite file inside the data directory.
    Sqlite,
    /// A private in-memory database (gone when the process exits).
    Memory,
}

/// `database`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite` or `memory`.
    #[serde(rename = "type")]
    pub kind: DatabaseType,
    /// The database file, a plain file name inside the data directory (or `:memory:`).
    pub dsn: String,
    /// Connections of the pool (the writer included), at least 1.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            kind: DatabaseType::Sqlite,
            dsn: crate::grants::DEFAULT_DATABASE_FILE.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// `storage.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// Brotli segments on disk.
    Disk,
}

/// `storage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `disk`.
    #[serde(rename = "type")]
    pub kind: StorageType,
    /// The spool directory, relative to the data directory.
    pub path: String,
    /// Brotli quality, 0..=11.
    pub compression_level: u32,
    /// Rows per segment, at least 1.
    pub max_records: u64,
    /// A segment is finished this long after its first row.
    #[serde(with = "duration")]
    pub max_interval: Duration,
    /// Native engine only: compress rotated segments on a second thread (`FinishWorker`), so
    /// `put` goes on meanwhile (1.7x at level 6 on two cores). Off by default: rotation then
    /// finishes inside `put`, as the component always does, so a segment is listed as soon
    /// as the `put` that filled it returns.
    pub finish_worker: bool,
}

impl Default for StorageConfig {
    /// The core's [`SpoolConfig::new`] values.
    fn default() -> Self {
        let spool = SpoolConfig::new("");
        StorageConfig {
            kind: StorageType::Disk,
            path: edgestore::layout::DEFAULT_SPOOL_PATH.to_owned(),
            compression_level: spool.compression_level,
            max_records: spool.max_records,
            max_interval: spool.max_interval,
            finish_worker: false,
        }
    }
}

/// `host.engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// The sandboxed WebAssembly component (embedded in this binary).
    Component,
    /// The core linked into this process.
    Native,
}

impl EngineKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Component => "component",
            EngineKind::Native => "native",
        }
    }
}

/// `host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HostConfig {
    /// Which engine runs the core.
    pub engine: EngineKind,
    /// Cap on the component's linear memory, bytes (at least 1 MiB).
    pub memory_limit: u64,
    /// Time bound of one call into the component.
    #[serde(with = "duration")]
    pub call_timeout: Duration,
    /// The one directory the store may touch.
    pub data_dir: PathBuf,
    /// Compiled-component cache, outside the data directory (the guest must not be able to
    /// write compiled code). Unset: `$XDG_CACHE_HOME/edgestore` or `~/.cache/edgestore`.
    pub cache_dir: Option<PathBuf>,
    /// Calls that may wait for the store (at least 1); further callers wait for room.
    pub max_queued_calls: usize,
}

impl Default for HostConfig {
    /// The engine and data directory of the CLI; the limits are [`StoreConfig::new`]'s.
    fn default() -> Self {
        HostConfig {
            engine: EngineKind::Component,
            memory_limit: u64::try_from(DEFAULT_MEMORY_LIMIT).unwrap_or(u64::MAX),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            data_dir: PathBuf::from("./edgestore-data"),
            cache_dir: None,
            max_queued_calls: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

/// `retention`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// `purge` deletes uploaded segments older than this.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// Hard cap on the spool's bytes; unset means none.
    pub max_bytes: Option<u64>,
    /// Whether `purge` may drop never-uploaded segments to get under `maxBytes`.
    pub drop_pending: bool,
}

impl Default for RetentionConfig {
    /// The core's [`SpoolConfig::new`] values.
    fn default() -> Self {
        let spool = SpoolConfig::new("");
        RetentionConfig {
            max_age: spool.retention,
            max_bytes: spool.max_bytes,
            drop_pending: spool.drop_pending_over_cap,
        }
    }
}

/// `resilience`: the store's own runtime types, so the library and the configuration share
/// one set of defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResilienceConfig {
    /// Retry of transient errors (`resilience.retry`).
    pub retry: RetryConfig,
    /// The circuit breaker (`resilience.breaker`).
    pub breaker: BreakerConfig,
}

/// `serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address of the HTTP endpoint.
    pub listen: SocketAddr,
    /// Serve the admin socket in the data directory (`.edgestore.sock`, mode 0600), through
    /// which other processes' mutating commands (`spool put|flush|ack|purge|verify`,
    /// `db put|delete`) are forwarded to this owner. Off: they are refused while it runs.
    pub admin: bool,
    /// HTTPS on the listener: `{certFile, keyFile}` (PEM); none serves plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            admin: true,
            tls: None,
        }
    }
}

/// The command-line layer: dotted keys and their values as text (parsed like environment
/// values). Global flags map to `host.dataDir` and `host.engine`; a command adds its own.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    set: Vec<(String, String, String)>,
}

impl Flags {
    /// No flags.
    pub fn new() -> Self {
        Flags::default()
    }

    /// Set `key` (dotted, e.g. `storage.compressionLevel`) from flag `flag` (for messages).
    pub fn set(&mut self, key: &str, flag: &str, value: impl Into<String>) -> &mut Self {
        self.set
            .push((key.to_owned(), flag.to_owned(), value.into()));
        self
    }
}

/// Where a value came from, for messages.
type Sources = BTreeMap<String, String>;

impl Config {
    /// Load: defaults, then `file` (if any), then the `EDGESTORE_*` pairs of `env`, then
    /// `flags`; validate.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Flags,
    ) -> Result<Config, ConfigError> {
        let defaults = to_tree(&Config::default());
        let leaves = leaf_keys(&defaults);
        let mut tree = defaults.clone();
        let mut sources = Sources::new();

        if let Some(path) = file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let value: Value = serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Syntax {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            match value {
                // An empty file is no settings at all.
                Value::Null => {}
                Value::Mapping(_) => merge(
                    &mut tree,
                    &defaults,
                    value,
                    "",
                    &format!("file {shown}"),
                    &mut sources,
                )?,
                _ => {
                    return Err(ConfigError::Syntax {
                        path: shown,
                        reason: "the top level must be a mapping of sections".into(),
                    })
                }
            }
        }

        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !RESERVED_VARIABLES.contains(&k.as_str()))
            .collect();
        vars.sort();
        for (name, text) in vars {
            let Some(key) = leaves.iter().find(|k| env_name(k) == name) else {
                return Err(ConfigError::UnknownVariable { name });
            };
            set_leaf(&mut tree, &defaults, key, &text);
            sources.insert(key.clone(), format!("environment {name}"));
        }

        for (key, flag, text) in &flags.set {
            if !leaves.contains(key) {
                return Err(ConfigError::UnknownKey {
                    key: key.clone(),
                    origin: format!("flag {flag}"),
                });
            }
            set_leaf(&mut tree, &defaults, key, text);
            sources.insert(key.clone(), format!("flag {flag}"));
        }

        let config: Config = serde_path_to_error::deserialize(tree.clone()).map_err(|e| {
            let key = e.path().to_string();
            let value = lookup(&tree, &key).map_or_else(|| "?".to_owned(), show);
            ConfigError::BadType {
                origin: sources
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| "defaults".into()),
                key,
                value,
                reason: e.into_inner().to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Load from the process environment.
    pub fn from_process(file: Option<&Path>, flags: &Flags) -> Result<Config, ConfigError> {
        Config::load(file, std::env::vars(), flags)
    }

    /// Range checks and the data-directory rule; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &str, value: impl std::fmt::Display, reason: &str) -> ConfigError {
            ConfigError::Invalid {
                key: key.into(),
                value: value.to_string(),
                reason: reason.into(),
            }
        }
        if self.host.max_queued_calls < 1 {
            return Err(bad(
                "host.maxQueuedCalls",
                self.host.max_queued_calls,
                "must be at least 1",
            ));
        }
        if self.database.max_connections < 1 {
            return Err(bad(
                "database.maxConnections",
                self.database.max_connections,
                "must be at least 1",
            ));
        }
        if self.storage.compression_level > 11 {
            return Err(bad(
                "storage.compressionLevel",
                self.storage.compression_level,
                "must be in 0..=11",
            ));
        }
        if self.storage.max_records < 1 {
            return Err(bad(
                "storage.maxRecords",
                self.storage.max_records,
                "must be at least 1",
            ));
        }
        if self.storage.max_interval.is_zero() {
            return Err(bad("storage.maxInterval", "0s", "must be positive"));
        }
        if self.host.memory_limit < 1 << 20 {
            return Err(bad(
                "host.memoryLimit",
                self.host.memory_limit,
                "must be at least 1048576 (1 MiB)",
            ));
        }
        if usize::try_from(self.host.memory_limit).is_err() {
            return Err(bad(
                "host.memoryLimit",
                self.host.memory_limit,
                "is larger than this machine's address space",
            ));
        }
        if self.host.call_timeout.is_zero() {
            return Err(bad("host.callTimeout", "0s", "must be positive"));
        }
        if self.retention.max_bytes == Some(0) {
            return Err(bad("retention.maxBytes", 0, "must be positive when set"));
        }
        if self.resilience.retry.max_attempts < 1 {
            return Err(bad(
                "resilience.retry.maxAttempts",
                self.resilience.retry.max_attempts,
                "must be at least 1",
            ));
        }
        if self.resilience.retry.initial_backoff > self.resilience.retry.max_backoff {
            return Err(bad(
                "resilience.retry.initialBackoff",
                humantime::format_duration(self.resilience.retry.initial_backoff),
                "must not exceed resilience.retry.maxBackoff",
            ));
        }
        if self.resilience.breaker.failure_threshold < 1 {
            return Err(bad(
                "resilience.breaker.failureThreshold",
                self.resilience.breaker.failure_threshold,
                "must be at least 1",
            ));
        }
        let pct = self.health.max_disk_used_percent;
        if !(0.0..=100.0).contains(&pct) {
            return Err(bad("health.maxDiskUsedPercent", pct, "must be in 0..=100"));
        }
        if self.health.answer_within.is_zero() {
            return Err(bad("health.answerWithin", "0s", "must be positive"));
        }
        self.ingest
            .validate()
            .map_err(|e| bad(e.key, e.value, e.reason))?;
        self.ship
            .validate()
            .map_err(|e| bad(e.key, e.value, &e.reason))?;
        if self.health.max_ship_lag.is_zero() {
            return Err(bad("health.maxShipLag", "0s", "must be positive"));
        }
        if self.audit.max_bytes < 4096 {
            return Err(bad(
                "audit.maxBytes",
                self.audit.max_bytes,
                "must be at least 4096",
            ));
        }
        if self.health.max_backup_age.is_zero() {
            return Err(bad("health.maxBackupAge", "0s", "must be positive"));
        }
        self.backup
            .validate()
            .map_err(|e| bad(e.key, e.value, &e.reason))?;
        if let Ok(Some(crate::ops::ship::TargetUrl::File { dir })) = self.ship.target_url() {
            if inside(&self.host.data_dir, &dir) {
                return Err(bad(
                    "ship.target",
                    format!("{:?}", self.ship.target.as_deref().unwrap_or_default()),
                    "must be outside the data directory (the sandboxed engine can write there)",
                ));
            }
        }
        self.database_target()?;
        self.spool_path()?;
        if let Some(cache) = &self.host.cache_dir {
            if inside(&self.host.data_dir, cache) {
                return Err(bad(
                    "host.cacheDir",
                    cache.display(),
                    "must be outside the data directory (the sandboxed engine can write there)",
                ));
            }
        }
        Ok(())
    }

    /// What backs the repository's database: a plain file name inside the data directory, or
    /// memory (`type: memory`, or `dsn: ":memory:"`).
    pub fn database_target(&self) -> Result<DbTarget, ConfigError> {
        if self.database.kind == DatabaseType::Memory || self.database.dsn == ":memory:" {
            return Ok(DbTarget::Memory);
        }
        let rel = relative_inside(&self.host.data_dir, &self.database.dsn, "database.dsn")?;
        let mut parts = rel.split('/');
        match (parts.next(), parts.next()) {
            (Some(name), None) if !name.is_empty() && !name.starts_with('.') => {
                Ok(DbTarget::File(name.to_owned()))
            }
            _ => Err(ConfigError::Invalid {
                key: "database.dsn".into(),
                value: self.database.dsn.clone(),
                reason: "must be a plain file name directly inside the data directory".into(),
            }),
        }
    }

    /// The spool directory, relative to the data directory (`/`-separated).
    pub fn spool_path(&self) -> Result<String, ConfigError> {
        let path = relative_inside(&self.host.data_dir, &self.storage.path, "storage.path")?;
        // The core's rule (a spool is never the data directory itself), refused at load time.
        edgestore::layout::check_spool_path(&path).map_err(|e| ConfigError::Invalid {
            key: "storage.path".into(),
            value: format!("{:?}", self.storage.path),
            reason: e.message().to_owned(),
        })?;
        Ok(path)
    }

    /// The client's store configuration.
    pub fn store_config(&self) -> Result<StoreConfig, ConfigError> {
        let engine = match self.host.engine {
            EngineKind::Native => Engine::Native,
            EngineKind::Component => Engine::Component(ComponentSource::Bytes(
                crate::component::artifacts::plugin_component(),
            )),
        };
        let mut store = StoreConfig::new(engine, &self.host.data_dir);
        store.labels = Labels::new().grant(DEFAULT_LABEL, self.database_target()?);
        // Checked by `validate`; saturate rather than fail if called on an unvalidated value.
        store.memory_limit = usize::try_from(self.host.memory_limit).unwrap_or(usize::MAX);
        store.call_timeout = self.host.call_timeout;
        store.retry = self.resilience.retry;
        store.breaker = self.resilience.breaker;
        store.cache_dir = self.host.cache_dir.clone().or_else(default_cache_dir);
        store.max_connections = self.database.max_connections;
        store.finish_worker = self.storage.finish_worker;
        store.queue_capacity = self.host.max_queued_calls;
        store.audit_max_bytes = self.audit.enabled.then_some(self.audit.max_bytes);
        let ring = self.keys().map_err(|e| ConfigError::Invalid {
            key: "encryption.keyFile".into(),
            value: self
                .encryption
                .key_file
                .as_ref()
                .map_or_else(|| "(EDGESTORE_KEY)".into(), |p| p.display().to_string()),
            reason: e.to_string(),
        })?;
        store.audit_mac_key = ring
            .as_ref()
            .and_then(|ring| ring.audit_mac_keys().into_iter().next());
        store.database_keys = self.database_keys_of(ring.as_ref())?;
        store.config_digest = Some(format!(
            "config sha256:{}",
            crate::digest::sha256_hex(self.to_yaml().as_bytes())
        ));
        Ok(store)
    }

    /// The database keys, current first: empty when the databases stay plain
    /// (`encryption.database`).
    pub fn database_keys(&self) -> crate::Result<Vec<DatabaseKey>> {
        let ring = self.keys()?;
        self.database_keys_of(ring.as_ref())
            .map_err(|e| crate::Error::Config(e.to_string()))
    }

    fn database_keys_of(
        &self,
        ring: Option<&crate::keys::KeyRing>,
    ) -> Result<Vec<DatabaseKey>, ConfigError> {
        let keys = ring.map(|r| r.database_keys()).unwrap_or_default();
        match self.encryption.database {
            Some(false) => Ok(Vec::new()),
            Some(true) if keys.is_empty() => Err(ConfigError::Invalid {
                key: "encryption.database".into(),
                value: "true".into(),
                reason: "the database key is derived from the store's age identity: configure \
                         encryption.keyFile (or EDGESTORE_KEY); recipients alone cannot encrypt \
                         a database"
                    .into(),
            }),
            _ => Ok(keys),
        }
    }

    /// The encryption keys `encryption` names (`None`: encryption is off).
    pub fn keys(&self) -> crate::Result<Option<crate::keys::KeyRing>> {
        crate::keys::KeyRing::load(&self.encryption, &self.host.data_dir)
    }

    /// The core's spool configuration for segments named `identifier_...`, with the keys
    /// (read from the key file) when encryption is configured.
    pub fn spool_config(&self, identifier: &str) -> crate::Result<SpoolConfig> {
        let mut spool = self.spool_config_without_keys(identifier);
        if let Some(keys) = self.keys()? {
            spool.keys = keys.spool_keys();
        }
        Ok(spool)
    }

    /// The spool configuration without reading any key (the store's recipients file still
    /// makes it encrypt).
    pub fn spool_config_without_keys(&self, identifier: &str) -> SpoolConfig {
        let mut spool = SpoolConfig::new(identifier);
        spool.compression_level = self.storage.compression_level;
        spool.max_records = self.storage.max_records;
        spool.max_interval = self.storage.max_interval;
        spool.retention = self.retention.max_age;
        spool.max_bytes = self.retention.max_bytes;
        spool.drop_pending_over_cap = self.retention.drop_pending;
        spool
    }

    /// The whole effective configuration as YAML (for `--help`-style display and tests).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }
}

/// The environment variable of a dotted key: `storage.compressionLevel` ->
/// `EDGESTORE_STORAGE_COMPRESSION_LEVEL`.
pub fn env_name(key: &str) -> String {
    let mut out = String::from(ENV_PREFIX);
    for (i, part) in key.split('.').enumerate() {
        if i > 0 {
            out.push('_');
        }
        for (j, ch) in part.chars().enumerate() {
            if ch.is_ascii_uppercase() && j > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_uppercase());
        }
    }
    out
}

/// Every dotted leaf key of the configuration.
pub fn keys() -> Vec<String> {
    leaf_keys(&to_tree(&Config::default()))
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("edgestore"))
}

fn to_tree(config: &Config) -> Value {
    // Our own types serialise to YAML without fail; an empty tree would only lose defaults.
    serde_yaml_ng::to_value(config).unwrap_or(Value::Mapping(Mapping::new()))
}

fn leaf_keys(tree: &Value) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Mapping(m) => {
                for (k, v) in m {
                    if let Some(k) = k.as_str() {
                        let key = if prefix.is_empty() {
                            k.to_owned()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(v, &key, out);
                    }
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut out = Vec::new();
    walk(tree, "", &mut out);
    out
}

/// Merge `layer` into `tree`; keys must exist in `defaults` (same position).
fn merge(
    tree: &mut Value,
    defaults: &Value,
    layer: Value,
    prefix: &str,
    source: &str,
    sources: &mut Sources,
) -> Result<(), ConfigError> {
    let Value::Mapping(layer) = layer else {
        return Ok(());
    };
    for (k, v) in layer {
        let name = k.as_str().map_or_else(|| show(&k), str::to_owned);
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let Some(default) = defaults.get(&name) else {
            return Err(ConfigError::UnknownKey {
                key,
                origin: source.to_owned(),
            });
        };
        let Some(slot) = tree.get_mut(&name) else {
            return Err(ConfigError::UnknownKey {
                key,
                origin: source.to_owned(),
            });
        };
        if default.is_mapping() && v.is_mapping() {
            merge(slot, default, v, &key, source, sources)?;
        } else {
            *slot = v;
            sources.insert(key, source.to_owned());
        }
    }
    Ok(())
}

/// Set one leaf from text: keys whose default is a string stay text verbatim (a DSN such as
/// `:memory:` is not YAML); others are read as a YAML scalar (`6`, `true`, `null`).
fn set_leaf(tree: &mut Value, defaults: &Value, key: &str, text: &str) {
    let parts: Vec<&str> = key.split('.').collect();
    let default = parts.iter().try_fold(defaults, |v, p| v.get(*p));
    let value = if default.is_some_and(Value::is_string) {
        Value::String(text.to_owned())
    } else {
        serde_yaml_ng::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned()))
    };
    let mut slot = tree;
    for p in &parts {
        let Some(next) = slot.get_mut(*p) else { return };
        slot = next;
    }
    *slot = value;
}

fn lookup<'a>(tree: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(tree, |v, p| v.get(p))
}

/// A value as it would be written in YAML, on one line.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim_end().replace('\n', " "))
            .unwrap_or_else(|_| "?".into()),
    }
}

/// `path` (relative to `data_dir`, or absolute inside it) as a `/`-separated relative path
/// with no `.`/`..`; anything leaving the data directory is an error naming `key`.
fn relative_inside(data_dir: &Path, path: &str, key: &str) -> Result<String, ConfigError> {
    let bad = |reason: &str| ConfigError::Invalid {
        key: key.into(),
        value: format!("{path:?}"),
        reason: reason.into(),
    };
    let p = Path::new(path);
    let rel: PathBuf = if p.is_absolute() {
        let base = absolute(data_dir);
        match lexical(p).strip_prefix(lexical(&base)) {
            Ok(r) => r.to_path_buf(),
            Err(_) => {
                return Err(bad(&format!(
                    "is outside the data directory {}",
                    data_dir.display()
                )))
            }
        }
    } else {
        p.to_path_buf()
    };
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => match s.to_str() {
                Some(s) => parts.push(s.to_owned()),
                None => return Err(bad("must be UTF-8")),
            },
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(bad(&format!(
                    "leaves the data directory {} ('..' is not allowed)",
                    data_dir.display()
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad("is outside the data directory"))
            }
        }
    }
    if parts.is_empty() {
        return Err(bad("must name something inside the data directory"));
    }
    Ok(parts.join("/"))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Drop `.` components (not `..`: those are refused, never resolved).
fn lexical(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

fn inside(data_dir: &Path, other: &Path) -> bool {
    lexical(&absolute(other)).starts_with(lexical(&absolute(data_dir)))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn load(
        yaml: Option<&str>,
        env: &[(&str, &str)],
        flags: &Flags,
    ) -> Result<Config, ConfigError> {
        let file = yaml.map(|y| {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            f.write_all(y.as_bytes()).unwrap();
            f
        });
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(file.as_ref().map(|f| f.path()), env, flags)
    }

    fn err(yaml: Option<&str>, env: &[(&str, &str)]) -> String {
        load(yaml, env, &Flags::new()).unwrap_err().to_string()
    }

    #[test]
    fn no_file_gives_the_embedded_default() {
        let c = load(None, &[("PATH", "/bin")], &Flags::new()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.host.data_dir, PathBuf::from("./edgestore-data"));
        assert_eq!(
            c.database_target().unwrap(),
            DbTarget::File("edgestore.sqlite".into())
        );
        assert_eq!(c.spool_path().unwrap(), "metrics");
        assert_eq!(c.host.engine, EngineKind::Component);
    }

    #[test]
    fn the_seed_shape_parses_with_durations() {
        let c = load(
            Some(
                "database: {type: sqlite, dsn: db.sqlite, maxConnections: 2}\n\
                 storage: {type: disk, path: spool/m, compressionLevel: 9, maxRecords: 50, maxInterval: 10m, finishWorker: true}\n\
                 host: {engine: native, memoryLimit: 67108864, callTimeout: 5s, dataDir: /tmp/x}\n\
                 retention: {maxAge: 1h, maxBytes: 1000, dropPending: true}\n\
                 resilience: {retry: {maxAttempts: 3, initialBackoff: 10ms, maxBackoff: 1s}, breaker: {failureThreshold: 2, coolDown: 30s}}\n\
                 health: {maxDiskUsedPercent: 80, maxTransactionAge: 30s}\n\
                 serve: {listen: '127.0.0.1:9000'}\n",
            ),
            &[],
            &Flags::new(),
        )
        .unwrap();
        assert_eq!(c.storage.max_interval, Duration::from_secs(600));
        assert_eq!(c.retention.max_age, Duration::from_secs(3600));
        assert_eq!(
            c.resilience.retry.initial_backoff,
            Duration::from_millis(10)
        );
        assert_eq!(c.host.engine, EngineKind::Native);
        assert_eq!(c.spool_path().unwrap(), "spool/m");
        assert_eq!(c.health.max_disk_used_percent, 80.0);
        let s = c.spool_config("agent").unwrap();
        assert_eq!(
            (
                s.compression_level,
                s.max_records,
                s.max_bytes,
                s.drop_pending_over_cap
            ),
            (9, 50, Some(1000), true)
        );
        s.validate().unwrap();
        let sc = c.store_config().unwrap();
        assert_eq!(sc.engine, Engine::Native);
        assert!(sc.finish_worker);
        assert_eq!(sc.memory_limit, 64 << 20);
        assert_eq!(sc.call_timeout, Duration::from_secs(5));
        assert_eq!(sc.max_connections, 2);
    }

    #[test]
    fn the_ingest_section_parses_and_is_checked() {
        let c = load(
            Some(
                "ingest: {sync: interval, syncInterval: 200ms, maxRequestBytes: 1048576, \
                 maxLabelsPerSeries: 64, maxInFlight: 4, nodeLabel: host, clusterName: prod, \
                 cloudAccountId: acct-1, bearerTokenFile: /run/secrets/token}\n",
            ),
            &[("EDGESTORE_INGEST_MAX_IN_FLIGHT", "8")],
            &Flags::new(),
        )
        .unwrap();
        assert_eq!(
            c.ingest.sync_mode(),
            crate::ops::ingest::SyncMode::Interval(Duration::from_millis(200))
        );
        assert_eq!(
            c.ingest.max_in_flight, 8,
            "the environment wins over the file"
        );
        assert_eq!(c.ingest.limits().max_request_bytes, 1 << 20);
        let m = c.ingest.mapping();
        assert_eq!(
            (
                m.node_label.as_str(),
                m.cluster_name.as_str(),
                m.cloud_account_id.as_str()
            ),
            ("host", "prod", "acct-1")
        );
        assert_eq!(
            c.ingest.bearer_token_file,
            Some(PathBuf::from("/run/secrets/token"))
        );
        assert_eq!(
            Config::default().ingest.sync_mode(),
            crate::ops::ingest::SyncMode::Request
        );
        let e = err(Some("ingest: {maxInFlight: 0}\n"), &[]);
        assert!(e.contains("`ingest.maxInFlight`"), "{e}");
        let e = err(Some("ingest: {sync: sometimes}\n"), &[]);
        assert!(e.contains("ingest.sync"), "{e}");
    }

    #[test]
    fn the_ship_section_parses_and_is_checked() {
        let c = load(
            Some(
                "ship: {target: 's3://metrics/edge', endpoint: 'http://127.0.0.1:9000', \
                 region: eu-west-1, pathStyle: true, allowHttp: true, profile: edge, \
                 keyTemplate: '{identifier}/{year}/{segment}', concurrency: 2, \
                 partSize: 16777216, interval: 30s, deleteAfter: false, maxBytesPerSecond: 1000000}\n\
                 health: {maxShipLag: 15m}\n",
            ),
            &[("EDGESTORE_SHIP_CONCURRENCY", "8")],
            &Flags::new(),
        )
        .unwrap();
        assert_eq!(c.ship.target.as_deref(), Some("s3://metrics/edge"));
        assert_eq!(c.ship.concurrency, 8, "the environment wins over the file");
        assert_eq!(c.ship.interval, Duration::from_secs(30));
        assert_eq!(c.ship.max_bytes_per_second, Some(1_000_000));
        assert!(c.ship.path_style && c.ship.allow_http && !c.ship.delete_after);
        assert_eq!(c.health.max_ship_lag, Duration::from_secs(900));
        let c = load(
            None,
            &[
                ("EDGESTORE_SHIP_TARGET", "file:///srv/outbox"),
                ("EDGESTORE_SHIP_KEY_TEMPLATE", "{segment}"),
            ],
            &Flags::new(),
        )
        .unwrap();
        assert_eq!(c.ship.target.as_deref(), Some("file:///srv/outbox"));
        assert_eq!(c.ship.key_template, "{segment}");
        assert!(!Config::default().ship.enabled());
        for (yaml, key) in [
            ("ship: {target: 'ftp://x'}", "ship.target"),
            (
                "ship: {keyTemplate: '{identifier}/{date}'}",
                "ship.keyTemplate",
            ),
            (
                "ship: {target: 's3://b', endpoint: 'http://127.0.0.1:9000'}",
                "ship.endpoint",
            ),
            ("ship: {partSize: 1024}", "ship.partSize"),
            ("ship: {concurrency: 0}", "ship.concurrency"),
            ("ship: {bucket: x}", "ship.bucket"),
            ("health: {maxShipLag: 0s}", "health.maxShipLag"),
            ("health: {maxBackupAge: 0s}", "health.maxBackupAge"),
            ("backup: {interval: 0s}", "backup.interval"),
            ("backup: {databases: ['no/slash']}", "backup.databases"),
            (
                "backup: {targets: [{url: 'ftp://x'}]}",
                "backup.targets.url",
            ),
            (
                "host: {dataDir: /srv/es}\nship: {target: 'file:///srv/es/outbox'}",
                "ship.target",
            ),
        ] {
            let e = err(Some(yaml), &[]);
            assert!(e.contains(&format!("`{key}`")), "{yaml}: {e}");
        }
    }

    /// One set of defaults: a store opened by the library with no configuration behaves like
    /// the CLI with none.
    #[test]
    fn defaults_are_the_librarys() {
        let c = Config::default();
        let cli = c.store_config().unwrap();
        let library = StoreConfig::new(Engine::Native, &c.host.data_dir);
        assert_eq!(cli.retry, library.retry);
        assert_eq!(cli.retry, RetryConfig::default());
        assert_eq!(cli.breaker, library.breaker);
        assert_eq!(cli.breaker, BreakerConfig::default());
        assert_eq!(cli.call_timeout, library.call_timeout);
        assert_eq!(cli.max_connections, library.max_connections);
        assert_eq!(cli.queue_capacity, library.queue_capacity);
        assert_eq!(cli.queue_wait, library.queue_wait);
        assert_eq!(cli.memory_limit, library.memory_limit);
        assert_eq!(cli.finish_worker, library.finish_worker);
        assert_eq!(cli.flush_interval, library.flush_interval);
        assert_eq!(cli.labels, library.labels);
        assert_eq!(cli.read_only, library.read_only);
        assert_eq!(c.health, HealthConfig::default());
        assert_eq!(c.spool_config("agent").unwrap(), SpoolConfig::new("agent"));
        // The documented values (README's configuration block).
        assert_eq!(
            (
                cli.retry.max_attempts,
                cli.retry.initial_backoff,
                cli.retry.max_backoff
            ),
            (5, Duration::from_millis(10), Duration::from_secs(1))
        );
        assert_eq!(
            (cli.breaker.failure_threshold, cli.breaker.cool_down),
            (5, Duration::from_secs(30))
        );
        assert_eq!(
            (c.health.max_disk_used_percent, c.health.max_transaction_age),
            (90.0, Duration::from_secs(30))
        );
        assert_eq!(c.health.answer_within, Duration::from_secs(5));
        assert_eq!(
            (cli.call_timeout, cli.max_connections, cli.queue_capacity),
            (Duration::from_secs(30), 4, 1024)
        );
    }

    #[test]
    fn backup_section_loads_with_environment_overrides() {
        let c = load(
            Some(
                "backup: {targets: [{url: 'file:///srv/backup'}, {url: 's3://b/p', \
                 endpoint: 'http://127.0.0.1:9000', pathStyle: true, allowHttp: true}], \
                 interval: 2s}",
            ),
            &[("EDGESTORE_BACKUP_VERIFY_INTERVAL", "10m")],
            &Flags::new(),
        )
        .unwrap();
        assert!(c.backup.enabled());
        assert_eq!(c.backup.targets.len(), 2);
        assert!(c.backup.targets[1].path_style && c.backup.targets[1].allow_http);
        assert_eq!(c.backup.interval, Duration::from_secs(2));
        assert_eq!(c.backup.verify_interval, Duration::from_secs(600));
        assert_eq!(c.backup.databases, vec!["default".to_owned()]);
        assert!(!Config::default().backup.enabled());
    }

    #[test]
    fn runtime_sections_keep_their_documented_keys() {
        let keys = keys();
        for k in [
            "resilience.retry.maxAttempts",
            "resilience.retry.initialBackoff",
            "resilience.retry.maxBackoff",
            "resilience.breaker.failureThreshold",
            "resilience.breaker.coolDown",
            "health.maxDiskUsedPercent",
            "health.maxTransactionAge",
            "health.answerWithin",
            "health.maxShipLag",
            "health.maxBackupAge",
        ] {
            assert!(keys.contains(&k.to_string()), "{k} in {keys:?}");
        }
        // The defaults' tree, from which the environment names are derived, as documented.
        let tree = to_tree(&Config::default());
        for (section, yaml) in [
            (
                "resilience",
                "{retry: {maxAttempts: 5, initialBackoff: 10ms, maxBackoff: 1s}, \
                 breaker: {failureThreshold: 5, coolDown: 30s}}",
            ),
            (
                "health",
                "{maxDiskUsedPercent: 90.0, maxTransactionAge: 30s, answerWithin: 5s, maxShipLag: 1h, \
                 maxBackupAge: 5m}",
            ),
        ] {
            let documented: Value = serde_yaml_ng::from_str(yaml).unwrap();
            assert_eq!(tree.get(section), Some(&documented), "{section}");
        }
        let c = load(
            Some("health: {answerWithin: 750ms}\nresilience: {retry: {maxBackoff: 2s}}"),
            &[
                ("EDGESTORE_HEALTH_MAX_TRANSACTION_AGE", "2m"),
                ("EDGESTORE_RESILIENCE_RETRY_INITIAL_BACKOFF", "50ms"),
                ("EDGESTORE_RESILIENCE_BREAKER_FAILURE_THRESHOLD", "3"),
            ],
            &Flags::new(),
        )
        .unwrap();
        assert_eq!(c.health.answer_within, Duration::from_millis(750));
        assert_eq!(c.health.max_transaction_age, Duration::from_secs(120));
        assert_eq!(c.health.max_disk_used_percent, 90.0);
        let sc = c.store_config().unwrap();
        assert_eq!(
            sc.retry,
            RetryConfig {
                max_attempts: 5,
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(2),
            }
        );
        assert_eq!(sc.breaker.failure_threshold, 3);
        let e = err(Some("health: {answerWithin: 0s}"), &[]);
        assert!(e.contains("`health.answerWithin`"), "{e}");
        let e = err(Some("resilience: {retry: {maxBackoff: soon}}"), &[]);
        assert!(
            e.contains("`resilience.retry.maxBackoff`") && e.contains("soon"),
            "{e}"
        );
        let e = err(Some("health: {answer: 1s}"), &[]);
        assert!(e.contains("`health.answer`"), "{e}");
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let e = err(Some("storage: {compresionLevel: 3}\n"), &[]);
        assert!(e.contains("`storage.compresionLevel`"), "{e}");
        let e = err(Some("nosuch: 1\n"), &[]);
        assert!(e.contains("`nosuch`"), "{e}");
    }

    #[test]
    fn bad_type_names_key_and_value() {
        let e = err(Some("storage: {maxRecords: lots}\n"), &[]);
        assert!(
            e.contains("`storage.maxRecords`") && e.contains("\"lots\""),
            "{e}"
        );
        let e = err(Some("storage: {maxInterval: soon}\n"), &[]);
        assert!(
            e.contains("`storage.maxInterval`") && e.contains("soon"),
            "{e}"
        );
        let e = err(Some("host: {engine: turbo}\n"), &[]);
        assert!(e.contains("`host.engine`") && e.contains("turbo"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        for (yaml, key, value) in [
            (
                "storage: {compressionLevel: 12}",
                "storage.compressionLevel",
                "12",
            ),
            ("storage: {maxRecords: 0}", "storage.maxRecords", "0"),
            (
                "database: {maxConnections: 0}",
                "database.maxConnections",
                "0",
            ),
            ("storage: {maxInterval: 0s}", "storage.maxInterval", "0s"),
            ("host: {memoryLimit: 10}", "host.memoryLimit", "10"),
            ("retention: {maxBytes: 0}", "retention.maxBytes", "0"),
            (
                "resilience: {retry: {maxAttempts: 0}}",
                "resilience.retry.maxAttempts",
                "0",
            ),
            (
                "health: {maxDiskUsedPercent: 101}",
                "health.maxDiskUsedPercent",
                "101",
            ),
        ] {
            let e = err(Some(yaml), &[]);
            assert!(
                e.contains(&format!("`{key}`")) && e.contains(value),
                "{yaml}: {e}"
            );
        }
    }

    #[test]
    fn paths_must_stay_inside_the_data_dir() {
        let e = err(Some("storage: {path: ../elsewhere}"), &[]);
        assert!(
            e.contains("`storage.path`") && e.contains("../elsewhere"),
            "{e}"
        );
        // A spool is never the data directory itself.
        let e = err(Some("storage: {path: .}"), &[]);
        assert!(e.contains("`storage.path`"), "{e}");
        let e = err(Some("database: {dsn: /etc/passwd}"), &[]);
        assert!(e.contains("`database.dsn`") && e.contains("outside"), "{e}");
        let e = err(Some("database: {dsn: sub/x.sqlite}"), &[]);
        assert!(e.contains("`database.dsn`"), "{e}");
        // Absolute but inside is accepted and made relative.
        let c = load(
            Some("host: {dataDir: /srv/es}\nstorage: {path: /srv/es/spool}\ndatabase: {dsn: /srv/es/a.db}"),
            &[],
            &Flags::new(),
        )
        .unwrap();
        assert_eq!(c.spool_path().unwrap(), "spool");
        assert_eq!(c.database_target().unwrap(), DbTarget::File("a.db".into()));
        let e = err(
            Some("host: {dataDir: /srv/es, cacheDir: /srv/es/cache}"),
            &[],
        );
        assert!(e.contains("`host.cacheDir`"), "{e}");
    }

    #[test]
    fn memory_database() {
        let c = load(
            None,
            &[("EDGESTORE_DATABASE_DSN", ":memory:")],
            &Flags::new(),
        )
        .unwrap();
        assert_eq!(c.database_target().unwrap(), DbTarget::Memory);
        let c = load(Some("database: {type: memory}"), &[], &Flags::new()).unwrap();
        assert_eq!(c.database_target().unwrap(), DbTarget::Memory);
    }

    #[test]
    fn env_names_are_derived_from_every_key() {
        assert_eq!(
            env_name("storage.compressionLevel"),
            "EDGESTORE_STORAGE_COMPRESSION_LEVEL"
        );
        assert_eq!(
            env_name("resilience.retry.maxAttempts"),
            "EDGESTORE_RESILIENCE_RETRY_MAX_ATTEMPTS"
        );
        let keys = keys();
        for k in [
            "database.dsn",
            "storage.maxRecords",
            "storage.maxInterval",
            "host.engine",
            "retention.maxBytes",
            "serve.listen",
            "health.maxTransactionAge",
        ] {
            assert!(keys.contains(&k.to_string()), "{k} in {keys:?}");
        }
        // Every key can be set through its variable.
        let c = load(
            None,
            &[
                ("EDGESTORE_STORAGE_COMPRESSION_LEVEL", "3"),
                ("EDGESTORE_STORAGE_MAX_RECORDS", "7"),
                ("EDGESTORE_STORAGE_MAX_INTERVAL", "10m"),
                ("EDGESTORE_HOST_ENGINE", "native"),
                ("EDGESTORE_RETENTION_MAX_BYTES", "4096"),
                ("EDGESTORE_RETENTION_DROP_PENDING", "true"),
                ("EDGESTORE_RESILIENCE_BREAKER_COOL_DOWN", "1m"),
                ("EDGESTORE_SERVE_LISTEN", "0.0.0.0:1234"),
            ],
            &Flags::new(),
        )
        .unwrap();
        assert_eq!(c.storage.compression_level, 3);
        assert_eq!(c.storage.max_records, 7);
        assert_eq!(c.storage.max_interval, Duration::from_secs(600));
        assert_eq!(c.host.engine, EngineKind::Native);
        assert_eq!(c.retention.max_bytes, Some(4096));
        assert!(c.retention.drop_pending);
        assert_eq!(c.resilience.breaker.cool_down, Duration::from_secs(60));
        assert_eq!(c.serve.listen.port(), 1234);
    }

    #[test]
    fn unknown_variable_and_bad_env_value_are_named() {
        let e = err(None, &[("EDGESTORE_STORAGE_LEVEL", "3")]);
        assert!(e.contains("EDGESTORE_STORAGE_LEVEL"), "{e}");
        let e = err(None, &[("EDGESTORE_STORAGE_MAX_RECORDS", "many")]);
        assert!(
            e.contains("`storage.maxRecords`")
                && e.contains("many")
                && e.contains("EDGESTORE_STORAGE_MAX_RECORDS"),
            "{e}"
        );
        let e = err(None, &[("EDGESTORE_STORAGE_COMPRESSION_LEVEL", "42")]);
        assert!(
            e.contains("`storage.compressionLevel`") && e.contains("42"),
            "{e}"
        );
    }

    #[test]
    fn precedence_defaults_file_env_flags() {
        let yaml = "storage: {compressionLevel: 2, maxRecords: 20}\nhost: {engine: native}";
        // File beats defaults.
        let c = load(Some(yaml), &[], &Flags::new()).unwrap();
        assert_eq!(c.storage.compression_level, 2);
        assert_eq!(c.storage.max_interval, Duration::from_secs(30));
        // Environment beats file.
        let env = [
            ("EDGESTORE_STORAGE_COMPRESSION_LEVEL", "4"),
            ("EDGESTORE_HOST_ENGINE", "component"),
        ];
        let c = load(Some(yaml), &env, &Flags::new()).unwrap();
        assert_eq!(c.storage.compression_level, 4);
        assert_eq!(c.storage.max_records, 20);
        assert_eq!(c.host.engine, EngineKind::Component);
        // Flags beat environment.
        let mut flags = Flags::new();
        flags.set("storage.compressionLevel", "--level", "9").set(
            "host.engine",
            "--engine",
            "native",
        );
        let c = load(Some(yaml), &env, &flags).unwrap();
        assert_eq!(c.storage.compression_level, 9);
        assert_eq!(c.host.engine, EngineKind::Native);
        // A bad flag value is named with its flag.
        let mut flags = Flags::new();
        flags.set("storage.maxRecords", "--max-records", "x");
        let e = load(None, &[], &flags).unwrap_err().to_string();
        assert!(
            e.contains("`storage.maxRecords`") && e.contains("--max-records"),
            "{e}"
        );
    }

    #[test]
    fn empty_or_non_mapping_file() {
        assert_eq!(
            load(Some(""), &[], &Flags::new()).unwrap(),
            Config::default()
        );
        let e = err(Some("- a\n- b\n"), &[]);
        assert!(e.contains("mapping"), "{e}");
        let e = err(Some("storage: [1"), &[]);
        assert!(e.contains("not a YAML mapping"), "{e}");
    }
}
