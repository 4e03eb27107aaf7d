//! The edgestore host library: the plugin component's artifact today; the Wasmtime engine,
//! grants, the `sqlite` import and the typed client live here too as they arrive.

pub mod artifacts;
