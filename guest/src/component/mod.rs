//! The component glue (worlds `plugin` and `standalone` of `wit/edgestore.wit`): WIT values in,
//! core calls, WIT values out. Both worlds share every file but the driver: `plugin` takes SQL
//! and capacity from the host (`sqlite.rs`), `standalone` (feature `standalone`) compiles SQLite
//! in (`local.rs`) and adds the command entry point (`command.rs`). No logic lives here: transactions, counters, health, documents, schema and
//! expression validation are the core's, shared with the native build and tested there.
//!
//! | export / import | file |
//! |---|---|
//! | errors, values, schemas, queries (both directions) | `convert.rs` |
//! | plugin driver: the `sqlite` import as a core `Connection`, `host-info` capacity | `sqlite.rs` |
//! | standalone driver: bundled SQLite on WASI files, exclusive locking + WAL | `local.rs` |
//! | standalone command entry point (`wasi:cli/run`) | `command.rs` |
//! | `repository`: `store`, `transaction` | `repository.rs` |
//! | `spool`: `spool`, `reader` (+ `host-info` capacity) | `spool.rs` |
//! | `admin` and the instance's counters | `admin.rs` |
//!
//! Compiled only with feature `component` on `target_family = "wasm"`.

#[cfg(not(feature = "standalone"))]
wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
});

#[cfg(feature = "standalone")]
wit_bindgen::generate!({
    path: "../wit",
    world: "standalone",
});

mod admin;
#[cfg(feature = "standalone")]
mod command;
mod convert;
mod repository;
mod spool;

/// The world's SQL driver and capacity source: the only code that differs between worlds.
#[cfg(feature = "standalone")]
#[path = "local.rs"]
mod driver;
#[cfg(not(feature = "standalone"))]
#[path = "sqlite.rs"]
mod driver;

/// The guest path of the data directory: [`crate::layout::DATA_MOUNT`] (`/data`, what hosts
/// preopen), or `EDGESTORE_DATA` when the host sets it
/// (`wasmtime run --env EDGESTORE_DATA=/elsewhere`).
pub(crate) fn data_root() -> String {
    std::env::var("EDGESTORE_DATA")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| crate::layout::DATA_MOUNT.to_owned())
}

use self::edgestore::storage::types;

/// The component: one instance serves every export.
struct Component;

export!(Component);

/// Run one exported operation: count it (calls, errors, last time) and map a core error to
/// the WIT error with its code and class intact.
fn track<T>(
    operation: &'static str,
    f: impl FnOnce() -> crate::Result<T>,
) -> Result<T, types::Error> {
    admin::counters()
        .track(operation, &crate::SystemClock, f)
        .map_err(|e| convert::error_to_wit(&e))
}
