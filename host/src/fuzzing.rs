//! The bodies of the fuzz targets: each takes arbitrary bytes and drives one parser or
//! decoder of untrusted input through its public entry point. `fuzz/` (cargo-fuzz, libFuzzer,
//! nightly) runs them for millions of executions; `host/tests/fuzz_corpus.rs` replays the
//! committed corpora on stable Rust in every test run, so a crash found once stays fixed.
//!
//! A target may return errors freely (bad input must be refused); it must not panic, hang or
//! allocate without bound, and where an invariant is cheap to state it is asserted.

use std::sync::Arc;

use edgestore::dir::MemDir;
use edgestore::spool::SpoolConfig;
use edgestore::{ManualClock, Spool, TimeRange};

use crate::ops::ingest::{mapping::RowMapping, otlp, remote_write, DecodeLimits};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("segment", segment),
    ("journal", journal),
    ("config", config),
    ("filters", filters),
    ("keys", keys),
    ("remote_write", remote_write),
    ("otlp", otlp),
];

const SEGMENT: &str = "fuzz_1700000000000_1700000001000.json.br";
const JOURNAL: &str = ".fuzz_1700000000000_0123456789abcdef0123456789abcdef.journal";

fn spool(dir: &MemDir) -> Option<Spool<serde_json::Value>> {
    let mut config = SpoolConfig::new("fuzz");
    config.compression_level = 1;
    Spool::open(
        Arc::new(dir.clone()),
        config,
        Arc::new(ManualClock::new(1_700_000_002_000)),
    )
    .ok()
}

fn drain(spool: &Spool<serde_json::Value>) -> u64 {
    let mut rows = 0u64;
    if let Ok(mut reader) = spool.read_range(TimeRange::all()) {
        while let Ok(batch) = reader.next(256) {
            if batch.is_empty() {
                break;
            }
            rows += batch.len() as u64;
        }
    }
    rows
}

/// A finished segment (and, after the first `0xFF` byte, its checksum sidecar) nobody wrote on
/// purpose: recovery, reading and verification refuse or quarantine it, never panic; what is
/// left in place afterwards verifies.
pub fn segment(data: &[u8]) {
    let (segment, sidecar) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let dir = MemDir::new();
    dir.write_bytes(SEGMENT, segment);
    if let Some(sidecar) = sidecar {
        dir.write_bytes(&format!("{SEGMENT}.sum"), sidecar);
    }
    let Some(spool) = spool(&dir) else {
        return;
    };
    drain(&spool);
    if spool.verify().is_ok() {
        let again = spool.verify();
        assert!(
            again.as_ref().is_ok_and(|r| r.quarantined.is_empty()),
            "a segment kept by verification fails it the second time: {again:?}"
        );
    }
}

/// A journal a crashed writer left, with arbitrary bytes: recovery finishes what verifies
/// (never more rows than there are complete lines) and the open succeeds.
pub fn journal(data: &[u8]) {
    let dir = MemDir::new();
    dir.write_bytes(JOURNAL, data);
    let Some(spool) = spool(&dir) else {
        return;
    };
    let _ = spool.flush();
    let lines = data.iter().filter(|b| **b == b'\n').count() as u64;
    let rows = drain(&spool);
    assert!(
        rows <= lines,
        "{rows} rows out of a journal of {lines} lines"
    );
}

/// The YAML configuration, then (after the first NUL byte) `EDGESTORE_*` variables as
/// `NAME=value` lines: loaded and validated, or refused with an error naming the key.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (yaml, env) = text.split_once('\0').unwrap_or((&text, ""));
    let vars: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("edgestore.yaml");
    if std::fs::write(&path, yaml.as_bytes()).is_err() {
        return;
    }
    if let Ok(config) = crate::config::Config::load(Some(&path), vars, &Default::default()) {
        let _ = config.store_config();
        let _ = config.spool_path();
    }
}

/// The command line's filters: `spool erase --where LABEL=VALUE` and `db find --where
/// COLUMN=VALUE` (typed by the resource-tags schema), one per line.
pub fn filters(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let schema = <edgestore::ResourceTags as edgestore::Model>::schema();
    for line in text.lines() {
        let _ = edgestore::spool::EraseFilter::parse(line);
        if let Ok(f) = edgestore::inspect::Filter::parse(line) {
            let _ = f.condition(&schema);
        }
    }
}

/// Key material: an age identity file's text, and recipients (`age1...`), one per line.
pub fn keys(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = edgestore::spool::identity_recipients(&text);
    let mut config = SpoolConfig::new("fuzz");
    config.keys.recipients = text.lines().map(str::to_owned).collect();
    config.keys.identities = text.into_owned();
    let _ = config.validate();
}

