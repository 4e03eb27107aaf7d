//! Fuzz target `segment`: see `edgestore_host::fuzzing::segment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgestore_host::fuzzing::segment(data));
