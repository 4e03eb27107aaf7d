//! Replays the fuzz corpora on stable Rust, in seconds: every committed input under
//! `fuzz/corpus/<target>/` (what the fuzzers kept, regression inputs for crashes they found
//! included) and the seeds our own writers make, through the same bodies the fuzz targets run
//! (`edgestore_host::fuzzing`). The long runs are `cargo +nightly fuzz run <target>` in
//! `fuzz/` (README).

use std::path::{Path, PathBuf};

use edgestore_host::fuzzing::{seeds, TARGETS};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[test]
fn every_committed_input_and_seed_runs_clean() {
    for (name, target) in TARGETS {
        let mut inputs = seeds(name);
        let dir = corpus(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target has a corpus)", dir.display()));
        for entry in entries.flatten() {
            inputs.push(std::fs::read(entry.path()).unwrap());
        }
        assert!(inputs.len() > 1, "{name}: no corpus");
        for input in &inputs {
            target(input);
        }
        eprintln!("{name}: {} inputs", inputs.len());
    }
}

/// Writes the seeds into `fuzz/corpus/<target>/seed-N` (after a writer's format changed):
/// `cargo test -p edgestore-host --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes into the source tree"]
fn write_seed_corpora() {
    for (name, _) in TARGETS {
        let dir = corpus(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds(name).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}
