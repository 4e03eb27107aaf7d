//! The repository traits: `Creator`, `Reader`, `Updater`, `Deleter`, `StorageCommon`,
//! and `Storage<M, Id>` combining them.
//!
//! Both layers implement them: the dynamic layer with `M = Row`, `Id = Key` (what WIT exposes),
//! the typed layer with a [`crate::model::Model`] and its id type.

use crate::error::{ErrorCode, Result};
use crate::model::Query;

/// How a transaction takes its locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxMode {
    /// Locks are taken on first read / write. Cheapest, but a deferred transaction that reads
    /// and then writes can fail with busy-snapshot, which no retry inside it can fix.
    Deferred,
    /// Takes the write lock at `BEGIN` (retried while busy). The default for `tx`.
    #[default]
    Immediate,
    /// Like immediate, and also keeps readers out (rollback-journal mode only).
    Exclusive,
}

impl TxMode {
    /// The `BEGIN` statement.
    pub fn begin_sql(self) -> &'static str {
        match self {
            TxMode::Deferred => "BEGIN DEFERRED",
            TxMode::Immediate => "BEGIN IMMEDIATE",
            TxMode::Exclusive => "BEGIN EXCLUSIVE",
        }
    }
}

/// Inserting.
pub trait Creator<M> {
    /// Insert one item. With the schema's create mode `insert`, an existing key is a
    /// `duplicate-key` error; with `insert-or-ignore` it is kept and `Ok(false)` returned.
    fn create(&self, item: &M) -> Result<bool>;
    /// Insert many items atomically through one prepared statement; returns how many were
    /// inserted (ignored ones do not count).
    fn create_many(&self, items: &[M]) -> Result<u64>;
    /// Insert, or update the mutable columns of the row with the same key.
    fn upsert(&self, item: &M) -> Result<()>;
    /// Insert unless the key exists; `Ok(true)` when inserted.
    fn insert_or_ignore(&self, item: &M) -> Result<bool>;
}

/// Reading.
pub trait Reader<M, Id: ?Sized> {
    /// The item with this id; a missing row is a `not-found` error.
    fn get(&self, id: &Id) -> Result<M>;
    /// The first item matching the query, if any.
    fn find_first(&self, query: &Query) -> Result<Option<M>>;
    /// Every item matching the query.
    fn find_all(&self, query: &Query) -> Result<Vec<M>>;
    /// The items with these ids, in the ids' order, `None` where nothing is stored. The SQL
    /// stores read the whole batch in one read transaction: every row comes from the same
    /// snapshot, and the database's read lock is taken once rather than once per id (on a
    /// file database that lock is a large part of what a single `get` costs).
    fn get_many(&self, ids: &[Id]) -> Result<Vec<Option<M>>>
    where
        Id: Sized,
    {
        ids.iter()
            .map(|id| match self.get(id) {
                Ok(item) => Ok(Some(item)),
                Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }
}

/// Updating.
pub trait Updater<M> {
    /// Overwrite the mutable columns of the row with the item's key; `not-found` if none.
    fn update(&self, item: &M) -> Result<()>;
}

/// Deleting.
pub trait Deleter<Id: ?Sized> {
    /// Delete by id. Idempotent: deleting a missing row is `Ok(false)`.
    fn delete(&self, id: &Id) -> Result<bool>;
}

/// Whole-table operations and transactions.
pub trait StorageCommon {
    /// The view passed to a transaction's closure: the same operations, inside the transaction.
    type Tx<'t>;

    /// Number of rows.
    fn count(&self) -> Result<u64>;
    /// Delete every row; returns how many.
    fn delete_all(&self) -> Result<u64>;
    /// Run `f` in a transaction of `mode`: `Ok` commits, `Err` or a panic rolls back. Inside a
    /// transaction this nests as a SAVEPOINT (the mode is then irrelevant).
    fn tx_with<R>(&self, mode: TxMode, f: impl FnOnce(&Self::Tx<'_>) -> Result<R>) -> Result<R>;
    /// [`StorageCommon::tx_with`] in immediate mode.
    fn tx<R>(&self, f: impl FnOnce(&Self::Tx<'_>) -> Result<R>) -> Result<R> {
        self.tx_with(TxMode::Immediate, f)
    }
}

/// Everything a store of `M` by `Id` offers.
pub trait Storage<M, Id: ?Sized>:
    Creator<M> + Reader<M, Id> + Updater<M> + Deleter<Id> + StorageCommon
{
}

impl<T, M, Id: ?Sized> Storage<M, Id> for T where
    T: Creator<M> + Reader<M, Id> + Updater<M> + Deleter<Id> + StorageCommon
{
}
