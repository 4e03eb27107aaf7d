//! The standalone component's command entry point (`wasi:cli/run`): the `edgestore` CLI's
//! spool and db commands that make sense without a host, with the CLI's arguments and defaults,
//! run on the same core and printed by [`crate::present`], so
//! `wasmtime run --dir ./data::/data edgestore-standalone.wasm spool list` prints exactly what
//! `edgestore spool list` prints for that directory.
//!
//! Shared with the `edgestore` CLI, from the core: the layout's defaults ([`crate::layout`]:
//! spool `metrics`, identifier `agent`, `default` = `edgestore.sqlite`), times
//! ([`Timestamp::parse_arg`]: `--since`/`--until` in RFC3339 or UTC ms), `resource_tags` keys
//! ([`crate::ResourceTags::parse_key`]) and `--where` typing ([`inspect::Filter`]).
//!
//! Paths are the guest's: the data directory is the preopened `/data` (`EDGESTORE_DATA`
//! overrides it), spools are relative directories inside it (`--path`, the CLI's config
//! `storage.path`), databases are labels (`--label`).
//!
//! One owner writes a data directory ([`crate::owner`]); the commands respect it:
//! * inspection (`spool list|cat|usage`, `db models|count|get|find`) never writes: the spool is
//!   opened without recovery (`Spool::inspect`: a journal another process is still appending to
//!   stays as it is), the database read-only ([`super::driver::open_read_only`]). When the
//!   directory has an owner, or journals wait for one, one `note:` line on stderr says so;
//!   stdout is exactly what `edgestore::present` prints.
//! * mutations (`spool ack|purge|flush`) take ownership first: WASI has no file locks, so the
//!   lock file's existence is the lock ([`OwnerLock`]: `create_new`, an [`OwnerRecord`] with
//!   [`LockKind::File`], removed when the command ends, failed or not). An existing lock file
//!   refuses the command with nothing touched, naming the holder and the file to remove should
//!   the holder be dead (nothing inside WASI can tell).
//! * `spool verify` quarantines bad segments as the owner; beside another owner it checks
//!   read-only, lists the bad segments it left in place and fails.

use std::io::{Read as _, Write};

use clap::{Args, Parser, Subcommand};

use super::exports::wasi::cli::run::Guest as Run;
use super::spool::{inspect_spool, open_spool, spool_root};
use super::{data_root, driver, Component};
use crate::clock::{Clock as _, SystemClock};
use crate::error::{Error, Result};
use crate::inspect::{self, Filter};
use crate::layout::{DEFAULT_IDENTIFIER, DEFAULT_LABEL, DEFAULT_SPOOL_PATH};
use crate::model::Timestamp;
use crate::owner::{self, LockKind, OwnerRecord, LOCK_FILE};
use crate::present;
use crate::spool::{Document, Spool, SpoolConfig, TimeRange};
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
    /// Spool directory, relative to the data directory (config `storage.path` in the edgestore
    /// CLI).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SPOOL_PATH)]
    path: String,
    /// First component of segment names written by `flush`.
    #[arg(long, default_value = DEFAULT_IDENTIFIER)]
    identifier: String,
}

#[derive(Debug, Args)]
struct RangeArgs {
    /// Only segments ending at or after T (RFC3339, or UTC milliseconds).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    since: Option<i64>,
    /// Only segments starting before T (RFC3339, or UTC milliseconds).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    until: Option<i64>,
}

impl RangeArgs {
    fn range(&self) -> TimeRange {
        TimeRange {
            from_ms: self.since,
            to_ms: self.until,
        }
    }
}

