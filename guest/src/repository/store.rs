//! [`Store`]: several tables on one database, addressed by table name, with explicit
//! transactions ([`OpenTransaction`]) for callers that cannot pass a closure: the component's
//! `store` and `transaction` resources.
//!
//! An explicit transaction is a stack of open levels: the transaction itself (level 0) and one
//! savepoint per nested level. Only the innermost level may act; a handle whose level is not on
//! top of the stack gets `busy` (a savepoint of it is open), a handle whose level was ended gets
//! `closed`. While any level is open the store's own operations get `busy`: they would run on
//! the writer that the transaction holds. Every operation reuses `ops.rs` through
//! [`Transaction`], so no SQL logic is duplicated here.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::migrate::Migration;
use super::ops::{self, Exec};
use super::sql_repository::SqlRepository;
use super::transaction::{Touched, Transaction};
use super::{Creator, Deleter, Reader, StorageCommon, TxMode, Updater};
use crate::error::{Error, ErrorCode, Result};
use crate::model::{CreateMode, Key, Query, Row, Schema};
use crate::sql::{with_writer, with_writer_in_transaction, Database};

/// The open levels of the explicit transaction: one unique id per level, innermost last.
#[derive(Default)]
struct Levels {
    open: Vec<u64>,
    next_id: u64,
}

struct Shared {
    db: Arc<dyn Database>,
    tables: Mutex<BTreeMap<String, SqlRepository>>,
    /// Operations hold it for reading while they run, so `begin`, `savepoint`, `commit`,
    /// `rollback` and drops (writers) never change the levels under a running operation, and
    /// an operation that checked "no transaction" cannot be joined by one mid-way.
    levels: RwLock<Levels>,
}

impl Shared {
    fn levels(&self) -> RwLockReadGuard<'_, Levels> {
        self.levels.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn levels_mut(&self) -> RwLockWriteGuard<'_, Levels> {
        self.levels.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn table(&self, name: &str) -> Result<SqlRepository> {
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::TableMissing,
                    format!("table {name} is not registered with this store"),
                )
            })
    }
}

/// Several tables on one database, by name. Cheap to clone (clones share the tables and the
/// transaction state).
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

fn busy_store() -> Error {
    Error::new(
        ErrorCode::Busy,
        "a transaction is open on this store: use the transaction",
    )
}

impl Store {
    /// A store on `db` with no tables yet.
    pub fn new(db: Arc<dyn Database>) -> Self {
        // Natively `Shared` is Send + Sync; on wasm `Database` drops the bounds.
        #[cfg_attr(target_family = "wasm", allow(clippy::arc_with_non_send_sync))]
        let shared = Arc::new(Shared {
            db,
            tables: Mutex::new(BTreeMap::new()),
            levels: RwLock::new(Levels::default()),
        });
        Store { shared }
    }

    /// The database.
    pub fn database(&self) -> &Arc<dyn Database> {
        &self.shared.db
    }

    /// Hold the levels for reading, failing with `busy` while a transaction is open.
    fn idle(&self) -> Result<RwLockReadGuard<'_, Levels>> {
        let levels = self.shared.levels();
        if levels.open.is_empty() {
            Ok(levels)
        } else {
            Err(busy_store())
        }
    }

    /// Create or additively migrate the schema's table and make it addressable by name.
    pub fn register(&self, schema: Schema) -> Result<Migration> {
        let _idle = self.idle()?;
        let table = schema.table.clone();
        let repo = SqlRepository::open(self.shared.db.clone(), schema)?;
        let migration = repo.migration().clone();
        self.shared
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(table, repo);
        Ok(migration)
    }

    /// Names of the registered tables.
    pub fn tables(&self) -> Vec<String> {
        let tables = self.shared.tables.lock();
        tables
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Start an explicit transaction. While it is open, the store's own operations fail with
    /// `busy`; dropping it without `commit` rolls it back.
    pub fn begin(&self, mode: TxMode) -> Result<OpenTransaction> {
        let mut levels = self.shared.levels_mut();
        if !levels.open.is_empty() {
            return Err(busy_store());
        }
        with_writer(&*self.shared.db, |c| c.execute(mode.begin_sql(), &[]))?;
        levels.next_id += 1;
        let id = levels.next_id;
        levels.open.push(id);
        Ok(OpenTransaction {
            shared: self.shared.clone(),
            level: 0,
            id,
        })
    }
}

