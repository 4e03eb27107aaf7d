//! The operator's commands: `health`, `diag`, `metrics` and `serve`. The checks, the metrics
//! and the server are library code (`edgestore_host::{health, metrics, serve}`); this file only
//! wires them to the configuration and the terminal.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use edgestore::layout::DEFAULT_IDENTIFIER;
use edgestore::model::ResourceTagsKey;
use edgestore::{ErrorCode, ResourceTags, TimeRange};
use edgestore_host::config::Flags;
use edgestore_host::diag::{self, Diagnostics};
use edgestore_host::health::{check, HealthReport, HealthTarget};
use edgestore_host::serve::{self, ServeOptions, Source};
use edgestore_host::ship;
use edgestore_host::{AsyncSpool, Store};

use super::{ownership_note, Ctx, Inspection, Refused};

/// `edgestore health`.
#[derive(Debug, Args)]
pub struct HealthArgs {}

/// `edgestore diag`.
#[derive(Debug, Args)]
pub struct DiagArgs {}

/// `edgestore metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {}

/// `edgestore serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for `/metrics` and `/healthz` (config `serve.listen`); port 0 picks a free
    /// port. The bound address is printed first, as `listening on ADDR`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Generate RATE realistic metrics per second instead of reading JSON lines from stdin.
    #[arg(long, value_name = "RATE")]
    pub generate: Option<f64>,
}

impl ServeArgs {
    /// The flags this command sets in the configuration.
    pub fn flags(&self, flags: &mut Flags) {
        if let Some(listen) = self.listen {
            flags.set("serve.listen", "--listen", listen.to_string());
        }
    }
}

/// The store (read-only, beside a running owner) and its spool, for commands that report on
/// them: failures to open are returned as reasons, not errors, so `health` and `diag` can
/// still say what is wrong.
async fn open(ctx: &Ctx) -> Result<(Store, Result<AsyncSpool, String>), String> {
    let Inspection {
        store, ownership, ..
    } = ctx.inspect().await.map_err(|e| format!("{e:#}"))?;
    let spool = match (
        ctx.config.spool_path(),
        ctx.config.spool_config(DEFAULT_IDENTIFIER),
    ) {
        (Ok(path), Ok(config)) => store
            .spool(&path, config)
            .await
            .map_err(|e| format!("open the spool {path}: {e}")),
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(format!("the spool's keys: {e}")),
    };
    let journal_rows = match &spool {
        Ok(s) => s.journal_rows().await.ok(),
        Err(_) => None,
    };
    ownership_note(ctx, &ownership, journal_rows);
    Ok((store, spool))
}

async fn close(store: Store, spool: Result<AsyncSpool, String>) -> anyhow::Result<()> {
    drop(spool);
    store.close().await.context("close the store")
}

/// `edgestore health`: the report on stdout; exit status 1 when unhealthy.
pub async fn health(ctx: &Ctx, _args: &HealthArgs) -> anyhow::Result<()> {
    let mut report = HealthReport::default();
    match open(ctx).await {
        Err(e) => report.fail(format!("the store cannot be opened: {e}")),
        Ok((store, spool)) => {
            if let Err(e) = &spool {
                report.fail(e.clone());
            }
            let spool_dir = ctx.config.spool_path().ok();
            let target = HealthTarget {
                data_dir: &ctx.config.host.data_dir,
                spool_dir: spool_dir.as_deref(),
                spool: spool.as_ref().ok(),
            };
            let checked = check(&store, &target, &ctx.config.health).await;
            report.reasons.extend(checked.reasons);
            report.reasons.extend(ship_reasons(ctx));
            report.reasons.extend(backup_reasons(ctx));
            // Closing is best effort here: the report is what matters.
            let _ = close(store, spool).await;
        }
    }
    print!("{}", report.render(ctx.json));
    std::io::stdout().flush().ok();
    if report.healthy() {
        Ok(())
    } else {
        bail!("unhealthy: {}", report.reasons.join("; "))
    }
}

/// With `ship.target` set: the shipping lag from the pending segments (listed locally) and the
/// owner's last permanent shipping failure (its status file).
fn ship_reasons(ctx: &Ctx) -> Vec<String> {
    let (Ok(Some(url)), Ok(spool)) = (ctx.config.ship.target_url(), ctx.config.spool_path()) else {
        return Vec::new();
    };
    let data_dir = &ctx.config.host.data_dir;
    match ship::status::list_pending(&data_dir.join(spool)) {
        Ok(pending) => ship::status::health_reasons(
            &url.to_string(),
            &pending,
            ship::status::read_failure(data_dir).as_ref(),
            ctx.config.health.max_ship_lag,
            now_ms(),
        ),
        Err(e) => vec![format!("shipping: cannot list pending segments: {e}")],
    }
}

