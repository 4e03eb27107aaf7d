//! What the measurements of the host share: one tokio runtime and a compiled-component cache
//! filled once, so component figures measure the component, not Cranelift.

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;

use super::error::{BenchError, Result};
use crate::{ComponentSource, Engine, Store, StoreConfig};

/// Which engine a host-side figure runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The core linked into the host (`Engine::Native`).
    Native,
    /// The embedded plugin component in Wasmtime (`Engine::Component`).
    Component,
    /// The standalone component (SQLite compiled in) from the file named by
    /// `EDGESTORE_STANDALONE_WASM`; the tests build it into `target/standalone/`.
    Standalone,
}

impl Side {
    /// `native` or `component`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Native => "native",
            Side::Component => "component",
            Side::Standalone => "standalone",
        }
    }
}

/// Names the standalone component's file for [`Side::Standalone`].
pub const STANDALONE_ENV: &str = "EDGESTORE_STANDALONE_WASM";

/// The standalone component's file: `EDGESTORE_STANDALONE_WASM`, else the one the tests build
/// (`target/standalone/edgestore-standalone.wasm` under the working directory), if it exists.
pub fn standalone_file() -> Option<std::path::PathBuf> {
    let path = std::env::var_os(STANDALONE_ENV)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new("target/standalone/edgestore-standalone.wasm").to_path_buf());
    path.is_file().then_some(path)
}

/// The embedded plugin component.
pub fn component_source() -> ComponentSource {
    ComponentSource::Bytes(crate::component::artifacts::plugin_component())
}

/// A runtime plus a warm compiled-component cache.
pub struct Host {
    /// Drives the async client.
    pub rt: tokio::runtime::Runtime,
    cache: TempDir,
}

impl Host {
    /// A runtime and an empty cache: call [`Host::warm`] (or measure a cold compile into
    /// [`Host::cache_dir`]) before measuring component figures.
    pub fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BenchError::io("start the tokio runtime", e))?;
        let cache = tempfile::tempdir().map_err(|e| BenchError::io("create the cache dir", e))?;
        Ok(Host { rt, cache })
    }

    /// Where compiled components are cached.
    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    /// Compile the component into the cache (once; later calls are cache hits).
    pub fn warm(&self) -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| BenchError::io("create a data dir", e))?;
        self.rt.block_on(async {
            let store = Store::open(self.config(Side::Component, dir.path())).await?;
            store.close().await?;
            Ok(())
        })
    }

    /// A store configuration for `side` on `data_dir`: generous limits (figures must not trip
    /// them), no timer (it would add unmeasured work), the shared cache.
    pub fn config(&self, side: Side, data_dir: &Path) -> StoreConfig {
        let engine = match side {
            Side::Native => Engine::Native,
            Side::Component => Engine::Component(component_source()),
            Side::Standalone => Engine::Component(ComponentSource::File(
                standalone_file().unwrap_or_else(|| "edgestore-standalone.wasm".into()),
            )),
        };
        let mut config = StoreConfig::new(engine, data_dir);
        config.cache_dir = Some(self.cache.path().to_path_buf());
        config.flush_interval = None;
        config.call_timeout = Duration::from_secs(600);
        config.memory_limit = 2 << 30;
        config
    }

    /// Open a store for `side` on `data_dir`.
    pub fn open(&self, side: Side, data_dir: &Path) -> Result<Store> {
        Ok(self.rt.block_on(Store::open(self.config(side, data_dir)))?)
    }
}

/// A fresh temporary directory.
pub fn tempdir() -> Result<TempDir> {
    tempfile::tempdir().map_err(|e| BenchError::io("create a temporary directory", e))
}
