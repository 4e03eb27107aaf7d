//! The `edgestore` command-line tool.
//!
//! For now it runs the main job, `edgestore demo`, on the native core; the component engine and
//! the full command set arrive with the component and CLI issues.

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&cli.data, &args),
    }
}
