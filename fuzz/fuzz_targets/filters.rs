//! Fuzz target `filters`: see `edgestore_host::fuzzing::filters`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgestore_host::fuzzing::filters(data));
