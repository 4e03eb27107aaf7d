//! # edgestore: the portable core
//!
//! Local persistence for edge and telemetry agents, written once and built two ways: as a native
//! library and as a `wasm32-wasip2` component. Nothing in here spawns threads, reads the system
//! clock behind the caller's back, or knows about wasmtime or tokio.
//!
//! | concept | module |
//! |---|---|
//! | one error type with a code and a class | [`error`] |
//! | injected wall-clock time | [`clock`] |
//! | the directory capability and fault seam | [`dir`] |
//! | the crash-safe Brotli spool | [`spool`] |
//! | deterministic sample metrics | [`sample`] |

pub mod clock;
pub mod dir;
pub mod error;
pub mod sample;
pub mod spool;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dir::Directory;
pub use error::{Error, ErrorClass, ErrorCode, Result};
pub use spool::{Metric, Spool, SpoolConfig, SyncPolicy, TimeRange};
