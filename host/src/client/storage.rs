//! [`AsyncStorage`]: the core's typed `Storage<M, Id>` and its transactions, async, on a
//! [`Store`].

use std::marker::PhantomData;
use std::sync::Arc;

use edgestore::model::{from_optional_rows, from_row, to_key, to_keys, to_row};
use edgestore::{Model, Query, Schema, TxMode};
use serde::Serialize;

use super::tx::TxStorage;
use super::{Store, TxMark};
use crate::backend::on_table;
use crate::error::Result;

/// Typed, async storage of model `M` keyed by `Id`: the core's `Storage<M, Id>` operations.
pub struct AsyncStorage<M, Id: ?Sized> {
    pub(super) store: Store,
    pub(super) schema: Arc<Schema>,
    pub(super) _model: PhantomData<crate::client::tx::Marker<M, Id>>,
}

impl<M, Id: ?Sized> std::fmt::Debug for AsyncStorage<M, Id> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncStorage")
            .field("table", &self.schema.table)
            .finish_non_exhaustive()
    }
}

impl<M, Id: ?Sized> Clone for AsyncStorage<M, Id> {
    fn clone(&self) -> Self {
        AsyncStorage {
            store: self.store.clone(),
            schema: self.schema.clone(),
            _model: PhantomData,
        }
    }
}

/// The repository operations that change rows (audited).
const MUTATIONS: &[&str] = &[
    "create",
    "create_many",
    "upsert",
    "insert_or_ignore",
    "update",
    "delete",
    "delete_all",
];

impl<M, Id> AsyncStorage<M, Id>
where
    M: Model + Send + Sync + 'static,
    Id: Serialize + ?Sized,
{
    async fn table<R: Send + 'static>(
        &self,
        op: &'static str,
        f: impl Fn(&dyn crate::backend::DynOps, &Schema) -> edgestore::Result<R> + Send + Sync + 'static,
    ) -> Result<R> {
        let schema = self.schema.clone();
        let out = self
            .store
            .call(op, move |b| {
                on_table(b, &schema.table, |ops| f(ops, &schema))
            })
            .await;
        if MUTATIONS.contains(&op) {
            self.store
                .audit_result(&format!("repo.{op}"), &self.schema.table, |_| None, &out);
        }
        out
    }

    /// The model's schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Insert one item (per the schema's create mode); `false` when ignored.
    pub async fn create(&self, item: &M) -> Result<bool> {
        let row = to_row(&self.schema, item)?;
        self.table("create", move |ops, _| ops.create(&row)).await
    }

    /// Insert many items atomically in one call; returns how many were inserted.
    pub async fn create_many(&self, items: &[M]) -> Result<u64> {
        let rows = items
            .iter()
            .map(|m| to_row(&self.schema, m))
            .collect::<edgestore::Result<Vec<_>>>()?;
        // The dispatch may retry a transient failure, so each attempt gets its own copy (the
        // engine consumes the rows); a copy costs far less than the insert it feeds.
        self.table("create_many", move |ops, _| ops.create_many(rows.clone()))
            .await
    }

    /// Insert, or update the mutable columns of the row with the same key.
    pub async fn upsert(&self, item: &M) -> Result<()> {
        let row = to_row(&self.schema, item)?;
        self.table("upsert", move |ops, _| ops.upsert(&row)).await
    }

    /// Insert unless the key exists; `true` when inserted.
    pub async fn insert_or_ignore(&self, item: &M) -> Result<bool> {
        let row = to_row(&self.schema, item)?;
        self.table("insert_or_ignore", move |ops, _| ops.insert_or_ignore(&row))
            .await
    }

    /// The item with this id; a missing row is `not-found`.
    pub async fn get(&self, id: &Id) -> Result<M> {
        let key = to_key(&self.schema, id)?;
        self.table("get", move |ops, schema| from_row(schema, ops.get(&key)?))
            .await
    }

    /// The items with these ids, in order (`None` where nothing is stored), in one call and
    /// one read transaction: a consistent snapshot, and far cheaper per id than [`Self::get`].
    pub async fn get_many(&self, ids: &[Id]) -> Result<Vec<Option<M>>>
    where
        Id: Sized,
    {
        let keys = to_keys(&self.schema, ids)?;
        self.table("get_many", move |ops, schema| {
            from_optional_rows(schema, ops.get_many(&keys)?)
        })
        .await
    }

    /// The first item matching the query.
    pub async fn find_first(&self, query: &Query) -> Result<Option<M>> {
        let q = query.clone().limit(1);
        let mut all = self.find_all_query(q).await?;
        Ok(if all.is_empty() {
            None
        } else {
            Some(all.swap_remove(0))
        })
    }

    /// Every item matching the query.
    pub async fn find_all(&self, query: &Query) -> Result<Vec<M>> {
        self.find_all_query(query.clone()).await
    }

    async fn find_all_query(&self, q: Query) -> Result<Vec<M>> {
        self.table("find", move |ops, schema| {
            ops.find(&q)?
                .into_iter()
                .map(|r| from_row(schema, r))
                .collect()
        })
        .await
    }

    /// Overwrite the mutable columns of the row with the item's key; `not-found` if none.
    pub async fn update(&self, item: &M) -> Result<()> {
        let row = to_row(&self.schema, item)?;
        self.table("update", move |ops, _| ops.update(&row)).await
    }

    /// Delete by id; `false` when there was nothing to delete.
    pub async fn delete(&self, id: &Id) -> Result<bool> {
        let key = to_key(&self.schema, id)?;
        self.table("delete", move |ops, _| ops.delete(&key)).await
    }

    /// Delete every row; returns how many.
    pub async fn delete_all(&self) -> Result<u64> {
        self.table("delete_all", |ops, _| ops.delete_all()).await
    }

    /// Number of rows.
    pub async fn count(&self) -> Result<u64> {
        self.table("count", |ops, _| ops.count()).await
    }

    /// Run `f` in an immediate transaction on the owning thread. `f` gets a view implementing
    /// the core's sync traits (`Creator`, `Reader`, `Updater`, `Deleter`, `StorageCommon`,
    /// so `Storage<M, Id>`); `Ok` commits, `Err` rolls back, `tx.tx(..)` nests a savepoint.
    pub async fn tx<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&TxStorage<'t, M, Id>) -> edgestore::Result<R> + Send + 'static,
    {
        self.tx_with(TxMode::Immediate, f).await
    }

    /// [`AsyncStorage::tx`] with a chosen mode.
    pub async fn tx_with<R, F>(&self, mode: TxMode, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&TxStorage<'t, M, Id>) -> edgestore::Result<R> + Send + 'static,
    {
        let schema = self.schema.clone();
        let activity = self.store.shared.activity.clone();
        let out = self
            .store
            .call_once("tx", move |b| {
                let _mark = TxMark::begin(&activity);
                on_table(b, &schema.table, |ops| {
                    let mut f = Some(f);
                    let mut out = None;
                    ops.nest(mode, &mut |tx| {
                        let f = f.take().ok_or_else(|| {
                            edgestore::Error::internal("transaction closure ran twice")
                        })?;
                        out = Some(f(&TxStorage::new(tx, &schema))?);
                        Ok(())
                    })?;
                    out.ok_or_else(|| edgestore::Error::internal("transaction closure did not run"))
                })
            })
            .await;
        self.store
            .audit_result("repo.tx", &self.schema.table, |_| None, &out);
        out
    }
}
