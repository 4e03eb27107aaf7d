//! The standalone component's command entry point (`wasi:cli/run`): the `edgestore` CLI's
//! spool and db commands that make sense without a host, run on the same core and printed by
//! [`crate::present`], so `wasmtime run --dir ./data::/data edgestore-standalone.wasm spool list`
//! prints exactly what `edgestore spool list` prints for that directory.
//!
//! Paths are the guest's: the data directory is the preopened `/data` (`EDGESTORE_DATA`
//! overrides it), spools are relative directories inside it (`--path`), databases are labels
//! (`--label`, `default` = `edgestore.sqlite`).

use std::io::Write;

use clap::{Args, Parser, Subcommand};

use super::exports::wasi::cli::run::Guest as Run;
use super::repository::open_store;
use super::spool::open_spool;
use super::Component;
use crate::error::{Error, Result};
use crate::inspect::{self, Filter};
use crate::present;
use crate::spool::{SpoolConfig, TimeRange};
use crate::sql::Connection;

/// edgestore inside a WebAssembly component: inspect and maintain a data directory.
#[derive(Debug, Parser)]
#[command(name = "edgestore-standalone", version)]
struct Cli {
    /// Print reports as one JSON document instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The spool: segments, rows, usage, upload state.
    #[command(subcommand)]
    Spool(SpoolCommand),
    /// The repository database: registered models and their rows.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Debug, Args)]
struct SpoolArgs {
    /// Spool directory, relative to the data directory ("" = the data directory itself).
    #[arg(long, default_value = "")]
    path: String,
    /// Spool identifier (names segments written by `flush`).
    #[arg(long, default_value = "edgestore")]
    identifier: String,
}

#[derive(Debug, Args)]
struct RangeArgs {
    /// Only segments overlapping [from, to), UTC milliseconds.
    #[arg(long, default_value_t = i64::MIN)]
    from: i64,
    /// End of the range, UTC milliseconds (exclusive).
    #[arg(long, default_value_t = i64::MAX)]
    to: i64,
}

#[derive(Debug, Subcommand)]
enum SpoolCommand {
    /// List finished segments (pending and uploaded).
    List {
        #[command(flatten)]
        spool: SpoolArgs,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Print rows as JSON lines: of one segment, or of every segment in a time range.
    Cat {
        #[command(flatten)]
        spool: SpoolArgs,
        /// Segment file name (omit to read the time range).
        segment: Option<String>,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Check every segment's checksum; quarantine the bad ones.
    Verify {
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Files and bytes by state.
    Usage {
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Mark segments uploaded.
    Ack {
        #[command(flatten)]
        spool: SpoolArgs,
        /// Segment file names.
        #[arg(required = true)]
        segments: Vec<String>,
    },
    /// Remove expired segments and enforce the size cap (the spool's defaults).
    Purge {
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Finish the journal a crashed writer left into a segment.
    Flush {
        #[command(flatten)]
        spool: SpoolArgs,
    },
}

#[derive(Debug, Args)]
struct DbArgs {
    /// Database label (`default` is `edgestore.sqlite`, others `LABEL.sqlite`).
    #[arg(long, default_value = "default")]
    label: String,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Registered tables, their schema versions and row counts.
    Models {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Rows in a table.
    Count {
        #[command(flatten)]
        db: DbArgs,
        /// Table name.
        table: String,
    },
    /// One row by primary key (one value per key column, in key order), as a JSON line.
    Get {
        #[command(flatten)]
        db: DbArgs,
        /// Table name.
        table: String,
        /// Key values.
        #[arg(required = true)]
        key: Vec<String>,
    },
    /// Rows matching every `--where COLUMN=VALUE`, as JSON lines, in key order.
    Find {
        #[command(flatten)]
        db: DbArgs,
        /// Table name.
        table: String,
        /// `COLUMN=VALUE` filter (repeatable; all must match).
        #[arg(long = "where", value_name = "COLUMN=VALUE")]
        filters: Vec<String>,
        /// At most this many rows.
        #[arg(long)]
        limit: Option<u64>,
    },
}

impl Run for Component {
    fn run() -> std::result::Result<(), ()> {
        let cli = match Cli::try_parse_from(std::env::args()) {
            Ok(cli) => cli,
            Err(e) => {
                // Help and version go to stdout and succeed; usage errors to stderr and fail.
                let _ = e.print();
                return if e.use_stderr() { Err(()) } else { Ok(()) };
            }
        };
        match execute(&cli) {
            Ok(out) => {
                let mut stdout = std::io::stdout().lock();
                if stdout
                    .write_all(out.as_bytes())
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return Err(());
                }
                Ok(())
            }
            Err(e) => {
                eprintln!("error: {e}");
                Err(())
            }
        }
    }
}

fn spool_config(args: &SpoolArgs) -> SpoolConfig {
    SpoolConfig::new(args.identifier.clone())
}

/// Run one command; its whole output, printed only once it succeeded.
fn execute(cli: &Cli) -> Result<String> {
    let json = cli.json;
    match &cli.command {
        Command::Spool(cmd) => spool(cmd, json),
        Command::Db(cmd) => db(cmd, json),
    }
}

fn spool(cmd: &SpoolCommand, json: bool) -> Result<String> {
    Ok(match cmd {
        SpoolCommand::List { spool, range } => {
            let s = open_spool(&spool.path, spool_config(spool))?;
            present::segments(&s.segments(TimeRange::between(range.from, range.to))?, json)
        }
        SpoolCommand::Cat {
            spool,
            segment,
            range,
        } => {
            let s = open_spool(&spool.path, spool_config(spool))?;
            let mut out = String::new();
            let mut push = |docs: Vec<crate::spool::Document>| {
                for d in docs {
                    out.push_str(d.get());
                    out.push('\n');
                }
            };
            match segment {
                Some(name) => {
                    let mut r = s.read_segment(name)?;
                    loop {
                        let docs = r.next(1024)?;
                        if docs.is_empty() {
                            break;
                        }
                        push(docs);
                    }
                }
                None => {
                    let mut r = s.read_range(TimeRange::between(range.from, range.to))?;
                    loop {
                        let docs = r.next(1024)?;
                        if docs.is_empty() {
                            break;
                        }
                        push(docs);
                    }
                }
            }
            out
        }
        SpoolCommand::Verify { spool } => present::verify(
            &open_spool(&spool.path, spool_config(spool))?.verify()?,
            json,
        ),
        SpoolCommand::Usage { spool } => present::usage(
            &open_spool(&spool.path, spool_config(spool))?.usage()?,
            json,
        ),
        SpoolCommand::Ack { spool, segments } => {
            let n = open_spool(&spool.path, spool_config(spool))?.mark_uploaded(segments)?;
            present::acked(n, json)
        }
        SpoolCommand::Purge { spool } => present::purge(
            &open_spool(&spool.path, spool_config(spool))?.purge()?,
            json,
        ),
        SpoolCommand::Flush { spool } => {
            let s = open_spool(&spool.path, spool_config(spool))?;
            s.flush()?;
            present::segments(&s.segments(TimeRange::all())?, json)
        }
    })
}

/// Run `f` on the store's connection (reads only: a tool never writes rows).
fn on_db<T>(args: &DbArgs, f: impl Fn(&dyn Connection) -> Result<T>) -> Result<T> {
    let store = open_store(&args.label)?;
    let mut out = None;
    store.database().reader(&mut |c| {
        out = Some(f(c)?);
        Ok(())
    })?;
    out.ok_or_else(|| Error::internal("the database reader did not run"))
}

fn db(cmd: &DbCommand, json: bool) -> Result<String> {
    Ok(match cmd {
        DbCommand::Models { db } => present::recorded_models(&on_db(db, inspect::models)?, json),
        DbCommand::Count { db, table } => {
            let n = on_db(db, |c| inspect::count(c, table))?;
            format!("{n}\n")
        }
        DbCommand::Get { db, table, key } => {
            let row = on_db(db, |c| inspect::get(c, table, key))?;
            format!("{}\n", present::json_line(&row)?)
        }
        DbCommand::Find {
            db,
            table,
            filters,
            limit,
        } => {
            let filters = filters
                .iter()
                .map(|f| Filter::parse(f))
                .collect::<Result<Vec<_>>>()?;
            let rows = on_db(db, |c| inspect::find(c, table, &filters, *limit))?;
            let mut out = String::new();
            for row in &rows {
                out.push_str(&present::json_line(row)?);
                out.push('\n');
            }
            out
        }
    })
}
