//! Fuzz target `component`: see `edgestore_host::fuzzing::component`. Wasmtime runs compiled
//! code and handles its own signals: build it without a sanitizer
//! (`cargo +nightly fuzz run -s none component`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgestore_host::fuzzing::component(data));
