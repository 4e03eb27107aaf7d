//! `edgestore demo`: the README's main job on the embedded default (a SQLite file and a spool
//! directory in the data directory), through the client, so it runs on the sandboxed component
//! by default and natively with `--engine native`. It exercises the repository and the spool
//! the way an agent would and prints what happened.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use edgestore::model::ResourceTagsKey;
use edgestore::sample::MetricGenerator;
use edgestore::spool::SegmentState;
use edgestore::{
    Clock, Condition, Error, Query, ResourceTags, StorageCommon, SystemClock, TimeRange, Timestamp,
    Updater,
};
use edgestore_host::config::Flags;
use edgestore_host::{AsyncSpool, AsyncStorage, Store};
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;

/// Options of `edgestore demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Metrics to generate and spool.
    #[arg(long, default_value_t = 100_000)]
    metrics: usize,
    /// Resource tags to generate and store.
    #[arg(long, default_value_t = 2_000)]
    tags: usize,
    /// Rows per spool segment (config `storage.maxRecords`, default 10000).
    #[arg(long, value_name = "N")]
    max_records: Option<u64>,
    /// Brotli quality, 0 to 11 (config `storage.compressionLevel`, default 6).
    #[arg(long, value_name = "N")]
    level: Option<u32>,
}

impl DemoArgs {
    /// This command's flags as config layers.
    pub fn flags(&self, flags: &mut Flags) {
        if let Some(n) = self.max_records {
            flags.set("storage.maxRecords", "--max-records", n.to_string());
        }
        if let Some(n) = self.level {
            flags.set("storage.compressionLevel", "--level", n.to_string());
        }
    }
}

/// Rows per call into the engine.
const CHUNK: usize = 5_000;
/// Tags per call into the engine.
const TAG_CHUNK: usize = 500;

/// Run the demo.
pub async fn run(ctx: &Ctx, args: &DemoArgs) -> anyhow::Result<()> {
    let store = ctx.own("demo").await?;
    println!(
        "edgestore demo in {} (engine: {})",
        ctx.config.host.data_dir.display(),
        ctx.config.host.engine.as_str()
    );
    let result = async {
        let db_rows = repository_part(&store, args).await?;
        spool_part(ctx, &store, args, db_rows).await
    }
    .await;
    let closed = store.close().await;
    result?;
    Ok(closed?)
}

/// A progress bar on stderr, hidden unless stdout is a terminal.
fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

async fn repository_part(store: &Store, args: &DemoArgs) -> anyhow::Result<u64> {
    let tags: AsyncStorage<ResourceTags, ResourceTagsKey> = store.storage().await?;
    let before = tags.count().await?;

    let now = Timestamp::now(&SystemClock);
    let all: Vec<ResourceTags> = (0..args.tags).map(|i| sample_tag(i, now)).collect();
    let progress = bar(all.len() as u64, "resource tags");
    let started = Instant::now();
    let mut inserted = 0;
    for chunk in all.chunks(TAG_CHUNK) {
        inserted += tags.create_many(chunk).await?;
        progress.inc(chunk.len() as u64);
    }
    let took = started.elapsed();
    progress.finish_and_clear();
    println!(
        "resource tags: {inserted} inserted, {} already present (create is insert-or-ignore), {:.0} rows/s",
        all.len() as u64 - inserted,
        per_second(all.len() as u64, took)
    );

    let unsent = tags
        .find_all(
            &Query::all()
                .filter(Condition::is_null("sent_at"))
                .filter(Condition::eq("namespace", "payments"))
                .order_by("name")
                .limit(100),
        )
        .await?;
    let sent_at = Timestamp::now(&SystemClock);
    let to_mark = unsent.clone();
    let marked = tags
        .tx(move |tx| {
            for mut t in to_mark {
                t.sent_at = Some(sent_at);
                tx.update(&t)?;
            }
            tx.count()
        })
        .await;
    match marked {
        Ok(_) => println!(
            "transaction committed: {} tags in namespace payments marked sent",
            unsent.len()
        ),
        Err(e) => return Err(e.into()),
    }

    let rolled_back = tags
        .tx(|tx| {
            let removed = tx.delete_all()?;
            Err::<u64, _>(Error::invalid_input(format!(
                "deliberate failure after deleting {removed} rows"
            )))
        })
        .await;
    if let Err(e) = rolled_back {
        println!(
            "transaction rolled back ({e}); rows kept: {}",
            tags.count().await?
        );
    }
    if let Some(first) = unsent.first() {
        let stored = tags.get(&first.key()).await?;
        println!(
            "get {:?}: size {} bytes, sent_at {:?}",
            first.key(),
            stored.size,
            stored.sent_at.map(|t| t.as_millis())
        );
    }
    let rows = tags.count().await?;
    println!("database: {rows} resource tags (was {before})");
    Ok(rows)
}

