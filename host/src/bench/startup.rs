//! Start-up: compiling the component cold, and opening a store when the compiled component is
//! already in the cache (what every start after the first one costs).

use std::path::Path;
use std::time::{Duration, Instant};

use super::error::Result;
use super::fixture::{tempdir, Host, Side};
use crate::component::engine::{CacheOutcome, ComponentEngine};

/// Compile the embedded component with a fresh engine; with `cache`, the result is stored
/// there (so a cold measurement also warms a cache).
pub fn cold_compile(cache: Option<&Path>) -> Result<Duration> {
    let t = Instant::now();
    let engine = ComponentEngine::new(cache.map(Path::to_path_buf))?;
    // A buffer of its own: a cold compile also pays for hashing the component's bytes.
    let bytes: std::sync::Arc<[u8]> =
        std::sync::Arc::from(crate::component::artifacts::PLUGIN_COMPONENT);
    let (component, outcome) = engine.load(&bytes)?;
    let elapsed = t.elapsed();
    std::hint::black_box(component);
    if outcome != CacheOutcome::Compiled {
        return Err(super::error::BenchError::Check(
            "a cold compile found a cached component".into(),
        ));
    }
    Ok(elapsed)
}

/// `Store::open` on the component with the compiled component in the host's cache: engine,
/// cache load, instantiation and the first call's readiness.
pub fn warm_open(host: &Host) -> Result<Duration> {
    let dir = tempdir()?;
    let config = host.config(Side::Component, dir.path());
    host.rt.block_on(async {
        let t = Instant::now();
        let store = crate::Store::open(config).await?;
        let elapsed = t.elapsed();
        store.close().await?;
        Ok(elapsed)
    })
}
