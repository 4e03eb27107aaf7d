//! The Wasmtime engine: configuration (epoch interruption for per-call time bounds, no
//! pooling: one instance per store makes on-demand allocation cheap enough) and a cache of
//! compiled components on disk, keyed by the sha256 of the component's bytes and by the
//! wasmtime version, so a warm start deserializes instead of compiling.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Component;

use crate::error::{Error, Result};

/// How often the epoch advances: the granularity of [`crate::StoreConfig::call_timeout`].
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Magic at the start of a cache entry's sidecar (v2: CRC-32 of the compiled bytes).
const SIDECAR_MAGIC: &str = "edgestore-cwasm-v2";

/// A Wasmtime engine with a running epoch ticker and a compiled-component cache.
#[derive(Clone)]
pub struct ComponentEngine {
    engine: wasmtime::Engine,
    cache_dir: Option<PathBuf>,
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for ComponentEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentEngine")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct Ticker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized from the cache.
    Hit,
    /// Compiled (and written to the cache when there is one).
    Compiled,
}

impl ComponentEngine {
    /// A new engine; `cache_dir` (created if missing) holds compiled components.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = wasmtime::Engine::new(&config).map_err(Error::runtime)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("edgestore-epoch".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| Error::Runtime(format!("start the epoch ticker: {e}")))?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Config(format!("create cache directory {}: {e}", dir.display()))
            })?;
        }
        Ok(ComponentEngine {
            engine,
            cache_dir,
            _ticker: Arc::new(Ticker { stop }),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// Compile `bytes`, or load the compiled form from the cache.
    pub fn load(&self, bytes: &Arc<[u8]>) -> Result<(Component, CacheOutcome)> {
        let key = memoized_cache_key(bytes);
        if let Some(dir) = &self.cache_dir {
            if let Some(component) = self.try_cached(dir, &key) {
                return Ok((component, CacheOutcome::Hit));
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(Error::runtime)?;
        if let Some(dir) = &self.cache_dir {
            // A cache that cannot be written only costs the next start a compile.
            let _ = self.store_cached(dir, &key, &component);
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn try_cached(&self, dir: &Path, key: &str) -> Option<Component> {
        let compiled = std::fs::read(dir.join(format!("{key}.cwasm"))).ok()?;
        let sidecar = std::fs::read_to_string(dir.join(format!("{key}.sum"))).ok()?;
        let expected = format!("{SIDECAR_MAGIC} {:08x}", crc32fast::hash(&compiled));
        if sidecar.trim() != expected {
            return None;
        }
        // SAFETY: `Component::deserialize` requires bytes produced by `Component::serialize`
        // of a compatible engine; anything else may run arbitrary code. These bytes are:
        // - read from a cache directory this host owns (the embedder's `cache_dir`), under a
        //   name derived from the sha256 of the component *and* the wasmtime version, so a
        //   different component or wasmtime never finds this entry;
        // - checked against a sidecar we wrote after serializing, holding the CRC-32 of the
        //   compiled bytes, so a torn or partially written entry is rejected (the check guards
        //   against accidents, not an attacker: see the last point);
        // - and wasmtime itself checks the embedded version and engine settings, returning an
        //   error (never undefined behaviour) on a mismatch.
        // Whoever can write the cache directory can already replace this host's binary, so the
        // cache is no new trust boundary. Any failure falls back to compiling.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, &compiled) };
        component.ok()
    }

    fn store_cached(&self, dir: &Path, key: &str, component: &Component) -> Result<()> {
        let compiled = component.serialize().map_err(Error::runtime)?;
        let write = |name: String, bytes: &[u8]| -> std::io::Result<()> {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, dir.join(name))
        };
        let io = |e: std::io::Error| Error::Runtime(format!("write the compiled cache: {e}"));
        write(format!("{key}.cwasm"), &compiled).map_err(io)?;
        let sidecar = format!("{SIDECAR_MAGIC} {:08x}\n", crc32fast::hash(&compiled));
        write(format!("{key}.sum"), sidecar.as_bytes()).map_err(io)?;
        Ok(())
    }
}

/// [`cache_key`], remembered for the last few component buffers this process loaded: hashing
/// the 2 MB component took a third of a warm open. Entries hold their buffer, so a buffer's
/// address cannot be reused by different bytes while its key is remembered.
fn memoized_cache_key(bytes: &Arc<[u8]>) -> String {
    static KEYS: std::sync::Mutex<Vec<(Arc<[u8]>, String)>> = std::sync::Mutex::new(Vec::new());
    let mut keys = KEYS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, key)) = keys.iter().find(|(b, _)| Arc::ptr_eq(b, bytes)) {
        return key.clone();
    }
    let key = cache_key(bytes);
    if keys.len() >= 4 {
        keys.remove(0);
    }
    keys.push((bytes.clone(), key.clone()));
    key
}

/// `<sha256 of the component>-wasmtime-<version>`.
pub fn cache_key(component: &[u8]) -> String {
    format!(
        "{}-wasmtime-{}",
        crate::digest::sha256_hex(component),
        wasmtime_version()
    )
}

fn wasmtime_version() -> &'static str {
    // The pinned dependency (`=48.0.8` in host/Cargo.toml); a bump changes every key.
    "48.0.8"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_load_hits_the_cache_and_a_bad_entry_falls_back_to_compiling() {
        let cache = tempfile::tempdir().unwrap();
        let engine = ComponentEngine::new(Some(cache.path().to_path_buf())).unwrap();
        let bytes = crate::component::artifacts::plugin_component();
        assert_eq!(engine.load(&bytes).unwrap().1, CacheOutcome::Compiled);
        assert_eq!(engine.load(&bytes).unwrap().1, CacheOutcome::Hit);
        // A damaged compiled file no longer matches its sidecar: compile again, rewrite.
        let key = cache_key(&bytes);
        let cwasm = cache.path().join(format!("{key}.cwasm"));
        let mut compiled = std::fs::read(&cwasm).unwrap();
        let last = compiled.len() - 1;
        compiled[last] ^= 0xff;
        std::fs::write(&cwasm, compiled).unwrap();
        assert_eq!(engine.load(&bytes).unwrap().1, CacheOutcome::Compiled);
        assert_eq!(engine.load(&bytes).unwrap().1, CacheOutcome::Hit);
        // A different component never finds this entry.
        assert_ne!(cache_key(b"other"), key);
    }
}