/// `--since`/`--until`: the core's command-line time ([`Timestamp::parse_arg`]).
fn parse_time(text: &str) -> std::result::Result<i64, String> {
    Timestamp::parse_arg(text)
        .map(|t| t.0)
        .map_err(|e| e.message().to_owned())
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
    /// Print rows as JSON lines, exactly as stored: of one segment, or of every segment in a
    /// time range.
    Cat {
        #[command(flatten)]
        spool: SpoolArgs,
        /// Segment file name (omit to read the time range).
        segment: Option<String>,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Check every segment's checksum; quarantine the bad ones (beside another owner of the
    /// data directory: list them, left in place, and fail).
    Verify {
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Files and bytes by state.
    Usage {
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Mark segments uploaded (moves them to `uploaded/`, where retention deletes them).
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
    /// Database label (`default` is `edgestore.sqlite`, the edgestore CLI's database; others
    /// `LABEL.sqlite`).
    #[arg(long, default_value = DEFAULT_LABEL)]
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
    /// Print rows by key as JSON lines. resource_tags keys: TYPE/NAMESPACE/NAME, or
    /// TYPE/NAME for a cluster-scoped resource (e.g. pod/prod/web-0, node/worker-1); other
    /// tables: one key, one value per key column in key order.
    Get {
        #[command(flatten)]
        db: DbArgs,
        /// Table name.
        table: String,
        /// Keys (resource_tags), or the key's column values (other tables).
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Print rows matching every --where as JSON lines, in key order.
    Find {
        #[command(flatten)]
        db: DbArgs,
        /// Table name.
        table: String,
        /// `column=value` (repeatable; all must hold). `column=null` matches NULL. Integer and
        /// real columns take numbers, bool columns true/false/1/0, timestamp columns RFC3339 or
        /// UTC milliseconds, JSON columns a JSON document.
        #[arg(long = "where", value_name = "COL=VALUE")]
        filters: Vec<String>,
        /// At most N rows.
        #[arg(long, value_name = "N")]
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
        let (out, failure) = match execute(&cli) {
            Ok(out) => (out, None),
            Err(Failed { output, error }) => (output, Some(error)),
        };
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Err(());
        }
        match failure {
            None => Ok(()),
            Some(e) => {
                eprintln!("error: {e}");
                Err(())
            }
        }
    }
}

/// A failed command: the error, and the report it still prints (`verify` beside an owner
/// prints what it found, then fails because bad segments were left in place). Any other
/// failure prints nothing on stdout.
struct Failed {
    output: String,
    error: Error,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            output: String::new(),
            error,
        }
    }
}

/// How lock-file reads are bounded: a record is one short JSON line.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Who holds the data directory's lock file.
#[derive(Debug)]
enum Holder {
    /// No lock file: nobody owns the directory.
    Nobody,
    /// A lock file whose record is empty or does not parse (an owner between creating and
    /// writing it, or a file that is not ours): still a holder.
    Unknown,
    /// A lock file naming its owner.
    Known(OwnerRecord),
}

impl Holder {
    /// Read the lock file in the data directory `data`. One that exists but cannot be read is
    /// held by someone unknown.
    fn read(data: &str) -> Holder {
        let file = match std::fs::File::open(lock_path(data)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Holder::Nobody,
            Err(_) => return Holder::Unknown,
        };
        let mut bytes = Vec::new();
        if file.take(MAX_RECORD_BYTES).read_to_end(&mut bytes).is_err() {
            return Holder::Unknown;
        }
        match OwnerRecord::parse(&bytes) {
            Ok(Some(r)) => Holder::Known(r),
            Ok(None) | Err(_) => Holder::Unknown,
        }
    }

    fn record(&self) -> Option<&OwnerRecord> {
        match self {
            Holder::Known(r) => Some(r),
            Holder::Nobody | Holder::Unknown => None,
        }
    }

    /// Who, for a message: `edgestore serve (pid 42, since ...)`.
    fn describe(&self) -> String {
        match self {
            Holder::Known(r) => r.describe(),
            Holder::Nobody | Holder::Unknown => "an unknown holder".to_owned(),
        }
    }

    /// The refusal of a mutating command: `busy`, naming the holder and the file to remove if
    /// it is dead (inside WASI nothing can tell a live holder from a dead one).
    fn refusal(&self, data: &str) -> Error {
        let path = lock_path(data);
        let mut hint = String::new();
        if self.record().is_none() {
            hint.push_str(&format!(
                "{path} exists but holds no readable owner record (an unknown holder); "
            ));
        }
        if self.record().is_some_and(|r| r.admin.is_some()) {
            hint.push_str(
                "stop it, run the command with the native edgestore CLI (which forwards it to \
                 the owner), ",
            );
        } else {
            hint.push_str("stop it, ");
        }
        hint.push_str(&format!("or if it is no longer running remove {path}"));
        owner::owned_error(data, self.record(), &hint)
    }
}

fn lock_path(data: &str) -> String {
    format!("{data}/{LOCK_FILE}")
}

/// This command's ownership of the data directory. Inside WASI there are no file locks: the
/// lock file's existence is the lock, created with `create_new` (exactly one process wins),
/// holding this command's [`OwnerRecord`] ([`LockKind::File`]), and removed on drop, so also
/// when the command failed. A killed command leaves the file: the next one names it.
struct OwnerLock {
    path: String,
    /// What this command wrote: only a file still holding it is removed.
    bytes: Vec<u8>,
}

/// What taking ownership found.
enum Taken {
    /// This command owns the directory until the lock is dropped.
    Mine(OwnerLock),
    /// Someone else holds it; nothing was touched.
    Held(Holder),
}

impl OwnerLock {
    /// Take the data directory `data` for `command` (`edgestore-standalone spool flush`).
    fn take(data: &str, command: &str) -> Result<Taken> {
        let path = lock_path(data);
        let mut attempts = 0;
        let mut file = loop {
            attempts += 1;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => break f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    match Holder::read(data) {
                        // Removed between the two calls (its owner ended): try again.
                        Holder::Nobody if attempts < 3 => continue,
                        Holder::Nobody => return Ok(Taken::Held(Holder::Unknown)),
                        holder => return Ok(Taken::Held(holder)),
                    }
                }
                Err(e) => return Err(Error::io(format!("create the lock file {path}"), e)),
            }
        };
        let record = OwnerRecord {
            pid: None,
            command: command.to_owned(),
            since_ms: SystemClock.now_ms(),
            admin: None,
            lock: LockKind::File,
        };
        let bytes = record.to_bytes();
        if let Err(e) = file.write_all(&bytes).and_then(|()| file.flush()) {
            // Created by this call a moment ago: it is ours to remove.
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(Error::io(format!("write the owner record to {path}"), e));
        }
        Ok(Taken::Mine(OwnerLock { path, bytes }))
    }

    /// Take the directory, or refuse (`busy`) naming who holds it.
    fn take_or_refuse(data: &str, command: &str) -> Result<OwnerLock> {
        match OwnerLock::take(data, command)? {
            Taken::Mine(lock) => Ok(lock),
            Taken::Held(holder) => Err(holder.refusal(data)),
        }
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        // Only a file that still holds this command's record is removed: one removed by hand
        // and taken by another owner meanwhile is that owner's lock now.
        match std::fs::read(&self.path) {
            Ok(bytes) if bytes == self.bytes => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    eprintln!(
                        "warning: could not remove the lock file {}: {e}; remove it before the next mutating command",
                        self.path
                    );
                }
            }
            Ok(_) => eprintln!(
                "warning: {} no longer holds this command's owner record: left in place",
                self.path
            ),
            Err(_) => {}
        }
    }
}

