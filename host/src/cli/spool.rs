//! `edgestore spool ...`: the metrics spool through the client (either engine). The commands
//! besides `put` are the shared definition ([`command_line::SpoolCommand`]), which the
//! standalone component's command parses too; this file runs them and adds `put` and
//! `purge`'s retention flags.
//!
//! `spool put` reads JSON lines. On a bad line N it stops reading, makes every good line
//! before N durable in finished segments (a flush), reports `line N: ...` and exits non-zero:
//! nothing that was accepted is lost, and nothing after the bad line is taken.
//! `spool cat` prints rows exactly as stored: a document's own bytes, a metric's canonical JSON
//! (the agent's field order), so `cat` gives back what `put` took.
//! `spool ship` uploads the pending segments to `ship.target` and acknowledges each once the
//! target confirmed it ([`edgestore_host::ship`]); a running owner is asked to do it.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use edgestore::command_line::{self, SpoolArgs};
use edgestore::spool::{EraseFilter, EraseReport, SegmentInfo, VerifyReport};
use edgestore::{present, Metric, TimeRange};
use edgestore_host::admin::{self, AdminClient};
use edgestore_host::config::Flags;
use edgestore_host::owner::Ownership;
use edgestore_host::ship::{RoundReport, Shipper, ShipperOptions};
use edgestore_host::{AsyncReader, AsyncSpool, Store};

use super::input::Lines;
use super::{ownership_note, Ctx, Inspection, Mutation, Refused};

/// Rows per call into the engine.
const BATCH: usize = 1_000;

/// The shared spool commands, with this CLI's retention flags on `purge`.
type Shared = command_line::SpoolCommand<PurgeArgs>;

/// `spool` commands: `put`, and the inspection and maintenance commands every edgestore
/// command line shares ([`command_line::SpoolCommand`]).
#[derive(Debug, clap::Subcommand)]
pub enum SpoolCommand {
    /// Append JSON lines from stdin: metric objects (the agent's shape: cloud_account_id,
    /// cluster_name, created_at, id, labels, metric_name, node_name, timestamp, value), or any
    /// JSON values with --documents. A bad line N stops the input: the good lines before it
    /// are flushed (durable), the error names line N, the exit status is non-zero.
    Put(PutArgs),
    /// Upload the pending segments to the object store of config `ship.target` (S3 or a
    /// directory), one object each, verified, then mark them uploaded (`deleteAfter`: then
    /// the retention purge). With --once: ship what is pending, print `shipped N segments
    /// (B bytes) to TARGET`, exit non-zero if any failed; without: every ship.interval until
    /// SIGTERM/SIGINT. A running owner (serve) is asked to do it (--once).
    Ship(ShipArgs),
    /// Erase a subject's rows: finish the journals, then rewrite every finished segment
    /// (pending and uploaded) without the rows whose labels.LABEL (or top-level field LABEL)
    /// is VALUE, crash-safe; a segment left empty is removed. Quarantined files and copies
    /// already shipped or backed up are not touched. Audited (with a digest of the value). A
    /// running owner is asked to do it.
    Erase(EraseArgs),
    /// The shared commands.
    #[command(flatten)]
    Shared(Shared),
}

/// `spool put` options.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The spool.
    #[command(flatten)]
    pub spool: SpoolArgs,
    /// Take any JSON value per line (stored and printed back byte for byte).
    #[arg(long)]
    pub documents: bool,
    /// Exit 0 only once every row read is durable in a finished segment.
    #[arg(long)]
    pub flush: bool,
    /// Rows per segment (config `storage.maxRecords`).
    #[arg(long, value_name = "N")]
    pub max_records: Option<u64>,
    /// Brotli quality 0..=11 (config `storage.compressionLevel`).
    #[arg(long, value_name = "N")]
    pub level: Option<u32>,
}

/// `spool erase` options.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The spool.
    #[command(flatten)]
    pub spool: SpoolArgs,
    /// Which rows: LABEL=VALUE.
    #[arg(long = "where", value_name = "LABEL=VALUE")]
    pub filter: String,
}

/// `spool ship` options.
#[derive(Debug, Args)]
pub struct ShipArgs {
    /// The spool.
    #[command(flatten)]
    pub spool: SpoolArgs,
    /// Ship what is pending now and exit with a summary.
    #[arg(long)]
    pub once: bool,
}

