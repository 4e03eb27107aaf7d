//! `edgestore backup now|list|verify` and `edgestore restore`: the databases' continuous
//! backup ([`edgestore_host::backup`]) from the command line. `now` and `verify` are asked of
//! a running owner (`serve` backs up on its own); `list` and `restore` only read the targets,
//! and `restore` writes only into a destination no store owns.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use edgestore_host::backup::runner::{rfc3339, BackupStatus, VerifyReport};
use edgestore_host::backup::store::BackupTarget;
use edgestore_host::backup::{self, BackupRunner, BackupTargetConfig, RestoreOptions};

use super::{Ctx, Mutation};

/// `backup` commands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Capture every transaction committed so far and upload it to every target of
    /// backup.targets (the first time: a snapshot starting a generation). A running owner
    /// (serve) is asked to do it.
    Now,
    /// The generations on each target: start, snapshot size, increments, the newest point.
    List(ListArgs),
    /// Back up to now, restore the latest point from every target into a scratch directory
    /// and compare it with the live database at exactly that point (integrity check, row
    /// counts, content). Exit non-zero when any differs. A running owner is asked to do it.
    Verify,
}

/// `backup list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this target (a URL of backup.targets, or any s3:// or file:// URL).
    #[arg(long)]
    pub from: Option<String>,
    /// The database label.
    #[arg(long, default_value = edgestore::layout::DEFAULT_LABEL)]
    pub label: String,
}

/// `restore` options.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The target to restore from: a URL of backup.targets (its settings apply), or any
    /// s3:// or file:// URL (AWS settings from the environment and the flags below). Default:
    /// the first of backup.targets.
    #[arg(long)]
    pub from: Option<String>,
    /// The point in time: RFC 3339 (`2026-12-01T10:00:00Z`) or milliseconds since the epoch.
    /// Every transaction committed by then is restored, none after.
    #[arg(long, conflicts_with = "latest")]
    pub at: Option<String>,
    /// The newest point (the default).
    #[arg(long)]
    pub latest: bool,
    /// The destination directory (created if missing): the database is written there under
    /// its usual file name. Never a directory a store owns; nothing is overwritten.
    #[arg(long)]
    pub to: PathBuf,
    /// The database label.
    #[arg(long, default_value = edgestore::layout::DEFAULT_LABEL)]
    pub label: String,
    /// Also bring back the spool segments that were pending and copied with the backup
    /// (backup.spool), those finished by --at, into the spool's path (storage.path) under --to.
    #[arg(long)]
    pub spool: bool,
    /// S3 endpoint for a URL not in backup.targets (e.g. http://127.0.0.1:9000).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Path-style requests for a URL not in backup.targets.
    #[arg(long)]
    pub path_style: bool,
    /// Allow a plain-HTTP endpoint for a URL not in backup.targets.
    #[arg(long)]
    pub allow_http: bool,
}

/// Run a `backup` command.
pub async fn run(ctx: &Ctx, cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::Now => now(ctx).await,
        BackupCommand::List(args) => list(ctx, &args).await,
        BackupCommand::Verify => verify(ctx).await,
    }
}

fn require_targets(ctx: &Ctx) -> anyhow::Result<()> {
    if !ctx.config.backup.enabled() {
        bail!(
            "no backup.targets configured: set them in the config file (backup: {{targets: \
             [{{url: s3://bucket/prefix}}]}})"
        );
    }
    Ok(())
}

fn runner(ctx: &Ctx, store: &edgestore_host::Store) -> anyhow::Result<BackupRunner> {
    let spool_dir = ctx
        .config
        .spool_path()
        .ok()
        .map(|p| ctx.config.host.data_dir.join(p));
    Ok(BackupRunner::open(
        &ctx.config.backup,
        &ctx.config.host.data_dir,
        spool_dir,
        ctx.config.database_keys()?,
        store.metrics().clone(),
        false,
    )?)
}

async fn now(ctx: &Ctx) -> anyhow::Result<()> {
    let status: BackupStatus = match ctx.mutate("backup now").await? {
        Mutation::Own(store) => {
            let result = async {
                require_targets(ctx)?;
                let runner = runner(ctx, &store)?;
                Ok::<_, anyhow::Error>(runner.backup_now().await?)
            }
            .await;
            let closed = store.close().await;
            let status = result?;
            closed?;
            status
        }
        Mutation::Forward(client, owner) => {
            eprintln!("note: forwarded to the owner, {}", owner.describe());
            client
                .call("/v1/backup/now", &serde_json::json!({}))
                .await?
        }
    };
    if ctx.json {
        return out(&format!("{}\n", serde_json::to_string_pretty(&status)?));
    }
    let mut text = String::new();
    for d in &status.databases {
        match (&d.generation, d.backed_up_at_ms) {
            (Some(g), Some(t)) => text.push_str(&format!(
                "database {}: backed up to {} (generation {g}, {} increments) on {}\n",
                d.label,
                rfc3339(t),
                d.increments,
                status.targets.join(", ")
            )),
            _ => text.push_str(&format!(
                "database {}: nothing to back up yet (no database file)\n",
                d.label
            )),
        }
    }
    out(&text)
}

