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
    ("component", component),
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

/// A schema and rows decoded from the input, run through the typed client into the plugin
/// world and into the native engine side by side: register, upsert in one transaction, delete
/// by key. Bad input must be refused with a typed error, never a trap or a limit (that would
/// be a guest bug the host merely survived), and both engines must agree on what happened:
/// the same counts, or the same error code.
pub fn component(data: &[u8]) {
    let _ = component_outcome(data);
}

/// What both engines did with the input (`upsert result, delete result`), once they agreed.
fn component_outcome(data: &[u8]) -> Option<String> {
    let mut bed = BED.lock().unwrap_or_else(|p| p.into_inner());
    // Tables and rows accumulate: start over now and then so a long run stays bounded.
    if bed.as_ref().is_none_or(|b| b.inputs >= BED_INPUTS) {
        if let Some(old) = bed.take() {
            old.close();
        }
        *bed = Bed::new();
    }
    let bed = bed.as_mut()?;
    bed.inputs += 1;
    let mut input = Input(data);
    let schema = input.schema();
    let rows: Vec<edgestore::Row> = (0..input.byte() % 6).map(|_| input.row(&schema)).collect();
    let keys: Vec<edgestore::Row> = rows
        .iter()
        .take(usize::from(input.byte() % 4))
        .map(|row| key_of(&schema, row))
        .collect();
    let outcomes: Vec<String> = bed
        .stores
        .iter()
        .map(|(engine, store)| {
            let (upserted, deleted) = bed.runtime.block_on(async {
                (
                    store.upsert_rows(schema.clone(), rows.clone()).await,
                    store.delete_keys(schema.clone(), keys.clone()).await,
                )
            });
            for e in [upserted.as_ref().err(), deleted.as_ref().err()]
                .into_iter()
                .flatten()
            {
                assert!(
                    !matches!(e, crate::Error::Trap(_) | crate::Error::Limit { .. }),
                    "{engine}: {e}\nschema {schema:?}\nrows {rows:?}"
                );
            }
            format!(
                "{:?} {:?}",
                upserted.map_err(|e| e.code()),
                deleted.map_err(|e| e.code())
            )
        })
        .collect();
    assert!(
        outcomes.windows(2).all(|w| w[0] == w[1]),
        "the engines disagree: {outcomes:?}\nschema {schema:?}\nrows {rows:?}\nkeys {keys:?}"
    );
    outcomes.into_iter().next()
}

/// Inputs per pair of stores before [`component`] starts over.
const BED_INPUTS: u64 = 2_000;

/// The stores [`component`] drives, kept across inputs (instantiating per input would be all
/// the fuzzer measured).
static BED: std::sync::Mutex<Option<Bed>> = std::sync::Mutex::new(None);

struct Bed {
    runtime: tokio::runtime::Runtime,
    stores: Vec<(&'static str, crate::Store)>,
    _dirs: Vec<tempfile::TempDir>,
    inputs: u64,
}

impl Bed {
    fn new() -> Option<Bed> {
        use crate::{ComponentSource, Engine, Store, StoreConfig};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .ok()?;
        let mut stores = Vec::new();
        let mut dirs = Vec::new();
        for (name, engine) in [
            ("native", Engine::Native),
            (
                "component",
                Engine::Component(ComponentSource::Bytes(crate::artifacts::plugin_component())),
            ),
        ] {
            let dir = tempfile::tempdir().ok()?;
            let mut config = StoreConfig::new(engine, dir.path());
            config.cache_dir = Some(std::env::temp_dir().join("edgestore-fuzz-cwasm"));
            config.flush_interval = None;
            config.breaker.failure_threshold = u32::MAX;
            let store = runtime.block_on(Store::open(config)).ok()?;
            stores.push((name, store));
            dirs.push(dir);
        }
        Some(Bed {
            runtime,
            stores,
            _dirs: dirs,
            inputs: 0,
        })
    }

