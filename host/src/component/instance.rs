//! The instance lifecycle: one component instance and its store data ([`HostState`], built
//! here with a WASI context holding only the data directory's preopen: no environment, no
//! arguments, no stdio, no network, nothing inherited). [`ComponentBackend`] owns it and
//! rebuilds it after a trap or a limit hit: whatever was acknowledged before lives in SQLite
//! files and spool segments, not in the instance. The guest-facing imports are in
//! [`super::imports`]; the client's jobs reach the guest's exports through the adapters in
//! [`super::exports`].

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use edgestore::{ErrorCode, SpoolConfig};
use wasmtime::component::{HasSelf, Linker, ResourceAny};
use wasmtime::{Store as WasmStore, Trap};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::bindings::{wit_types as t, Plugin, PluginPre};
use super::convert::*;
use super::engine::{ComponentEngine, EPOCH_TICK};
use super::memory_anchors::MemoryAnchors;
use super::state::HostState;
use super::{component_bytes, ComponentLimits, ComponentSource};
use crate::backend::state::{Handles, Ids, Tables, SPOOL_CLOSED};
use crate::error::{Error, LimitKind, Result};
use crate::grants::{Grants, DEFAULT_LABEL};

/// Where the data directory appears inside the guest (the core's mount point, which the
/// component's glue and the standalone command assume).
pub const GUEST_DATA_DIR: &str = edgestore::layout::DATA_MOUNT;

/// What a reader id gets once closed, or after its instance was rebuilt: readers live in one
/// instance (a rebuild reopens spools and tables, not readers).
const READER_GONE: &str = "the reader is closed (or its instance was rebuilt)";

/// Compiled and linked once per store; instantiated again after every failure.
pub(super) struct Prepared {
    engine: ComponentEngine,
    pre: PluginPre<HostState>,
    grants: Arc<Grants>,
    anchors: Arc<MemoryAnchors>,
    pub(super) open_connections: Arc<AtomicU64>,
    memory_limit: usize,
    deadline_ticks: u64,
    call_timeout: Duration,
}

/// A live instance and the guest resources the client opened on it.
pub(super) struct Live {
    pub(super) store: WasmStore<HostState>,
    plugin: Plugin,
    repo: Option<ResourceAny>,
    spools: HashMap<u64, ResourceAny>,
    /// Readers live in one instance: a rebuilt instance has none.
    pub(super) readers: Handles<ResourceAny>,
}

/// The component engine behind the client.
pub(crate) struct ComponentBackend {
    pub(super) prepared: Prepared,
    pub(super) live: Option<Live>,
    /// Registered again on every new instance.
    pub(super) tables: Tables,
    /// Each open spool's path and config, reopened lazily on every new instance.
    pub(super) spools: Handles<(String, SpoolConfig)>,
    pub(super) ids: Ids,
    /// Instances built so far (1 after open; each failure adds one on the next call).
    pub(crate) generation: u64,
}

