//! Backup of the host-side SQLite databases: continuous, incremental, restorable to a point in
//! time, verified by restoring.
//!
//! **Mechanism: write-ahead-log shipping with periodic snapshots**, as Litestream does, chosen
//! over SQLite's session extension because it sees every change of every writer (the native
//! engine's pool, the plugin world's connections, schema changes, `VACUUM`) without touching
//! the write path, is transaction-consistent by construction (only whole transactions, up to
//! a commit frame, are taken), and costs nothing while nothing changes (one read of the log's
//! 32-byte header per `backup.interval`). The session extension needs a primary key on every
//! table, misses schema changes, and would need bindgen at build time. The standalone world
//! has no host-side database; it is not backed up here.
//!
//! | concept | module |
//! |---|---|
//! | reading the write-ahead log: frames, checksums, whole transactions | [`wal`] |
//! | what a target holds; the increment format; manifests | [`increment`] |
//! | capturing a live database: snapshot, increments, bounded log | [`capture`] |
//! | a target's objects: upload, list, download | [`store`] |
//! | restoring to a time, and verifying a backup by restoring it | [`restore`] |
//! | the continuous loop: generations, uploads, retention, status | [`runner`] |

pub mod capture;
pub mod increment;
pub mod restore;
pub mod runner;
pub mod store;
pub mod wal;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ops::ship::ShipConfig;

pub use restore::{restore, RestoreOptions, RestoreReport};
pub use runner::{BackupRunner, BackupStatus};

/// One place backups go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupTargetConfig {
    /// `s3://bucket/optional/prefix` or `file:///abs/dir`.
    pub url: String,
    /// A custom S3 endpoint; none: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region; none: as the AWS tools find it, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Path-style requests, as most self-hosted servers need.
    #[serde(default)]
    pub path_style: bool,
    /// Allow a plain-HTTP endpoint.
    #[serde(default)]
    pub allow_http: bool,
    /// The shared-credentials profile.
    #[serde(default)]
    pub profile: Option<String>,
}

impl BackupTargetConfig {
    /// A target at `url` with the defaults.
    pub fn new(url: impl Into<String>) -> BackupTargetConfig {
        BackupTargetConfig {
            url: url.into(),
            endpoint: None,
            region: None,
            path_style: false,
            allow_http: false,
            profile: None,
        }
    }

    /// The same connection settings in the shape the object-store client is built from.
    pub fn client_config(&self) -> ShipConfig {
        ShipConfig {
            target: Some(self.url.clone()),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            allow_http: self.allow_http,
            profile: self.profile.clone(),
            ..ShipConfig::default()
        }
    }
}

/// The `backup` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where backups go; every target receives every increment (two targets in two regions
    /// are replication). None: backup is off.
    pub targets: Vec<BackupTargetConfig>,
    /// The database labels backed up.
    pub databases: Vec<String>,
    /// How often `serve` captures and uploads new transactions.
    #[serde(with = "crate::duration")]
    pub interval: Duration,
    /// How often a new generation (a fresh snapshot) starts, bounding restore time.
    #[serde(with = "crate::duration")]
    pub snapshot_interval: Duration,
    /// Generations whose successor started longer ago than this are deleted.
    #[serde(with = "crate::duration")]
    pub retention: Duration,
    /// How often `serve` verifies the latest backup by restoring it.
    #[serde(with = "crate::duration")]
    pub verify_interval: Duration,
    /// Also copy the spool's pending (finished, not yet shipped) segments to the targets, with
    /// the first database's generations, so an unshipped spool survives the device's loss
    /// (`restore --spool` brings them back).
    pub spool: bool,
}

impl Default for BackupConfig {
    /// Off; the default database; every second; a snapshot a day, kept a week; verified
    /// hourly.
    fn default() -> Self {
        BackupConfig {
            targets: Vec::new(),
            databases: vec![edgestore::layout::DEFAULT_LABEL.to_owned()],
            interval: Duration::from_secs(1),
            snapshot_interval: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            verify_interval: Duration::from_secs(3600),
            spool: false,
        }
    }
}

impl BackupConfig {
    /// Whether backup is on.
    pub fn enabled(&self) -> bool {
        !self.targets.is_empty()
    }

    /// Range checks; the error names the key.
    pub fn validate(&self) -> Result<(), crate::ops::ship::InvalidSetting> {
        let bad = |key: &'static str, value: String, reason: &str| {
            Err(crate::ops::ship::InvalidSetting {
                key,
                value,
                reason: reason.to_owned(),
            })
        };
        for (name, value) in [
            ("backup.interval", self.interval),
            ("backup.snapshotInterval", self.snapshot_interval),
            ("backup.retention", self.retention),
            ("backup.verifyInterval", self.verify_interval),
        ] {
            if value.is_zero() {
                return bad(name, "0s".into(), "must be positive");
            }
        }
        if self.databases.is_empty() && self.enabled() {
            return bad("backup.databases", "[]".into(), "name at least one label");
        }
        for label in &self.databases {
            if let Err(e) = edgestore::layout::check_label(label) {
                return bad("backup.databases", label.clone(), &e.to_string());
            }
        }
        for target in &self.targets {
            if let Err(e) = crate::ops::ship::TargetUrl::parse(&target.url) {
                return bad("backup.targets.url", target.url.clone(), &e);
            }
        }
        Ok(())
    }
}

/// A backup or restore failure. Messages name the database, the target and the object.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The live database cannot be read as needed.
    #[error("database {path}: {message}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The log cannot be continued (page size changed): a new generation must start.
    #[error("a new snapshot is needed: {0}")]
    NeedSnapshot(String),
    /// A target failed or refused.
    #[error("backup target {target}: {message}")]
    Target {
        /// The target URL.
        target: String,
        /// What failed.
        message: String,
    },
    /// A stored object is damaged: never applied.
    #[error("backup target {target}: {key} is damaged: {reason}")]
    Damaged {
        /// The target URL.
        target: String,
        /// The object.
        key: String,
        /// How.
        reason: String,
    },
    /// Nothing to restore from.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be carried out as asked (a destination that exists or is owned).
    #[error("{0}")]
    Refused(String),
    /// A restored or verified database failed a check.
    #[error("{0}")]
    Verify(String),
}
