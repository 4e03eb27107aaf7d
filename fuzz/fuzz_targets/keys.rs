//! Fuzz target `keys`: see `edgestore_host::fuzzing::keys`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgestore_host::fuzzing::keys(data));