/// `spool purge`'s retention options (this CLI's configuration; the standalone component
/// purges with the spool's defaults).
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    /// Delete uploaded segments older than this (config `retention.maxAge`), e.g. 1h, 0s.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub older_than: Option<Duration>,
    /// Hard cap on the spool's bytes (config `retention.maxBytes`).
    #[arg(long, value_name = "N")]
    pub max_bytes: Option<u64>,
    /// Allow dropping never-uploaded segments to get under the cap (config
    /// `retention.dropPending`).
    #[arg(long)]
    pub drop_pending: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("expected a duration such as 1h: {e}"))
}

impl SpoolCommand {
    /// This command's flags as config layers.
    pub fn flags(&self, flags: &mut Flags) {
        if let Some(path) = &self.spool().path {
            flags.set("storage.path", "--path", path.clone());
        }
        match self {
            SpoolCommand::Put(a) => {
                if let Some(n) = a.max_records {
                    flags.set("storage.maxRecords", "--max-records", n.to_string());
                }
                if let Some(n) = a.level {
                    flags.set("storage.compressionLevel", "--level", n.to_string());
                }
            }
            SpoolCommand::Shared(Shared::Purge { options: a, .. }) => {
                if let Some(d) = a.older_than {
                    let text = humantime::format_duration(d).to_string();
                    flags.set("retention.maxAge", "--older-than", text);
                }
                if let Some(n) = a.max_bytes {
                    flags.set("retention.maxBytes", "--max-bytes", n.to_string());
                }
                if a.drop_pending {
                    flags.set("retention.dropPending", "--drop-pending", "true");
                }
            }
            SpoolCommand::Ship(_) | SpoolCommand::Erase(_) | SpoolCommand::Shared(_) => {}
        }
    }

    fn spool(&self) -> &SpoolArgs {
        match self {
            SpoolCommand::Put(a) => &a.spool,
            SpoolCommand::Ship(a) => &a.spool,
            SpoolCommand::Erase(a) => &a.spool,
            SpoolCommand::Shared(c) => c.spool(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            SpoolCommand::Put(_) => "put",
            SpoolCommand::Ship(_) => "ship",
            SpoolCommand::Erase(_) => "erase",
            SpoolCommand::Shared(c) => c.name(),
        }
    }
}

/// Run a `spool` command: listings and reads inspect the data directory read-only (beside
/// a running owner); mutations run as the owner, or are forwarded to the running one.
pub async fn run(ctx: &Ctx, cmd: SpoolCommand) -> anyhow::Result<()> {
    let path = ctx.config.spool_path()?;
    let identifier = cmd.spool().identifier.clone();
    match cmd {
        SpoolCommand::Shared(c) if c.is_inspection() => {
            let Inspection {
                store, ownership, ..
            } = ctx.inspect().await?;
            let result = inspect(ctx, &store, &ownership, &path, &identifier, c).await;
            let closed = store.close().await;
            result?;
            Ok(closed?)
        }
        SpoolCommand::Shared(Shared::Verify { .. }) => verify(ctx, &path, &identifier).await,
        SpoolCommand::Shared(Shared::Flush { .. }) => flush(ctx, &path, &identifier).await,
        SpoolCommand::Ship(args) => ship(ctx, &path, &identifier, &args).await,
        cmd => match ctx.mutate(&format!("spool {}", cmd.name())).await? {
            Mutation::Own(store) => {
                let result = async {
                    let spool = store
                        .spool(&path, ctx.config.spool_config(&identifier)?)
                        .await
                        .with_context(|| format!("open the spool {path}"))?;
                    command(ctx, &Target::Local(spool), cmd).await
                }
                .await;
                let closed = store.close().await;
                result?;
                Ok(closed?)
            }
            Mutation::Forward(client, owner) => {
                if let SpoolCommand::Put(a) = &cmd {
                    if a.level.is_some() || a.max_records.is_some() {
                        bail!(
                            "--level and --max-records apply only when this command owns the data directory; {} writes with its own storage settings",
                            owner.describe()
                        );
                    }
                }
                eprintln!("note: forwarded to the owner, {}", owner.describe());
                let target = Target::Remote { client, identifier };
                command(ctx, &target, cmd).await
            }
        },
    }
}

/// `list`, `cat`, `usage`: read-only, without recovery; the owner (if any) and its journal's
/// rows are named on stderr.
async fn inspect(
    ctx: &Ctx,
    store: &Store,
    ownership: &Ownership,
    path: &str,
    identifier: &str,
    cmd: Shared,
) -> anyhow::Result<()> {
    let spool = store
        .spool(path, ctx.config.spool_config(identifier)?)
        .await
        .with_context(|| format!("open the spool {path}"))?;
    ownership_note(ctx, ownership, spool.journal_rows().await.ok());
    let json = ctx.json;
    match cmd {
        Shared::List { range, .. } => out(&present::segments(
            &spool.segments(range.range()).await?,
            json,
        )),
        Shared::Cat {
            segment: Some(arg), ..
        } => {
            let name = segment_name(ctx, &arg)?;
            let reader = spool
                .read_segment(&name)
                .await
                .with_context(|| format!("segment {name}"))?;
            write_rows(reader).await
        }
        Shared::Cat {
            segment: None,
            range,
            ..
        } => write_rows(spool.read_range(range.range()).await?).await,
        Shared::Usage { .. } => out(&present::usage(
            &command_line::spool_usage(spool.usage().await?),
            json,
        )),
        other => bail!("spool {} is not a read-only command", other.name()),
    }
}

/// Every row `reader` yields on stdout, one JSON line each, exactly as stored.
async fn write_rows(mut reader: AsyncReader) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    loop {
        let rows = reader.next_documents(BATCH as u32).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            w.write_all(row.as_bytes())?;
            w.write_all(b"\n")?;
        }
    }
    Ok(w.flush()?)
}

