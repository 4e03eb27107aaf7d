//! `edgestore bench`: measure every performance figure against its target and print one table
//! (figure, median, target, PASS/MISS), writing the same to a JSON report. The measuring itself
//! lives in `edgestore_host::bench`, shared with the criterion benches.

use std::path::{Path, PathBuf};

use anyhow::Context;
use edgestore_host::bench::{self, Mode};

/// Options of `edgestore bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Small sizes and single reps: proves the machinery in seconds; its numbers are not the
    /// figures the targets are set for.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON report (default: `bench-report.json` in `$CARGO_TARGET_DIR`,
    /// else in the nearest `target/` directory above the current one, else `./target`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Measure only these groups (repeatable; default all). A partial report is marked so.
    #[arg(long, value_enum)]
    only: Vec<bench::Group>,
}

/// Run the report.
pub fn run(args: &BenchArgs, json: bool) -> anyhow::Result<()> {
    let mode = if args.quick { Mode::Quick } else { Mode::Full };
    let report = bench::run(mode, &args.only, |f| {
        let value = f.value.map_or_else(|| "-".into(), |v| format!("{v:.4}"));
        eprintln!("measured {} = {value} {}", f.figure, f.unit);
    })?;
    let out = match &args.out {
        Some(p) => p.clone(),
        None => default_out()?,
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    std::fs::write(&out, report.render(true))
        .with_context(|| format!("write {}", out.display()))?;
    print!("{}", report.render(json));
    eprintln!("report written to {}", out.display());
    Ok(())
}

/// `$CARGO_TARGET_DIR/bench-report.json`, else the nearest `target/` beside a `Cargo.toml` in
/// the current directory or above, else `./target/bench-report.json`.
fn default_out() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(Path::new(&dir).join("bench-report.json"));
    }
    let cwd = std::env::current_dir().context("read the current directory")?;
    let found = cwd
        .ancestors()
        .find(|d| d.join("Cargo.toml").is_file() && d.join("target").is_dir())
        .map(|d| d.join("target"));
    Ok(found
        .unwrap_or_else(|| cwd.join("target"))
        .join("bench-report.json"))
}
