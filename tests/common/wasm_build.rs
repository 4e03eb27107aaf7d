//! Components the tests build on demand with a nested `cargo rustc` (not `host/build.rs`): the
//! standalone component and the hostile test component. Each goes into its own directory under
//! `target/`, once per test run: concurrent test binaries serialise on a file lock there and
//! the nested cargo is a no-op when nothing changed.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The components' target.
pub const TARGET: &str = "wasm32-wasip2";

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Build `package`'s library as a release component into `out` (`cargo rustc --crate-type
/// cdylib`, with `args` and `envs` added) and copy it to `out/artifact`; returns that path.
/// `hint` says what to install when the build fails. Holds `out/.build.lock` meanwhile.
pub fn build_component(
    package: &str,
    args: &[&str],
    envs: &[(&str, String)],
    out: &Path,
    artifact: &str,
    hint: &str,
) -> PathBuf {
    fs::create_dir_all(out).unwrap();
    let lock = File::create(out.join(".build.lock")).unwrap();
    lock.lock().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace())
        .args([
            "rustc",
            "-p",
            package,
            "--lib",
            "--crate-type",
            "cdylib",
            "--release",
            "--target",
            TARGET,
        ])
        .args(args)
        .arg("--target-dir")
        .arg(out)
        // Like the plugin (host/build.rs): keep symbol names, drop DWARF.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    for key in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(key);
    }
    let status = cmd.status().expect("run cargo");
    assert!(
        status.success(),
        "building {package} for {TARGET} failed ({status}); {hint}"
    );
    let built = out
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let artifact = out.join(artifact);
    // Copied under its own name, so it is never confused with the plugin's `edgestore.wasm`;
    // only when the build changed it, so a running test never sees a half-written copy.
    let mtime = fs::metadata(&built).and_then(|b| b.modified()).unwrap();
    if fs::metadata(&artifact).and_then(|a| a.modified()).ok() != Some(mtime) {
        let staging = artifact.with_extension("wasm.tmp");
        fs::copy(&built, &staging).unwrap();
        File::options()
            .write(true)
            .open(&staging)
            .and_then(|f| f.set_modified(mtime))
            .unwrap();
        fs::rename(&staging, &artifact).unwrap();
    }
    artifact
}
