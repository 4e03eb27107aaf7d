//! Repositories: the repository traits, the dynamic SQL repository, transactions, migrations, the
//! read cache, and the typed `SqlStorage<M, Id>` on top.
//!
//! | concept | file |
//! |---|---|
//! | `Creator`, `Reader`, `Updater`, `Deleter`, `StorageCommon`, `Storage`, `TxMode` | `traits.rs` |
//! | the dynamic repository of one table | `sql_repository.rs` |
//! | the operations, written once for repository and transaction | `ops.rs` |
//! | transactions, savepoints, rollback guard | `transaction.rs` |
//! | several tables by name, explicit (non-closure) transactions | `store.rs` |
//! | create / additive migration, schema versions | `migrate.rs` |
//! | optional get-by-key cache | `cache.rs` |
//! | the typed layer | `typed.rs` |
//!
//! ```
//! use std::sync::Arc;
//! use edgestore::model::ResourceTagsKey;
//! use edgestore::{Creator, Reader, ResourceTags, SqlStorage, SqliteDatabase, StorageCommon, Timestamp};
//!
//! let db = Arc::new(SqliteDatabase::open(":memory:")?);
//! let tags = SqlStorage::<ResourceTags, ResourceTagsKey>::open(db)?;
//! let t = ResourceTags::new("pod", "web", Some("prod"), Timestamp::from_millis(0));
//! tags.tx(|tx| tx.create(&t))?;
//! assert_eq!(tags.get(&t.key())?.id, t.id);
//! # Ok::<(), edgestore::Error>(())
//! ```

mod cache;
mod migrate;
mod ops;
mod sql_repository;
mod store;
mod traits;
mod transaction;
mod typed;

pub use cache::ReadCache;
pub use migrate::{Migration, SCHEMA_TABLE};
pub use sql_repository::{RepositoryOptions, SqlRepository};
pub use store::{OpenTransaction, Store};
pub use traits::{Creator, Deleter, Reader, Storage, StorageCommon, TxMode, Updater};
pub use transaction::Transaction;
pub use typed::SqlStorage;

use crate::error::Result;
use crate::model::{Key, Row, Schema, SerializedRows};

/// A dynamic store (rows and keys of a runtime schema): the repository itself, or a transaction
/// on it. The typed layer is generic over this.
pub trait DynamicStore:
    Creator<Row> + Reader<Row, Key> + Updater<Row> + Deleter<Key> + StorageCommon
{
    /// The table's schema.
    fn schema(&self) -> &Schema;
    /// [`Creator::create_many`] of rows the caller gives away (no copy of their values).
    fn create_many_owned(&self, rows: Vec<Row>) -> Result<u64>;
    /// [`DynamicStore::create_many_owned`] of rows made from typed models, whose JSON columns
    /// need no second parse.
    fn create_many_serialized(&self, rows: SerializedRows) -> Result<u64> {
        self.create_many_owned(rows.into_rows())
    }
    /// Run `f` in a transaction (a savepoint when already inside one).
    fn transaction<R>(
        &self,
        mode: TxMode,
        f: impl FnOnce(&Transaction<'_>) -> Result<R>,
    ) -> Result<R>;
}

/// Implement the public traits for a dynamic store that implements `ops::Exec`, so the
/// repository and a transaction share one implementation of every operation.
macro_rules! dynamic_traits {
    ($ty:ty, |$this:ident, $mode:ident, $f:ident| $tx:expr) => {
        impl $crate::repository::Creator<$crate::model::Row> for $ty {
            fn create(&self, item: &$crate::model::Row) -> $crate::Result<bool> {
                $crate::repository::ops::create(
                    self,
                    item,
                    $crate::repository::ops::Exec::core(self).schema.create_mode,
                )
            }
            fn create_many(&self, items: &[$crate::model::Row]) -> $crate::Result<u64> {
                $crate::repository::ops::create_many(
                    self,
                    items.to_vec(),
                    $crate::model::JsonText::Unchecked,
                )
            }
            fn upsert(&self, item: &$crate::model::Row) -> $crate::Result<()> {
                $crate::repository::ops::upsert(self, item)
            }
            fn insert_or_ignore(&self, item: &$crate::model::Row) -> $crate::Result<bool> {
                $crate::repository::ops::create(
                    self,
                    item,
                    $crate::model::CreateMode::InsertOrIgnore,
                )
            }
        }

        impl $crate::repository::Reader<$crate::model::Row, $crate::model::Key> for $ty {
            fn get(&self, id: &$crate::model::Key) -> $crate::Result<$crate::model::Row> {
                $crate::repository::ops::get(self, id)
            }
            fn find_first(
                &self,
                query: &$crate::model::Query,
            ) -> $crate::Result<Option<$crate::model::Row>> {
                $crate::repository::ops::find_first(self, query)
            }
            fn find_all(
                &self,
                query: &$crate::model::Query,
            ) -> $crate::Result<Vec<$crate::model::Row>> {
                $crate::repository::ops::find_all(self, query)
            }
            fn get_many(
                &self,
                ids: &[$crate::model::Key],
            ) -> $crate::Result<Vec<Option<$crate::model::Row>>> {
                $crate::repository::ops::get_many(self, ids)
            }
        }

        impl $crate::repository::Updater<$crate::model::Row> for $ty {
            fn update(&self, item: &$crate::model::Row) -> $crate::Result<()> {
                $crate::repository::ops::update(self, item)
            }
        }

        impl $crate::repository::Deleter<$crate::model::Key> for $ty {
            fn delete(&self, id: &$crate::model::Key) -> $crate::Result<bool> {
                $crate::repository::ops::delete(self, id)
            }
        }

        impl $crate::repository::StorageCommon for $ty {
            type Tx<'t> = $crate::repository::Transaction<'t>;

            fn count(&self) -> $crate::Result<u64> {
                $crate::repository::ops::count(self)
            }
            fn delete_all(&self) -> $crate::Result<u64> {
                $crate::repository::ops::delete_all(self)
            }
            fn tx_with<R>(
                &self,
                $mode: $crate::repository::TxMode,
                $f: impl FnOnce(&$crate::repository::Transaction<'_>) -> $crate::Result<R>,
            ) -> $crate::Result<R> {
                let $this = self;
                $tx
            }
        }

        impl $crate::repository::DynamicStore for $ty {
            fn schema(&self) -> &$crate::model::Schema {
                &$crate::repository::ops::Exec::core(self).schema
            }
            fn create_many_owned(&self, rows: Vec<$crate::model::Row>) -> $crate::Result<u64> {
                $crate::repository::ops::create_many(self, rows, $crate::model::JsonText::Unchecked)
            }
            fn create_many_serialized(
                &self,
                rows: $crate::model::SerializedRows,
            ) -> $crate::Result<u64> {
                $crate::repository::ops::create_many(
                    self,
                    rows.into_rows(),
                    $crate::model::JsonText::Serialized,
                )
            }
            fn transaction<R>(
                &self,
                $mode: $crate::repository::TxMode,
                $f: impl FnOnce(&$crate::repository::Transaction<'_>) -> $crate::Result<R>,
            ) -> $crate::Result<R> {
                let $this = self;
                $tx
            }
        }
    };
}
pub(crate) use dynamic_traits;
