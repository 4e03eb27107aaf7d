//! `edgestore spool ...`: the metrics spool through the client (either engine).
//!
//! `spool put` reads JSON lines. On a bad line N it stops reading, makes every good line
//! before N durable in finished segments (a flush), reports `line N: ...` and exits non-zero:
//! nothing that was accepted is lost, and nothing after the bad line is taken.
//! `spool cat` prints rows exactly as stored: a document's own bytes, a metric's canonical JSON
//! (the agent's field order), so `cat` gives back what `put` took.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use edgestore::model::Timestamp;
use edgestore::{present, Metric, TimeRange};
use edgestore_host::admin::{self, AdminClient};
use edgestore_host::config::Flags;
use edgestore_host::owner::Ownership;
use edgestore_host::{AsyncSpool, Store};

use super::input::Lines;
use super::{ownership_note, Ctx, Inspection, Mutation, Refused};

/// Segment names start with this unless `--identifier` says otherwise.
pub use edgestore::layout::DEFAULT_IDENTIFIER;
/// Rows per call into the engine.
const BATCH: usize = 1_000;

/// `spool` commands.
#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Append JSON lines from stdin: metric objects (the agent's shape: cloud_account_id,
    /// cluster_name, created_at, id, labels, metric_name, node_name, timestamp, value), or any
    /// JSON values with --documents. A bad line N stops the input: the good lines before it
    /// are flushed (durable), the error names line N, the exit status is non-zero.
    Put(PutArgs),
    /// Finish the active segment: every row put before is durable in a finished segment.
    Flush,
    /// List finished segments (pending and uploaded).
    List(ListArgs),
    /// Print one segment's rows as JSON lines, exactly as stored.
    Cat {
        /// Segment file name (`agent_<startMs>_<stopMs>.json.br`), or its path inside the
        /// spool directory.
        segment: String,
    },
    /// Check every finished segment's checksum; quarantine bad ones (non-zero exit if any).
    Verify,
    /// Mark segments uploaded (moves them to `uploaded/`, where retention deletes them).
    Ack {
        /// Segment file names.
        #[arg(required = true)]
        segments: Vec<String>,
    },
    /// Delete uploaded segments older than the retention age, then enforce the byte cap.
    Purge(PurgeArgs),
    /// Bytes and files by state, and the file system's free space.
    Usage,
}

/// `spool put` options.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Take any JSON value per line (stored and printed back byte for byte).
    #[arg(long)]
    pub documents: bool,
    /// Exit 0 only once every row read is durable in a finished segment.
    #[arg(long)]
    pub flush: bool,
    /// First component of new segment names.
    #[arg(long, default_value = DEFAULT_IDENTIFIER)]
    pub identifier: String,
    /// Rows per segment (config `storage.maxRecords`).
    #[arg(long, value_name = "N")]
    pub max_records: Option<u64>,
    /// Brotli quality 0..=11 (config `storage.compressionLevel`).
    #[arg(long, value_name = "N")]
    pub level: Option<u32>,
}

/// `spool list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only segments ending at or after T (RFC3339, or UTC milliseconds).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only segments starting before T (RFC3339, or UTC milliseconds).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub until: Option<i64>,
}

/// `spool purge` options.
#[derive(Debug, Args)]
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

/// `--since`/`--until`: the core's command-line time ([`Timestamp::parse_arg`]), as the
/// standalone component takes them.
fn parse_time(text: &str) -> Result<i64, String> {
    Timestamp::parse_arg(text)
        .map(|t| t.0)
        .map_err(|e| e.message().to_owned())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("expected a duration such as 1h: {e}"))
}