/// Store operations by table name, outside or inside a transaction: each looks the table up
/// (`with_table`) and forwards to the dynamic traits.
macro_rules! table_ops {
    ($ty:ty) => {
        impl $ty {
            /// Insert one row per the schema's create mode; false when ignored.
            pub fn create(&self, table: &str, row: &Row) -> Result<bool> {
                self.with_table(table, |t| t.create(row))
            }
            /// Insert many rows atomically; returns rows inserted.
            pub fn create_many(&self, table: &str, rows: &[Row]) -> Result<u64> {
                self.with_table(table, |t| t.create_many(rows))
            }
            /// [`Self::create_many`] of rows the caller gives away: their values are moved into
            /// the statement's parameters instead of copied.
            pub fn create_many_owned(&self, table: &str, rows: Vec<Row>) -> Result<u64> {
                self.with_table(table, |t| t.create_many_owned(rows))
            }
            /// Insert, or update the mutable columns of the row with the same key.
            pub fn upsert(&self, table: &str, row: &Row) -> Result<()> {
                self.with_table(table, |t| t.upsert(row))
            }
            /// Insert unless the key exists; true when inserted.
            pub fn insert_or_ignore(&self, table: &str, row: &Row) -> Result<bool> {
                self.with_table(table, |t| t.insert_or_ignore(row))
            }
            /// The row with this key; `not-found` when missing.
            pub fn get(&self, table: &str, key: &Key) -> Result<Row> {
                self.with_table(table, |t| t.get(key))
            }
            /// The rows with these keys, in order (`None` where missing), from one snapshot.
            pub fn get_many(&self, table: &str, keys: &[Key]) -> Result<Vec<Option<Row>>> {
                self.with_table(table, |t| t.get_many(keys))
            }
            /// Rows matching the query.
            pub fn find(&self, table: &str, query: &Query) -> Result<Vec<Row>> {
                self.with_table(table, |t| t.find_all(query))
            }
            /// Overwrite the mutable columns of the row with the row's key.
            pub fn update(&self, table: &str, row: &Row) -> Result<()> {
                self.with_table(table, |t| t.update(row))
            }
            /// Delete by key; false when there was nothing to delete.
            pub fn delete(&self, table: &str, key: &Key) -> Result<bool> {
                self.with_table(table, |t| t.delete(key))
            }
            /// Delete every row; returns how many.
            pub fn delete_all(&self, table: &str) -> Result<u64> {
                self.with_table(table, |t| t.delete_all())
            }
            /// Number of rows.
            pub fn count(&self, table: &str) -> Result<u64> {
                self.with_table(table, |t| t.count())
            }
        }
    };
}

/// The object-safe subset of the dynamic traits the by-name operations dispatch to.
trait Ops {
    fn create(&self, row: &Row) -> Result<bool>;
    fn create_many(&self, rows: &[Row]) -> Result<u64>;
    fn create_many_owned(&self, rows: Vec<Row>) -> Result<u64>;
    fn upsert(&self, row: &Row) -> Result<()>;
    fn insert_or_ignore(&self, row: &Row) -> Result<bool>;
    fn get(&self, key: &Key) -> Result<Row>;
    fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Row>>>;
    fn find_all(&self, query: &Query) -> Result<Vec<Row>>;
    fn update(&self, row: &Row) -> Result<()>;
    fn delete(&self, key: &Key) -> Result<bool>;
    fn delete_all(&self) -> Result<u64>;
    fn count(&self) -> Result<u64>;
}

