//! The component's side of the engine seam ([`crate::backend`]): [`ComponentBackend`]
//! implements `Backend`, and the adapters [`GuestRepo`] / [`GuestTx`] (the guest's repository
//! `store` and `transaction` resources, for the shared `TableOps`) and [`GuestSpool`] (an open
//! spool, a `DynSpool`) call the guest's exports, each call under the instance's time bound
//! ([`Ctx::call`]).

use std::sync::atomic::Ordering;

use edgestore::model::{Key, Query, Row};
use edgestore::spool::{EraseFilter, EraseReport, PurgeReport, SegmentInfo, Usage, VerifyReport};
use edgestore::{Metric, Schema, SpoolConfig, TimeRange, TxMode};
use wasmtime::component::ResourceAny;

use super::bindings::{self, wit_types as t};
use super::convert::*;
use super::instance::{ComponentBackend, Ctx};
use crate::backend::state::{TableOps, TableScope, TxLevel, TxStore};
use crate::backend::{Backend, DynOps, DynSpool, ReadFrom};
use crate::error::{Error, Result};

/// The guest's repository `store` resource.
struct GuestRepo<'c, 'a> {
    ctx: &'c Ctx<'a>,
    res: ResourceAny,
}

/// One of the guest's `transaction` resources (a transaction or a savepoint in it); dropping
/// it releases the guest's resource.
struct GuestTx<'c, 'a> {
    ctx: &'c Ctx<'a>,
    res: ResourceAny,
}

fn wit_row(row: &Row) -> Vec<t::Value> {
    row_to_wit(row.clone())
}

/// The by-name operations of `$ty`, through the functions of the repository's `$resource`
/// resource: the WIT gives `store` and `transaction` the same functions, as two generated
/// types (`$guest`).
macro_rules! table_scope {
    ($ty:ident, $guest:ident, $resource:ident) => {
        impl $ty<'_, '_> {
            fn guest(&self) -> bindings::wit_repo::$guest<'_> {
                self.ctx.plugin.edgestore_storage_repository().$resource()
            }
        }

        impl TableScope for $ty<'_, '_> {
            fn create(&self, table: &str, row: &Row) -> edgestore::Result<bool> {
                let (g, r) = (self.guest(), wit_row(row));
                self.ctx.call(|st| g.call_create(st, self.res, table, &r))
            }
            fn create_many(&self, table: &str, rows: Vec<Row>) -> edgestore::Result<u64> {
                let g = self.guest();
                let rs: Vec<Vec<t::Value>> = rows.iter().map(wit_row).collect();
                self.ctx
                    .call(|st| g.call_create_many(st, self.res, table, &rs))
            }
            fn upsert(&self, table: &str, row: &Row) -> edgestore::Result<()> {
                let (g, r) = (self.guest(), wit_row(row));
                self.ctx.call(|st| g.call_upsert(st, self.res, table, &r))
            }
            fn insert_or_ignore(&self, table: &str, row: &Row) -> edgestore::Result<bool> {
                let (g, r) = (self.guest(), wit_row(row));
                self.ctx
                    .call(|st| g.call_insert_or_ignore(st, self.res, table, &r))
            }
            fn get(&self, table: &str, key: &Key) -> edgestore::Result<Row> {
                let (g, k) = (self.guest(), wit_row(key));
                self.ctx
                    .call(|st| g.call_get(st, self.res, table, &k))
                    .map(row_from_wit)
            }
            fn get_many(&self, table: &str, keys: &[Key]) -> edgestore::Result<Vec<Option<Row>>> {
                let g = self.guest();
                let ks: Vec<Vec<t::Value>> = keys.iter().map(wit_row).collect();
                self.ctx
                    .call(|st| g.call_get_many(st, self.res, table, &ks))
                    .map(|rows| rows.into_iter().map(|r| r.map(row_from_wit)).collect())
            }
            fn find(&self, table: &str, query: &Query) -> edgestore::Result<Vec<Row>> {
                let (g, q) = (self.guest(), query_to_wit(query));
                self.ctx
                    .call(|st| g.call_find(st, self.res, table, &q))
                    .map(|rows| rows.into_iter().map(row_from_wit).collect())
            }
            fn update(&self, table: &str, row: &Row) -> edgestore::Result<()> {
                let (g, r) = (self.guest(), wit_row(row));
                self.ctx.call(|st| g.call_update(st, self.res, table, &r))
            }
            fn delete(&self, table: &str, key: &Key) -> edgestore::Result<bool> {
                let (g, k) = (self.guest(), wit_row(key));
                self.ctx.call(|st| g.call_delete(st, self.res, table, &k))
            }
            fn delete_all(&self, table: &str) -> edgestore::Result<u64> {
                let g = self.guest();
                self.ctx.call(|st| g.call_delete_all(st, self.res, table))
            }
            fn count(&self, table: &str) -> edgestore::Result<u64> {
                let g = self.guest();
                self.ctx.call(|st| g.call_count(st, self.res, table))
            }
        }
    };
}
table_scope!(GuestRepo, GuestStore, store);
table_scope!(GuestTx, GuestTransaction, transaction);

