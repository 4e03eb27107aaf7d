//! One component instance and its store data: a WASI context holding only the data directory's
//! preopen (no environment, no arguments, no stdio, no network, nothing inherited), the resource
//! table, the memory limiter, and the grants the `sqlite` import checks. [`ComponentBackend`]
//! runs the client's jobs on it and rebuilds it after a trap or a limit hit: whatever was
//! acknowledged before lives in SQLite files and spool segments, not in the instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgestore::model::{Key, Query, Row};
use edgestore::spool::{PurgeReport, SegmentInfo, Usage, VerifyReport};
use edgestore::{ErrorCode, Metric, Schema, SpoolConfig, TimeRange, TxMode};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceAny, ResourceTable};
use wasmtime::{ResourceLimiter, Store as WasmStore, Trap};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{self, wit_types as t, Plugin, PluginPre};
use crate::client::{ComponentSource, StoreConfig};
use crate::convert::*;
use crate::engine::{ComponentEngine, EPOCH_TICK};
use crate::error::{Error, LimitKind, Result};
use crate::grants::{Grants, DEFAULT_LABEL};
use crate::ops::{Backend, DynOps, DynSpool, ReadFrom};
use crate::sqlite::{MemoryAnchors, OpenError, SqliteHandle};

/// Where the data directory appears inside the guest (the core's mount point, which the
/// component's glue and the standalone command assume).
pub const GUEST_DATA_DIR: &str = edgestore::layout::DATA_MOUNT;

/// Caps linear memory and tables; remembers whether it refused something.
pub struct Limits {
    memory: usize,
    hit: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of one instance's wasmtime store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
    grants: Arc<Grants>,
    anchors: Arc<MemoryAnchors>,
    open_connections: Arc<AtomicU64>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::wit_types::Host for HostState {}

impl bindings::edgestore::storage::sqlite::Host for HostState {}

fn handle<'a>(
    table: &'a ResourceTable,
    r: &Resource<SqliteHandle>,
) -> wasmtime::Result<&'a SqliteHandle> {
    Ok(table.get(r)?)
}

type WitResult<T> = wasmtime::Result<std::result::Result<T, t::Error>>;

impl bindings::edgestore::storage::sqlite::HostConnection for HostState {
    fn open(&mut self, label: String) -> WitResult<Resource<SqliteHandle>> {
        match crate::sqlite::open(&self.grants, &self.anchors, &label) {
            Ok(h) => Ok(Ok(self
                .table
                .push(h.counted_in(self.open_connections.clone()))?)),
            Err(OpenError::AccessDenied(m)) => Ok(Err(wit_error(t::ErrorCode::AccessDenied, m))),
            Err(OpenError::NoSuchDatabase(m)) => {
                Ok(Err(wit_error(t::ErrorCode::NoSuchDatabase, m)))
            }
            Err(OpenError::Store(e)) => Ok(Err(error_to_wit(&e))),
        }
    }

    fn execute(
        &mut self,
        this: Resource<SqliteHandle>,
        sql: String,
        params: Vec<t::Value>,
    ) -> WitResult<u64> {
        let h = handle(&self.table, &this)?;
        Ok(h.execute(&sql, &row_from_wit(params))
            .map_err(|e| error_to_wit(&e)))
    }

    fn query(
        &mut self,
        this: Resource<SqliteHandle>,
        sql: String,
        params: Vec<t::Value>,
    ) -> WitResult<Vec<Vec<t::Value>>> {
        let h = handle(&self.table, &this)?;
        Ok(h.query(&sql, &row_from_wit(params))
            .map(|rows| rows.into_iter().map(row_to_wit).collect())
            .map_err(|e| error_to_wit(&e)))
    }

    fn execute_many(
        &mut self,
        this: Resource<SqliteHandle>,
        sql: String,
        param_sets: Vec<Vec<t::Value>>,
    ) -> WitResult<u64> {
        let h = handle(&self.table, &this)?;
        let sets: Vec<Row> = param_sets.into_iter().map(row_from_wit).collect();
        Ok(h.execute_many(&sql, &sets).map_err(|e| error_to_wit(&e)))
    }

    fn last_insert_rowid(&mut self, this: Resource<SqliteHandle>) -> wasmtime::Result<i64> {
        Ok(handle(&self.table, &this)?.conn.raw().last_insert_rowid())
    }

    fn changes(&mut self, this: Resource<SqliteHandle>) -> wasmtime::Result<u64> {
        Ok(handle(&self.table, &this)?.conn.raw().changes())
    }

