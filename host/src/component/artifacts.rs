//! The plugin component built by `build.rs` (world `plugin` of `wit/edgestore.wit`).
//!
//! The bytes are embedded so the `edgestore` binary is self-contained: it needs no `.wasm` file
//! next to it at run time. The path is kept for tests and tools that want the file itself.

/// Where `build.rs` left the component (inside `<workspace>/target/component/`).
pub const PLUGIN_COMPONENT_PATH: &str = env!("EDGESTORE_PLUGIN_COMPONENT");

/// The component's bytes, embedded at build time.
pub static PLUGIN_COMPONENT: &[u8] = include_bytes!(env!("EDGESTORE_PLUGIN_COMPONENT"));

/// The embedded component as one shared buffer for the whole process: every store opened on
/// the default component hands the engine the same buffer (no 2 MB copy per open), which
/// also lets the engine remember the buffer's cache key instead of hashing it again.
pub fn plugin_component() -> std::sync::Arc<[u8]> {
    static SHARED: std::sync::OnceLock<std::sync::Arc<[u8]>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| std::sync::Arc::from(PLUGIN_COMPONENT))
        .clone()
}
