//! The `edgestore` command line: global options, the command tree, and the context every
//! command runs in (the loaded [`Config`] and a [`Store`] opened from it, so each command works
//! on either engine). One file per command group.

pub mod audit;
pub mod backup;
pub mod bench;
pub mod db;
pub mod demo;
pub mod input;
pub mod keys;
pub mod ops;
pub mod spool;

use std::path::PathBuf;

use anyhow::bail;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use edgestore::command_line::Output;
use edgestore::owner::OwnerRecord;
use edgestore_host::admin::AdminClient;
use edgestore_host::config::{Config, EngineKind, Flags};
use edgestore_host::grants::DEFAULT_LABEL;
use edgestore_host::owner::{self, Ownership};
use edgestore_host::{DbTarget, Labels, Store};

/// Local persistence for edge and telemetry agents: a typed SQLite repository and a
/// crash-safe, Brotli-compressed metrics spool, run in a sandboxed WebAssembly component
/// (default) or natively.
///
/// Configuration: built-in defaults < `--config FILE` (YAML) < `EDGESTORE_<SECTION>_<KEY>`
/// environment variables (e.g. EDGESTORE_STORAGE_COMPRESSION_LEVEL=9) < flags. With no
/// configuration at all, everything lives in ./edgestore-data/ (edgestore.sqlite, metrics/).
#[derive(Debug, Parser)]
#[command(name = "edgestore", version)]
pub struct Cli {
    /// YAML config file (sections database, storage, host, retention, resilience, health,
    /// serve, ingest, ship, backup, audit, encryption; camelCase keys).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (config `host.dataDir`; default ./edgestore-data): the only directory
    /// the store touches.
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Engine that runs the core (config `host.engine`; default component).
    #[arg(long, global = true, value_enum)]
    pub engine: Option<EngineKind>,
    /// `--json`, as every edgestore command line has it.
    #[command(flatten)]
    pub output: Output,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write realistic resource tags and metrics into the data directory and report what
    /// happened: transactions, rotation, compression, upload marking and purging.
    Demo(demo::DemoArgs),
    /// The metrics spool: put, ship, and list, cat, usage, verify, ack, purge, flush.
    #[command(subcommand)]
    Spool(spool::SpoolCommand),
    /// The repository's built-in models: models, count, get, find, and put, delete.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Erase a subject on request: `spool erase --where LABEL=VALUE` (rewrite every finished
    /// segment without the subject's rows); records are deleted with `db delete`, which
    /// leaves no trace of them in the database files.
    Erase(spool::EraseArgs),
    /// Check the store: exit 0 when healthy, 1 with the reasons when not (database unreachable,
    /// disk above health.maxDiskUsedPercent, a transaction open too long, circuit open, data
    /// or spool directory not writable; with ship.target: segments waiting longer than
    /// health.maxShipLag, or shipping failing permanently).
    Health(ops::HealthArgs),
    /// Backend, connection status, disk usage, record counts, last operation time.
    Diag(ops::DiagArgs),
    /// The store's metrics in the Prometheus text format.
    Metrics(ops::MetricsArgs),
    /// Long-running ingest (JSON lines on stdin, or --generate RATE) serving GET /metrics and
    /// GET /healthz; rotates on storage.maxInterval; ships finished segments when ship.target
    /// is set; flushes and exits 0 on SIGTERM/SIGINT.
    Serve(ops::ServeArgs),
    /// The hash-chained audit log of mutations and refused accesses (DATA/.audit): verify.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Encryption keys (encryption.keyFile, an age identity file): generate, show-recipient,
    /// rotate, destroy.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The databases' continuous backup to backup.targets: now, list, verify.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Restore a database from a backup target as of a point in time (--at) or the newest
    /// (--latest) into a directory no store owns (--to); the result passes SQLite's integrity
    /// check before it is moved into place.
    Restore(backup::RestoreArgs),
    /// Measure throughput, latency, memory and start-up against edgestore's performance
    /// targets and print one table (figure, median, target, PASS/MISS); also written as JSON.
    /// Runs on its own temporary stores, never on the data directory.
    Bench(bench::BenchArgs),
}

impl Cli {
    /// The command-line layer of the configuration.
    pub fn flags(&self) -> Flags {
        let mut flags = Flags::new();
        if let Some(dir) = &self.data {
            flags.set("host.dataDir", "--data", dir.display().to_string());
        }
        if let Some(engine) = self.engine {
            flags.set("host.engine", "--engine", engine.as_str());
        }
        match &self.command {
            Command::Demo(args) => args.flags(&mut flags),
            Command::Spool(cmd) => cmd.flags(&mut flags),
            Command::Erase(args) => {
                if let Some(path) = &args.spool.path {
                    flags.set("storage.path", "--path", path.clone());
                }
            }
            Command::Serve(args) => args.flags(&mut flags),
            Command::Db(_)
            | Command::Health(_)
            | Command::Diag(_)
            | Command::Metrics(_)
            | Command::Audit(_)
            | Command::Keys(_)
            | Command::Backup(_)
            | Command::Restore(_)
            | Command::Bench(_) => {}
        }
        flags
    }
}

/// What a command runs with.
pub struct Ctx {
    /// The effective configuration.
    pub config: Config,
    /// `--json`.
    pub json: bool,
}

