//! [`SqlStorage<M, Id>`]: the typed layer. Maps models to rows and ids to keys (serde), then
//! calls the dynamic layer; it holds no logic of its own beyond that mapping.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;

use super::{
    Creator, Deleter, DynamicStore, Reader, RepositoryOptions, SqlRepository, StorageCommon,
    Transaction, TxMode, Updater,
};
use crate::error::Result;
use crate::model::{
    from_optional_rows, from_row, to_key, to_keys, to_row, to_rows, Model, Query, Row,
};
use crate::sql::Database;

/// A typed store of `M` by `Id` over a dynamic store `E` (the repository, or a transaction).
pub struct SqlStorage<M, Id: ?Sized, E = SqlRepository> {
    inner: E,
    _marker: PhantomData<fn(&Id) -> M>,
}

impl<M, Id: ?Sized, E: Clone> Clone for SqlStorage<M, Id, E> {
    fn clone(&self) -> Self {
        SqlStorage::wrap(self.inner.clone())
    }
}

impl<M: Model, Id: ?Sized> SqlStorage<M, Id, SqlRepository> {
    /// Open (and migrate) the table of `M` on `db`.
    pub fn open(db: Arc<dyn Database>) -> Result<Self> {
        Self::open_with(db, RepositoryOptions::default())
    }

    /// [`SqlStorage::open`] with options (e.g. the read cache).
    pub fn open_with(db: Arc<dyn Database>, options: RepositoryOptions) -> Result<Self> {
        SqlRepository::open_with(db, M::schema(), options).map(SqlStorage::wrap)
    }
}

impl<M, Id: ?Sized, E> SqlStorage<M, Id, E> {
    /// Wrap a dynamic store.
    pub fn wrap(inner: E) -> Self {
        SqlStorage {
            inner,
            _marker: PhantomData,
        }
    }

    /// The dynamic store underneath.
    pub fn dynamic(&self) -> &E {
        &self.inner
    }
}

impl<M: Model, Id: ?Sized, E: DynamicStore> SqlStorage<M, Id, E> {
    fn row(&self, item: &M) -> Result<Row> {
        to_row(self.inner.schema(), item)
    }

    fn model(&self, row: Row) -> Result<M> {
        from_row(self.inner.schema(), row)
    }
}

impl<M: Model, Id: ?Sized, E: DynamicStore> Creator<M> for SqlStorage<M, Id, E> {
    fn create(&self, item: &M) -> Result<bool> {
        self.inner.create(&self.row(item)?)
    }

    fn create_many(&self, items: &[M]) -> Result<u64> {
        self.inner
            .create_many_serialized(to_rows(self.inner.schema(), items)?)
    }

    fn upsert(&self, item: &M) -> Result<()> {
        self.inner.upsert(&self.row(item)?)
    }

    fn insert_or_ignore(&self, item: &M) -> Result<bool> {
        self.inner.insert_or_ignore(&self.row(item)?)
    }
}

impl<M: Model, Id: Serialize + ?Sized, E: DynamicStore> Reader<M, Id> for SqlStorage<M, Id, E> {
    fn get(&self, id: &Id) -> Result<M> {
        let key = to_key(self.inner.schema(), id)?;
        self.model(self.inner.get(&key)?)
    }

    fn get_many(&self, ids: &[Id]) -> Result<Vec<Option<M>>>
    where
        Id: Sized,
    {
        let schema = self.inner.schema();
        from_optional_rows(schema, self.inner.get_many(&to_keys(schema, ids)?)?)
    }

    fn find_first(&self, query: &Query) -> Result<Option<M>> {
        self.inner
            .find_first(query)?
            .map(|r| self.model(r))
            .transpose()
    }

    fn find_all(&self, query: &Query) -> Result<Vec<M>> {
        self.inner
            .find_all(query)?
            .into_iter()
            .map(|r| self.model(r))
            .collect()
    }
}

impl<M: Model, Id: ?Sized, E: DynamicStore> Updater<M> for SqlStorage<M, Id, E> {
    fn update(&self, item: &M) -> Result<()> {
        self.inner.update(&self.row(item)?)
    }
}

impl<M: Model, Id: Serialize + ?Sized, E: DynamicStore> Deleter<Id> for SqlStorage<M, Id, E> {
    fn delete(&self, id: &Id) -> Result<bool> {
        let key = to_key(self.inner.schema(), id)?;
        self.inner.delete(&key)
    }
}

impl<M: Model, Id: ?Sized, E: DynamicStore> StorageCommon for SqlStorage<M, Id, E> {
    type Tx<'t> = SqlStorage<M, Id, Transaction<'t>>;

    fn count(&self) -> Result<u64> {
        self.inner.count()
    }

    fn delete_all(&self) -> Result<u64> {
        self.inner.delete_all()
    }

    fn tx_with<R>(&self, mode: TxMode, f: impl FnOnce(&Self::Tx<'_>) -> Result<R>) -> Result<R> {
        self.inner.transaction(mode, |tx| f(&SqlStorage::wrap(*tx)))
    }
}
