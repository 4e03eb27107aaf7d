//! The standalone world's driver: SQLite compiled into the component (the core's rusqlite
//! driver, bundled SQLite built for WASI) on database files in the data directory, and no
//! capacity (WASI 0.2 cannot tell a file system's size), and segments compressed in the
//! component (it runs under any WASI host). The plugin world's counterpart, with the same
//! `open`, `capacity` and `compressor`, is `sqlite.rs` (`open_read_only` serves the command
//! entry point).
//!
//! A label names a file directly inside the data directory by the core's rule
//! ([`crate::layout::label_file`]): `default` is `edgestore.sqlite` (the host's default grant),
//! any other label `LABEL.sqlite`. So a data directory written natively, through the plugin or
//! through this component is the same directory.
//!
//! Locking inside WASI: SQLite's WASI build has no shared memory and locks with a dot-file, so
//! the connection takes `locking_mode = EXCLUSIVE` first (the only way WAL works without shared
//! memory: the WAL index lives on the heap) and then `journal_mode = WAL`. The lock is held
//! while the store is open: another process (a native reader, a second instance) waits until
//! this instance closes its store. A killed instance leaves the lock (`FILE.lock`, a directory)
//! behind: the database itself is sound (atomic commits), and the next open fails `busy` with
//! a message naming the lock to remove. WAL rather than the rollback journal: see
//! ARCHITECTURE.md ("The standalone component") for the measurement.
//!
//! Inspection opens read-only ([`open_read_only`]): what a reader can and cannot avoid writing
//! inside WASI is explained there.

use std::io;
use std::path::Path;

use crate::dir::Capacity;
use crate::error::{Error, ErrorCode, Result};
use crate::layout::label_file;
use crate::model::Value;
use crate::sql::sqlite::rusqlite::{self, OpenFlags};
use crate::sql::sqlite::{cipher, translate, SqliteConnection};
use crate::sql::{Connection, RetryPolicy};

/// The journal mode the component sets after exclusive locking: `WAL` unless
/// `EDGESTORE_JOURNAL` names another (`DELETE`, `TRUNCATE`, `PERSIST`), which is how the
/// measurement in ARCHITECTURE.md compares them.
fn journal_mode() -> Result<String> {
    match std::env::var("EDGESTORE_JOURNAL") {
        Err(_) => Ok("WAL".to_owned()),
        Ok(mode) => {
            let upper = mode.to_ascii_uppercase();
            match upper.as_str() {
                "WAL" | "DELETE" | "TRUNCATE" | "PERSIST" => Ok(upper),
                _ => Err(Error::invalid_input(format!(
                    "EDGESTORE_JOURNAL={mode:?}: expected WAL, DELETE, TRUNCATE or PERSIST"
                ))),
            }
        }
    }
}

/// The guest path of the database behind `label` ([`label_file`], which checks the label).
fn database_path(label: &str) -> Result<String> {
    Ok(format!("{}/{}", super::data_root(), label_file(label)?))
}

