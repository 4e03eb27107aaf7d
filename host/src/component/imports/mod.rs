//! What the component imports from its host besides WASI: the `sqlite` interface on the
//! core's rusqlite driver ([`sqlite`]), `host-info` ([`host_info`]) and native Brotli streams
//! ([`compression`]), all implemented on the store data of an instance, [`HostState`]
//! (`super::state`); and the one WASI change, clock subscriptions cut at the call's deadline
//! ([`clocks`]).

pub(super) mod clocks;
mod compression;
mod host_info;
mod sqlite;

use super::bindings;
use super::state::HostState;

impl bindings::wit_types::Host for HostState {}