/// `verify`: as owner (or through the owner) bad segments are quarantined; beside an owner
/// that takes no forwarded commands, the segments are checked read-only and bad ones are
/// reported, left for the owner. Bad segments fail the command either way.
async fn verify(ctx: &Ctx, path: &str, identifier: &str) -> anyhow::Result<()> {
    let (text, failure) = match ctx.mutate("spool verify").await {
        Ok(Mutation::Own(store)) => {
            let result = async {
                let spool = store
                    .spool(path, ctx.config.spool_config(identifier)?)
                    .await
                    .with_context(|| format!("open the spool {path}"))?;
                Target::Local(spool).verify(ctx.json).await
            }
            .await;
            let closed = store.close().await;
            let result = result?;
            closed?;
            result
        }
        Ok(Mutation::Forward(client, owner)) => {
            eprintln!("note: forwarded to the owner, {}", owner.describe());
            let target = Target::Remote {
                client,
                identifier: identifier.to_owned(),
            };
            target.verify(ctx.json).await?
        }
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            let Inspection {
                store, ownership, ..
            } = ctx.inspect().await?;
            let result = async {
                let spool = store
                    .spool(path, ctx.config.spool_config(identifier)?)
                    .await
                    .with_context(|| format!("open the spool {path}"))?;
                ownership_note(ctx, &ownership, spool.journal_rows().await.ok());
                Target::Local(spool).verify(ctx.json).await
            }
            .await;
            let closed = store.close().await;
            let result = result?;
            closed?;
            result
        }
        Err(e) => return Err(e),
    };
    out(&text)?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// `flush`: as owner (recovering every journal a stopped writer left, then finishing the
/// active segment) or through the owner; prints the segments this finished.
async fn flush(ctx: &Ctx, path: &str, identifier: &str) -> anyhow::Result<()> {
    let before = finished_segments(ctx, path, identifier).await?;
    let after = match ctx.mutate("spool flush").await? {
        Mutation::Own(store) => {
            let result = async {
                let spool = store
                    .spool(path, ctx.config.spool_config(identifier)?)
                    .await
                    .with_context(|| format!("open the spool {path}"))?;
                spool.flush().await?;
                Ok::<_, anyhow::Error>(spool.segments(TimeRange::all()).await?)
            }
            .await;
            let closed = store.close().await;
            let after = result?;
            closed?;
            after
        }
        Mutation::Forward(client, owner) => {
            eprintln!("note: forwarded to the owner, {}", owner.describe());
            let target = Target::Remote {
                client,
                identifier: identifier.to_owned(),
            };
            target.flush().await?;
            finished_segments(ctx, path, identifier).await?
        }
    };
    let new = command_line::newly_finished(&before, after);
    out(&present::segments(&new, ctx.json))
}

