//! The `host-info` import: what the guest may learn about its host (the data directory's disk
//! capacity, for a spool's `WithCapacity`).

use crate::component::bindings::{self, wit_types as t};
use crate::component::state::HostState;

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
