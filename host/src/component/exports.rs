//! The component's side of the engine seam ([`crate::backend`]): [`ComponentBackend`]
//! implements `Backend`, and the adapters [`GuestOps`] (a table or transaction of the guest's
//! repository store) and [`GuestSpool`] (an open spool) implement `DynOps` / `DynSpool` by
//! calling the guest's exports, each call under the instance's time bound ([`Ctx::call`]).

use std::sync::atomic::Ordering;

use edgestore::model::{Key, Query, Row};
use edgestore::spool::{PurgeReport, SegmentInfo, Usage, VerifyReport};
use edgestore::{ErrorCode, Metric, Schema, SpoolConfig, TimeRange, TxMode};
use wasmtime::component::ResourceAny;

use super::bindings::{self, wit_types as t};
use super::convert::*;
use super::instance::{ComponentBackend, Ctx};
use crate::backend::{Backend, DynOps, DynSpool, ReadFrom};
use crate::error::{Error, Result};

/// A table (or transaction on it) of the guest's repository store.
struct GuestOps<'c, 'a> {
    ctx: &'c Ctx<'a>,
    table: &'c str,
    /// `None`: the store itself; `Some`: a transaction resource.
    tx: Option<ResourceAny>,
    store_res: ResourceAny,
}

impl GuestOps<'_, '_> {
    fn repo(&self) -> &bindings::wit_repo::Guest {
        self.ctx.plugin.edgestore_storage_repository()
    }
}

macro_rules! both {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        let repo = $self.repo();
        match $self.tx {
            None => {
                let g = repo.store();
                $self.ctx.call(|st| g.$method(st, $self.store_res, $self.table $(, $arg)*))
            }
            Some(tx) => {
                let g = repo.transaction();
                $self.ctx.call(|st| g.$method(st, tx, $self.table $(, $arg)*))
            }
        }
    }};
}

fn wit_row(row: &Row) -> Vec<t::Value> {
    row_to_wit(row.clone())
}

impl DynOps for GuestOps<'_, '_> {
    fn create(&self, row: &Row) -> edgestore::Result<bool> {
        let r = wit_row(row);
        both!(self, call_create(&r))
    }
    fn create_many(&self, rows: Vec<Row>) -> edgestore::Result<u64> {
        let rs: Vec<Vec<t::Value>> = rows.iter().map(wit_row).collect();
        both!(self, call_create_many(&rs))
    }
    fn upsert(&self, row: &Row) -> edgestore::Result<()> {
        let r = wit_row(row);
        both!(self, call_upsert(&r))
    }
    fn insert_or_ignore(&self, row: &Row) -> edgestore::Result<bool> {
        let r = wit_row(row);
        both!(self, call_insert_or_ignore(&r))
    }
    fn get(&self, key: &Key) -> edgestore::Result<Row> {
        let k = wit_row(key);
        both!(self, call_get(&k)).map(row_from_wit)
    }
    fn find(&self, query: &Query) -> edgestore::Result<Vec<Row>> {
        let q = query_to_wit(query);
        both!(self, call_find(&q)).map(|rows| rows.into_iter().map(row_from_wit).collect())
    }
    fn update(&self, row: &Row) -> edgestore::Result<()> {
        let r = wit_row(row);
        both!(self, call_update(&r))
    }
    fn delete(&self, key: &Key) -> edgestore::Result<bool> {
        let k = wit_row(key);
        both!(self, call_delete(&k))
    }
    fn delete_all(&self) -> edgestore::Result<u64> {
        both!(self, call_delete_all())
    }
    fn count(&self) -> edgestore::Result<u64> {
        both!(self, call_count())
    }
    fn nest(
        &self,
        mode: TxMode,
        f: &mut dyn FnMut(&dyn DynOps) -> edgestore::Result<()>,
    ) -> edgestore::Result<()> {
        let repo = self.repo();
        let tx = match self.tx {
            None => {
                let g = repo.store();
                let m = tx_mode_to_wit(mode);
                self.ctx.call(|st| g.call_begin(st, self.store_res, m))?
            }
            Some(parent) => {
                let g = repo.transaction();
                self.ctx.call(|st| g.call_savepoint(st, parent))?
            }
        };
        let inner = GuestOps {
            ctx: self.ctx,
            table: self.table,
            tx: Some(tx),
            store_res: self.store_res,
        };
        let g = repo.transaction();
        let result = f(&inner);
        let ended = match &result {
            Ok(()) => self.ctx.call(|st| g.call_commit(st, tx)),
            Err(_) => self.ctx.call(|st| g.call_rollback(st, tx)),
        };
        // Dropping the handle after commit or rollback releases the guest's resource.
        let _ = self
            .ctx
            .call_plain(|st| tx.resource_drop(&mut *st).map(|_| ()));
        result.and(ended)
    }
}

