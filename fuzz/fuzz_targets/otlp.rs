//! Fuzz target `otlp`: see `edgestore_host::fuzzing::otlp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgestore_host::fuzzing::otlp(data));
