//! The component glue (world `plugin` of `wit/edgestore.wit`): WIT values in, core calls, WIT
//! values out. No logic lives here: transactions, counters, health, documents, schema and
//! expression validation are the core's, shared with the native build and tested there.
//!
//! | export / import | file |
//! |---|---|
//! | errors, values, schemas, queries (both directions) | `convert.rs` |
//! | the `sqlite` import as a core `Connection` | `sqlite.rs` |
//! | `repository`: `store`, `transaction` | `repository.rs` |
//! | `spool`: `spool`, `reader` (+ `host-info` capacity) | `spool.rs` |
//! | `admin` and the instance's counters | `admin.rs` |
//!
//! Compiled only with feature `component` on `target_family = "wasm"`.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
});

mod admin;
mod convert;
mod repository;
mod spool;
mod sqlite;

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
