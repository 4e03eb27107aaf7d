//! The `edgestore` command line: global options, the command tree, and the context every
//! command runs in (the loaded [`Config`] and a [`Store`] opened from it, so each command works
//! on either engine). One file per command group.

pub mod bench;
pub mod db;
pub mod demo;
pub mod input;
pub mod ops;
pub mod spool;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use edgestore_host::config::{Config, EngineKind, Flags};
use edgestore_host::Store;

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
    /// serve; camelCase keys).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (config `host.dataDir`; default ./edgestore-data): the only directory
    /// the store touches.
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Engine that runs the core (config `host.engine`; default component).
    #[arg(long, global = true, value_enum)]
    pub engine: Option<EngineKind>,
    /// Print listings and reports as JSON.
    #[arg(long, global = true)]
    pub json: bool,
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
    /// The metrics spool: put, flush, list, cat, verify, ack, purge, usage.
    #[command(subcommand)]
    Spool(spool::SpoolCommand),
    /// The repository's built-in models: models, put, get, find, count, delete.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Check the store: exit 0 when healthy, 1 with the reasons when not (database unreachable,
    /// disk above health.maxDiskUsedPercent, a transaction open too long, circuit open, data
    /// or spool directory not writable).
    Health(ops::HealthArgs),
    /// Backend, connection status, disk usage, record counts, last operation time.
    Diag(ops::DiagArgs),
    /// The store's metrics in the Prometheus text format.
    Metrics(ops::MetricsArgs),
    /// Long-running ingest (JSON lines on stdin, or --generate RATE) serving GET /metrics and
    /// GET /healthz; rotates on storage.maxInterval; flushes and exits 0 on SIGTERM/SIGINT.
    Serve(ops::ServeArgs),
    /// Measure throughput, latency, memory and start-up against the targets of issue 7 and
    /// print one table (figure, median, target, PASS/MISS); also written as JSON. Runs on its
    /// own temporary stores, never on the data directory.
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
            Command::Serve(args) => args.flags(&mut flags),
            Command::Db(_)
            | Command::Health(_)
            | Command::Diag(_)
            | Command::Metrics(_)
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

impl Ctx {
    /// Open the store the configuration describes (creating the data directory).
    pub async fn store(&self) -> anyhow::Result<Store> {
        let dir = &self.config.host.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("create data directory {}", dir.display()))?;
        let config = self.config.store_config()?;
        Store::open(config)
            .await
            .with_context(|| format!("open the store in {}", dir.display()))
    }
}

/// Parse, configure and run.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_process(cli.config.as_deref(), &cli.flags())?;
    let ctx = Ctx {
        config,
        json: cli.json,
    };
    match cli.command {
        Command::Demo(args) => demo::run(&ctx, &args).await,
        Command::Spool(cmd) => spool::run(&ctx, cmd).await,
        Command::Db(cmd) => db::run(&ctx, cmd).await,
        Command::Health(args) => ops::health(&ctx, &args).await,
        Command::Diag(args) => ops::diag(&ctx, &args).await,
        Command::Metrics(args) => ops::metrics(&ctx, &args).await,
        Command::Serve(args) => ops::serve(&ctx, &args).await,
        // Dispatched by `main` before any runtime starts: the measurements drive their own.
        Command::Bench(_) => anyhow::bail!("edgestore bench runs outside the command runtime"),
    }
}
