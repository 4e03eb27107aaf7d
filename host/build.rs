//! Builds the edgestore plugin component (world `plugin`) with a nested cargo, so the host can
//! embed it and tests can decode it.
//!
//! The nested build uses its own target directory (`<workspace>/target/component`): sharing the
//! outer build's directory would wait forever on the lock the outer cargo holds. Environment
//! that the outer build sets for itself (flags, target, profile, clippy's wrapper) is stripped
//! so the component is built the same way whatever command triggered this script.

#![forbid(unsafe_code)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ lives inside the workspace")
        .to_path_buf();
    for watched in [
        "guest/src",
        "guest/Cargo.toml",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
        ".cargo/config.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    // A build on another toolchain (the fuzz targets, on nightly) can build the component with
    // the one that has the wasm32-wasip2 target: `EDGESTORE_COMPONENT_TOOLCHAIN=stable`.
    println!("cargo:rerun-if-env-changed=EDGESTORE_COMPONENT_TOOLCHAIN");
    let toolchain = env::var("EDGESTORE_COMPONENT_TOOLCHAIN")
        .ok()
        .filter(|t| !t.is_empty());
    if toolchain.is_none() {
        ensure_target();
    }

    let target_dir = workspace.join("target").join("component");
    let cargo = match toolchain {
        // rustup's proxy, which honours RUSTUP_TOOLCHAIN.
        Some(_) => "cargo".into(),
        None => env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
    };
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace).args([
        "rustc",
        "-p",
        "edgestore",
        "--lib",
        "--crate-type",
        "cdylib",
        "--release",
        "--no-default-features",
        "--features",
        "component,encryption",
        "--target",
        TARGET,
        "--target-dir",
    ]);
    cmd.arg(&target_dir);
    strip_outer_env(&mut cmd);
    if let Some(t) = env::var("EDGESTORE_COMPONENT_TOOLCHAIN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        cmd.env("RUSTUP_TOOLCHAIN", t)
            .env_remove("RUSTC")
            .env_remove("RUSTDOC");
    }
    // The component is embedded in the host: keep symbol names (useful traps), drop DWARF.
    cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    eprintln!("building the plugin component: {cmd:?}");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build the plugin component: {e}"));
    if !status.success() {
        panic!("building the plugin component failed ({status}); the cargo output above says why");
    }

    let artifact = target_dir
        .join(TARGET)
        .join("release")
        .join("edgestore.wasm");
    if !artifact.is_file() {
        panic!(
            "the plugin component build succeeded but {} is missing",
            artifact.display()
        );
    }
    println!(
        "cargo:rustc-env=EDGESTORE_PLUGIN_COMPONENT={}",
        artifact.display()
    );
}

/// Remove what the outer cargo set for its own build and what would change how the nested one
/// builds: rustflags (coverage, sanitizers), target and target dir, profile overrides, clippy's
/// rustc wrapper, and the variables cargo passes to build scripts.
fn strip_outer_env(cmd: &mut Command) {
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let strip = matches!(
            key,
            "CARGO_ENCODED_RUSTFLAGS"
                | "RUSTFLAGS"
                | "CARGO_BUILD_RUSTFLAGS"
                | "CARGO_TARGET_DIR"
                | "CARGO_BUILD_TARGET"
                | "CARGO_BUILD_TARGET_DIR"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "OUT_DIR"
                | "TARGET"
                | "HOST"
                | "NUM_JOBS"
                | "OPT_LEVEL"
                | "DEBUG"
                | "PROFILE"
                | "RUSTC_LINKER"
        ) || key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_PKG_");
        if strip {
            cmd.env_remove(key);
        }
    }
}

/// Make sure the `wasm32-wasip2` standard library is installed: add it once with rustup, and
/// fail with the exact command to run when that is not possible.
fn ensure_target() {
    let sysroot = Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |root: &Path| root.join("lib/rustlib").join(TARGET).join("lib").is_dir();
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    eprintln!("the {TARGET} target is missing; running `rustup target add {TARGET}`");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if !added || !sysroot.as_deref().is_none_or(installed) {
        panic!(
            "the Rust target {TARGET} is not installed and `rustup target add {TARGET}` failed; \
             run `rustup target add {TARGET}` (or install the {TARGET} standard library for \
             this toolchain) and build again"
        );
    }
}
