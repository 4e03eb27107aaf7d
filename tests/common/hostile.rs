//! The hostile test component (`tests/hostile-guest`): built on demand into `target/hostile/`.

use std::path::PathBuf;

use super::wasm_build::{build_component, workspace};

/// Build (or find up to date) the hostile component and return its path.
pub fn hostile_component() -> PathBuf {
    build_component(
        "edgestore-hostile-guest",
        &[],
        &[],
        &workspace().join("target").join("hostile"),
        "edgestore-hostile.wasm",
        "it needs `rustup target add wasm32-wasip2`",
    )
}
