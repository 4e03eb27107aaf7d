//! The standalone component's command entry point (`wasi:cli/run`): the `edgestore` CLI's
//! inspection and maintenance commands, parsed by the same definition
//! ([`crate::command_line`]: arguments, defaults, help), run on the same core and printed by
//! [`crate::present`], so
//! `wasmtime run --dir ./data::/data edgestore-standalone.wasm spool list` prints exactly what
//! `edgestore spool list` prints for that directory, byte for byte.
//!
//! Paths are the guest's: the data directory is the preopened `/data` (`EDGESTORE_DATA`
//! overrides it), spools are relative directories inside it (`--path`, the CLI's config
//! `storage.path`), databases are labels (`--label`, this build only: the CLI's database is
//! its configuration's).
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
//!   read-only and lists the bad segments it left in place. Bad segments fail it either way.

use std::io::{Read as _, Write};
use std::path::Path;

use clap::{Args, Parser, Subcommand};

use super::exports::wasi::cli::run::Guest as Run;
use super::spool::{inspect_spool, open_spool, spool_root};
use super::{data_root, driver, Component};
use crate::clock::{Clock as _, SystemClock};
use crate::command_line::{
    self, built_in_schema, DbCommand, Output, SpoolArgs, SpoolCommand, ERROR_PREFIX,
};
use crate::error::{Error, ErrorCode, Result};
use crate::inspect::{self, Record};
use crate::layout::DEFAULT_LABEL;
use crate::owner::{self, LockKind, OwnerRecord, LOCK_FILE};
use crate::present;
use crate::spool::{Document, Spool, SpoolConfig, TimeRange};
use crate::sql::Connection;

/// edgestore inside a WebAssembly component: inspect and maintain a data directory.
#[derive(Debug, Parser)]
#[command(name = "edgestore-standalone", version)]
struct Cli {
    #[command(flatten)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The metrics spool: list, cat, usage, verify, ack, purge, flush.
    #[command(subcommand)]
    Spool(SpoolCommand),
    /// The repository database: models, count, get, find.
    Db(Db),
}