    fn drop(&mut self, this: Resource<SqliteHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl bindings::edgestore::storage::host_info::Host for HostState {
    fn disk_capacity(&mut self) -> wasmtime::Result<Option<t::Capacity>> {
        use edgestore::Directory;
        let dir = match self.grants.dir().try_clone() {
            Ok(d) => edgestore::dir::CapDir::from_dir(d),
            Err(_) => return Ok(None),
        };
        Ok(dir.capacity().ok().flatten().map(|c| t::Capacity {
            total_bytes: c.total,
            available_bytes: c.available,
        }))
    }
}

/// Compiled and linked once per store; instantiated again after every failure.
struct Prepared {
    engine: ComponentEngine,
    pre: PluginPre<HostState>,
    grants: Arc<Grants>,
    anchors: Arc<MemoryAnchors>,
    open_connections: Arc<AtomicU64>,
    memory_limit: usize,
    deadline_ticks: u64,
}

/// A live instance and the guest resources the client opened on it.
struct Live {
    store: WasmStore<HostState>,
    plugin: Plugin,
    repo: Option<ResourceAny>,
    spools: HashMap<u64, ResourceAny>,
    readers: HashMap<u64, ResourceAny>,
}

/// The component engine behind the client.
pub(crate) struct ComponentBackend {
    prepared: Prepared,
    live: Option<Live>,
    schemas: Vec<Schema>,
    spool_configs: HashMap<u64, (String, SpoolConfig)>,
    next_id: u64,
    /// Instances built so far (1 after open; each failure adds one on the next call).
    pub(crate) generation: u64,
}

fn component_bytes(source: &ComponentSource) -> Result<Arc<[u8]>> {
    match source {
        ComponentSource::Bytes(b) => Ok(b.clone()),
        ComponentSource::File(p) => std::fs::read(p)
            .map(Arc::from)
            .map_err(|e| Error::Config(format!("read component {}: {e}", p.display()))),
    }
}

impl ComponentBackend {
    pub(crate) fn new(
        grants: Arc<Grants>,
        config: &StoreConfig,
        source: &ComponentSource,
    ) -> Result<Self> {
        let engine = ComponentEngine::new(config.cache_dir.clone())?;
        let bytes = component_bytes(source)?;
        let (component, _) = engine.load(&bytes)?;
        let mut linker = Linker::<HostState>::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(Error::runtime)?;
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(Error::runtime)?;
        let pre = linker.instantiate_pre(&component).map_err(Error::runtime)?;
        let pre = PluginPre::new(pre).map_err(Error::runtime)?;
        let anchors = Arc::new(MemoryAnchors::new(&grants)?);
        let mut backend = ComponentBackend {
            prepared: Prepared {
                engine,
                pre,
                grants,
                anchors,
                open_connections: Arc::new(AtomicU64::new(0)),
                memory_limit: config.memory_limit,
                deadline_ticks: ticks_for(config.call_timeout),
            },
            live: None,
            schemas: Vec::new(),
            spool_configs: HashMap::new(),
            next_id: 1,
            generation: 0,
        };
        backend.live()?;
        Ok(backend)
    }

    fn instantiate(&self) -> Result<Live> {
        let p = &self.prepared;
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let perms = if p.grants.read_only() {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        wasi.preopened_dir(p.grants.data_dir(), GUEST_DATA_DIR, perms)
            .map_err(Error::runtime)?;
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: Limits {
                memory: p.memory_limit,
                hit: false,
            },
            grants: p.grants.clone(),
            anchors: p.anchors.clone(),
            open_connections: p.open_connections.clone(),
        };
        let mut store = WasmStore::new(p.engine.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(p.deadline_ticks);
        let plugin = p.pre.instantiate(&mut store).map_err(Error::runtime)?;
        Ok(Live {
            store,
            plugin,
            repo: None,
            spools: HashMap::new(),
            readers: HashMap::new(),
        })
    }

    /// The live instance, rebuilt (with tables re-registered and spools reopened lazily) after
    /// a failure.
    fn live(&mut self) -> Result<&mut Live> {
        if self.live.is_none() {
            let live = self.instantiate()?;
            self.generation += 1;
            self.live = Some(live);
        }
        self.live
            .as_mut()
            .ok_or_else(|| Error::Runtime("no instance".into()))
    }

    /// Run `f` against the live instance; on a trap or limit, discard the instance and return
    /// the typed failure.
    fn run<R>(&mut self, f: impl FnOnce(&mut Prepared, &mut Live) -> Result<R>) -> Result<R> {
        self.live()?;
        let Some(live) = self.live.as_mut() else {
            return Err(Error::Runtime("no instance".into()));
        };
        let out = f(&mut self.prepared, live);
        if matches!(out, Err(Error::Trap(_)) | Err(Error::Limit { .. })) {
            self.live = None;
        }
        out
    }

    fn repo(&mut self) -> Result<ResourceAny> {
        let schemas = self.schemas.clone();
        self.run(|p, live| {
            if let Some(r) = live.repo {
                return Ok(r);
            }
            let ctx = Ctx::new(p, live);
            let guest = ctx.plugin.edgestore_storage_repository().store();
            let r = ctx.call(|st| guest.call_open(st, DEFAULT_LABEL))?;
            for schema in &schemas {
                let wit = schema_to_wit(schema);
                ctx.call(|st| guest.call_register(st, r, &wit))?;
            }
            ctx.finish()?;
            live.repo = Some(r);
            Ok(r)
        })
    }

    fn spool(&mut self, id: u64) -> Result<ResourceAny> {
        let (path, config) = self
            .spool_configs
            .get(&id)
            .cloned()
            .ok_or_else(|| edgestore::Error::new(ErrorCode::Closed, "the spool is closed"))?;
        self.run(|p, live| {
            if let Some(s) = live.spools.get(&id) {
                return Ok(*s);
            }
            let ctx = Ctx::new(p, live);
            let guest = ctx.plugin.edgestore_storage_spool().spool();
            let wit = spool_config_to_wit(&path, &config);
            // Inspecting (a read-only grant): no recovery, nothing written.
            let s = if p.grants.read_only() {
                ctx.call(|st| guest.call_inspect(st, &wit))?
            } else {
                ctx.call(|st| guest.call_open(st, &wit))?
            };
            ctx.finish()?;
            live.spools.insert(id, s);
            Ok(s)
        })
    }
}

/// One job's access to the instance: the store behind a `RefCell` so the core's `&self`
/// traits can drive it, and the first host-level failure (trap, limit) remembered so that it,
/// not the guest-looking error handed to the closure, is what the caller gets.
struct Ctx<'a> {
    store: std::cell::RefCell<&'a mut WasmStore<HostState>>,
    plugin: &'a Plugin,
    deadline: u64,
    failure: std::cell::RefCell<Option<Error>>,
}

impl<'a> Ctx<'a> {
    fn new(p: &Prepared, live: &'a mut Live) -> Self {
        Ctx {
            store: std::cell::RefCell::new(&mut live.store),
            plugin: &live.plugin,
            deadline: p.deadline_ticks,
            failure: std::cell::RefCell::new(None),
        }
    }

    /// One export call under the time bound.
    fn call<T>(
        &self,
        f: impl FnOnce(&mut WasmStore<HostState>) -> wasmtime::Result<std::result::Result<T, t::Error>>,
    ) -> edgestore::Result<T> {
        if self.failure.borrow().is_some() {
            return Err(edgestore::Error::new(
                ErrorCode::Closed,
                "the instance failed earlier in this call",
            ));
        }
        let mut store = self.store.borrow_mut();
        store.set_epoch_deadline(self.deadline);
        store.data_mut().limits.hit = false;
        match f(&mut store) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(error_from_wit(e)),
            Err(trap) => {
                let memory_hit = store.data().limits.hit;
                let failure = classify_trap(&trap, memory_hit);
                let message = failure.to_string();
                *self.failure.borrow_mut() = Some(failure);
                Err(edgestore::Error::internal(message))
            }
        }
    }

    /// A call that cannot fail in the WIT.
    fn call_plain<T>(
        &self,
        f: impl FnOnce(&mut WasmStore<HostState>) -> wasmtime::Result<T>,
    ) -> edgestore::Result<T> {
        self.call(|st| f(st).map(Ok))
    }

    /// The host failure, if any happened.
    fn finish(self) -> Result<()> {
        match self.failure.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn classify_trap(err: &wasmtime::Error, memory_hit: bool) -> Error {
    if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return Error::Limit {
            kind: LimitKind::Time,
            message: "the call ran past its deadline and was interrupted".into(),
        };
    }
    if memory_hit {
        return Error::Limit {
            kind: LimitKind::Memory,
            message: format!("the instance ran out of memory under its cap: {err:#}"),
        };
    }
    Error::Trap(format!("{err:#}"))
}

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
            .filter_map(|id| crate::ops::on_spool(self, id, |s| s.flush_due(now_ms)).ok())
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

/// How long a call may run, in epoch ticks, for `timeout`.
pub fn ticks_for(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_nanos() / EPOCH_TICK.as_nanos().max(1))
        .unwrap_or(u64::MAX)
        .max(1)
}
