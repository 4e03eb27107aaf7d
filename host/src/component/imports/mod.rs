//! What the component imports from its host besides WASI: the `sqlite` interface on the
//! core's rusqlite driver ([`sqlite`]) and `host-info` ([`host_info`]), both implemented on
//! the store data of an instance, [`HostState`] (`super::state`).

mod host_info;
mod sqlite;

use super::bindings;
use super::state::HostState;

impl bindings::wit_types::Host for HostState {}