/// The `note:` line of an inspection on stderr: who owns the data directory and, for a spool,
/// how many rows its journals hold that the listing (finished segments only) does not show.
/// Nothing when nobody owns it and no journal waits.
fn note(data: &str, holder: &Holder, journals: Option<(&str, Result<u64>)>) {
    let line = match (holder, journals) {
        (Holder::Nobody, Some((root, Ok(rows)))) if rows > 0 => format!(
            "note: no owner is running; journals in {root} hold {rows} rows, finished into \
             segments by the next owner (e.g. edgestore-standalone spool flush)"
        ),
        (Holder::Nobody, _) => return,
        (_, None) => format!(
            "note: data directory {data} is owned by {}; reading without writing",
            holder.describe()
        ),
        (_, Some((_, Ok(rows)))) => format!(
            "note: data directory {data} is owned by {}; its journals hold {rows} rows not yet \
             in segments",
            holder.describe()
        ),
        (_, Some((_, Err(e)))) => format!(
            "note: data directory {data} is owned by {}; its journals' rows could not be \
             counted: {e}",
            holder.describe()
        ),
    };
    eprintln!("{line}");
}

fn spool_config(args: &SpoolArgs) -> SpoolConfig {
    SpoolConfig::new(args.identifier.clone())
}

/// `edgestore-standalone spool <name>`, as the lock file names this command.
fn command_name(name: &str) -> String {
    format!("edgestore-standalone spool {name}")
}

/// Run one command; its whole output, printed only once it succeeded (see [`Failed`]).
fn execute(cli: &Cli) -> std::result::Result<String, Failed> {
    let json = cli.json;
    match &cli.command {
        Command::Spool(cmd) => spool(cmd, json),
        Command::Db(cmd) => Ok(db(cmd, json)?),
    }
}

