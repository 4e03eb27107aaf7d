//! # edgestore-host: the Wasmtime host and the typed async client
//!
//! | concept | module |
//! |---|---|
//! | the owner's admin socket: mutations from other processes, and its client | [`admin`] |
//! | the plugin component built by `build.rs`, embedded | [`artifacts`] |
//! | the host's error type (store errors with code and class; traps and limits apart) | [`error`] |
//! | what an instance may touch: the data directory and SQLite labels | [`grants`] |
//! | the Wasmtime engine: epoch interruption, compiled-component cache | [`engine`] |
//! | the `sqlite` import on the core's rusqlite driver | [`sqlite`] |
//! | one instance: WASI context, resource table, limiter; rebuilt after a failure | [`instance`] |
//! | the native engine behind the same client | `native` |
//! | who owns a data directory: the lock an owning store holds, the probe inspectors use | [`owner`] |
//! | the YAML configuration, env overrides, mapping to [`StoreConfig`] | [`config`] |
//! | the typed async client: [`Store`], [`AsyncStorage`], [`AsyncSpool`] | [`client`] |
//! | the transaction view implementing the core's traits | [`tx`] |
//! | measurements shared by `edgestore bench` and `cargo bench` | [`bench`] |
//! | Prometheus metrics of one store | [`metrics`] |
//! | retry with backoff, the circuit breaker | [`resilience`] |
//! | health checks (`edgestore health`, `/healthz`) | [`health`] |
//! | `edgestore serve`: ingest, `/metrics`, `/healthz`, clean stop on a signal | [`serve`] |

pub mod admin;
pub mod artifacts;
pub mod bench;
pub mod bindings;
pub mod client;
pub mod config;
mod convert;
pub mod engine;
pub mod error;
pub mod grants;
pub mod health;
pub mod instance;
pub mod metrics;
mod native;
mod ops;
pub mod owner;
pub mod resilience;
pub mod serve;
pub mod sqlite;
pub mod tx;

pub use client::{
    AsyncReader, AsyncSpool, AsyncStorage, ComponentSource, Engine, Store, StoreConfig,
};
pub use error::{Error, LimitKind, Result};
pub use grants::{DbTarget, Labels};
pub use tx::TxStorage;