/// Open the database behind `label` in the data directory (created if missing), exclusively
/// locked, in WAL (see the module note).
pub fn open(label: &str) -> Result<SqliteConnection> {
    let path = database_path(label)?;
    refuse_encryption(&path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let raw = rusqlite::Connection::open_with_flags(&path, flags).map_err(translate)?;
    // An encrypted file is `key-missing` here, never "not a database" (`corrupt`).
    cipher::apply(&raw, Path::new(&path), &[])?;
    let conn = SqliteConnection::new(raw, RetryPolicy::default())?;
    conn.execute("PRAGMA locking_mode = EXCLUSIVE", &[])?;
    let wanted = journal_mode()?;
    // The first statement that reads the file takes the (exclusive, dot-file) lock.
    conn.execute(&format!("PRAGMA journal_mode = {wanted}"), &[])
        .map_err(|e| explain_lock(e, &path))?;
    let got = conn.query("PRAGMA journal_mode", &[])?;
    let got = got
        .first()
        .and_then(|row| row.first())
        .and_then(|v| match v {
            Value::Text(t) => Some(t.to_ascii_uppercase()),
            _ => None,
        });
    if got.as_deref() != Some(wanted.as_str()) {
        return Err(Error::internal(format!(
            "{path}: SQLite kept journal mode {got:?} instead of {wanted}"
        )));
    }
    Ok(conn)
}

/// Open the database behind `label` for reading only (the inspection commands): it must exist
/// (nothing is created), every write is refused (`permission-denied`), and the database file,
/// its WAL and its journal mode are never written.
///
/// What works for a reader inside WASI: SQLite's WASI build has no shared memory, so a file in
/// WAL mode opens only with `locking_mode = EXCLUSIVE` (the WAL index is then built on the heap
/// from the `-wal` file, read-only too); a normal-locking reader fails its first read with
/// `SQLITE_CANTOPEN`. So the reader takes exclusive locking like the writer, on a
/// `SQLITE_OPEN_READ_ONLY` connection made [`SqliteConnection::into_read_only`] (`query_only`,
/// no checkpoint on close), and leaves the journal mode as the file has it. What it still
/// touches, besides reading:
/// * the dot-file lock: dot-file locking has no shared level, so the reader's lock is the same
///   `FILE.lock` directory a writer takes, created on the first read and removed on close. A
///   reader and a running standalone writer exclude each other; the reader is then refused
///   with the message naming the lock ([`explain_lock`]);
/// * an empty `-wal`, when the file is in WAL mode and has none (its last writer closed
///   cleanly): SQLite opens the WAL with create. It is left in place: an empty WAL holds
///   nothing and the next writer uses or removes it, while removing it could pull it from
///   under a native writer that started meanwhile (it does not see the dot-file lock).
///
/// A native writer (POSIX locks, shared-memory WAL index) does not see the reader either: the
/// reader reads the commits in the `-wal` as they were when it opened. Should the writer
/// checkpoint and restart its WAL during that read, this one command may fail or read pages of
/// two versions; the writer and its data are never affected.
pub fn open_read_only(label: &str) -> Result<SqliteConnection> {
    let path = database_path(label)?;
    match std::fs::metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::not_found(format!(
                "no database {path} (label {label:?}): nothing has written it yet"
            )));
        }
        Err(e) => return Err(Error::io(format!("stat {path}"), e)),
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let raw = rusqlite::Connection::open_with_flags(&path, flags).map_err(translate)?;
    cipher::apply(&raw, Path::new(&path), &[])?;
    let conn = SqliteConnection::new(raw, RetryPolicy::default())?.into_read_only()?;
    conn.execute("PRAGMA locking_mode = EXCLUSIVE", &[])?;
    // The first read takes the (dot-file) lock and, in WAL mode, reads the WAL.
    conn.query("SELECT count(*) FROM sqlite_schema", &[])
        .map_err(|e| explain_lock(e, &path))?;
    Ok(conn)
}

/// SQLite compiled to WebAssembly has no SQLCipher: when the environment carries a key (the
/// edgestore CLI would encrypt the database with it), writing is refused rather than done in
/// plaintext.
fn refuse_encryption(path: &str) -> Result<()> {
    let keyed = std::env::var(super::command::KEY_VARIABLE)
        .is_ok_and(|text| text.contains("AGE-SECRET-KEY-1"));
    if keyed {
        return Err(Error::invalid_input(format!(
            "{path}: the standalone component cannot encrypt databases (its SQLite has no \
             SQLCipher), and {} holds a key, so it does not write the database in plaintext: \
             use the edgestore CLI (native or plugin engine), or unset {}",
            super::command::KEY_VARIABLE,
            super::command::KEY_VARIABLE
        )));
    }
    Ok(())
}

/// A `busy` open, explained: the dot-file lock `FILE.lock` is held by another instance, or was
/// left by one that crashed (a killed process cannot remove it; nothing in WASI can tell a live
/// holder from a dead one, so removing it is the operator's call).
fn explain_lock(e: Error, path: &str) -> Error {
    let lock = format!("{path}.lock");
    if e.code() != ErrorCode::Busy || std::fs::metadata(&lock).is_err() {
        return e;
    }
    Error::new(
        ErrorCode::Busy,
        format!(
            "{path} is locked by another edgestore instance ({lock} exists); if none is \
             running (one crashed), remove {lock} and retry: {e}"
        ),
    )
}

/// WASI 0.2 has no call for a file system's size: capacity is unknown (the spool's byte cap
/// still applies; only the free-space guard is off).
pub fn capacity() -> io::Result<Option<Capacity>> {
    Ok(None)
}

/// Segments are compressed here, in the component: a plain WASI host has no compression import.
pub fn compressor() -> crate::spool::compress::Compressor {
    crate::spool::compress::Compressor::local()
}