impl<'c, 'a> TxStore for GuestRepo<'c, 'a> {
    type Tx = GuestTx<'c, 'a>;
    fn begin(&self, mode: TxMode) -> edgestore::Result<GuestTx<'c, 'a>> {
        let (g, m) = (self.guest(), tx_mode_to_wit(mode));
        let res = self.ctx.call(|st| g.call_begin(st, self.res, m))?;
        Ok(GuestTx { ctx: self.ctx, res })
    }
}

impl TxLevel for GuestTx<'_, '_> {
    fn savepoint(&self) -> edgestore::Result<Self> {
        let g = self.guest();
        let res = self.ctx.call(|st| g.call_savepoint(st, self.res))?;
        Ok(GuestTx { ctx: self.ctx, res })
    }
    fn commit(&self) -> edgestore::Result<()> {
        let g = self.guest();
        self.ctx.call(|st| g.call_commit(st, self.res))
    }
    fn rollback(&self) -> edgestore::Result<()> {
        let g = self.guest();
        self.ctx.call(|st| g.call_rollback(st, self.res))
    }
}

impl Drop for GuestTx<'_, '_> {
    fn drop(&mut self) {
        // After commit or rollback this only frees the handle; on a level still open the
        // guest rolls it back. Nothing can be reported from a drop.
        let res = self.res;
        let _ = self
            .ctx
            .call_plain(|st| res.resource_drop(&mut *st).map(|_| ()));
    }
}

/// One open spool of the guest.
struct GuestSpool<'c, 'a> {
    ctx: &'c Ctx<'a>,
    res: ResourceAny,
}

impl DynSpool for GuestSpool<'_, '_> {
    /// Metrics cross as one buffer of JSON lines written here, natively (`put-lines`): a
    /// list of records would be lifted string by string and serialized again in the guest.
    /// The bytes are what the guest's own serializer writes for a metric (the core's JSON
    /// line writer, the same code).
    fn put(&self, rows: &[Metric]) -> edgestore::Result<()> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        let mut lines = Vec::with_capacity(rows.len() * 512);
        edgestore::spool::json_lines(rows, &mut lines)?;
        self.ctx.call(|st| g.call_put_lines(st, self.res, &lines))
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
    fn erase(&self, filter: &EraseFilter) -> edgestore::Result<EraseReport> {
        let g = self.ctx.plugin.edgestore_storage_spool().spool();
        self.ctx
            .call(|st| g.call_erase(st, self.res, &filter.label, &filter.value))
            .map(|r| EraseReport {
                checked: r.checked,
                rows_erased: r.rows_erased,
                rewritten: r.rewritten,
                removed: r.removed,
                quarantined_untouched: r.quarantined_untouched,
            })
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
        self.tables.insert(schema);
        Ok(())
    }

    fn with_table(
        &mut self,
        table: &str,
        f: &mut dyn FnMut(&dyn DynOps) -> edgestore::Result<()>,
    ) -> Result<()> {
        self.tables.require(table)?;
        let res = self.repo()?;
        self.run(|p, live| {
            let ctx = Ctx::new(p, live);
            let out = f(&TableOps::new(&GuestRepo { ctx: &ctx, res }, table));
            ctx.finish()?;
            Ok(out?)
        })
    }

    fn open_spool(&mut self, path: &str, config: &SpoolConfig) -> Result<u64> {
        let id = self.ids.allocate();
        self.spools.insert(id, (path.to_owned(), config.clone()));
        if let Err(e) = self.spool(id) {
            self.spools.remove(id);
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
        let id = self.ids.allocate();
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
            let res = *live.readers.get(reader)?;
            let ctx = Ctx::new(p, live);
            let g = ctx.plugin.edgestore_storage_spool().reader();
            let out = ctx.call(|st| g.call_next_metrics(st, res, max));
            ctx.finish()?;
            Ok(out?.into_iter().map(metric_from_wit).collect())
        })
    }

    fn read_documents(&mut self, reader: u64, max: u32) -> Result<Vec<String>> {
        self.run(|p, live| {
            let res = *live.readers.get(reader)?;
            let ctx = Ctx::new(p, live);
            let g = ctx.plugin.edgestore_storage_spool().reader();
            let out = ctx.call(|st| g.call_next_documents(st, res, max));
            ctx.finish()?;
            Ok(out?)
        })
    }

    fn close_reader(&mut self, reader: u64) {
        if let Some(live) = self.live.as_mut() {
            if let Some(res) = live.readers.remove(reader) {
                let _ = res.resource_drop(&mut live.store);
            }
        }
    }

    fn flush_due_all(&mut self, now_ms: i64) -> u64 {
        self.spools
            .ids()
            .into_iter()
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
