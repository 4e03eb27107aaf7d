//! Spool ingest against its physical limit: raw Brotli on the very bytes the spool wrote.
//!
//! One workload (generated metrics, one spool config) is ingested natively (core `Spool`
//! directly) and through the host (either engine); the baseline decompresses the segments a
//! native run wrote and compresses each segment's JSON again with the `brotli` crate (the
//! pure-Rust encoder) and with Google's C encoder the spool itself uses, at the same quality
//! and window, so both sides compress identical bytes in identical segment cuts.
//! Generation is never timed; `put` of every batch plus the final `flush` is.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgestore::sample::MetricGenerator;
use edgestore::spool::compress::{BrotliStream, LocalStream};
use edgestore::spool::{encoder_params, FinishWorker};
use edgestore::{Metric, Spool, SpoolConfig};
use tempfile::TempDir;

use super::error::{BenchError, Result};
use super::fixture::{tempdir, Host, Side};

/// Rows per segment and per `put` batch (the default `max_records`).
pub const BATCH: usize = 10_000;

/// Generated metrics and the spool configuration they are ingested with.
pub struct IngestWorkload {
    /// Brotli quality.
    pub level: u32,
    /// Rows in all batches.
    pub rows: usize,
    batches: Vec<Vec<Metric>>,
}

/// A finished native ingest: its time and the spool directory it wrote.
pub struct IngestRun {
    /// `put` of every batch plus `flush`.
    pub elapsed: Duration,
    /// The spool directory (deleted on drop).
    pub dir: TempDir,
}

/// The segments of a run, decompressed: what the spool compressed, segment by segment.
pub struct Segments {
    /// Each segment's JSON document.
    pub json: Vec<Vec<u8>>,
    /// Sum of the segment files' sizes.
    pub compressed_bytes: u64,
}

impl Segments {
    /// Total JSON bytes.
    pub fn json_bytes(&self) -> u64 {
        self.json.iter().map(|j| j.len() as u64).sum()
    }

    /// Share of bytes saved, 0..1.
    pub fn savings(&self) -> f64 {
        1.0 - self.compressed_bytes as f64 / self.json_bytes().max(1) as f64
    }
}

impl IngestWorkload {
    /// `rows` metrics from the demo's generator (seed 2024), in batches of [`BATCH`].
    pub fn new(rows: usize, level: u32) -> Self {
        let mut generator = MetricGenerator::new(2024, 1_700_000_000_000);
        let mut batches = Vec::new();
        let mut left = rows;
        while left > 0 {
            let n = left.min(BATCH);
            batches.push(generator.batch(n));
            left -= n;
        }
        IngestWorkload {
            level,
            rows,
            batches,
        }
    }

    /// The spool configuration: the defaults at this workload's level.
    pub fn config(&self) -> SpoolConfig {
        let mut config = SpoolConfig::new("bench");
        config.compression_level = self.level;
        config.max_records = BATCH as u64;
        config
    }

    /// Ingest into a fresh core `Spool` (the native path, no host in between) on one thread.
    pub fn native(&self) -> Result<IngestRun> {
        self.native_on(false)
    }

    /// Ingest into a fresh core `Spool` with a [`FinishWorker`] compressing rotated segments
    /// on a second thread (the host's native engine with `storage.finishWorker` on).
    pub fn native_two_workers(&self) -> Result<IngestRun> {
        self.native_on(true)
    }

    /// [`IngestWorkload::native`] with every segment encrypted to one age recipient (the
    /// writer holds no secret, as on a device).
    pub fn native_encrypted(&self) -> Result<IngestRun> {
        let (_, recipient) = edgestore::spool::generate_identity("bench");
        let mut config = self.config();
        config.keys.recipients = vec![recipient];
        self.native_with(false, config)
    }

    fn native_on(&self, worker: bool) -> Result<IngestRun> {
        self.native_with(worker, self.config())
    }

    fn native_with(&self, worker: bool, config: SpoolConfig) -> Result<IngestRun> {
        let dir = tempdir()?;
        let spool: Arc<Spool<Metric>> = Arc::new(Spool::open_path(dir.path(), config)?);
        let worker = if worker {
            Some(FinishWorker::spawn(spool.clone())?)
        } else {
            None
        };
        let t = Instant::now();
        for batch in &self.batches {
            spool.put(batch)?;
        }
        spool.flush()?;
        let elapsed = t.elapsed();
        drop(worker);
        drop(spool);
        Ok(IngestRun { elapsed, dir })
    }

