//! Why a measurement could not run (not whether it was fast: that is the report's job).

/// A measurement failed to run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The host (either engine) failed.
    #[error(transparent)]
    Host(#[from] crate::Error),
    /// The core failed.
    #[error(transparent)]
    Store(#[from] edgestore::Error),
    /// The shipper failed (the ship figures' child).
    #[error(transparent)]
    Ship(#[from] crate::ship::ShipError),
    /// The backup or a restore failed (the backup figures).
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// The raw rusqlite baseline failed.
    #[error("raw rusqlite baseline: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An HTTP exchange with the in-process listener failed.
    #[error("HTTP: {what}: {source}")]
    Http {
        /// What was being done.
        what: String,
        /// The cause.
        source: hyper::Error,
    },
    /// A measuring child process misbehaved, or a result did not check out.
    #[error("{0}")]
    Check(String),
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }

    /// An HTTP error with what was being done.
    pub fn http(what: impl Into<String>, source: hyper::Error) -> Self {
        BenchError::Http {
            what: what.into(),
            source,
        }
    }
}

/// The bench module's result.
pub type Result<T> = std::result::Result<T, BenchError>;
