//! # edgestore-host: the Wasmtime host and the typed async client
//!
//! The source is laid out by concept, one directory each: `client/` (what callers use),
//! `backend/` (the engine seam and the native engine), `component/` (the Wasmtime engine of
//! the component and its adapter to the seam), `ops/` (the services built on a store). The
//! seam lives in `backend/` beside the native engine (the simpler of the two); the component's
//! side of it stays in `component/`, next to the instance it drives.
//!
//! Modules are layered; each imports only from the layers below it:
//!
//! 1. foundations at the top of `src/`: `error`, `duration` (humantime serde), `grants`, `keys`, and
//!    what the client's dispatch reports and guards with, `resilience` and `metrics`;
//! 2. the engines: `backend` (the seam, the native engine), then `component`, which gets what
//!    it needs of a store's configuration as [`ComponentSource`] and `ComponentLimits`;
//! 3. `client`: the store, its dispatch, the owner lock;
//! 4. `ops`: services built on the client (`health`, `serve`, `admin`, `ingest`, `ship`, `backup`);
//! 5. `config`: reads the runtime types below it (`StoreConfig`, `RetryConfig`,
//!    `BreakerConfig`, `HealthConfig`), owned by the modules that use them; then `bench`.
//!
//! | concept | module |
//! |---|---|
//! | the typed async client: [`Store`] (`client/mod.rs`: open, the one dispatch point), [`StoreConfig`] and [`Engine`] (`client/config.rs`), [`AsyncStorage`] (`client/storage.rs`), [`AsyncSpool`] / [`AsyncReader`] (`client/spool.rs`) | [`client`] |
//! | the transaction view implementing the core's traits (`client/tx.rs`) | [`tx`] |
//! | who owns a data directory: the lock an owning store holds, the probe inspectors use (`client/owner.rs`) | [`owner`] |
//! | the seam between the client and the engines: `Backend`, `DynOps`, `DynSpool` (`backend/mod.rs`) | `backend` |
//! | the native engine behind the same client (`backend/native.rs`) | `backend::native` |
//! | what both engines share, independent of either: the table registry, spool and reader ids, open handles, nested transactions (`backend/state.rs`) | `backend::state` |
//! | the component: [`ComponentSource`], the limits an instance is held to (`component/mod.rs`) | `component` |
//! | the Wasmtime engine: epoch interruption, compiled-component cache (`component/engine.rs`) | [`engine`] |
//! | the plugin component built by `build.rs`, embedded (`component/artifacts.rs`) | [`artifacts`] |
//! | the generated bindings of world `plugin` (`component/bindings.rs`), core <-> WIT conversions (`component/convert.rs`) | [`bindings`] |
//! | what one instance's wasmtime store carries: `HostState` (WASI context, resource table, memory limiter, grants) and `SqliteHandle`, the `sqlite` connection resource the bindings map to (`component/state.rs`) | `component::state` |
//! | the `:memory:` databases that outlive instances: one anchor connection per label for the store's life (`component/memory_anchors.rs`) | `component::memory_anchors` |
//! | one instance's lifecycle: built with only the data directory's preopen, a per-call time bound, rebuilt after a failure (`component/instance.rs`) | `component::instance` |
//! | the guest's imports: `sqlite` on the core's rusqlite driver, `host-info` (`component/imports/`) | `component::imports` |
//! | the adapters serving the seam through the guest's exports: `GuestRepo`, `GuestTx`, `GuestSpool` (`component/exports.rs`) | `component::exports` |
//! | the host's error type (store errors with code and class; traps and limits apart) | [`error`] |
//! | what an instance may touch: the data directory and SQLite labels (both engines use it) | [`grants`] |
//! | the YAML configuration, env overrides, mapping to [`StoreConfig`] (`config.rs`; durations as humantime text in `duration.rs`) | [`config`] |
//! | Prometheus metrics of one store (`metrics.rs`) | [`metrics`] |
//! | retry with backoff, the circuit breaker (`resilience.rs`) | [`resilience`] |
//! | the encryption keys: the age identity file outside the data directory, generate, rotate, destroy (`keys.rs`) | [`keys`] |
//! | the hash-chained audit log of mutations and refused accesses (`audit.rs`) | [`audit`] |
//! | SHA-256 as hex, the one spelling of a content digest (`digest.rs`) | [`digest`] |
//! | commit hooks on the host's writing connections, for the backup's commit times (`commit_hooks.rs`) | [`commit_hooks`] |
//! | health checks, `edgestore health`, `/healthz` (`ops/health.rs`) | [`health`] |
//! | `edgestore diag`'s report (`ops/diag.rs`) | [`diag`] |
//! | `edgestore serve`: the listener (`/metrics`, `/healthz`, ingest), stdin rows, clean stop on a signal (`ops/serve.rs`) | [`serve`] |
//! | ingest: Prometheus remote write and OTLP decoded into rows, group commit, back-pressure, status codes (`ops/ingest/`) | [`ingest`] |
//! | shipping: finished segments to S3-compatible object storage or a directory, exactly once, verified, then acknowledged (`ops/ship/`) | [`ship`] |
//! | backup: the databases' write-ahead log shipped continuously with snapshots, point-in-time restore, verification by restoring (`ops/backup/`) | [`backup`] |
//! | HTTPS for the listener (`ops/tls.rs`) | [`tls`] |
//! | the owner's admin socket: mutations from other processes, and its client (`ops/admin.rs`) | [`admin`] |
//! | measurements shared by `edgestore bench` and `cargo bench` | [`mod@bench`] |

// The one unsafe call, loading a compiled component from the cache, is allowed where it is
// justified (`component/engine.rs`); nothing else may add one.
#![deny(unsafe_code)]

pub mod audit;
mod backend;
pub mod bench;
pub mod client;
pub mod commit_hooks;
mod component;
pub mod config;
pub mod digest;
mod duration;
pub mod error;
pub mod fuzzing;
pub mod grants;
pub mod keys;
pub mod metrics;
mod ops;
pub mod resilience;

pub use client::{owner, tx};
pub use component::{artifacts, bindings, engine};
pub use ops::{admin, backup, diag, health, ingest, serve, ship, tls};

pub use client::{
    AsyncReader, AsyncSpool, AsyncStorage, ComponentSource, Engine, Store, StoreConfig,
};
pub use error::{Error, LimitKind, Result};
pub use grants::{DbTarget, Labels};
pub use tx::TxStorage;
