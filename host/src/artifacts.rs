//! The plugin component built by `build.rs` (world `plugin` of `wit/edgestore.wit`).
//!
//! The bytes are embedded so the `edgestore` binary is self-contained: it needs no `.wasm` file
//! next to it at run time. The path is kept for tests and tools that want the file itself.

/// Where `build.rs` left the component (inside `<workspace>/target/component/`).
pub const PLUGIN_COMPONENT_PATH: &str = env!("EDGESTORE_PLUGIN_COMPONENT");

/// The component's bytes, embedded at build time.
pub static PLUGIN_COMPONENT: &[u8] = include_bytes!(env!("EDGESTORE_PLUGIN_COMPONENT"));