/// `ship`: as owner, a shipper on this process's spool (one round with --once, else rounds
/// until a stop signal); beside a running owner, one round of the owner's shipper.
async fn ship(ctx: &Ctx, path: &str, identifier: &str, args: &ShipArgs) -> anyhow::Result<()> {
    match ctx.mutate("spool ship").await? {
        Mutation::Own(store) => {
            let result = async {
                let Some(target) = ctx.config.ship.target.as_deref() else {
                    bail!(
                        "no ship.target configured: set it in the config file (ship: {{target: \
                         s3://bucket/prefix}}) or EDGESTORE_SHIP_TARGET"
                    );
                };
                let spool = store
                    .spool(path, ctx.config.spool_config(identifier)?)
                    .await
                    .with_context(|| format!("open the spool {path}"))?;
                let options = ShipperOptions {
                    config: ctx.config.ship.clone(),
                    data_dir: ctx.config.host.data_dir.clone(),
                    spool_dir: path.to_owned(),
                    breaker: store.breaker_config(),
                    report: !args.once,
                };
                let shipper = Shipper::open(spool, store.metrics().clone(), options)?;
                if args.once {
                    return print_round(ctx, &shipper.ship_once().await?);
                }
                eprintln!(
                    "edgestore spool ship: shipping to {target} every {}; stop with SIGTERM or SIGINT",
                    humantime::format_duration(ctx.config.ship.interval)
                );
                shipper
                    .run(async {
                        if let Err(e) = edgestore_host::serve::stop_signal().await {
                            eprintln!("edgestore spool ship: {e}; stopping");
                        }
                    })
                    .await;
                Ok(())
            }
            .await;
            let closed = store.close().await;
            result?;
            Ok(closed?)
        }
        Mutation::Forward(client, owner) => {
            if !args.once {
                bail!(
                    "{} owns the data directory and ships on its own when its ship.target is set; \
                     `edgestore spool ship --once` asks it to ship now",
                    owner.describe()
                );
            }
            eprintln!("note: forwarded to the owner, {}", owner.describe());
            let report: RoundReport = client
                .call("/v1/spool/ship", &serde_json::json!({}))
                .await?;
            print_round(ctx, &report)
        }
    }
}

/// A round's summary on stdout; segments left pending (failed, not tried) or quarantined make
/// the command fail with the reasons.
fn print_round(ctx: &Ctx, report: &RoundReport) -> anyhow::Result<()> {
    if ctx.json {
        out(&present::to_json(report))?;
    } else {
        out(&format!("{}\n", report.summary()))?;
    }
    let left = report.failed + report.skipped + report.quarantined;
    if left > 0 {
        let why = if report.failures.is_empty() {
            "the round stopped early".to_owned()
        } else {
            report.failures.join("; ")
        };
        bail!("{left} segments not shipped: {why}");
    }
    Ok(())
}

/// The finished segments as an inspection sees them (no recovery); none when the spool
/// directory does not exist yet.
async fn finished_segments(
    ctx: &Ctx,
    path: &str,
    identifier: &str,
) -> anyhow::Result<Vec<SegmentInfo>> {
    if !ctx.config.host.data_dir.join(path).is_dir() {
        return Ok(Vec::new());
    }
    let Inspection { store, .. } = ctx.inspect().await?;
    let result = async {
        let spool = store
            .spool(path, ctx.config.spool_config(identifier)?)
            .await
            .with_context(|| format!("open the spool {path}"))?;
        Ok::<_, anyhow::Error>(spool.segments(TimeRange::all()).await?)
    }
    .await;
    let closed = store.close().await;
    let segments = result?;
    closed?;
    Ok(segments)
}

/// Where a mutating spool command's operations go.
enum Target {
    /// This process owns the data directory.
    Local(AsyncSpool),
    /// The running owner, through its admin socket.
    Remote {
        client: AdminClient,
        identifier: String,
    },
}