async fn verify(ctx: &Ctx) -> anyhow::Result<()> {
    let reports: Vec<VerifyReport> = match ctx.mutate("backup verify").await? {
        Mutation::Own(store) => {
            let result = async {
                require_targets(ctx)?;
                let runner = runner(ctx, &store)?;
                Ok::<_, anyhow::Error>(runner.verify().await?)
            }
            .await;
            let closed = store.close().await;
            let reports = result?;
            closed?;
            reports
        }
        Mutation::Forward(client, owner) => {
            eprintln!("note: forwarded to the owner, {}", owner.describe());
            client
                .call("/v1/backup/verify", &serde_json::json!({}))
                .await?
        }
    };
    if ctx.json {
        out(&format!("{}\n", serde_json::to_string_pretty(&reports)?))?;
    } else {
        let mut text = String::new();
        for r in &reports {
            text.push_str(&format!(
                "database {} from {}: {} (generation {}, restored to {}, {} tables, {} rows)\n",
                r.label,
                r.target,
                r.result,
                r.generation,
                rfc3339(r.restored_at_ms),
                r.tables,
                r.rows
            ));
        }
        out(&text)?;
    }
    if let Some(bad) = reports.iter().find(|r| !r.ok()) {
        bail!("backup verification failed: {}: {}", bad.target, bad.result);
    }
    Ok(())
}

/// The target named by `from` (its backup.targets settings when listed there), or every
/// configured one.
fn targets(
    ctx: &Ctx,
    from: Option<&str>,
    extra: Option<&RestoreArgs>,
) -> anyhow::Result<Vec<BackupTarget>> {
    let configured = &ctx.config.backup.targets;
    let configs: Vec<BackupTargetConfig> = match from {
        Some(url) => match configured.iter().find(|t| t.url == url) {
            Some(t) => vec![t.clone()],
            None => {
                let mut t = BackupTargetConfig::new(url);
                if let Some(args) = extra {
                    t.endpoint = args.endpoint.clone();
                    t.path_style = args.path_style;
                    t.allow_http = args.allow_http;
                }
                vec![t]
            }
        },
        None if configured.is_empty() => bail!(
            "no target: pass --from s3://bucket/prefix (or file:///dir), or configure backup.targets"
        ),
        None => configured.clone(),
    };
    configs
        .iter()
        .map(|c| BackupTarget::open(c).map_err(anyhow::Error::from))
        .collect()
}

async fn list(ctx: &Ctx, args: &ListArgs) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        target: String,
        label: String,
        generation: String,
        snapshot_at_ms: i64,
        snapshot_bytes: u64,
        increments: usize,
        pending_segments: usize,
    }
    let mut rows = Vec::new();
    for target in targets(ctx, args.from.as_deref(), None)? {
        for g in target.generations(&args.label).await? {
            let increments = target.increments(&args.label, &g.generation).await?.len();
            rows.push(Row {
                target: target.name().to_owned(),
                label: args.label.clone(),
                generation: g.generation,
                snapshot_at_ms: g.at_ms,
                snapshot_bytes: g.bytes,
                increments,
                pending_segments: g.pending_segments.len(),
            });
        }
    }
    if ctx.json {
        return out(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let mut text = format!(
        "{:<40} {:<24} {:<25} {:>12} {:>10}\n",
        "TARGET", "GENERATION", "SNAPSHOT", "BYTES", "INCREMENTS"
    );
    for r in &rows {
        text.push_str(&format!(
            "{:<40} {:<24} {:<25} {:>12} {:>10}\n",
            r.target,
            r.generation,
            rfc3339(r.snapshot_at_ms),
            r.snapshot_bytes,
            r.increments
        ));
    }
    if rows.is_empty() {
        text.push_str(&format!("(no backup of database {:?})\n", args.label));
    }
    out(&text)
}

/// `--at`: RFC 3339, or milliseconds since the epoch.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("--at {text:?}: not RFC 3339 (2026-12-01T10:00:00Z) nor milliseconds")
        })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .with_context(|| format!("--at {text:?}: out of range"))
}

/// `edgestore restore`.
pub async fn restore(ctx: &Ctx, args: &RestoreArgs) -> anyhow::Result<()> {
    let at_ms = args.at.as_deref().map(parse_time).transpose()?;
    let target = targets(ctx, args.from.as_deref(), Some(args))?
        .into_iter()
        .next()
        .context("no target")?;
    let spool = if args.spool {
        Some(ctx.config.spool_path()?)
    } else {
        None
    };
    let options = RestoreOptions {
        label: args.label.clone(),
        at_ms,
        to: args.to.clone(),
        spool,
        keys: ctx.config.database_keys()?,
    };
    let report = backup::restore(&target, &options).await?;
    if ctx.json {
        return out(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    }
    let mut text = format!(
        "restored database {} from {} to {} ({} bytes): generation {}, {} transactions after its snapshot, state as of {}\n",
        report.label,
        report.target,
        report.path.display(),
        report.bytes,
        report.generation,
        report.transactions,
        rfc3339(report.restored_at_ms)
    );
    if args.spool {
        text.push_str(&format!(
            "brought back {} spool segments into {}\n",
            report.spool_segments,
            args.to.join(ctx.config.spool_path()?).display()
        ));
    }
    if let Some(stopped) = &report.stopped {
        text.push_str(&format!("note: {stopped}\n"));
    }
    out(&text)
}

fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    Ok(stdout.flush()?)
}