fn sample_tag(i: usize, now: Timestamp) -> ResourceTags {
    let mut t = ResourceTags::new(
        "pod",
        &format!("pod-{i:05}"),
        Some(["default", "payments", "checkout", "monitoring"][i % 4]),
        now,
    );
    t.labels.insert("app".into(), format!("app-{}", i % 17));
    t.labels.insert(
        "pod-template-hash".into(),
        format!("{:08x}", i.wrapping_mul(2_654_435_761)),
    );
    t.annotations
        .insert("owner".into(), format!("team-{}", i % 5));
    t.metric_labels
        .insert("workload".into(), format!("deploy-{}", i % 17));
    t
}

async fn spool_part(ctx: &Ctx, store: &Store, args: &DemoArgs, db_rows: u64) -> anyhow::Result<()> {
    let path = ctx.config.spool_path()?;
    let mut config = ctx.config.spool_config("demo")?;
    // The demo ships (marks uploaded) and purges in one run, so it keeps nothing uploaded.
    config.retention = Duration::ZERO;
    let level = config.compression_level;
    let spool: AsyncSpool = store.spool(&path, config).await?;
    let earlier: HashSet<String> = spool
        .segments(TimeRange::all())
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut generator = MetricGenerator::new(42, SystemClock.now_ms());

    let progress = bar(args.metrics as u64, "metrics");
    let mut json_bytes = 0u64;
    let started = Instant::now();
    let mut left = args.metrics;
    while left > 0 {
        let n = left.min(CHUNK);
        let batch = generator.batch(n);
        // Each row as stored: its JSON plus the newline that ends it in the segment.
        json_bytes += batch
            .iter()
            .map(|m| serde_json::to_vec(m).map_or(0, |v| v.len() as u64 + 1))
            .sum::<u64>();
        spool.put(batch).await?;
        left -= n;
        progress.inc(n as u64);
    }
    spool.flush().await?;
    let took = started.elapsed();
    progress.finish_and_clear();

    let segments = spool.segments(TimeRange::all()).await?;
    let written: Vec<_> = segments
        .iter()
        .filter(|s| !earlier.contains(&s.name))
        .collect();
    let compressed: u64 = written.iter().map(|s| s.bytes).sum();
    let rows: u64 = written.iter().filter_map(|s| s.rows).sum();
    let rate = per_second(args.metrics as u64, took);
    println!(
        "spool: {} metrics in {:.2} s = {rate:.0} rows/s into {} new segments ({rows} rows) in {path}/",
        args.metrics,
        took.as_secs_f64(),
        written.len(),
    );
    let ratio = json_bytes as f64 / compressed.max(1) as f64;
    if compressed > 0 {
        println!(
            "compression at level {level}: {json_bytes} bytes of JSON -> {compressed} bytes ({ratio:.1}x, {:.1}% saved)",
            100.0 * (1.0 - compressed as f64 / json_bytes.max(1) as f64)
        );
    }

    // Ship half of this run's segments, then purge what was shipped (retention is zero).
    let ship: Vec<String> = written
        .iter()
        .take(written.len() / 2)
        .map(|s| s.name.clone())
        .collect();
    let uploaded = spool.mark_uploaded(ship).await?;
    let purged = spool.purge().await?;
    let pending = spool
        .segments(TimeRange::all())
        .await?
        .iter()
        .filter(|s| s.state == SegmentState::Pending)
        .count();
    let usage = spool.usage().await?;
    println!(
        "uploaded {uploaded} segments, purged {} ({} bytes freed); {pending} segments still pending ({} bytes)",
        purged.expired.len() + purged.dropped_uploaded.len(),
        purged.bytes_freed,
        usage.pending.bytes
    );
    println!(
        "summary: {rate:.0} rows/s spooled, compression {ratio:.1}x, {} segments written, {pending} pending, {db_rows} database rows",
        written.len()
    );
    Ok(())
}

fn per_second(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}
