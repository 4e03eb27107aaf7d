//! The seam between the typed client and the two engines: dynamic (schema-as-data) operations
//! on one table, the same for the native core and the component, run on the store's owning
//! thread. [`DynOps::nest`] opens a transaction on a table and a savepoint inside one, so one
//! trait covers both the table and its transactions.
//!
//! The engines behind it: [`native::NativeBackend`] here (the core linked into the process) and
//! `ComponentBackend` in `crate::component` (its adapters over the guest's exports are in
//! `component/exports.rs`). What does not depend on the engine is written once in [`state`]:
//! the table registry, handle ids and open handles, and the store/transaction dispatch of
//! [`DynOps`] with nesting; an engine file holds only what differs by engine.

use edgestore::model::{Key, Query, Row};
use edgestore::spool::{EraseFilter, EraseReport, PurgeReport, SegmentInfo, Usage, VerifyReport};
use edgestore::{Metric, Schema, SpoolConfig, TimeRange, TxMode};

use crate::error::Result;

pub(crate) mod native;
pub(crate) mod state;

/// Row-level operations on one table (or one transaction on it).
pub(crate) trait DynOps {
    fn create(&self, row: &Row) -> edgestore::Result<bool>;
    /// Rows by value: the native engine moves them into the statement's parameters.
    fn create_many(&self, rows: Vec<Row>) -> edgestore::Result<u64>;
    fn upsert(&self, row: &Row) -> edgestore::Result<()>;
    fn insert_or_ignore(&self, row: &Row) -> edgestore::Result<bool>;
    fn get(&self, key: &Key) -> edgestore::Result<Row>;
    /// Rows of these keys in order (`None` where missing), from one snapshot.
    fn get_many(&self, keys: &[Key]) -> edgestore::Result<Vec<Option<Row>>>;
    fn find(&self, query: &Query) -> edgestore::Result<Vec<Row>>;
    fn update(&self, row: &Row) -> edgestore::Result<()>;
    fn delete(&self, key: &Key) -> edgestore::Result<bool>;
    fn delete_all(&self) -> edgestore::Result<u64>;
    fn count(&self) -> edgestore::Result<u64>;
    /// Run `f` in a transaction of `mode` (a savepoint when `self` is a transaction): `Ok`
    /// commits, `Err` rolls back.
    fn nest(
        &self,
        mode: TxMode,
        f: &mut dyn FnMut(&dyn DynOps) -> edgestore::Result<()>,
    ) -> edgestore::Result<()>;
}

/// Spool operations.
pub(crate) trait DynSpool {
    fn put(&self, rows: &[Metric]) -> edgestore::Result<()>;
    /// Append JSON documents (each one JSON value as text); a malformed one fails the batch.
    fn put_documents(&self, docs: Vec<String>) -> edgestore::Result<()>;
    fn flush(&self) -> edgestore::Result<()>;
    fn flush_due(&self, now_ms: i64) -> edgestore::Result<u64>;
    fn sync(&self) -> edgestore::Result<()>;
    fn pending(&self) -> edgestore::Result<u64>;
    fn segments(&self, range: TimeRange) -> edgestore::Result<Vec<SegmentInfo>>;
    fn mark_uploaded(&self, names: &[String]) -> edgestore::Result<u64>;
    fn purge(&self) -> edgestore::Result<PurgeReport>;
    fn erase(&self, filter: &EraseFilter) -> edgestore::Result<EraseReport>;
    fn usage(&self) -> edgestore::Result<Usage>;
    fn verify(&self) -> edgestore::Result<VerifyReport>;
    /// Rows in the journals on disk (not yet in finished segments): an owner's active
    /// journal, or one a killed process left.
    fn journal_rows(&self) -> edgestore::Result<u64>;
}

/// Which rows a reader streams.
#[derive(Debug, Clone)]
pub(crate) enum ReadFrom {
    Segment(String),
    Range(TimeRange),
}

/// One engine behind the client, owned by the store's thread.
pub(crate) trait Backend: Send {
    /// Create or migrate a model's table.
    fn register(&mut self, schema: &Schema) -> Result<()>;
    /// Run `f` on the table's operations.
    fn with_table(
        &mut self,
        table: &str,
        f: &mut dyn FnMut(&dyn DynOps) -> edgestore::Result<()>,
    ) -> Result<()>;
    /// Open a spool at `path` inside the data directory; returns its id.
    fn open_spool(&mut self, path: &str, config: &SpoolConfig) -> Result<u64>;
    /// Run `f` on an open spool.
    fn with_spool(
        &mut self,
        id: u64,
        f: &mut dyn FnMut(&dyn DynSpool) -> edgestore::Result<()>,
    ) -> Result<()>;
    /// Open a reader on a spool; returns its id.
    fn open_reader(&mut self, spool: u64, from: ReadFrom) -> Result<u64>;
    /// Up to `max` next metrics.
    fn read(&mut self, reader: u64, max: u32) -> Result<Vec<Metric>>;
    /// Up to `max` next rows as the JSON text stored.
    fn read_documents(&mut self, reader: u64, max: u32) -> Result<Vec<String>>;
    /// Close a reader.
    fn close_reader(&mut self, reader: u64);
    /// The timer hook: `flush-due(now)` on every open spool; returns the segments finished.
    fn flush_due_all(&mut self, now_ms: i64) -> u64;
    /// A cheap call through the whole stack (for measuring per-call overhead).
    fn ping(&mut self) -> Result<()>;
    /// The engine's health checks (the database answers `SELECT 1`, each spool's usage is
    /// readable and its disk not full): one reason per failed check.
    fn engine_health(&mut self) -> Result<Vec<String>>;
    /// SQLite connections open now.
    fn open_connections(&self) -> u64;
}

/// Run a one-shot closure on a table and return its value.
pub(crate) fn on_table<R>(
    backend: &mut dyn Backend,
    table: &str,
    f: impl FnOnce(&dyn DynOps) -> edgestore::Result<R>,
) -> Result<R> {
    let mut f = Some(f);
    let mut out = None;
    backend.with_table(table, &mut |ops| {
        let f = f
            .take()
            .ok_or_else(|| edgestore::Error::internal("closure called twice"))?;
        out = Some(f(ops)?);
        Ok(())
    })?;
    out.ok_or_else(|| edgestore::Error::internal("closure was not called").into())
}

/// Run a one-shot closure on a spool and return its value.
pub(crate) fn on_spool<R>(
    backend: &mut dyn Backend,
    id: u64,
    f: impl FnOnce(&dyn DynSpool) -> edgestore::Result<R>,
) -> Result<R> {
    let mut f = Some(f);
    let mut out = None;
    backend.with_spool(id, &mut |s| {
        let f = f
            .take()
            .ok_or_else(|| edgestore::Error::internal("closure called twice"))?;
        out = Some(f(s)?);
        Ok(())
    })?;
    out.ok_or_else(|| edgestore::Error::internal("closure was not called").into())
}