impl Target {
    async fn put(&self, rows: Vec<Metric>) -> anyhow::Result<()> {
        match self {
            Target::Local(s) => Ok(s.put(rows).await?),
            Target::Remote { client, identifier } => {
                let req = admin::PutRequest {
                    identifier: identifier.clone(),
                    rows,
                };
                client
                    .call::<_, serde_json::Value>("/v1/spool/put", &req)
                    .await?;
                Ok(())
            }
        }
    }

    async fn put_documents(&self, docs: Vec<String>) -> anyhow::Result<()> {
        match self {
            Target::Local(s) => Ok(s.put_documents(docs).await?),
            Target::Remote { client, identifier } => {
                let req = admin::PutDocumentsRequest {
                    identifier: identifier.clone(),
                    docs,
                };
                client
                    .call::<_, serde_json::Value>("/v1/spool/put-documents", &req)
                    .await?;
                Ok(())
            }
        }
    }

    async fn flush(&self) -> anyhow::Result<()> {
        match self {
            Target::Local(s) => Ok(s.flush().await?),
            Target::Remote { client, .. } => {
                client
                    .call::<_, serde_json::Value>("/v1/spool/flush", &serde_json::json!({}))
                    .await?;
                Ok(())
            }
        }
    }

    async fn sync(&self) -> anyhow::Result<()> {
        match self {
            Target::Local(s) => Ok(s.sync().await?),
            Target::Remote { client, .. } => {
                client
                    .call::<_, serde_json::Value>("/v1/spool/sync", &serde_json::json!({}))
                    .await?;
                Ok(())
            }
        }
    }

    async fn ack(&self, names: Vec<String>) -> anyhow::Result<u64> {
        match self {
            Target::Local(s) => {
                command_line::check_segments_known(&names, &s.segments(TimeRange::all()).await?)?;
                Ok(s.mark_uploaded(names).await?)
            }
            Target::Remote { client, .. } => {
                let reply: admin::AckReply = client
                    .call("/v1/spool/ack", &admin::AckRequest { names })
                    .await?;
                Ok(reply.moved)
            }
        }
    }

    async fn erase(&self, filter: EraseFilter) -> anyhow::Result<EraseReport> {
        match self {
            Target::Local(s) => Ok(s.erase(filter).await?),
            Target::Remote { client, .. } => Ok(client
                .call(
                    "/v1/spool/erase",
                    &admin::EraseRequest {
                        label: filter.label,
                        value: filter.value,
                    },
                )
                .await?),
        }
    }

    /// `purge`'s rendered report.
    async fn purge(&self, json: bool) -> anyhow::Result<String> {
        match self {
            Target::Local(s) => Ok(present::purge(&s.purge().await?, json)),
            Target::Remote { client, .. } => {
                let reply: admin::ReportReply = client
                    .call("/v1/spool/purge", &admin::ReportRequest { json })
                    .await?;
                Ok(reply.output)
            }
        }
    }

    /// `verify`'s rendered report, and why the command fails if segments were bad.
    async fn verify(&self, json: bool) -> anyhow::Result<(String, Option<edgestore::Error>)> {
        match self {
            Target::Local(s) => {
                let r = s.verify().await?;
                Ok((present::verify(&r, json), command_line::verify_failure(&r)))
            }
            Target::Remote { client, .. } => {
                let reply: admin::ReportReply = client
                    .call("/v1/spool/verify", &admin::ReportRequest { json })
                    .await?;
                // The owner quarantined what it found bad.
                let report = VerifyReport {
                    checked: 0,
                    quarantined: reply.bad,
                    left_in_place: Vec::new(),
                };
                Ok((reply.output, command_line::verify_failure(&report)))
            }
        }
    }
}

