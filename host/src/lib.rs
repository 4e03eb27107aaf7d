//! # edgestore-host: the Wasmtime host and the typed async client
//!
//! The source is laid out by concept, one directory each: `client/` (what callers use),
//! `backend/` (the engine seam and the native engine), `component/` (the Wasmtime engine of
//! the component and its adapter to the seam), `ops/` (the services around a store). The
//! engine side runs one way, `client -> {backend, component}`, `component -> backend` (the
//! component gets what it needs of a store's configuration as [`ComponentSource`] and
//! `ComponentLimits`); the shared foundations (`error`, `grants`, `config/duration`) sit at the
//! top. `ops/` is on both sides of the client: the dispatch uses `metrics` and `resilience`,
//! while `health`, `serve` and `admin` are built on the client. The seam lives in `backend/`
//! beside the native engine (the simpler of the two); the component's side of it stays in
//! `component/`, next to the instance it drives.
//!
//! | concept | module |
//! |---|---|
//! | the typed async client: [`Store`] (`client/mod.rs`: open, the one dispatch point), [`StoreConfig`] and [`Engine`] (`client/config.rs`), [`AsyncStorage`] (`client/storage.rs`), [`AsyncSpool`] / [`AsyncReader`] (`client/spool.rs`) | [`client`] |
//! | the transaction view implementing the core's traits (`client/tx.rs`) | [`tx`] |
//! | who owns a data directory: the lock an owning store holds, the probe inspectors use (`client/owner.rs`) | [`owner`] |
//! | the seam between the client and the engines: `Backend`, `DynOps`, `DynSpool` (`backend/mod.rs`) | `backend` |
//! | the native engine behind the same client (`backend/native.rs`) | `backend::native` |
//! | the component: [`ComponentSource`], the limits an instance is held to (`component/mod.rs`) | `component` |
//! | the Wasmtime engine: epoch interruption, compiled-component cache (`component/engine.rs`) | [`engine`] |
//! | the plugin component built by `build.rs`, embedded (`component/artifacts.rs`) | [`artifacts`] |
//! | the generated bindings of world `plugin` (`component/bindings.rs`), core <-> WIT conversions (`component/convert.rs`) | [`bindings`] |
//! | one instance's lifecycle: WASI context, resource table, limiter; rebuilt after a failure (`component/instance.rs`) | `component::instance` |
//! | the guest's imports: `sqlite` on the core's rusqlite driver, `host-info` (`component/imports/`) | `component::imports` |
//! | the adapters serving the seam through the guest's exports: `GuestOps`, `GuestSpool` (`component/exports.rs`) | `component::exports` |
//! | the host's error type (store errors with code and class; traps and limits apart) | [`error`] |
//! | what an instance may touch: the data directory and SQLite labels (both engines use it) | [`grants`] |
//! | the YAML configuration, env overrides, mapping to [`StoreConfig`] (`config.rs`, `config/duration.rs`) | [`config`] |
//! | Prometheus metrics of one store (`ops/metrics.rs`) | [`metrics`] |
//! | retry with backoff, the circuit breaker (`ops/resilience.rs`) | [`resilience`] |
//! | health checks, `edgestore health`, `/healthz` (`ops/health.rs`) | [`health`] |
//! | `edgestore serve`: ingest, `/metrics`, `/healthz`, clean stop on a signal (`ops/serve.rs`) | [`serve`] |
//! | the owner's admin socket: mutations from other processes, and its client (`ops/admin.rs`) | [`admin`] |
//! | measurements shared by `edgestore bench` and `cargo bench` | [`mod@bench`] |

// The one unsafe call, loading a compiled component from the cache, is allowed where it is
// justified (`component/engine.rs`); nothing else may add one.
#![deny(unsafe_code)]

mod backend;
pub mod bench;
pub mod client;
mod component;
pub mod config;
pub mod error;
pub mod grants;
mod ops;

pub use client::{owner, tx};
pub use component::{artifacts, bindings, engine};
pub use ops::{admin, health, metrics, resilience, serve};

pub use client::{
    AsyncReader, AsyncSpool, AsyncStorage, ComponentSource, Engine, Store, StoreConfig,
};
pub use error::{Error, LimitKind, Result};
pub use grants::{DbTarget, Labels};
pub use tx::TxStorage;
