//! Fuzz target `remote_write`: see `edgestore_host::fuzzing::remote_write`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgestore_host::fuzzing::remote_write(data));