/// `put`, `ack`, `purge` on the spool this command owns or on the owner's.
async fn command(ctx: &Ctx, spool: &Target, cmd: SpoolCommand) -> anyhow::Result<()> {
    let json = ctx.json;
    match cmd {
        SpoolCommand::Put(args) => put(spool, &args, json).await,
        SpoolCommand::Shared(Shared::Ack { segments, .. }) => {
            let names = segments
                .iter()
                .map(|s| segment_name(ctx, s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let moved = spool.ack(names).await?;
            out(&present::count("marked uploaded", moved, json))
        }
        SpoolCommand::Shared(Shared::Purge { .. }) => out(&spool.purge(json).await?),
        SpoolCommand::Erase(args) => {
            let filter = EraseFilter::parse(&args.filter)?;
            let report = spool.erase(filter).await?;
            out(&erase_report(&report, json)?)
        }
        SpoolCommand::Ship(_) => bail!("spool ship does not run here"),
        SpoolCommand::Shared(other) => bail!("spool {} does not run here", other.name()),
    }
}

/// `erase`'s report: one line, or the report as JSON.
fn erase_report(r: &EraseReport, json: bool) -> anyhow::Result<String> {
    if json {
        return Ok(format!("{}\n", serde_json::to_string(r)?));
    }
    let mut text = format!(
        "erased {} rows: {} segments rewritten, {} removed, {} checked\n",
        r.rows_erased,
        r.rewritten.len(),
        r.removed.len(),
        r.checked
    );
    if r.quarantined_untouched > 0 {
        text.push_str(&format!(
            "note: {} files in quarantine/ were not rewritten and may still hold such rows\n",
            r.quarantined_untouched
        ));
    }
    Ok(text)
}

fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    Ok(stdout.flush()?)
}

/// `spool put`: batches of lines into the spool; see the module doc for bad lines.
async fn put(spool: &Target, args: &PutArgs, json: bool) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut lines = Lines::new(stdin.lock());
    let mut total = 0u64;
    loop {
        let batch = if args.documents {
            lines.next_batch(BATCH, |l| {
                serde_json::from_str::<&serde_json::value::RawValue>(l)
                    .map(|_| ())
                    .map_err(|e| format!("not valid JSON: {e}"))
            })
        } else {
            lines.next_batch(BATCH, |l| {
                serde_json::from_str::<Metric>(l)
                    .map(|_| ())
                    .map_err(|e| format!("not a metric: {e}"))
            })
        };
        let n = batch.lines.len() as u64;
        if n > 0 {
            let texts = batch.lines.into_iter().map(|(_, t)| t);
            let put = if args.documents {
                spool.put_documents(texts.collect()).await
            } else {
                let metrics = texts
                    .map(|t| serde_json::from_str::<Metric>(&t))
                    .collect::<Result<Vec<_>, _>>()
                    .context("metric changed between checks")?;
                spool.put(metrics).await
            };
            if let Err(e) = put {
                // A refused batch is not in the journal; the rows before it are, and a sender
                // must know which to send again.
                let kept = match spool.sync().await {
                    Ok(()) => format!("the {total} rows before this batch of {n} are kept"),
                    Err(_) => format!(
                        "the {total} rows before this batch of {n} are in the journal but not \
                         synced"
                    ),
                };
                return Err(e.context(format!("stopped; {kept}")));
            }
            total += n;
        }
        if let Some(e) = batch.error {
            // Everything before the bad line is kept, durably.
            spool.flush().await?;
            return Err(anyhow::Error::new(e)
                .context(format!("stopped; the {total} rows before it are flushed")));
        }
        if batch.done {
            break;
        }
    }
    // Every row is in the journal by now: a failure here must not make a sender resend them.
    let durable = if args.flush {
        spool.flush().await.with_context(|| {
            format!(
                "all {total} rows are in the journal (do not send them again); finishing them \
                 into a segment failed, a later flush or the running owner finishes them"
            )
        })?;
        "segment"
    } else {
        spool.sync().await.with_context(|| {
            format!("all {total} rows are in the journal, but syncing them failed")
        })?;
        "journal"
    };
    // Report on stderr: stdout stays free for pipelines.
    eprint!(
        "{}",
        super::input::written("spool put", total, durable, json)
    );
    Ok(())
}

/// A segment argument as a file name ([`command_line::segment_name`]: a bare name, or a
/// path into the spool directory or its `uploaded/`).
fn segment_name(ctx: &Ctx, arg: &str) -> anyhow::Result<String> {
    let spool_dir = ctx.config.host.data_dir.join(ctx.config.spool_path()?);
    Ok(command_line::segment_name(arg, &spool_dir)?)
}
