//! A data directory whose configuration names an age key file outside it (created by the
//! test with `keys generate`): the encryption tests' store.

use std::path::PathBuf;
use std::process::Command;

/// The store's paths; the temporary directory holding them lives as long as this.
pub struct KeyedStore {
    /// Holds the data directory, the key file and the configuration.
    pub tmp: tempfile::TempDir,
    /// The data directory (not created yet).
    pub data: PathBuf,
    /// `encryption.keyFile` (its directory exists; the file does not yet).
    pub key: PathBuf,
    /// The configuration file: the key file, then `extra`.
    pub config: PathBuf,
}

/// A new keyed store whose configuration has `extra` (top-level YAML) after the key file.
pub fn keyed_store(extra: &str) -> KeyedStore {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = tmp.path().join("keys").join("key.txt");
    std::fs::create_dir(key.parent().unwrap()).unwrap();
    let config = tmp.path().join("edgestore.yaml");
    std::fs::write(
        &config,
        format!("encryption: {{keyFile: '{}'}}\n{extra}", key.display()),
    )
    .unwrap();
    KeyedStore {
        tmp,
        data,
        key,
        config,
    }
}

impl KeyedStore {
    /// The binary on this store with `engine` and its configuration.
    pub fn cmd(&self, engine: &str) -> Command {
        let mut cmd = super::edgestore(&self.data, engine);
        cmd.arg("--config").arg(&self.config);
        cmd
    }
}
