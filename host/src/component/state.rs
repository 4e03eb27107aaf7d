//! What one instance's wasmtime store carries: [`HostState`] (the WASI context holding only the
//! data directory's preopen, the resource table, the memory limiter, and what the `sqlite`
//! import checks and counts) and the resources the generated bindings map to: [`SqliteHandle`]
//! (`connection`) and [`BrotliHandle`] (`brotli-stream`).
//!
//! It sits below the bindings, which name [`SqliteHandle`], and below both users of the store's
//! data: the imports implement the guest's imports on [`HostState`] (`super::imports`), the
//! instance lifecycle builds it and reads its limiter (`super::instance`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use edgestore::sql::sqlite::SqliteConnection;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::memory_anchors::MemoryAnchors;
use crate::grants::Grants;

/// The data of one instance's wasmtime store.
pub struct HostState {
    wasi: WasiCtx,
    /// Shared with WASI; the `sqlite` import keeps its connections here.
    pub(super) table: ResourceTable,
    limits: Limits,
    /// What the `sqlite` import may open, and `host-info` reports on.
    pub(super) grants: Arc<Grants>,
    /// Where the `sqlite` import opens `:memory:` labels.
    pub(super) anchors: Arc<MemoryAnchors>,
    /// The store's count of open connections, across its instances.
    pub(super) open_connections: Arc<AtomicU64>,
    /// When the current call into the instance must end (set before each call).
    call_deadline: Option<Instant>,
    /// Open `compression` streams (capped: their encoders live outside the memory cap).
    pub(super) brotli_streams: usize,
}

impl HostState {
    /// The state of a new instance whose linear memory may grow to `memory_limit` bytes.
    pub(super) fn new(
        wasi: WasiCtx,
        memory_limit: usize,
        grants: Arc<Grants>,
        anchors: Arc<MemoryAnchors>,
        open_connections: Arc<AtomicU64>,
    ) -> Self {
        HostState {
            wasi,
            table: ResourceTable::new(),
            limits: Limits {
                memory: memory_limit,
                memory_refused: false,
            },
            grants,
            anchors,
            open_connections,
            call_deadline: None,
            brotli_streams: 0,
        }
    }

    /// Start a call that must end by `deadline` (`None`: too far away to represent).
    pub(super) fn begin_call(&mut self, deadline: Option<Instant>) {
        self.call_deadline = deadline;
    }

    /// Refuse a wait of `nanos` nanoseconds that would end past the current call's deadline.
    pub(super) fn check_wait(
        &self,
        nanos: u64,
    ) -> Result<(), super::imports::clocks::WaitPastDeadline> {
        let wait = std::time::Duration::from_nanos(nanos);
        match self.call_deadline {
            Some(deadline)
                if Instant::now()
                    .checked_add(wait)
                    .is_none_or(|end| end > deadline) =>
            {
                Err(super::imports::clocks::WaitPastDeadline(wait))
            }
            _ => Ok(()),
        }
    }

    /// Refuse to start host work (`what`) once the current call's deadline has passed.
    pub(super) fn check_deadline(&self, what: &'static str) -> Result<(), PastDeadline> {
        match self.call_deadline {
            Some(deadline) if Instant::now() > deadline => Err(PastDeadline(what)),
            _ => Ok(()),
        }
    }

    /// What the store consults before the instance grows (`wasmtime::Store::limiter`).
    pub(super) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    /// Whether the limiter refused memory since [`HostState::forget_memory_refusal`]: a trap
    /// that follows is the memory cap, not a guest bug.
    pub(super) fn memory_refused(&self) -> bool {
        self.limits.memory_refused
    }

    /// Forget an earlier refusal (before each call into the instance).
    pub(super) fn forget_memory_refusal(&mut self) {
        self.limits.memory_refused = false;
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and tables; remembers whether it refused memory.
struct Limits {
    memory: usize,
    memory_refused: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.memory_refused = true;
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

/// Host work the guest asked for after its call's deadline: the call's failure, reported as a
/// time limit (host work is not interrupted by the epoch, so it is checked before it starts).
#[derive(Debug, thiserror::Error)]
#[error("the call's deadline passed before {0}")]
pub(crate) struct PastDeadline(pub(crate) &'static str);

/// One Brotli stream of the `compression` import, held in the instance's resource table.
pub struct BrotliHandle {
    pub(super) stream: edgestore::spool::compress::LocalStream,
    /// `finish` was called: the stream refuses everything after.
    pub(super) finished: bool,
}

/// One open connection held in the instance's resource table: the `sqlite` import's
/// `connection` resource (opened and run in `super::imports::sqlite`).
pub struct SqliteHandle {
    pub(super) conn: SqliteConnection,
    /// The store's count of open connections, decremented when this one drops (also when a
    /// discarded instance's resource table goes, which calls no guest `drop`).
    counted: Option<Arc<AtomicU64>>,
}

impl SqliteHandle {
    /// A handle on `conn`, not counted yet.
    pub(super) fn new(conn: SqliteConnection) -> Self {
        SqliteHandle {
            conn,
            counted: None,
        }
    }

    /// Count this connection in `open` for as long as it lives.
    pub(super) fn counted_in(mut self, open: Arc<AtomicU64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        self.counted = Some(open);
        self
    }
}

impl Drop for SqliteHandle {
    fn drop(&mut self) {
        if let Some(open) = &self.counted {
            open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