/// `db`: which database, then the command (the edgestore CLI's `db` read commands).
#[derive(Debug, Args)]
struct Db {
    /// Database label (`default` is `edgestore.sqlite`, the edgestore CLI's database; others
    /// `LABEL.sqlite`).
    #[arg(long, global = true, default_value = DEFAULT_LABEL)]
    label: String,
    #[command(subcommand)]
    command: DbCommand,
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
                eprintln!("{ERROR_PREFIX}{e}");
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

/// The spool's configuration: the identifier, and the age identities in `EDGESTORE_KEY` (an
/// identity file's text, as the edgestore CLI takes it) to read encrypted segments. New
/// segments are encrypted to the spool's own `.recipients`.
fn spool_config(args: &SpoolArgs) -> SpoolConfig {
    let mut config = SpoolConfig::new(args.identifier.clone());
    if let Ok(text) = std::env::var(KEY_VARIABLE) {
        config.keys.identities = text;
    }
    config
}

/// The environment variable holding the identities (the same name the edgestore CLI reads).
pub(crate) const KEY_VARIABLE: &str = "EDGESTORE_KEY";

/// `edgestore-standalone spool <name>`, as the lock file names this command.
fn command_name(name: &str) -> String {
    format!("edgestore-standalone spool {name}")
}

/// Run one command; its whole output, printed only once it succeeded (see [`Failed`]).
fn execute(cli: &Cli) -> std::result::Result<String, Failed> {
    let json = cli.output.json;
    match &cli.command {
        Command::Spool(cmd) => spool(cmd, json),
        Command::Db(db) => Ok(self::db(db, json)?),
    }
}

/// Open the spool for an inspection command and say on stderr who owns the directory.
fn inspect(args: &SpoolArgs) -> Result<Spool<Document>> {
    let data = data_root();
    let holder = Holder::read(&data);
    let path = args.path_or_default();
    let s = inspect_spool(path, spool_config(args))?;
    let root = spool_root(path)?;
    note(&data, &holder, Some((&root, s.journal_rows())));
    Ok(s)
}

/// The segment file names `args` name ([`command_line::segment_name`]: bare names, or guest
/// paths into the spool directory).
fn segment_names(spool: &SpoolArgs, args: &[String]) -> Result<Vec<String>> {
    let root = spool_root(spool.path_or_default())?;
    args.iter()
        .map(|a| command_line::segment_name(a, Path::new(&root)))
        .collect()
}

/// Every row a reader yields, as JSON lines.
fn lines(mut next: impl FnMut() -> Result<Vec<Document>>) -> Result<String> {
    let mut out = String::new();
    loop {
        let docs = next()?;
        if docs.is_empty() {
            return Ok(out);
        }
        for d in docs {
            out.push_str(d.get());
            out.push('\n');
        }
    }
}

fn spool(cmd: &SpoolCommand, json: bool) -> std::result::Result<String, Failed> {
    let data = data_root();
    let args = cmd.spool();
    let path = args.path_or_default();
    Ok(match cmd {
        SpoolCommand::List { range, .. } => {
            present::segments(&inspect(args)?.segments(range.range())?, json)
        }
        SpoolCommand::Cat { segment, range, .. } => {
            let s = inspect(args)?;
            match segment {
                Some(arg) => {
                    let root = spool_root(path)?;
                    let name = command_line::segment_name(arg, Path::new(&root))?;
                    let mut r = s.read_segment(&name)?;
                    lines(|| r.next(1024))?
                }
                None => {
                    let mut r = s.read_range(range.range())?;
                    lines(|| r.next(1024))?
                }
            }
        }
        SpoolCommand::Usage { .. } => {
            present::usage(&command_line::spool_usage(inspect(args)?.usage()?), json)
        }
        SpoolCommand::Verify { .. } => return verify(&data, args, json),
        SpoolCommand::Ack { segments, .. } => {
            let _lock = OwnerLock::take_or_refuse(&data, &command_name("ack"))?;
            let names = segment_names(args, segments)?;
            let s = open_spool(path, spool_config(args))?;
            command_line::check_segments_known(&names, &s.segments(TimeRange::all())?)?;
            let n = s.mark_uploaded(&names)?;
            present::count(
                "marked uploaded",
                u64::try_from(n).unwrap_or(u64::MAX),
                json,
            )
        }
        SpoolCommand::Purge { .. } => {
            let _lock = OwnerLock::take_or_refuse(&data, &command_name("purge"))?;
            present::purge(&open_spool(path, spool_config(args))?.purge()?, json)
        }
        SpoolCommand::Flush { .. } => {
            let _lock = OwnerLock::take_or_refuse(&data, &command_name("flush"))?;
            // What was finished before this owner's recovery and flush: not reported.
            let before = match inspect_spool(path, spool_config(args)) {
                Ok(s) => s.segments(TimeRange::all())?,
                Err(e) if e.code() == ErrorCode::NotFound => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            let s = open_spool(path, spool_config(args))?;
            s.flush()?;
            let after = s.segments(TimeRange::all())?;
            present::segments(&command_line::newly_finished(&before, after), json)
        }
    })
}

/// `spool verify`: as the owner, bad segments are quarantined; beside another owner, the
/// segments are checked through an inspecting spool and the bad ones are listed and left in
/// place for the owner. Either way the report is printed and bad segments fail the command.
fn verify(data: &str, args: &SpoolArgs, json: bool) -> std::result::Result<String, Failed> {
    let path = args.path_or_default();
    let report = match OwnerLock::take(data, &command_name("verify"))? {
        Taken::Mine(_lock) => open_spool(path, spool_config(args))?.verify()?,
        Taken::Held(holder) => {
            let s = inspect_spool(path, spool_config(args))?;
            let root = spool_root(path)?;
            note(data, &holder, Some((&root, s.journal_rows())));
            s.verify()?
        }
    };
    let output = present::verify(&report, json);
    match command_line::verify_failure(&report) {
        None => Ok(output),
        Some(error) => Err(Failed { output, error }),
    }
}

/// Run `f` on a read-only connection to the database behind `label` (a tool never writes
/// rows), after saying on stderr who owns the directory. `None` when the default label has no
/// database yet: that reads as an empty database, as in the edgestore CLI (a spool-only
/// directory has none). Any other label must exist.
fn on_db<T>(label: &str, f: impl FnOnce(&dyn Connection) -> Result<T>) -> Result<Option<T>> {
    let data = data_root();
    note(&data, &Holder::read(&data), None);
    match driver::open_read_only(label) {
        Ok(conn) => f(&conn).map(Some),
        Err(e) if e.code() == ErrorCode::NotFound && label == DEFAULT_LABEL => Ok(None),
        Err(e) => Err(e),
    }
}

/// A read of `table` that found no table (or no database): a built-in model's table nothing
/// created yet reads as `empty(schema)`; any other is `table-missing`.
fn or_built_in<T>(
    table: &str,
    read: Result<Option<T>>,
    empty: impl FnOnce(&crate::model::Schema) -> Result<T>,
) -> Result<T> {
    let missing = match read {
        Ok(Some(v)) => return Ok(v),
        Ok(None) => Error::new(ErrorCode::TableMissing, format!("no model table {table:?}")),
        Err(e) if e.code() == ErrorCode::TableMissing => e,
        Err(e) => return Err(e),
    };
    match built_in_schema(table) {
        Some(schema) => empty(&schema),
        None => Err(missing),
    }
}

fn json_lines(rows: &[Record]) -> Result<String> {
    let mut out = String::new();
    for row in rows {
        out.push_str(&present::json_line(row)?);
        out.push('\n');
    }
    Ok(out)
}

fn db(db: &Db, json: bool) -> Result<String> {
    let label = db.label.as_str();
    match &db.command {
        DbCommand::Models => {
            let views = on_db(label, |c| {
                inspect::models(c)?
                    .iter()
                    .map(|m| Ok(command_line::model_view(&inspect::schema(c, &m.table)?)))
                    .collect::<Result<Vec<_>>>()
            })?;
            Ok(present::models(&views.unwrap_or_default(), json))
        }
        DbCommand::Count { table } => {
            let n = or_built_in(table, on_db(label, |c| inspect::count(c, table)), |_| Ok(0))?;
            Ok(present::count(table, n, json))
        }
        DbCommand::Get { table, keys } => {
            let rows = or_built_in(table, on_db(label, |c| inspect::get(c, table, keys)), |s| {
                let first = inspect::keys(s, keys)?.into_iter().next();
                let first = first.map(|(text, _)| text).unwrap_or_default();
                Err(Error::not_found(format!(
                    "no row in {table} with key {first} (no {table} table yet)"
                )))
            })?;
            json_lines(&rows)
        }
        DbCommand::Find {
            table,
            filters,
            limit,
        } => {
            let rows = or_built_in(
                table,
                on_db(label, |c| inspect::find(c, table, filters, *limit)),
                |s| {
                    for f in filters {
                        f.condition(s)?;
                    }
                    Ok(Vec::new())
                },
            )?;
            json_lines(&rows)
        }
    }
}
