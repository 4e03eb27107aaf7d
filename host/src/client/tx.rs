//! [`TxStorage`]: what a transaction closure of the client gets. It implements the core's own
//! sync traits, so code written against `Storage<M, Id>` runs unchanged inside `store.tx(..)`
//! on either engine; each operation is one call on the engine's transaction (the WIT
//! `transaction` resource, or the core's `Transaction`).

use std::marker::PhantomData;

use edgestore::model::{from_optional_rows, from_row, to_key, to_keys, to_row};
use edgestore::{Creator, Deleter, Model, Query, Reader, Schema, StorageCommon, TxMode, Updater};
use serde::Serialize;

use crate::backend::DynOps;

/// Ties a typed handle to its model and id types without owning either (always `Send`/`Sync`).
pub(crate) type Marker<M, Id> = fn() -> (M, Box<Id>);

/// A typed view of an open transaction (or savepoint) on model `M`'s table.
pub struct TxStorage<'t, M, Id: ?Sized> {
    ops: &'t dyn DynOps,
    schema: &'t Schema,
    _model: PhantomData<crate::client::tx::Marker<M, Id>>,
}

impl<'t, M, Id: ?Sized> TxStorage<'t, M, Id> {
    pub(crate) fn new(ops: &'t dyn DynOps, schema: &'t Schema) -> Self {
        TxStorage {
            ops,
            schema,
            _model: PhantomData,
        }
    }
}

impl<M: Model, Id: ?Sized> Creator<M> for TxStorage<'_, M, Id> {
    fn create(&self, item: &M) -> edgestore::Result<bool> {
        self.ops.create(&to_row(self.schema, item)?)
    }
    fn create_many(&self, items: &[M]) -> edgestore::Result<u64> {
        let rows = items
            .iter()
            .map(|m| to_row(self.schema, m))
            .collect::<edgestore::Result<Vec<_>>>()?;
        self.ops.create_many(rows)
    }
    fn upsert(&self, item: &M) -> edgestore::Result<()> {
        self.ops.upsert(&to_row(self.schema, item)?)
    }
    fn insert_or_ignore(&self, item: &M) -> edgestore::Result<bool> {
        self.ops.insert_or_ignore(&to_row(self.schema, item)?)
    }
}

impl<M: Model, Id: Serialize + ?Sized> Reader<M, Id> for TxStorage<'_, M, Id> {
    fn get(&self, id: &Id) -> edgestore::Result<M> {
        from_row(self.schema, self.ops.get(&to_key(self.schema, id)?)?)
    }
    fn get_many(&self, ids: &[Id]) -> edgestore::Result<Vec<Option<M>>>
    where
        Id: Sized,
    {
        from_optional_rows(self.schema, self.ops.get_many(&to_keys(self.schema, ids)?)?)
    }
    fn find_first(&self, query: &Query) -> edgestore::Result<Option<M>> {
        let q = query.clone().limit(1);
        Ok(self.find_all(&q)?.into_iter().next())
    }
    fn find_all(&self, query: &Query) -> edgestore::Result<Vec<M>> {
        self.ops
            .find(query)?
            .into_iter()
            .map(|r| from_row(self.schema, r))
            .collect()
    }
}

impl<M: Model, Id: ?Sized> Updater<M> for TxStorage<'_, M, Id> {
    fn update(&self, item: &M) -> edgestore::Result<()> {
        self.ops.update(&to_row(self.schema, item)?)
    }
}

impl<M: Model, Id: Serialize + ?Sized> Deleter<Id> for TxStorage<'_, M, Id> {
    fn delete(&self, id: &Id) -> edgestore::Result<bool> {
        self.ops.delete(&to_key(self.schema, id)?)
    }
}

impl<M, Id: ?Sized> StorageCommon for TxStorage<'_, M, Id> {
    type Tx<'a> = TxStorage<'a, M, Id>;

    fn count(&self) -> edgestore::Result<u64> {
        self.ops.count()
    }
    fn delete_all(&self) -> edgestore::Result<u64> {
        self.ops.delete_all()
    }
    fn tx_with<R>(
        &self,
        mode: TxMode,
        f: impl FnOnce(&Self::Tx<'_>) -> edgestore::Result<R>,
    ) -> edgestore::Result<R> {
        let mut f = Some(f);
        let mut out = None;
        let schema = self.schema;
        self.ops.nest(mode, &mut |inner| {
            let f = f
                .take()
                .ok_or_else(|| edgestore::Error::internal("savepoint closure ran twice"))?;
            out = Some(f(&TxStorage::new(inner, schema))?);
            Ok(())
        })?;
        out.ok_or_else(|| edgestore::Error::internal("savepoint closure did not run"))
    }
}
