//! The host's error type: the core's errors (with their code and class) kept as they are, and
//! what only a host can see (a trap, a limit hit, a bad configuration) kept apart from them.

use edgestore::owner::{LockKind, OwnerRecord, LOCK_FILE};
use edgestore::{ErrorClass, ErrorCode};

/// Which limit stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The instance asked for more linear memory than [`crate::StoreConfig::memory_limit`].
    Memory,
    /// The call ran longer than [`crate::StoreConfig::call_timeout`].
    Time,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::Memory => "memory cap",
            LimitKind::Time => "time bound",
        })
    }
}

/// Everything the host library can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store (native core or guest) refused the operation; code and class are the core's.
    #[error(transparent)]
    Store(#[from] edgestore::Error),
    /// The instance trapped (a guest bug or a broken invariant). The instance was discarded; the
    /// next call runs on a fresh one.
    #[error("the component trapped: {0}")]
    Trap(String),
    /// The call hit a limit. The instance was discarded; the next call runs on a fresh one.
    #[error("the call exceeded the {kind}: {message}")]
    Limit {
        /// Which limit.
        kind: LimitKind,
        /// Detail for people.
        message: String,
    },
    /// The store's configuration is unusable (checked when the store opens).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Compiling, caching or instantiating the component failed.
    #[error("component runtime: {0}")]
    Runtime(String),
    /// The store's owning task has stopped (the store was shut down or panicked).
    #[error("the store is closed")]
    Closed,
    /// Another store, in this process or another, owns the data directory (holds its lock):
    /// this one may only read it. Class `transient`: it ends when the owner stops.
    #[error("data directory {} is owned by {}; {}", .data_dir.display(), owner_name(.owner.as_ref()), owned_hint(.owner.as_ref()))]
    Owned {
        /// The data directory.
        data_dir: std::path::PathBuf,
        /// What the lock file says about the owner, when readable.
        owner: Option<OwnerRecord>,
    },
    /// The circuit breaker is open: the engine failed repeatedly, so calls fail fast until
    /// the cool-down passes ([`crate::resilience`]). Code and class are the last failure's, so
    /// a full disk still reads as `disk-full`, class `resource`.
    #[error("circuit open, failing fast for {retry_in:?} more; last failure: {last}")]
    CircuitOpen {
        /// Code of the failure that opened (or kept open) the circuit.
        code: ErrorCode,
        /// Its class.
        class: ErrorClass,
        /// Its message.
        last: String,
        /// Time left before a probe call is let through.
        retry_in: std::time::Duration,
    },
}

impl Error {
    /// The core's code for this error; host-only failures map to the nearest code
    /// (`internal` for traps and runtime failures, `disk-full`-like `resource` limits as
    /// `internal`, configuration as `invalid-input`, closed as `closed`).
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Store(e) => e.code(),
            Error::Limit {
                kind: LimitKind::Time,
                ..
            } => ErrorCode::TimeLimit,
            Error::Trap(_) | Error::Runtime(_) | Error::Limit { .. } => ErrorCode::Internal,
            Error::Config(_) => ErrorCode::InvalidInput,
            Error::Closed => ErrorCode::Closed,
            Error::Owned { .. } => ErrorCode::Busy,
            Error::CircuitOpen { code, .. } => *code,
        }
    }

    /// What a caller may do about it: limits are `resource` errors (a smaller call may pass),
    /// everything else keeps the class of its code.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Store(e) => e.class(),
            Error::Limit { .. } => ErrorClass::Resource,
            Error::CircuitOpen { class, .. } => *class,
            other => other.code().class(),
        }
    }

    /// The core error inside, if this is one.
    pub fn as_store(&self) -> Option<&edgestore::Error> {
        match self {
            Error::Store(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn runtime(e: impl std::fmt::Display) -> Self {
        Error::Runtime(format!("{e:#}"))
    }
}

fn owner_name(owner: Option<&OwnerRecord>) -> String {
    owner.map_or_else(
        || "another edgestore process".to_owned(),
        OwnerRecord::describe,
    )
}

/// The hint that ends an "owned" message: how to get the operation done anyway.
pub fn owned_hint(owner: Option<&OwnerRecord>) -> String {
    match owner {
        Some(r) if r.lock == LockKind::File => format!(
            "stop it, or if it is no longer running remove its lock file {LOCK_FILE} in the data directory"
        ),
        Some(r) if r.admin.is_some() => {
            "stop it first; mutating commands (spool put|flush|ack|purge|verify, db put|delete) \
             are forwarded to it through its admin socket"
                .to_owned()
        }
        _ => "stop it, or run it with its admin socket on (serve.admin), through which \
              mutating commands from other processes are forwarded to it"
            .to_owned(),
    }
}

/// The host library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