    /// Ingest through the host's async client on `side` (a fresh store, opened untimed).
    pub fn host(&self, host: &Host, side: Side) -> Result<Duration> {
        self.host_audited(host, side, false)
    }

    /// [`IngestWorkload::host`], with the store's audit log on or off (one line per put).
    pub fn host_audited(&self, host: &Host, side: Side, audit: bool) -> Result<Duration> {
        let dir = tempdir()?;
        let batches = self.batches.clone();
        let mut config = host.config(side, dir.path());
        config.audit_max_bytes = audit.then_some(crate::audit::DEFAULT_MAX_BYTES);
        let store = host.rt.block_on(crate::Store::open(config))?;
        host.rt.block_on(async {
            let spool = store.spool("metrics", self.config()).await?;
            let t = Instant::now();
            for batch in batches {
                spool.put(batch).await?;
            }
            spool.flush().await?;
            let elapsed = t.elapsed();
            store.close().await?;
            Ok(elapsed)
        })
    }
}

impl IngestRun {
    /// Decompress every segment the run wrote (sorted by name, i.e. by time).
    pub fn segments(&self) -> Result<Segments> {
        let files = segment_files(self.dir.path())?;
        let mut json = Vec::with_capacity(files.len());
        let mut compressed_bytes = 0;
        for f in files {
            let bytes =
                std::fs::read(&f).map_err(|e| BenchError::io(f.display().to_string(), e))?;
            compressed_bytes += bytes.len() as u64;
            let mut out = Vec::with_capacity(bytes.len() * 10);
            brotli::BrotliDecompress(&mut &bytes[..], &mut out)
                .map_err(|e| BenchError::io(format!("decompress {}", f.display()), e))?;
            json.push(out);
        }
        if json.is_empty() {
            return Err(BenchError::Check("the ingest wrote no segment".into()));
        }
        Ok(Segments {
            json,
            compressed_bytes,
        })
    }
}

/// The finished segments (`*.json.br`) in a spool directory, sorted.
fn segment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BenchError::io(format!("list {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".json.br")))
        .collect();
    files.sort();
    Ok(files)
}

/// The physical limit: compress each segment's JSON with the `brotli` crate at `level` with the
/// spool's encoder parameters for that size (window, size hint), one write per segment.
/// Returns the time and compressed bytes.
pub fn raw_brotli(segments: &Segments, level: u32) -> Result<(Duration, u64)> {
    let mut bytes = 0u64;
    let t = Instant::now();
    for json in &segments.json {
        let params = encoder_params(level, json.len() as u64);
        let mut w = brotli::CompressorWriter::with_params(
            Vec::with_capacity(json.len() / 4),
            1 << 20,
            &params,
        );
        w.write_all(json)
            .map_err(|e| BenchError::io("raw brotli compress", e))?;
        bytes += w.into_inner().len() as u64;
    }
    Ok((t.elapsed(), bytes))
}

/// The encoder segments are written with (Google's C encoder, `LocalStream`) on the same JSON
/// with the same parameters, one write per segment: what the spool adds to its own encoder.
/// Returns the time and compressed bytes.
pub fn raw_local_encoder(segments: &Segments, level: u32) -> Result<(Duration, u64)> {
    let mut bytes = 0u64;
    let t = Instant::now();
    for json in &segments.json {
        let mut stream = LocalStream::new(level, json.len() as u64);
        let mut out = Vec::with_capacity(json.len() / 4);
        stream
            .write(json, &mut out)
            .and_then(|()| stream.finish(&mut out))
            .map_err(|e| BenchError::io("raw C brotli compress", e))?;
        bytes += out.len() as u64;
    }
    Ok((t.elapsed(), bytes))
}

/// Compressed size of the same segment JSON with the `brotli` command-line tool at `-q
/// level`, or `None` when `brotli` is not on `PATH`.
pub fn brotli_cli_bytes(segments: &Segments, level: u32) -> Result<Option<u64>> {
    let dir = tempdir()?;
    let mut total = 0u64;
    for (i, json) in segments.json.iter().enumerate() {
        let path = dir.path().join(format!("{i}.json"));
        std::fs::write(&path, json).map_err(|e| BenchError::io("write segment JSON", e))?;
        let out = match std::process::Command::new("brotli")
            .arg("-q")
            .arg(level.to_string())
            .arg("-c")
            .arg(&path)
            .output()
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BenchError::io("run brotli", e)),
        };
        if !out.status.success() {
            return Err(BenchError::Check(format!(
                "brotli -q {level} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        total += out.stdout.len() as u64;
    }
    Ok(Some(total))
}
