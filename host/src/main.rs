//! The `edgestore` command-line tool.
//!
//! For now it runs the main job, `edgestore demo`, on the native core; the component engine and
//! the full command set arrive with the component and CLI issues.

// The CLI moves to `cli/` (one file per command group); `bench` already lives there.
#[path = "cli/bench.rs"]
mod bench;
mod demo;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Local persistence for edge and telemetry agents.
#[derive(Debug, Parser)]
#[command(name = "edgestore", version, about)]
struct Cli {
    /// Data directory: holds `edgestore.sqlite` and the `metrics/` spool.
    #[arg(long, global = true, default_value = "./edgestore-data")]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write realistic resource tags and metrics into the data directory and report what
    /// happened: transactions, rotation, compression, upload marking and purging.
    Demo(demo::DemoArgs),
    /// Measure throughput, latency, memory and start-up against the targets of issue 7 and
    /// print one table (figure, median, target, PASS/MISS); also written as JSON.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    // `edgestore bench` measures peak memory by re-running this binary as a child.
    if let Some(code) = edgestore_host::bench::memory::child_main_if_requested() {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&cli.data, &args),
        Command::Bench(args) => bench::run(&args),
    }
}
