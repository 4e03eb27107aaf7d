//! A plugin component that misbehaves on request, to show what the host does when a guest is
//! hostile (`tests/host_hostile.rs`). It implements the `plugin` world of `wit/edgestore.wit`
//! just enough to be instantiated and driven through the host's store:
//!
//! - `store.open` opens the granted database through the host's `sqlite` import and keeps one
//!   table, `hostile_row(tbl, data)`; `register` accepts any schema without touching it.
//! - `create`, `create-many`, `upsert` and `insert-or-ignore` write one `hostile_row` per row
//!   (in a transaction, inside it) and `count` counts them per table: the data a test can show
//!   is never lost.
//! - a write to a table named after a misbehaviour does it instead (after writing, inside a
//!   transaction, so the host must roll the write back): `loop` spins forever, `sleep` blocks
//!   in a WASI sleep for an hour (`nap` for 50 ms, which is allowed), `alloc` allocates until
//!   the memory cap, `trap` panics (a wasm trap), `recurse` recurses without end, `escape`
//!   tries every way out of its grant it can think of and reports each attempt in its error's
//!   message (`ESCAPED` marks one that worked).
//! - everything else (the spool, readers, savepoints) is refused with `invalid-input`.

#[cfg(target_family = "wasm")]
mod guest;
