//! The `edgestore` CLI binary for the root package's tests. Cargo hands only a package's own
//! tests the path of its binaries, so this builds it with a nested `cargo build` (same target
//! directory and profile: usually a no-op beside the tests' own build) and takes the path
//! from cargo's JSON messages. `EDGESTORE_CLI` names a binary to use instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The built `edgestore` binary.
pub fn edgestore_cli() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build).clone()
}

fn build() -> PathBuf {
    if let Some(bin) = std::env::var_os("EDGESTORE_CLI") {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args([
            "build",
            "-p",
            "edgestore-host",
            "--bin",
            "edgestore",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit());
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building the edgestore CLI failed ({})",
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "edgestore")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo named no edgestore executable")
}
