//! The standalone component for tests: built on demand ([`super::wasm_build`], not by
//! `host/build.rs`, so a fresh machine without clang and wasi-libc still builds the host and
//! runs the demo) into `target/standalone/`.
//!
//! The bundled SQLite is C: it needs `clang` (targets wasm32), `lld` and WASI's libc. Debian's
//! `wasi-libc` puts headers and libraries in `wasm32-wasi` subdirectories of the system include
//! and lib directories; a sysroot of two symlinks to those is what `clang --sysroot` wants.
//! `EDGESTORE_WASI_SYSROOT` names another sysroot (wasi-sdk's `share/wasi-sysroot`).
//!
//! [`node`] runs it under jco on Node.js (`tests/jco/run.mjs`), a host that is not ours.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::wasm_build::{build_component, workspace};

/// What to install when the toolchain is missing.
const INSTALL: &str =
    "the standalone component needs clang, lld and WASI's libc: on Debian/Ubuntu \
    `apt-get install clang lld wasi-libc` (or set EDGESTORE_WASI_SYSROOT to a wasi-sdk sysroot), \
    plus `rustup target add wasm32-wasip2`";

/// The sysroot to compile SQLite against: `EDGESTORE_WASI_SYSROOT`, or one made of symlinks to
/// Debian's `wasi-libc` under `target/standalone/sysroot`.
fn sysroot(out: &Path) -> PathBuf {
    if let Some(s) = std::env::var_os("EDGESTORE_WASI_SYSROOT") {
        return PathBuf::from(s);
    }
    let include = Path::new("/usr/include/wasm32-wasi");
    let lib = Path::new("/usr/lib/wasm32-wasi");
    assert!(
        include.join("stdio.h").is_file() && lib.is_dir(),
        "{INSTALL} ({} not found)",
        include.display()
    );
    let root = out.join("sysroot");
    fs::create_dir_all(&root).unwrap();
    for (name, target) in [("include", include), ("lib", lib)] {
        let link = root.join(name);
        if fs::read_link(&link).ok().as_deref() != Some(target) {
            let _ = fs::remove_file(&link);
            // Another test binary may be making the same link.
            match std::os::unix::fs::symlink(target, &link) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                other => other.unwrap(),
            }
        }
    }
    root
}

/// Build (or find up to date) the standalone component and return its path.
pub fn standalone_component() -> PathBuf {
    let out = workspace().join("target").join("standalone");
    fs::create_dir_all(&out).unwrap();
    let clang = Command::new("clang").arg("--version").output();
    assert!(
        clang.is_ok_and(|o| o.status.success()),
        "{INSTALL} (clang not found)"
    );
    let sysroot = sysroot(&out);
    build_component(
        "edgestore",
        &["--no-default-features", "--features", "standalone"],
        &[
            ("CC_wasm32_wasip2", "clang".to_owned()),
            (
                "CFLAGS_wasm32_wasip2",
                format!("--sysroot={} -msimd128", sysroot.display()),
            ),
        ],
        &out,
        "edgestore-standalone.wasm",
        &format!("if the C compiler failed, {INSTALL}"),
    )
}

fn jco_dir() -> PathBuf {
    workspace().join("tests").join("jco")
}

/// Installs the pinned jco packages (`npm ci`, from `tests/jco/package-lock.json`) once per test
/// run when they are missing, so `cargo test --workspace` needs only Node.js and npm.
fn ensure_jco(dir: &Path) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if dir
            .join("node_modules/@bytecodealliance/jco-transpile")
            .is_dir()
        {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)
            .status()
            .expect("run npm (install Node.js 20+ with npm)");
        assert!(
            status.success(),
            "`npm ci --prefix tests/jco` failed: {status}"
        );
    });
    assert!(
        dir.join("node_modules/@bytecodealliance/jco-transpile")
            .is_dir(),
        "jco is not installed: run `npm ci --prefix tests/jco` (Node.js 20+)"
    );
}

/// `node tests/jco/run.mjs COMPONENT DATA ARGS...` with `data` preopened as `/data`; installs jco
/// on first use and fails with what to install when Node or npm are missing.
pub fn node(data: &Path, args: &[&str]) -> Command {
    let dir = jco_dir();
    ensure_jco(&dir);
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("run.mjs"))
        .arg(standalone_component())
        .arg(data)
        .args(args);
    cmd
}