impl SpoolCommand {
    /// This command's flags as config layers.
    pub fn flags(&self, flags: &mut Flags) {
        match self {
            SpoolCommand::Put(a) => {
                if let Some(n) = a.max_records {
                    flags.set("storage.maxRecords", "--max-records", n.to_string());
                }
                if let Some(n) = a.level {
                    flags.set("storage.compressionLevel", "--level", n.to_string());
                }
            }
            SpoolCommand::Purge(a) => {
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
            _ => {}
        }
    }
}

/// Run a `spool` command: listings and reads inspect the data directory read-only (beside
/// a running owner); mutations run as the owner, or are forwarded to the running one.
pub async fn run(ctx: &Ctx, cmd: SpoolCommand) -> anyhow::Result<()> {
    let path = ctx.config.spool_path()?;
    match cmd {
        SpoolCommand::List(_) | SpoolCommand::Cat { .. } | SpoolCommand::Usage => {
            let Inspection { store, ownership } = ctx.inspect().await?;
            let result = inspect(ctx, &store, &ownership, &path, cmd).await;
            let closed = store.close().await;
            result?;
            Ok(closed?)
        }
        SpoolCommand::Verify => verify(ctx, &path).await,
        _ => {
            let identifier = match &cmd {
                SpoolCommand::Put(a) => a.identifier.clone(),
                _ => DEFAULT_IDENTIFIER.to_owned(),
            };
            match ctx.mutate(&format!("spool {}", cmd.name())).await? {
                Mutation::Own(store) => {
                    let result = async {
                        let spool = store
                            .spool(&path, ctx.config.spool_config(&identifier))
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
            }
        }
    }
}

impl SpoolCommand {
    fn name(&self) -> &'static str {
        match self {
            SpoolCommand::Put(_) => "put",
            SpoolCommand::Flush => "flush",
            SpoolCommand::List(_) => "list",
            SpoolCommand::Cat { .. } => "cat",
            SpoolCommand::Verify => "verify",
            SpoolCommand::Ack { .. } => "ack",
            SpoolCommand::Purge(_) => "purge",
            SpoolCommand::Usage => "usage",
        }
    }
}

/// `list`, `cat`, `usage`: read-only, without recovery; the owner (if any) and its journal's
/// rows are named on stderr.
async fn inspect(
    ctx: &Ctx,
    store: &Store,
    ownership: &Ownership,
    path: &str,
    cmd: SpoolCommand,
) -> anyhow::Result<()> {
    let spool = store
        .spool(path, ctx.config.spool_config(DEFAULT_IDENTIFIER))
        .await
        .with_context(|| format!("open the spool {path}"))?;
    ownership_note(ctx, ownership, spool.journal_rows().await.ok());
    let json = ctx.json;
    match cmd {
        SpoolCommand::List(args) => {
            let range = TimeRange {
                from_ms: args.since,
                to_ms: args.until,
            };
            out(&present::segments(&spool.segments(range).await?, json))
        }
        SpoolCommand::Cat { segment } => {
            let name = segment_name(ctx, &segment)?;
            let mut reader = spool
                .read_segment(&name)
                .await
                .with_context(|| format!("segment {name}"))?;
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
        SpoolCommand::Usage => out(&present::usage(&spool.usage().await?, json)),
        _ => bail!("spool {} is not a read-only command", cmd.name()),
    }
}

/// `verify`: as owner (or through the owner) bad segments are quarantined; beside an owner
/// that takes no forwarded commands, the segments are checked read-only and bad ones are
/// reported, left for the owner.
async fn verify(ctx: &Ctx, path: &str) -> anyhow::Result<()> {
    match ctx.mutate("spool verify").await {
        Ok(Mutation::Own(store)) => {
            let result = async {
                let spool = store
                    .spool(path, ctx.config.spool_config(DEFAULT_IDENTIFIER))
                    .await
                    .with_context(|| format!("open the spool {path}"))?;
                command(ctx, &Target::Local(spool), SpoolCommand::Verify).await
            }
            .await;
            let closed = store.close().await;
            result?;
            Ok(closed?)
        }
        Ok(Mutation::Forward(client, owner)) => {
            eprintln!("note: forwarded to the owner, {}", owner.describe());
            let target = Target::Remote {
                client,
                identifier: DEFAULT_IDENTIFIER.to_owned(),
            };
            command(ctx, &target, SpoolCommand::Verify).await
        }
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            let Inspection { store, ownership } = ctx.inspect().await?;
            let result = async {
                let spool = store
                    .spool(path, ctx.config.spool_config(DEFAULT_IDENTIFIER))
                    .await
                    .with_context(|| format!("open the spool {path}"))?;
                ownership_note(ctx, &ownership, spool.journal_rows().await.ok());
                let report = spool.verify().await?;
                out(&present::verify(&report, ctx.json))?;
                if !report.left_in_place.is_empty() {
                    bail!(
                        "{} bad segment(s), left for the owner to quarantine: {}",
                        report.left_in_place.len(),
                        report.left_in_place.join(", ")
                    );
                }
                Ok(())
            }
            .await;
            let closed = store.close().await;
            result?;
            Ok(closed?)
        }
        Err(e) => Err(e),
    }
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
                let known: Vec<String> = s
                    .segments(TimeRange::all())
                    .await?
                    .into_iter()
                    .map(|s| s.name)
                    .collect();
                if let Some(missing) = names.iter().find(|n| !known.contains(n)) {
                    bail!("no such segment: {missing}");
                }
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

    /// The rendered report and the segments found bad.
    async fn report(&self, verify: bool, json: bool) -> anyhow::Result<(String, Vec<String>)> {
        match self {
            Target::Local(s) if verify => {
                let r = s.verify().await?;
                Ok((present::verify(&r, json), r.quarantined))
            }
            Target::Local(s) => Ok((present::purge(&s.purge().await?, json), Vec::new())),
            Target::Remote { client, .. } => {
                let route = if verify {
                    "/v1/spool/verify"
                } else {
                    "/v1/spool/purge"
                };
                let reply: admin::ReportReply =
                    client.call(route, &admin::ReportRequest { json }).await?;
                Ok((reply.output, reply.bad))
            }
        }
    }
}

async fn command(ctx: &Ctx, spool: &Target, cmd: SpoolCommand) -> anyhow::Result<()> {
    let json = ctx.json;
    match cmd {
        SpoolCommand::Put(args) => put(spool, &args, json).await,
        SpoolCommand::Flush => {
            spool.flush().await?;
            out(&present::written("flush", 0, "segment", json))
        }
        SpoolCommand::Verify => {
            let (text, bad) = spool.report(true, json).await?;
            out(&text)?;
            if !bad.is_empty() {
                bail!(
                    "{} bad segment(s) quarantined: {}",
                    bad.len(),
                    bad.join(", ")
                );
            }
            Ok(())
        }
        SpoolCommand::Ack { segments } => {
            let mut names = Vec::with_capacity(segments.len());
            for s in &segments {
                names.push(segment_name(ctx, s)?);
            }
            let moved = spool.ack(names).await?;
            out(&present::count("marked uploaded", moved, json))
        }
        SpoolCommand::Purge(_) => out(&spool.report(false, json).await?.0),
        SpoolCommand::List(_) | SpoolCommand::Cat { .. } | SpoolCommand::Usage => {
            bail!("spool {} only reads", cmd.name())
        }
    }
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
            if args.documents {
                spool.put_documents(texts.collect()).await?;
            } else {
                let metrics = texts
                    .map(|t| serde_json::from_str::<Metric>(&t))
                    .collect::<Result<Vec<_>, _>>()
                    .context("metric changed between checks")?;
                spool.put(metrics).await?;
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
    let durable = if args.flush {
        spool.flush().await?;
        "segment"
    } else {
        spool.sync().await?;
        "journal"
    };
    // Report on stderr: stdout stays free for pipelines.
    eprint!("{}", present::written("spool put", total, durable, json));
    Ok(())
}

/// A segment argument as a file name: a bare name, or a path that points into the spool
/// directory (or its `uploaded/`); anything else is refused, naming the directory.
fn segment_name(ctx: &Ctx, arg: &str) -> anyhow::Result<String> {
    let p = Path::new(arg);
    if p.components().count() == 1 && matches!(p.components().next(), Some(Component::Normal(_))) {
        return Ok(arg.to_owned());
    }
    let spool_dir = ctx.config.host.data_dir.join(ctx.config.spool_path()?);
    let (dir, file) = match (p.parent(), p.file_name().and_then(|f| f.to_str())) {
        (Some(d), Some(f)) => (d, f),
        _ => bail!("segment {arg:?} is not a segment file name"),
    };
    let dir = lexical(dir);
    let spool_dir = lexical(&spool_dir);
    if dir == spool_dir || dir == spool_dir.join(edgestore::spool::UPLOADED_DIR) {
        Ok(file.to_owned())
    } else {
        bail!(
            "segment {arg:?} is outside the spool directory {}",
            spool_dir.display()
        )
    }
}

/// Absolute, with `.` dropped and `..` folded lexically (for comparison only, never opened).
fn lexical(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
