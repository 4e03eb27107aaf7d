//! Fuzz target `journal`: see `edgestore_host::fuzzing::journal`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgestore_host::fuzzing::journal(data));