macro_rules! forward_ops {
    ($ty:ty) => {
        impl Ops for $ty {
            fn create(&self, row: &Row) -> Result<bool> {
                ops::create(self, row, Exec::core(self).schema.create_mode)
            }
            fn create_many(&self, rows: &[Row]) -> Result<u64> {
                Creator::create_many(self, rows)
            }
            fn create_many_owned(&self, rows: Vec<Row>) -> Result<u64> {
                ops::create_many(self, rows, crate::model::JsonText::Unchecked)
            }
            fn upsert(&self, row: &Row) -> Result<()> {
                Creator::upsert(self, row)
            }
            fn insert_or_ignore(&self, row: &Row) -> Result<bool> {
                ops::create(self, row, CreateMode::InsertOrIgnore)
            }
            fn get(&self, key: &Key) -> Result<Row> {
                Reader::get(self, key)
            }
            fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Row>>> {
                Reader::get_many(self, keys)
            }
            fn find_all(&self, query: &Query) -> Result<Vec<Row>> {
                Reader::find_all(self, query)
            }
            fn update(&self, row: &Row) -> Result<()> {
                Updater::update(self, row)
            }
            fn delete(&self, key: &Key) -> Result<bool> {
                Deleter::delete(self, key)
            }
            fn delete_all(&self) -> Result<u64> {
                StorageCommon::delete_all(self)
            }
            fn count(&self) -> Result<u64> {
                StorageCommon::count(self)
            }
        }
    };
}
forward_ops!(SqlRepository);
forward_ops!(Transaction<'_>);

table_ops!(Store);

impl Store {
    fn with_table<R>(&self, table: &str, f: impl FnOnce(&dyn Ops) -> Result<R>) -> Result<R> {
        let _idle = self.idle()?;
        let repo = self.shared.table(table)?;
        f(&repo)
    }
}

/// One open level of an explicit transaction: the transaction itself or a savepoint in it.
/// Dropping it without [`OpenTransaction::commit`] rolls it back (and every level inside it).
pub struct OpenTransaction {
    shared: Arc<Shared>,
    /// 0 for the transaction, n for its n-th nested savepoint (named `sp_<n>`).
    level: usize,
    /// Identifies this level among every level ever opened on the store.
    id: u64,
}

table_ops!(OpenTransaction);

impl OpenTransaction {
    /// Run `f` on the table inside this level, through the closure-based [`Transaction`] so
    /// the operations (and `create_many`'s inner savepoint) are the repository's own.
    fn with_table<R>(&self, table: &str, f: impl FnOnce(&dyn Ops) -> Result<R>) -> Result<R> {
        let levels = self.shared.levels();
        self.on_top(&levels)?;
        let repo = self.shared.table(table)?;
        let depth = u32::try_from(self.level)
            .map_err(|_| Error::invalid_input("too many nested savepoints"))?;
        let touched = RefCell::new(Touched::default());
        with_writer_in_transaction(&*self.shared.db, |conn| {
            let tx = Transaction {
                core: Exec::core(&repo),
                conn,
                depth,
                touched: &touched,
            };
            f(&tx)
        })
    }

    /// Nesting level: 0 for the transaction, 1+ for savepoints.
    pub fn level(&self) -> usize {
        self.level
    }

    /// `closed` when this level has ended, `busy` when a savepoint of it is open.
    fn on_top(&self, levels: &Levels) -> Result<()> {
        match levels.open.get(self.level) {
            Some(&id) if id == self.id => {}
            _ => {
                return Err(Error::new(
                    ErrorCode::Closed,
                    "the transaction already ended",
                ))
            }
        }
        if levels.open.len() > self.level + 1 {
            return Err(Error::new(
                ErrorCode::Busy,
                "a savepoint of this transaction is open: use it, or end it first",
            ));
        }
        Ok(())
    }

    /// Open a nested transaction (`SAVEPOINT sp_<level+1>`). Until it ends, this level's own
    /// operations fail with `busy`.
    pub fn savepoint(&self) -> Result<OpenTransaction> {
        let mut levels = self.shared.levels_mut();
        self.on_top(&levels)?;
        let level = self.level + 1;
        self.exec(&format!("SAVEPOINT sp_{level}"))?;
        levels.next_id += 1;
        let id = levels.next_id;
        levels.open.push(id);
        Ok(OpenTransaction {
            shared: self.shared.clone(),
            level,
            id,
        })
    }

    /// Make the work durable (`COMMIT`), or part of the parent for a savepoint (`RELEASE`).
    /// A failed `COMMIT` rolls the transaction back; the level is ended either way.
    pub fn commit(&self) -> Result<()> {
        let mut levels = self.shared.levels_mut();
        self.on_top(&levels)?;
        let result = if self.level == 0 {
            self.exec("COMMIT")
        } else {
            self.exec(&format!("RELEASE sp_{}", self.level))
        };
        if result.is_err() {
            self.undo();
        }
        levels.open.truncate(self.level);
        result.map(drop)
    }

    /// Discard the work of this level.
    pub fn rollback(&self) -> Result<()> {
        let mut levels = self.shared.levels_mut();
        self.on_top(&levels)?;
        let result = self.undo_checked();
        levels.open.truncate(self.level);
        result
    }

    fn exec(&self, sql: &str) -> Result<u64> {
        with_writer_in_transaction(&*self.shared.db, |c| c.execute(sql, &[]))
    }

    fn undo_checked(&self) -> Result<()> {
        if self.level == 0 {
            self.exec("ROLLBACK").map(drop)
        } else {
            let sp = format!("sp_{}", self.level);
            self.exec(&format!("ROLLBACK TO {sp}"))?;
            self.exec(&format!("RELEASE {sp}")).map(drop)
        }
    }

    /// Roll back, ignoring errors: used where none can be reported (drop, failed commit).
    fn undo(&self) {
        let _ = self.undo_checked();
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        let mut levels = self.shared.levels_mut();
        if levels.open.get(self.level) == Some(&self.id) {
            // Rolling back this level discards every savepoint inside it too.
            self.undo();
            levels.open.truncate(self.level);
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
#[path = "store_tests.rs"]
mod tests;
