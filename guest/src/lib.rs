//! # edgestore: the portable core
//!
//! Local persistence for edge and telemetry agents, written once and built two ways: as a native
//! library and as a `wasm32-wasip2` component. Nothing in here spawns threads, reads the system
//! clock behind the caller's back, or knows about wasmtime or tokio.
//!
//! | concept | module |
//! |---|---|
//! | one error type with a code and a class | [`error`] |
//! | operation counters, health, diagnostics | [`admin`] |
//! | injected wall-clock time | [`clock`] |
//! | schemas, values, rows, queries, timestamps, the `Model` trait, `ResourceTags` | [`model`] |
//! | the SQL `Connection` trait, SQL text, busy retry, the rusqlite driver | [`sql`] |
//! | repository traits, dynamic and typed repositories, transactions, migrations | [`repository`] |
//! | the directory capability and fault seam | [`dir`] |
//! | a data directory's names and rules: mount point, labels, database files, spool paths, defaults | [`layout`] |
//! | the crash-safe Brotli spool | [`spool`] |
//! | deterministic sample metrics | [`sample`] |
//! | who owns a data directory: the lock file and its record | [`owner`] |
//! | report and listing formats shared by every CLI | [`present`] |
//! | schema-less reads of a repository database (tools: `db models`, `get`, `find`) | [`inspect`] |
//! | the inspection and maintenance commands' command line, shared by every CLI (feature `cli`) | `command_line` |

// The core needs no unsafe code. The component glue's generated bindings (wit-bindgen's export
// and canonical-ABI code) are the one exception, allowed in that module only.
#![cfg_attr(
    not(all(feature = "component", target_family = "wasm")),
    forbid(unsafe_code)
)]
#![cfg_attr(all(feature = "component", target_family = "wasm"), deny(unsafe_code))]

#[cfg(all(feature = "component", target_family = "wasm"))]
#[allow(unsafe_code)]
mod component;

pub mod admin;
pub mod clock;
#[cfg(feature = "cli")]
pub mod command_line;
pub mod dir;
pub mod error;
mod fallback;
pub mod inspect;
pub mod layout;
pub mod model;
pub mod owner;
pub mod present;
pub mod repository;
pub mod sample;
pub mod spool;
pub mod sql;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dir::Directory;
pub use error::{Error, ErrorClass, ErrorCode, Result};
pub use model::{
    Column, ColumnType, Condition, Model, Query, ResourceTags, Row, Schema, Timestamp, Value,
};
pub use repository::{
    Creator, Deleter, OpenTransaction, Reader, RepositoryOptions, SqlRepository, SqlStorage,
    Storage, StorageCommon, Store, TxMode, Updater,
};
pub use spool::{Metric, Spool, SpoolConfig, SyncPolicy, TimeRange};
#[cfg(feature = "sqlite")]
pub use sql::sqlite::{SqliteDatabase, SqliteOptions, WriterHook};
pub use sql::{Connection, Database, RetryPolicy};

/// Thread bounds that exist only where threads do (the component has none, and the handles
/// its host gives it are not `Send`).
#[cfg(not(target_family = "wasm"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_family = "wasm"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}

/// Thread bounds that exist only where threads do (the component has none, and the handles
/// its host gives it are not `Send`).
#[cfg(target_family = "wasm")]
pub trait MaybeSendSync {}
#[cfg(target_family = "wasm")]
impl<T: ?Sized> MaybeSendSync for T {}