/// A Prometheus remote write body (snappy block of a 1.0 or 2.0 message).
pub fn remote_write(data: &[u8]) {
    let limits = DecodeLimits::default();
    let mapping = RowMapping::default();
    for version in [remote_write::Version::V1, remote_write::Version::V2] {
        let _ = remote_write::decode(version, data, &limits, &mapping, 0);
    }
}

/// An OTLP/HTTP metrics body, as protobuf and as JSON (gzip or plain).
pub fn otlp(data: &[u8]) {
    let limits = DecodeLimits::default();
    let mapping = RowMapping::default();
    for format in [otlp::Format::Protobuf, otlp::Format::Json] {
        let _ = otlp::decode(format, data, &limits, &mapping, 0);
    }
}

/// Valid inputs for `target`, made by our own writers: where the fuzzers start, and what the
/// replay test runs besides the committed corpora.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let rows: Vec<serde_json::Value> = (0..20)
        .map(|i| serde_json::json!({"i": i, "labels": {"user": format!("u{}", i % 3)}}))
        .collect();
    match target {
        "segment" | "journal" => {
            let dir = MemDir::new();
            let Some(spool) = spool(&dir) else {
                return Vec::new();
            };
            if spool.put(&rows).is_err() || spool.sync().is_err() {
                return Vec::new();
            }
            let files = dir.names();
            let journal = files.iter().find(|n| n.ends_with(".journal"));
            if target == "journal" {
                return journal.and_then(|n| dir.read_bytes(n)).into_iter().collect();
            }
            if spool.flush().is_err() {
                return Vec::new();
            }
            let names = dir.names();
            let Some(seg) = names.iter().find(|n| n.ends_with(".json.br")) else {
                return Vec::new();
            };
            let bytes = dir.read_bytes(seg).unwrap_or_default();
            let mut with_sidecar = bytes.clone();
            with_sidecar.push(0xFF);
            with_sidecar.extend(dir.read_bytes(&format!("{seg}.sum")).unwrap_or_default());
            vec![bytes, with_sidecar]
        }
        "config" => vec![
            b"storage: {compressionLevel: 6, maxRecords: 5000, maxInterval: 30s}\n\
              retention: {maxAge: 7d, maxBytes: 1GiB}\nhost: {engine: native}\n"
                .to_vec(),
            b"database: {dsn: edgestore.sqlite, maxConnections: 4}\n\0\
              EDGESTORE_STORAGE_COMPRESSION_LEVEL=9\nEDGESTORE_HOST_CALL_TIMEOUT=10s\n"
                .to_vec(),
        ],
        "filters" => vec![b"user=alice\nlabels.host=h1\nname=web-0\nnamespace=null\n".to_vec()],
        "keys" => {
            let (identity, recipient) = edgestore::spool::generate_identity("fuzz seed");
            vec![identity.into_bytes(), recipient.into_bytes()]
        }
        "remote_write" => {
            let metrics = edgestore::sample::MetricGenerator::new(1, 1_700_000_000_000).batch(5);
            crate::bench::ingest::encode(&metrics)
                .map(|b| vec![b.to_vec()])
                .unwrap_or_default()
        }
        "otlp" => vec![br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"host.name","value":{"stringValue":"h1"}}]},"scopeMetrics":[{"metrics":[{"name":"cpu","gauge":{"dataPoints":[{"timeUnixNano":"1700000000000000000","asDouble":0.5}]}}]}]}]}"#.to_vec()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_target_takes_empty_and_junk_input_and_has_seeds() {
        for (name, target) in super::TARGETS {
            for input in [&b""[..], b"\xff\x00\n\n{", b"\x1f\x8b\x08\x00"] {
                target(input);
            }
            let seeds = super::seeds(name);
            assert!(!seeds.is_empty(), "{name} has no seed");
            for seed in seeds {
                target(&seed);
            }
        }
        // The seeds are what they claim to be: accepted by their readers.
        let limits = super::DecodeLimits::default();
        let mapping = super::RowMapping::default();
        let rw = &super::seeds("remote_write")[0];
        let decoded =
            super::remote_write::decode(super::remote_write::Version::V1, rw, &limits, &mapping, 0)
                .unwrap();
        assert_eq!(decoded.rows.len(), 5);
        let otlp = &super::seeds("otlp")[0];
        let decoded =
            super::otlp::decode(super::otlp::Format::Json, otlp, &limits, &mapping, 0).unwrap();
        assert_eq!(decoded.rows.len(), 1);
        let dir = super::MemDir::new();
        dir.write_bytes(super::SEGMENT, &super::seeds("segment")[0]);
        assert_eq!(super::drain(&super::spool(&dir).unwrap()), 20);
        let dir = super::MemDir::new();
        dir.write_bytes(super::JOURNAL, &super::seeds("journal")[0]);
        let spool = super::spool(&dir).unwrap();
        spool.flush().unwrap();
        assert_eq!(super::drain(&spool), 20);
    }
}
