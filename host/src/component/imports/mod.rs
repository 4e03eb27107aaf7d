//! What the component imports from its host besides WASI: the `sqlite` interface on the
//! core's rusqlite driver ([`sqlite`]) and `host-info` ([`host_info`]), both implemented on
//! the instance's `HostState` (`super::instance`).

pub(crate) mod host_info;
pub(crate) mod sqlite;

use super::bindings;
use super::instance::HostState;

impl bindings::wit_types::Host for HostState {}
