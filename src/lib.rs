//! `edgestore-suite`: the workspace's root package. It exists to own the cross-crate integration
//! tests in `tests/` and the benchmarks in `benches/`; the product lives in `guest/` (the
//! portable core, crate `edgestore`) and `host/` (crate `edgestore-host`).
//!
//! It re-exports the core so tests and benches can name one crate.

#![forbid(unsafe_code)]

pub use edgestore;

/// README's Rust examples, compiled and run as doc tests so the README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
