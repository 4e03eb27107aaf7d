//! Fuzz target `config`: see `edgestore_host::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgestore_host::fuzzing::config(data));
