//! `edgestore demo`: the README's main job on the embedded default (SQLite file plus a local
//! spool directory), exercising the repository and the spool the way an agent would.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use edgestore::model::ResourceTagsKey;
use edgestore::sample::MetricGenerator;
use edgestore::spool::SegmentState;
use edgestore::sql::Database;
use edgestore::{
    Clock, Condition, Creator, Error, Metric, Query, Reader, ResourceTags, Spool, SpoolConfig,
    SqlStorage, SqliteDatabase, StorageCommon, SystemClock, TimeRange, Timestamp, Updater,
};

/// Options of `edgestore demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Metrics to generate and spool.
    #[arg(long, default_value_t = 100_000)]
    metrics: usize,
    /// Resource tags to generate and store.
    #[arg(long, default_value_t = 2_000)]
    tags: usize,
    /// Rows per spool segment.
    #[arg(long, default_value_t = 10_000)]
    max_records: u64,
    /// Brotli quality, 0 to 11.
    #[arg(long, default_value_t = 6)]
    level: u32,
}

/// Run the demo in `data`.
pub fn run(data: &Path, args: &DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("create data directory {}", data.display()))?;
    println!("edgestore demo in {}", data.display());
    repository_part(data, args)?;
    spool_part(data, args)?;
    Ok(())
}

fn repository_part(data: &Path, args: &DemoArgs) -> anyhow::Result<()> {
    let path = data.join("edgestore.sqlite");
    let dsn = path
        .to_str()
        .context("the data directory path must be UTF-8")?;
    let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(dsn)?);
    let tags = SqlStorage::<ResourceTags, ResourceTagsKey>::open(db)?;
    let before = tags.count()?;

    let now = Timestamp::now(&SystemClock);
    let batch: Vec<ResourceTags> = (0..args.tags)
        .map(|i| {
            let mut t = ResourceTags::new(
                "pod",
                &format!("pod-{i:05}"),
                Some(["default", "payments", "checkout", "monitoring"][i % 4]),
                now,
            );
            t.labels.insert("app".into(), format!("app-{}", i % 17));
            t.annotations
                .insert("owner".into(), format!("team-{}", i % 5));
            t
        })
        .collect();
    let started = Instant::now();
    let inserted = tags.create_many(&batch)?;
    let took = started.elapsed();
    println!(
        "resource tags: {inserted} inserted, {} already present (create is insert-or-ignore), {:.0} rows/s",
        batch.len() as u64 - inserted,
        per_second(batch.len() as u64, took)
    );

    let unsent = tags.find_all(
        &Query::all()
            .filter(Condition::is_null("sent_at"))
            .filter(Condition::eq("namespace", "payments"))
            .order_by("name")
            .limit(100),
    )?;
    let sent_at = Timestamp::now(&SystemClock);
    let marked = tags.tx(|tx| {
        for mut t in unsent.iter().cloned() {
            t.sent_at = Some(sent_at);
            tx.update(&t)?;
        }
        Ok(unsent.len())
    })?;
    println!("transaction committed: {marked} tags in namespace payments marked sent");

    let rolled_back = tags.tx(|tx| {
        let removed = tx.delete_all()?;
        Err::<u64, _>(Error::invalid_input(format!(
            "deliberate failure after deleting {removed} rows"
        )))
    });
    if let Err(e) = rolled_back {
        println!(
            "transaction rolled back ({e}); rows kept: {}",
            tags.count()?
        );
    }
    if let Some(first) = unsent.first() {
        let stored = tags.get(&first.key())?;
        println!(
            "get {:?}: size {} bytes, sent_at {:?}",
            first.key(),
            stored.size,
            stored.sent_at.map(|t| t.as_millis())
        );
    }
    println!(
        "database {}: {} resource tags (was {before})",
        path.display(),
        tags.count()?
    );
    Ok(())
}

fn spool_part(data: &Path, args: &DemoArgs) -> anyhow::Result<()> {
    let root = data.join("metrics");
    let mut config = SpoolConfig::new("demo");
    config.compression_level = args.level;
    config.max_records = args.max_records;
    // The demo ships (marks uploaded) and purges in one run, so keep nothing uploaded.
    config.retention = Duration::ZERO;
    let spool: Spool<Metric> = Spool::open_path(&root, config)?;
    let earlier: HashSet<String> = spool
        .segments(TimeRange::all())?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut generator = MetricGenerator::new(42, SystemClock.now_ms());

    let mut json_bytes = 0u64;
    let started = Instant::now();
    let mut left = args.metrics;
    while left > 0 {
        let n = left.min(5_000);
        let batch = generator.batch(n);
        // The array's commas and brackets: one byte per row, near enough.
        json_bytes += batch
            .iter()
            .map(|m| serde_json::to_vec(m).map_or(0, |v| v.len() as u64 + 1))
            .sum::<u64>();
        spool.put(&batch)?;
        left -= n;
    }
    spool.flush()?;
    let took = started.elapsed();

    let segments = spool.segments(TimeRange::all())?;
    let written: Vec<_> = segments
        .iter()
        .filter(|s| !earlier.contains(&s.name))
        .collect();
    let compressed: u64 = written.iter().map(|s| s.bytes).sum();
    let rows: u64 = written.iter().filter_map(|s| s.rows).sum();
    println!(
        "spool: {} metrics in {:.2} s = {:.0} rows/s into {} new segments ({rows} rows) in {}",
        args.metrics,
        took.as_secs_f64(),
        per_second(args.metrics as u64, took),
        written.len(),
        root.display()
    );
    if compressed > 0 {
        println!(
            "compression at level {}: {json_bytes} bytes of JSON -> {compressed} bytes ({:.1}x, {:.1}% saved)",
            args.level,
            json_bytes as f64 / compressed as f64,
            100.0 * (1.0 - compressed as f64 / json_bytes.max(1) as f64)
        );
    }

    // Ship half of this run's segments, then purge what was shipped (retention is zero).
    let ship: Vec<&str> = written
        .iter()
        .take(written.len() / 2)
        .map(|s| s.name.as_str())
        .collect();
    let uploaded = spool.mark_uploaded(&ship)?;
    let purged = spool.purge()?;
    let pending = spool
        .segments(TimeRange::all())?
        .iter()
        .filter(|s| s.state == SegmentState::Pending)
        .count();
    let usage = spool.usage()?;
    println!(
        "uploaded {uploaded} segments, purged {} ({} bytes freed); {pending} segments still pending ({} bytes)",
        purged.expired.len() + purged.dropped_uploaded.len(),
        purged.bytes_freed,
        usage.pending.bytes
    );
    Ok(())
}

fn per_second(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}