/// One open spool of the guest.
struct GuestSpool<'c, 'a> {
    ctx: &'c Ctx<'a>,
    res: ResourceAny,
}

impl DynSpool for GuestSpool<'_, '_> {
    fn put(&self, rows: &[Metric]) -> edgestore::Result<()> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        let wit: Vec<_> = rows.iter().map(metric_to_wit).collect();
        self.ctx.call(|st| g.call_put(st, self.res, &wit))
    }
    fn put_documents(&self, docs: Vec<String>) -> edgestore::Result<()> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx
            .call(|st| g.call_put_documents(st, self.res, &docs))
    }
    fn flush(&self) -> edgestore::Result<()> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx.call(|st| g.call_flush(st, self.res))
    }
    fn flush_due(&self, now_ms: i64) -> edgestore::Result<u64> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx
            .call(|st| g.call_flush_due(st, self.res, now_ms))
            .map(u64::from)
    }
    fn sync(&self) -> edgestore::Result<()> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx.call(|st| g.call_sync(st, self.res))
    }
    fn pending(&self) -> edgestore::Result<u64> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx.call_plain(|st| g.call_pending(st, self.res))
    }
    fn segments(&self, range: TimeRange) -> edgestore::Result<Vec<SegmentInfo>> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        let r = range_to_wit(range);
        self.ctx
            .call(|st| g.call_segments(st, self.res, r))
            .map(|v| v.into_iter().map(segment_from_wit).collect())
    }
    fn mark_uploaded(&self, names: &[String]) -> edgestore::Result<u64> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx
            .call(|st| g.call_mark_uploaded(st, self.res, names))
            .map(u64::from)
    }
    fn purge(&self) -> edgestore::Result<PurgeReport> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx
            .call(|st| g.call_purge(st, self.res))
            .map(purge_from_wit)
    }
    fn usage(&self) -> edgestore::Result<Usage> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx
            .call(|st| g.call_usage(st, self.res))
            .map(usage_from_wit)
    }
    fn verify(&self) -> edgestore::Result<VerifyReport> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx
            .call(|st| g.call_verify(st, self.res))
            .map(verify_from_wit)
    }
    fn journal_rows(&self) -> edgestore::Result<u64> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx.call(|st| g.call_journal_rows(st, self.res))
    }
}

impl Backend for ComponentBackend {
    fn register(&mut self, schema: &Schema) -> Result<()> {
        let repo = self.repo()?;
        let wit = schema_to_wit(schema);
        self.run(|p, live| {
            let ctx = Ctx::new(p, live);
            let guest = ctx.plugin.edgestore_storage_repository().store();
            let out = ctx.call(|st| guest.call_register(st, repo, &wit));
            ctx.finish()?;
            out.map(|_| ()).map_err(Error::from)
        })?;
        if let Some(i) = self.schemas.iter().position(|s| s.table == schema.table) {
            self.schemas[i] = schema.clone();
        } else {
            self.schemas.push(schema.clone());
        }
        Ok(())
    }

    fn with_table(
        &mut self,
        table: &str,
        f: &mut dyn FnMut(&dyn DynOps) -> edgestore::Result<()>,
    ) -> Result<()> {
        if !self.schemas.iter().any(|s| s.table == table) {
            return Err(edgestore::Error::new(
                ErrorCode::TableMissing,
                format!("table {table:?} is not registered"),
            )
            .into());
        }
        let repo = self.repo()?;
        self.run(|p, live| {
            let ctx = Ctx::new(p, live);
            let ops = GuestOps {
                ctx: &ctx,
                table,
                tx: None,
                store_res: repo,
            };
            let out = f(&ops);
            ctx.finish()?;
            Ok(out?)
        })
    }