    fn close(self) {
        for (_, store) in self.stores {
            let _ = self.runtime.block_on(store.close());
        }
    }
}

/// The input, read front to back; past its end every read is zero or empty.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken.to_vec()
    }

    fn i64(&mut self) -> i64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&{
            let mut v = self.bytes(8);
            v.resize(8, 0);
            v
        });
        i64::from_le_bytes(b)
    }

    fn text(&mut self) -> String {
        let n = usize::from(self.byte() % 24);
        String::from_utf8_lossy(&self.bytes(n)).into_owned()
    }

    /// A name: mostly one of a few good ones (so tables and columns meet again), sometimes
    /// anything.
    fn name(&mut self, good: &[&str]) -> String {
        let pick = usize::from(self.byte());
        match good.get(pick % (good.len() + 1)) {
            Some(name) => (*name).to_owned(),
            None => self.text(),
        }
    }

    fn schema(&mut self) -> edgestore::Schema {
        use edgestore::{Column, ColumnType};
        const TYPES: [ColumnType; 8] = [
            ColumnType::Integer,
            ColumnType::Real,
            ColumnType::Text,
            ColumnType::Blob,
            ColumnType::Bool,
            ColumnType::Timestamp,
            ColumnType::Json,
            ColumnType::Uuid,
        ];
        let mut schema = edgestore::Schema::new(&self.name(&["reading", "device", "fuzz_row"]));
        for _ in 0..1 + self.byte() % 5 {
            let name = self.name(&["id", "name", "value", "created_at", "labels"]);
            let flags = self.byte();
            let mut column = Column::new(&name, TYPES[usize::from(flags % 8)]);
            if flags & 0x08 != 0 {
                column = column.nullable();
            }
            if flags & 0x10 != 0 {
                column = column.unique();
            }
            if flags & 0x20 != 0 {
                column = column.indexed();
            }
            if flags & 0x40 != 0 {
                column = column.immutable();
            }
            schema = schema.column(column);
        }
        let keys = 1 + usize::from(self.byte()) % schema.columns.len().max(1);
        let key: Vec<String> = schema
            .columns
            .iter()
            .take(keys)
            .map(|c| c.name.clone())
            .collect();
        schema.key = key;
        schema
    }

    fn value(&mut self, ty: Option<edgestore::ColumnType>) -> edgestore::Value {
        use edgestore::{ColumnType, Value};
        match self.byte() % 7 {
            0 => Value::Null,
            1 => Value::Integer(self.i64()),
            2 => Value::Real(f64::from_bits(self.i64() as u64)),
            3 => Value::Text(self.text()),
            4 => {
                let n = usize::from(self.byte() % 16);
                Value::Blob(self.bytes(n))
            }
            // A value of the column's own type, so rows often get past validation.
            _ => match ty {
                Some(ColumnType::Integer | ColumnType::Timestamp) => {
                    Value::Integer(i64::from(self.byte()))
                }
                Some(ColumnType::Bool) => Value::Integer(i64::from(self.byte() % 2)),
                Some(ColumnType::Real) => Value::Real(f64::from(self.byte()) / 4.0),
                Some(ColumnType::Blob) => Value::Blob(self.bytes(4)),
                Some(ColumnType::Json) => Value::Text(format!("{{\"n\":{}}}", self.byte())),
                Some(ColumnType::Uuid) => Value::Text(format!(
                    "00000000-0000-4000-8000-0000000000{:02x}",
                    self.byte()
                )),
                Some(ColumnType::Text) | None => Value::Text(format!("t{}", self.byte())),
            },
        }
    }

    /// A row of the schema's arity, or now and then of another.
    fn row(&mut self, schema: &edgestore::Schema) -> edgestore::Row {
        let arity = match self.byte() % 16 {
            0 => schema.columns.len() + 1,
            1 => schema.columns.len().saturating_sub(1),
            _ => schema.columns.len(),
        };
        (0..arity)
            .map(|i| {
                let ty = schema.columns.get(i).map(|c| c.ty);
                self.value(ty)
            })
            .collect()
    }
}

/// The key of `row` under `schema` (the key columns' values, as far as the row has them).
fn key_of(schema: &edgestore::Schema, row: &edgestore::Row) -> edgestore::Row {
    schema
        .key
        .iter()
        .filter_map(|k| schema.columns.iter().position(|c| &c.name == k))
        .filter_map(|i| row.get(i).cloned())
        .collect()
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
        // Table `reading` (`id` integer key, `name` text), two rows, the first deleted by key;
        // table `device` (`id` uuid key, `value` nullable real, `labels` json), one row.
        "component" => vec![
            vec![0, 1, 0, 0, 1, 2, 0, 2, 2, 5, 7, 5, 9, 2, 5, 8, 5, 3, 1],
            vec![1, 2, 0, 7, 2, 9, 4, 6, 0, 1, 2, 5, 1, 0, 6, 3, 1],
        ],
        "otlp" => vec![br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"host.name","value":{"stringValue":"h1"}}]},"scopeMetrics":[{"metrics":[{"name":"cpu","gauge":{"dataPoints":[{"timeUnixNano":"1700000000000000000","asDouble":0.5}]}}]}]}]}"#.to_vec()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_target_takes_empty_and_junk_input_and_has_seeds() {
        // The component seeds do what they claim, on fresh stores (before the junk below
        // registers other tables under the same names).
        let seeds = super::seeds("component");
        assert_eq!(
            super::component_outcome(&seeds[0]).as_deref(),
            Some("Ok(2) Ok([true])")
        );
        assert_eq!(
            super::component_outcome(&seeds[1]).as_deref(),
            Some("Ok(1) Ok([true])")
        );
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