/// Open the spool for an inspection command and say on stderr who owns the directory.
fn inspect(args: &SpoolArgs) -> Result<Spool<Document>> {
    let data = data_root();
    let holder = Holder::read(&data);
    let s = inspect_spool(&args.path, spool_config(args))?;
    let root = spool_root(&args.path)?;
    note(&data, &holder, Some((&root, s.journal_rows())));
    Ok(s)
}

fn spool(cmd: &SpoolCommand, json: bool) -> std::result::Result<String, Failed> {
    let data = data_root();
    Ok(match cmd {
        SpoolCommand::List { spool, range } => {
            let s = inspect(spool)?;
            present::segments(&s.segments(range.range())?, json)
        }
        SpoolCommand::Cat {
            spool,
            segment,
            range,
        } => {
            let s = inspect(spool)?;
            let mut out = String::new();
            let mut push = |docs: Vec<Document>| {
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
                    let mut r = s.read_range(range.range())?;
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
        SpoolCommand::Usage { spool } => present::usage(&inspect(spool)?.usage()?, json),
        SpoolCommand::Verify { spool } => return verify(&data, spool, json),
        SpoolCommand::Ack { spool, segments } => {
            let _lock = OwnerLock::take_or_refuse(&data, &command_name("ack"))?;
            let s = open_spool(&spool.path, spool_config(spool))?;
            // As the edgestore CLI: every name must be a finished segment, or nothing moves.
            let known = s.segments(TimeRange::all())?;
            if let Some(missing) = segments
                .iter()
                .find(|n| !known.iter().any(|k| &k.name == *n))
            {
                return Err(Error::not_found(format!("no such segment: {missing}")).into());
            }
            let n = s.mark_uploaded(segments)?;
            present::count(
                "marked uploaded",
                u64::try_from(n).unwrap_or(u64::MAX),
                json,
            )
        }
        SpoolCommand::Purge { spool } => {
            let _lock = OwnerLock::take_or_refuse(&data, &command_name("purge"))?;
            present::purge(
                &open_spool(&spool.path, spool_config(spool))?.purge()?,
                json,
            )
        }
        SpoolCommand::Flush { spool } => {
            let _lock = OwnerLock::take_or_refuse(&data, &command_name("flush"))?;
            let s = open_spool(&spool.path, spool_config(spool))?;
            s.flush()?;
            present::segments(&s.segments(TimeRange::all())?, json)
        }
    })
}

/// `spool verify`: as the owner, bad segments are quarantined (as before); beside another
/// owner, the segments are checked through an inspecting spool, the bad ones are listed and
/// left in place for the owner, and the command fails.
fn verify(data: &str, args: &SpoolArgs, json: bool) -> std::result::Result<String, Failed> {
    match OwnerLock::take(data, &command_name("verify"))? {
        Taken::Mine(_lock) => Ok(present::verify(
            &open_spool(&args.path, spool_config(args))?.verify()?,
            json,
        )),
        Taken::Held(holder) => {
            let s = inspect_spool(&args.path, spool_config(args))?;
            let root = spool_root(&args.path)?;
            note(data, &holder, Some((&root, s.journal_rows())));
            let report = s.verify()?;
            let output = present::verify(&report, json);
            if report.left_in_place.is_empty() {
                return Ok(output);
            }
            let error = Error::corrupt(format!(
                "{} bad segment(s) left in place for the owner ({}) to quarantine: {}",
                report.left_in_place.len(),
                holder.describe(),
                report.left_in_place.join(", ")
            ));
            Err(Failed { output, error })
        }
    }
}

/// Run `f` on a read-only connection to the database behind `args.label` (a tool never
/// writes rows), after saying on stderr who owns the directory.
fn on_db<T>(args: &DbArgs, f: impl FnOnce(&dyn Connection) -> Result<T>) -> Result<T> {
    let data = data_root();
    note(&data, &Holder::read(&data), None);
    let conn = driver::open_read_only(&args.label)?;
    f(&conn)
}

fn db(cmd: &DbCommand, json: bool) -> Result<String> {
    Ok(match cmd {
        DbCommand::Models { db } => present::recorded_models(&on_db(db, inspect::models)?, json),
        DbCommand::Count { db, table } => {
            present::count(table, on_db(db, |c| inspect::count(c, table))?, json)
        }
        DbCommand::Get { db, table, keys } => {
            let rows = on_db(db, |c| inspect::get(c, table, keys))?;
            let mut out = String::new();
            for row in &rows {
                out.push_str(&present::json_line(row)?);
                out.push('\n');
            }
            out
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
