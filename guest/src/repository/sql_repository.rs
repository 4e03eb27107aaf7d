//! [`SqlRepository`]: the dynamic repository of one table, driven by a runtime [`Schema`], rows
//! as `Vec<Value>` and keys as `Vec<Value>`. This is what the WIT component will expose; the
//! typed [`super::SqlStorage`] is a thin layer on top.

use std::sync::Arc;

use super::cache::ReadCache;
use super::migrate::{ensure, Migration};
use super::ops::{Core, Exec};
use super::transaction::{run_top, Transaction};
use super::TxMode;
use crate::error::Result;
use crate::model::{Key, Schema};
use crate::sql::dml::Statements;
use crate::sql::{with_reader, with_writer, Connection, Database};

/// Repository options.
#[derive(Debug, Clone, Default)]
pub struct RepositoryOptions {
    /// Cache up to this many rows for get-by-key (`None`, the default: no cache).
    pub read_cache: Option<usize>,
}

/// The dynamic repository of one table. Cheap to clone; `Send + Sync` natively.
#[derive(Clone)]
pub struct SqlRepository {
    core: Arc<Core>,
    migration: Migration,
}

impl SqlRepository {
    /// Validate the schema, migrate the table (create or extend additively) when it does not
    /// match yet, and open. An up-to-date table is only read, so this works on a read-only
    /// database too; there a needed change is `table-missing` (a table not created yet) or
    /// `permission-denied` (one that needs migrating).
    pub fn open(db: Arc<dyn Database>, schema: Schema) -> Result<Self> {
        Self::open_with(db, schema, RepositoryOptions::default())
    }

    /// [`SqlRepository::open`] with options.
    pub fn open_with(
        db: Arc<dyn Database>,
        schema: Schema,
        options: RepositoryOptions,
    ) -> Result<Self> {
        schema.validate()?;
        let core = Core {
            sql: Statements::new(&schema),
            cache: options.read_cache.map(ReadCache::new),
            schema,
            db,
        };
        // Writes only when the table must change (and never on a read-only database).
        let migration = ensure(&core)?;
        // Natively `Core` is Send + Sync (its database is); on wasm there are no threads, and
        // `Database` drops the bounds, so clippy's lint for the Arc does not apply.
        #[cfg_attr(target_family = "wasm", allow(clippy::arc_with_non_send_sync))]
        let core = Arc::new(core);
        Ok(SqlRepository { core, migration })
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.core.schema
    }

    /// What opening did to the table.
    pub fn migration(&self) -> &Migration {
        &self.migration
    }

    /// The database, for raw statements and for opening more tables on it.
    pub fn database(&self) -> &Arc<dyn Database> {
        &self.core.db
    }

    /// Number of rows currently in the read cache (0 without one).
    pub fn cached_rows(&self) -> usize {
        self.core.cache.as_ref().map_or(0, ReadCache::len)
    }

    /// Run `f` in a top-level transaction on the writer.
    pub fn transaction<R>(
        &self,
        mode: TxMode,
        f: impl FnOnce(&Transaction<'_>) -> Result<R>,
    ) -> Result<R> {
        with_writer(&*self.core.db, |conn| run_top(&self.core, conn, mode, f))
    }
}

impl Exec for SqlRepository {
    fn core(&self) -> &Core {
        &self.core
    }

    fn read<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R> {
        with_reader(&*self.core.db, f)
    }

    fn read_snapshot<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R> {
        with_reader(&*self.core.db, |c| super::ops::in_read_transaction(c, f))
    }

    fn write<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R> {
        with_writer(&*self.core.db, f)
    }

    fn atomic<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R> {
        self.transaction(TxMode::Immediate, |tx| f(tx.conn))
    }

    fn touched(&self, key: Option<&Key>) {
        self.core.invalidate(key);
    }

    fn may_cache(&self) -> bool {
        true
    }
}

super::dynamic_traits!(SqlRepository, |this, mode, f| this.transaction(mode, f));