    fn open_spool(&mut self, path: &str, config: &SpoolConfig) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.spool_configs
            .insert(id, (path.to_owned(), config.clone()));
        if let Err(e) = self.spool(id) {
            self.spool_configs.remove(&id);
            return Err(e);
        }
        Ok(id)
    }

    fn with_spool(
        &mut self,
        id: u64,
        f: &mut dyn FnMut(&dyn DynSpool) -> edgestore::Result<()>,
    ) -> Result<()> {
        let res = self.spool(id)?;
        self.run(|p, live| {
            let ctx = Ctx::new(p, live);
            let out = f(&GuestSpool { ctx: &ctx, res });
            ctx.finish()?;
            Ok(out?)
        })
    }

    fn open_reader(&mut self, spool: u64, from: ReadFrom) -> Result<u64> {
        let res = self.spool(spool)?;
        let id = self.next_id;
        self.next_id += 1;
        self.run(|p, live| {
            let ctx = Ctx::new(p, live);
            let g = ctx.plugin.edgestore_storage_spool().spool();
            let out = match &from {
                ReadFrom::Segment(name) => ctx.call(|st| g.call_read_segment(st, res, name)),
                ReadFrom::Range(r) => {
                    let r = range_to_wit(*r);
                    ctx.call(|st| g.call_read_range(st, res, r))
                }
            };
            ctx.finish()?;
            let reader = out?;
            live.readers.insert(id, reader);
            Ok(id)
        })
    }

    fn read(&mut self, reader: u64, max: u32) -> Result<Vec<Metric>> {
        self.run(|p, live| {
            let res = *live.readers.get(&reader).ok_or_else(|| {
                edgestore::Error::new(
                    ErrorCode::Closed,
                    "the reader is closed (or its instance was rebuilt)",
                )
            })?;
            let ctx = Ctx::new(p, live);
            let g = ctx.plugin.edgestore_storage_spool().reader();
            let out = ctx.call(|st| g.call_next_metrics(st, res, max));
            ctx.finish()?;
            Ok(out?.into_iter().map(metric_from_wit).collect())
        })
    }

    fn read_documents(&mut self, reader: u64, max: u32) -> Result<Vec<String>> {
        self.run(|p, live| {
            let res = *live.readers.get(&reader).ok_or_else(|| {
                edgestore::Error::new(
                    ErrorCode::Closed,
                    "the reader is closed (or its instance was rebuilt)",
                )
            })?;
            let ctx = Ctx::new(p, live);
            let g = ctx.plugin.edgestore_storage_spool().reader();
            let out = ctx.call(|st| g.call_next_documents(st, res, max));
            ctx.finish()?;
            Ok(out?)
        })
    }

    fn close_reader(&mut self, reader: u64) {
        if let Some(live) = self.live.as_mut() {
            if let Some(res) = live.readers.remove(&reader) {
                let _ = res.resource_drop(&mut live.store);
            }
        }
    }

    fn flush_due_all(&mut self, now_ms: i64) -> u64 {
        let ids: Vec<u64> = self.spool_configs.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| crate::backend::on_spool(self, id, |s| s.flush_due(now_ms)).ok())
            .sum()
    }

    fn ping(&mut self) -> Result<()> {
        self.run(|p, live| {
            let ctx = Ctx::new(p, live);
            let g = ctx.plugin.edgestore_storage_admin();
            ctx.call_plain(|st| g.call_ping(st))?;
            ctx.finish()
        })
    }

    fn engine_health(&mut self) -> Result<Vec<String>> {
        // Open the repository first, so the guest's report covers its database.
        self.repo()?;
        self.run(|p, live| {
            let ctx = Ctx::new(p, live);
            let g = ctx.plugin.edgestore_storage_admin();
            let report = ctx.call_plain(|st| g.call_health(st));
            ctx.finish()?;
            Ok(report?.reasons)
        })
    }

    fn open_connections(&self) -> u64 {
        self.prepared.open_connections.load(Ordering::Relaxed)
    }
}