/// A read-only view of a data directory, beside its owner if one runs.
pub struct Inspection {
    /// A store that only reads (no lock, no recovery, SQLite read-only).
    pub store: Store,
    /// Who owns the directory now.
    pub ownership: Ownership,
    /// Whether the database file exists. Without it the store reads an empty in-memory
    /// database, which only tells empty tables from missing ones on some engines: the `db`
    /// commands then answer for an empty database themselves.
    pub has_database: bool,
}

/// Where a mutating command runs.
pub enum Mutation {
    /// This process owns the data directory for the command's duration.
    Own(Store),
    /// The owner serves an admin socket: the command's operations are sent there.
    Forward(AdminClient, Box<OwnerRecord>),
}

/// The data directory is owned by another process that takes no forwarded commands: the
/// command was refused with nothing touched (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Ctx {
    /// Open the store as the owner of the data directory (creating it) for `command`
    /// (`edgestore <command>` in the lock file). Another owner is [`Refused`].
    pub async fn own(&self, command: &str) -> anyhow::Result<Store> {
        let dir = &self.config.host.data_dir;
        edgestore_host::grants::create_data_dir(dir)
            .with_context(|| format!("create data directory {}", dir.display()))?;
        let mut config = self.config.store_config()?;
        config.command = format!("edgestore {command}");
        match Store::open(config).await {
            Ok(store) => Ok(store),
            Err(e @ edgestore_host::Error::Owned { .. }) => Err(Refused(e.to_string()).into()),
            Err(e) => {
                Err(anyhow::Error::new(e).context(format!("open the store in {}", dir.display())))
            }
        }
    }

    /// Open the data directory for reading only, whoever owns it.
    pub async fn inspect(&self) -> anyhow::Result<Inspection> {
        let dir = &self.config.host.data_dir;
        if !dir.is_dir() {
            bail!("no data directory at {} yet", dir.display());
        }
        let ownership = owner::probe(dir)?;
        let mut config = self.config.store_config()?;
        config.read_only = true;
        // No database file yet reads as an empty database (a read-only open cannot create
        // one): a spool-only owner is not unhealthy for lack of a database.
        let has_database = match config.labels.configured.get(DEFAULT_LABEL) {
            Some(DbTarget::File(name)) => dir.join(name).exists(),
            _ => true,
        };
        if !has_database {
            config.labels = Labels::new().grant(DEFAULT_LABEL, DbTarget::Memory);
        }
        let store = Store::open(config)
            .await
            .with_context(|| format!("open the store in {} read-only", dir.display()))?;
        Ok(Inspection {
            store,
            ownership,
            has_database,
        })
    }

    /// For a mutating command: forward it to the owner when one runs and serves an admin
    /// socket; refuse ([`Refused`]) when one runs without; otherwise own the directory.
    pub async fn mutate(&self, command: &str) -> anyhow::Result<Mutation> {
        let dir = &self.config.host.data_dir;
        if dir.is_dir() {
            if let Ownership::Owned(record) = owner::probe(dir)? {
                return match record {
                    Some(r) if r.admin.is_some() => {
                        let path = r.admin.clone().unwrap_or_default();
                        Ok(Mutation::Forward(AdminClient::new(path), Box::new(r)))
                    }
                    other => Err(Refused(
                        edgestore_host::Error::Owned {
                            data_dir: dir.clone(),
                            owner: other,
                        }
                        .to_string(),
                    )
                    .into()),
                };
            }
        }
        Ok(Mutation::Own(self.own(command).await?))
    }
}

/// One line on stderr about who owns the directory and what its journals hold: inspection
/// shows finished segments only, so say what is not in them yet.
pub fn ownership_note(ctx: &Ctx, ownership: &Ownership, journal_rows: Option<u64>) {
    let dir = ctx.config.host.data_dir.display();
    let rows = journal_rows.unwrap_or(0);
    match ownership.owner() {
        Some(r) => eprintln!(
            "note: data directory {dir} is owned by {}; its journals hold {rows} rows not yet in segments",
            r.describe()
        ),
        None if ownership.is_owned() => eprintln!(
            "note: data directory {dir} is owned by another edgestore process; its journals hold {rows} rows not yet in segments"
        ),
        None if rows > 0 => eprintln!(
            "note: no owner is running; journals in {dir} hold {rows} rows, finished into segments by the next owner (e.g. edgestore spool flush)"
        ),
        None => {}
    }
}

/// Parse, configure and run.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_process(cli.config.as_deref(), &cli.flags())?;
    let ctx = Ctx {
        config,
        json: cli.output.json,
    };
    match cli.command {
        Command::Demo(args) => demo::run(&ctx, &args).await,
        Command::Spool(cmd) => spool::run(&ctx, cmd).await,
        Command::Erase(args) => spool::run(&ctx, spool::SpoolCommand::Erase(args)).await,
        Command::Db(cmd) => db::run(&ctx, cmd).await,
        Command::Health(args) => ops::health(&ctx, &args).await,
        Command::Diag(args) => ops::diag(&ctx, &args).await,
        Command::Metrics(args) => ops::metrics(&ctx, &args).await,
        Command::Serve(args) => ops::serve(&ctx, &args).await,
        Command::Backup(cmd) => backup::run(&ctx, cmd).await,
        Command::Audit(cmd) => audit::run(&ctx, cmd).await,
        Command::Keys(cmd) => keys::run(&ctx, cmd).await,
        Command::Restore(args) => backup::restore(&ctx, &args).await,
        // Dispatched by `main` before any runtime starts: the measurements drive their own.
        Command::Bench(_) => anyhow::bail!("edgestore bench runs outside the command runtime"),
    }
}