impl ComponentBackend {
    pub(crate) fn new(
        grants: Arc<Grants>,
        config: &ComponentLimits,
        source: &ComponentSource,
    ) -> Result<Self> {
        let engine = ComponentEngine::new(config.cache_dir.clone())?;
        let bytes = component_bytes(source)?;
        let (component, _) = engine.load(&bytes)?;
        let mut linker = Linker::<HostState>::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(Error::runtime)?;
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(Error::runtime)?;
        super::imports::clocks::bound_subscriptions(&mut linker).map_err(Error::runtime)?;
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
                call_timeout: config.call_timeout,
            },
            live: None,
            tables: Tables::default(),
            spools: Handles::new(SPOOL_CLOSED),
            ids: Ids::default(),
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
        let state = HostState::new(
            wasi.build(),
            p.memory_limit,
            p.grants.clone(),
            p.anchors.clone(),
            p.open_connections.clone(),
        );
        let mut store = WasmStore::new(p.engine.engine(), state);
        store.limiter(|s| s.limiter());
        store.set_epoch_deadline(p.deadline_ticks);
        // What one call may hand the host (a `find` result, a batch): wasmtime's default of
        // 128 MiB of lifted values trapped a `find` of ~400,000 rows that fit well inside the
        // memory cap. Lifted values take a few times the bytes they had in the guest, so the
        // bound follows the cap instead of a fixed number.
        store.set_hostcall_fuel(p.memory_limit.saturating_mul(HOSTCALL_FUEL_PER_BYTE));
        let plugin = p.pre.instantiate(&mut store).map_err(Error::runtime)?;
        Ok(Live {
            store,
            plugin,
            repo: None,
            spools: HashMap::new(),
            readers: Handles::new(READER_GONE),
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
    pub(super) fn run<R>(
        &mut self,
        f: impl FnOnce(&mut Prepared, &mut Live) -> Result<R>,
    ) -> Result<R> {
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

    pub(super) fn repo(&mut self) -> Result<ResourceAny> {
        let schemas = self.tables.schemas().to_vec();
        self.run(|p, live| {
            if let Some(r) = live.repo {
                return Ok(r);
            }
            let ctx = Ctx::new(p, live);
            let guest = ctx.plugin.edgestore_storage_repository().store();
            let opened = (|| {
                let r = ctx.call(|st| guest.call_open(st, DEFAULT_LABEL))?;
                for schema in &schemas {
                    let wit = schema_to_wit(schema);
                    ctx.call(|st| guest.call_register(st, r, &wit))?;
                }
                Ok::<_, edgestore::Error>(r)
            })();
            // A trap or a limit is the failure to report (and discards the instance), not
            // the guest-looking error the call returned for it.
            ctx.finish()?;
            let r = opened?;
            live.repo = Some(r);
            Ok(r)
        })
    }

    pub(super) fn spool(&mut self, id: u64) -> Result<ResourceAny> {
        let (path, config) = self.spools.get(id)?.clone();
        self.run(|p, live| {
            if let Some(s) = live.spools.get(&id) {
                return Ok(*s);
            }
            let ctx = Ctx::new(p, live);
            let guest = ctx.plugin.edgestore_storage_spool().spool();
            let wit = spool_config_to_wit(&path, &config);
            // Inspecting (a read-only grant): no recovery, nothing written.
            let opened = if p.grants.read_only() {
                ctx.call(|st| guest.call_inspect(st, &wit))
            } else {
                ctx.call(|st| guest.call_open(st, &wit))
            };
            // As above: a trap or a limit wins over the guest-looking error.
            ctx.finish()?;
            let s = opened?;
            live.spools.insert(id, s);
            Ok(s)
        })
    }
}

/// Hostcall fuel per byte of the memory cap (see where the store is built).
const HOSTCALL_FUEL_PER_BYTE: usize = 4;

/// One job's access to the instance: the store behind a `RefCell` so the core's `&self`
/// traits can drive it, and the first host-level failure (trap, limit) remembered so that it,
/// not the guest-looking error handed to the closure, is what the caller gets.
pub(super) struct Ctx<'a> {
    store: std::cell::RefCell<&'a mut WasmStore<HostState>>,
    pub(super) plugin: &'a Plugin,
    deadline: u64,
    timeout: Duration,
    failure: std::cell::RefCell<Option<Error>>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(p: &Prepared, live: &'a mut Live) -> Self {
        Ctx {
            store: std::cell::RefCell::new(&mut live.store),
            plugin: &live.plugin,
            deadline: p.deadline_ticks,
            timeout: p.call_timeout,
            failure: std::cell::RefCell::new(None),
        }
    }

    /// One export call under the time bound.
    pub(super) fn call<T>(
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
        let deadline = std::time::Instant::now().checked_add(self.timeout);
        store.data_mut().begin_call(deadline);
        store.data_mut().forget_memory_refusal();
        match f(&mut store) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(error_from_wit(e)),
            Err(trap) => {
                let memory_hit = store.data().memory_refused();
                let failure = classify_trap(&trap, memory_hit);
                let message = failure.to_string();
                let code = failure.code();
                *self.failure.borrow_mut() = Some(failure);
                Err(edgestore::Error::new(code, message))
            }
        }
    }

    /// A call that cannot fail in the WIT.
    pub(super) fn call_plain<T>(
        &self,
        f: impl FnOnce(&mut WasmStore<HostState>) -> wasmtime::Result<T>,
    ) -> edgestore::Result<T> {
        self.call(|st| f(st).map(Ok))
    }

    /// The host failure, if any happened.
    pub(super) fn finish(self) -> Result<()> {
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
    if let Some(wait) = err.downcast_ref::<super::imports::clocks::WaitPastDeadline>() {
        return Error::Limit {
            kind: LimitKind::Time,
            message: wait.to_string(),
        };
    }
    if let Some(past) = err.downcast_ref::<super::state::PastDeadline>() {
        return Error::Limit {
            kind: LimitKind::Time,
            message: past.to_string(),
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

/// How long a call may run, in epoch ticks, for `timeout`.
pub fn ticks_for(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_nanos() / EPOCH_TICK.as_nanos().max(1))
        .unwrap_or(u64::MAX)
        .max(1)
}
