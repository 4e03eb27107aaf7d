//! Private in-memory databases that outlive instances. A `:memory:` label is a shared-cache
//! in-memory database named after the store; one anchor connection per label keeps it alive for
//! the store's whole life, so a rebuilt instance finds what earlier ones committed.
//!
//! Made once per store (`super::instance`), carried by every instance's `HostState`
//! (`super::state`), connected to by the `sqlite` import (`super::imports::sqlite`); it depends
//! on none of them.

use std::sync::atomic::{AtomicU64, Ordering};

use edgestore::sql::sqlite::rusqlite::{self, OpenFlags};
use edgestore::sql::sqlite::translate;

use crate::grants::{DbTarget, Grants};

/// The anchor connections of one store's `:memory:` labels.
pub(super) struct MemoryAnchors {
    prefix: String,
    /// Held, never used: a `Mutex` only so the anchors can be shared with instances.
    anchors: std::sync::Mutex<Vec<(String, rusqlite::Connection)>>,
}

/// Numbers the stores of this process, so two stores' in-memory databases never share a name.
static NEXT_STORE: AtomicU64 = AtomicU64::new(0);

impl MemoryAnchors {
    /// Anchors for every `:memory:` label in `grants`.
    pub(super) fn new(grants: &Grants) -> edgestore::Result<Self> {
        let prefix = format!(
            "edgestore-host-{}-{}",
            std::process::id(),
            NEXT_STORE.fetch_add(1, Ordering::Relaxed)
        );
        let mut anchors = Vec::new();
        for (label, target) in &grants.labels().configured {
            if *target == DbTarget::Memory {
                let uri = memory_uri(&prefix, label);
                let conn = rusqlite::Connection::open_with_flags(&uri, memory_flags())
                    .map_err(translate)?;
                anchors.push((label.clone(), conn));
            }
        }
        Ok(MemoryAnchors {
            prefix,
            anchors: std::sync::Mutex::new(anchors),
        })
    }

    /// A new connection to the anchored in-memory database of `label`.
    pub(super) fn connect(&self, label: &str) -> edgestore::Result<rusqlite::Connection> {
        rusqlite::Connection::open_with_flags(memory_uri(&self.prefix, label), memory_flags())
            .map_err(translate)
    }
}

impl std::fmt::Debug for MemoryAnchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAnchors")
            .field("prefix", &self.prefix)
            .field(
                "labels",
                &self
                    .anchors
                    .lock()
                    .map(|a| a.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>())
                    .unwrap_or_default(),
            )
            .finish()
    }
}

fn memory_uri(prefix: &str, label: &str) -> String {
    format!("file:{prefix}-{label}?mode=memory&cache=shared")
}

fn memory_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
}