/// With `backup.targets` set: the owner's last recorded backup status (its status file):
/// failures, the newest backed-up state's age, the last verification.
fn backup_reasons(ctx: &Ctx) -> Vec<String> {
    if !ctx.config.backup.enabled() {
        return Vec::new();
    }
    match edgestore_host::backup::runner::read_status(&ctx.config.host.data_dir) {
        Some(status) => edgestore_host::backup::runner::health_reasons(
            &status,
            ctx.config.health.max_backup_age,
            now_ms(),
        ),
        None => Vec::new(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `edgestore diag`.
pub async fn diag(ctx: &Ctx, _args: &DiagArgs) -> anyhow::Result<()> {
    let (store, spool) = open(ctx).await.map_err(anyhow::Error::msg)?;
    let encryption = match (
        ctx.config.database_keys()?.is_empty(),
        edgestore::sql::sqlite::cipher::version(),
    ) {
        (false, Some(v)) => format!("; encrypted: SQLCipher {v}"),
        (true, Some(v)) => format!("; not encrypted (SQLCipher {v} available)"),
        (_, None) => "; not encrypted (built without SQLCipher)".to_owned(),
    };
    let mut d = Diagnostics {
        engine: store.engine_name().to_owned(),
        backend: match store.engine_name() {
            "native" => format!("embedded-sqlite (rusqlite, in process){encryption}"),
            _ => format!("host-sqlite (the component's sqlite import){encryption}"),
        },
        ..Diagnostics::default()
    };
    d.connection_status = match store.engine_health().await {
        Ok(reasons) if reasons.is_empty() => "ok".to_owned(),
        Ok(reasons) => reasons.join("; "),
        Err(e) => e.to_string(),
    };
    let count = match store.storage::<ResourceTags, ResourceTagsKey>().await {
        Ok(tags) => tags.count().await.map_err(|e| e.to_string()),
        // Read-only, a table nobody created yet holds no rows.
        Err(e) if e.code() == ErrorCode::TableMissing => Ok(0),
        Err(e) => Err(e.to_string()),
    };
    d.record_counts.push(("resource_tags".to_owned(), count));
    if let Ok(spool) = &spool {
        d.usage = spool.usage().await.ok();
        d.last_segment_ms = spool
            .segments(TimeRange::all())
            .await
            .ok()
            .and_then(|list| list.iter().map(|s| s.stop_ms).max());
    }
    d.open_connections = store.metrics().open_connections();
    d.circuit = store.breaker_state().as_str().to_owned();
    d.last_operation_ms = store.last_operation_ms();
    print!("{}", diag::render(&d, ctx.json));
    close(store, spool).await
}

/// `edgestore metrics`: this invocation's store metrics after refreshing the gauges (disk
/// usage, connections, breaker). A long-running process exports its own with `serve`.
pub async fn metrics(ctx: &Ctx, _args: &MetricsArgs) -> anyhow::Result<()> {
    let (store, spool) = open(ctx).await.map_err(anyhow::Error::msg)?;
    let spool = spool.map_err(anyhow::Error::msg)?;
    let usage = spool.usage().await.context("spool usage")?;
    store.metrics().set_disk_usage(&usage);
    if ctx.config.ship.enabled() {
        let dir = ctx.config.host.data_dir.join(ctx.config.spool_path()?);
        let pending = ship::status::list_pending(&dir).context("list pending segments")?;
        let lag = ship::status::lag(&pending, now_ms()).map_or(Duration::ZERO, |(_, d)| d);
        store.metrics().set_ship_lag(lag);
    }
    store.engine_health().await.context("reach the engine")?;
    store.breaker_state();
    print!("{}", store.metrics().gather_text()?);
    close(store, Ok(spool)).await
}

/// `edgestore serve`.
pub async fn serve(ctx: &Ctx, args: &ServeArgs) -> anyhow::Result<()> {
    let dir = &ctx.config.host.data_dir;
    edgestore_host::grants::create_data_dir(dir)
        .with_context(|| format!("create data directory {}", dir.display()))?;
    let mut config = ctx.config.store_config()?;
    config.command = "edgestore serve".to_owned();
    // The host's timer: often enough that a segment rotates close to `storage.maxInterval`.
    let interval = ctx.config.storage.max_interval;
    config.flush_interval =
        Some((interval / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    let store = match Store::open(config).await {
        Ok(store) => store,
        Err(e @ edgestore_host::Error::Owned { .. }) => return Err(Refused(e.to_string()).into()),
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("open the store in {}", dir.display()))
            )
        }
    };
    let path = ctx.config.spool_path()?;
    let spool = store
        .spool(&path, ctx.config.spool_config(DEFAULT_IDENTIFIER)?)
        .await
        .with_context(|| format!("open the spool {path}"))?;
    let source = match args.generate {
        Some(rate) if rate.is_finite() && rate > 0.0 => Source::Generate {
            rows_per_second: rate,
        },
        Some(rate) => {
            bail!("--generate {rate}: the rate must be a positive number of rows per second")
        }
        None => Source::Lines(Box::new(std::io::BufReader::new(std::io::stdin()))),
    };
    let options = ServeOptions {
        listen: ctx.config.serve.listen,
        data_dir: dir.clone(),
        spool_dir: path,
        health: ctx.config.health,
        admin: ctx.config.serve.admin,
        ingest: ctx.config.ingest.clone(),
        max_spool_bytes: ctx.config.retention.max_bytes,
        tls: ctx.config.serve.tls.clone(),
        ship: ctx.config.ship.clone(),
        backup: ctx.config.backup.clone(),
        database_keys: ctx.config.database_keys()?,
    };
    let summary = serve::run(store.clone(), spool.clone(), source, options, |addr| {
        println!("listening on {addr}");
        std::io::stdout().flush().ok();
    })
    .await?;
    eprintln!(
        "edgestore serve: stopped; {} rows received over HTTP and {} from its input put and flushed, {} bad input lines skipped",
        summary.ingested_rows, summary.rows, summary.bad_lines
    );
    drop(spool);
    store.close().await.context("close the store")
}
