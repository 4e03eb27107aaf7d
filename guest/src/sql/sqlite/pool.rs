//! [`SqliteDatabase`]: the native [`Database`]: one writer connection and a pool of readers.
//!
//! DSNs:
//! - `:memory:`: a private in-memory database. Every connection would be a different database,
//!   so there are no readers: everything runs on the writer.
//! - `file:NAME?mode=memory&cache=shared`: one in-memory database shared by every connection of
//!   the process that uses the same URI (it lives while one of them is open). Readers are pooled.
//! - anything else starting with `file:` is a URI; any other string is a file path. Files use WAL
//!   so readers never block the writer.
//!
//! `max_connections` counts the writer: the reader pool holds `max_connections - 1` (at least
//! one), opened lazily. A transaction pins the writer for its whole life.

use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::OpenFlags;

use super::connection::SqliteConnection;
use super::errors::translate;
use crate::error::{Error, ErrorCode, Result};
use crate::sql::{Connection, Database, RetryPolicy, WriterLock};

/// How to open a [`SqliteDatabase`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `:memory:`, a `file:` URI, or a path.
    pub dsn: String,
    /// Writer plus readers (the config's `maxConnections`); at least 2 for a separate reader.
    pub max_connections: u32,
    /// Busy retry of every statement.
    pub retry: RetryPolicy,
    /// Bytes of a file database each connection reads through a memory map (`PRAGMA
    /// mmap_size`; 0 turns it off). Reads then come from the OS page cache without a
    /// `pread` per page, and all connections share those pages instead of each caching its
    /// own copy: a get by key on a database larger than SQLite's per-connection cache drops
    /// from several system calls to none. The map is address space, not private memory.
    pub mmap_size: u64,
}

/// Default [`SqliteOptions::mmap_size`]: 64 MiB (a 32-bit device that cannot map it falls
/// back to ordinary reads).
pub const DEFAULT_MMAP_SIZE: u64 = 64 << 20;

impl SqliteOptions {
    /// Defaults for `dsn`: 10 connections, default retry.
    pub fn new(dsn: &str) -> Self {
        SqliteOptions {
            dsn: dsn.to_owned(),
            max_connections: 10,
            retry: RetryPolicy::default(),
            mmap_size: DEFAULT_MMAP_SIZE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PrivateMemory,
    SharedMemory,
    File,
}

fn kind_of(dsn: &str) -> Kind {
    if dsn == ":memory:" || dsn.is_empty() {
        Kind::PrivateMemory
    } else if dsn.starts_with("file:") && dsn.contains("mode=memory") {
        Kind::SharedMemory
    } else {
        Kind::File
    }
}

struct Readers {
    idle: Vec<SqliteConnection>,
    opened: usize,
}

/// The native pooled database.
pub struct SqliteDatabase {
    options: SqliteOptions,
    kind: Kind,
    writer: WriterLock<SqliteConnection>,
    readers: Mutex<Readers>,
    available: Condvar,
    max_readers: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a transaction rolled it back on unwind; the connection is fine to reuse.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteDatabase {
    /// Open with default options.
    pub fn open(dsn: &str) -> Result<Self> {
        Self::open_with(SqliteOptions::new(dsn))
    }

    /// Open the writer (readers open on demand). Files are switched to WAL here.
    pub fn open_with(options: SqliteOptions) -> Result<Self> {
        let kind = kind_of(&options.dsn);
        let writer = open_connection(&options, kind, false)?;
        if kind == Kind::File {
            writer.execute("PRAGMA journal_mode = WAL", &[])?;
        }
        let max_readers = match kind {
            Kind::PrivateMemory => 0,
            _ => usize::try_from(options.max_connections.saturating_sub(1).max(1)).unwrap_or(1),
        };
        Ok(SqliteDatabase {
            options,
            kind,
            writer: WriterLock::new(writer),
            readers: Mutex::new(Readers {
                idle: Vec::new(),
                opened: 0,
            }),
            available: Condvar::new(),
            max_readers,
        })
    }

    /// Connections open now: the writer and the readers opened so far.
    pub fn open_connections(&self) -> usize {
        1 + lock(&self.readers).opened
    }

    /// The DSN this database was opened with.
    pub fn dsn(&self) -> &str {
        &self.options.dsn
    }

    fn checkout_reader(&self) -> Result<SqliteConnection> {
        let mut state = lock(&self.readers);
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(conn);
            }
            if state.opened < self.max_readers {
                state.opened += 1;
                drop(state);
                return open_connection(&self.options, self.kind, true).inspect_err(|_| {
                    lock(&self.readers).opened -= 1;
                });
            }
            state = self
                .available
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn checkin_reader(&self, conn: SqliteConnection) {
        lock(&self.readers).idle.push(conn);
        self.available.notify_one();
    }
}

impl Database for SqliteDatabase {
    fn writer(&self, f: &mut dyn FnMut(&dyn Connection) -> Result<()>) -> Result<()> {
        self.writer.with(|conn| {
            if !conn.is_autocommit() {
                // Left open by a failure we could not roll back (e.g. a failed ROLLBACK): never
                // let the next caller's work join someone else's transaction.
                conn.execute("ROLLBACK", &[])?;
            }
            f(conn)
        })
    }

    fn writer_in_transaction(
        &self,
        f: &mut dyn FnMut(&dyn Connection) -> Result<()>,
    ) -> Result<()> {
        // The explicit transaction left open by `Store::begin` is the point: keep it.
        self.writer.with(|conn| f(conn))
    }

    fn reader(&self, f: &mut dyn FnMut(&dyn Connection) -> Result<()>) -> Result<()> {
        if self.max_readers == 0 {
            return self.writer(f);
        }
        let checkout = Checkout {
            db: self,
            conn: Some(self.checkout_reader()?),
        };
        match &checkout.conn {
            Some(conn) => f(conn),
            None => Err(Error::internal("reader checkout lost its connection")),
        }
    }
}

/// A checked-out reader that returns to the pool on drop, also when the closure panics, so a
/// panic cannot shrink the pool and leave later readers waiting forever.
struct Checkout<'a> {
    db: &'a SqliteDatabase,
    conn: Option<SqliteConnection>,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.db.checkin_reader(conn);
        }
    }
}

fn open_connection(options: &SqliteOptions, kind: Kind, reader: bool) -> Result<SqliteConnection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if options.dsn.starts_with("file:") {
        flags |= OpenFlags::SQLITE_OPEN_URI;
    }
    let raw = match kind {
        Kind::PrivateMemory => rusqlite::Connection::open_in_memory(),
        _ => rusqlite::Connection::open_with_flags(&options.dsn, flags),
    };
    let raw = raw.map_err(|e| diagnose_open(&options.dsn, kind, translate(e)))?;
    let conn = SqliteConnection::new(raw, options.retry)?;
    if kind == Kind::File {
        // A pragma result row is returned (the size in force): `query`, not `execute`.
        conn.query(&format!("PRAGMA mmap_size = {}", options.mmap_size), &[])?;
    }
    if reader && kind == Kind::File {
        conn.execute("PRAGMA query_only = ON", &[])?;
    }
    Ok(conn)
}

/// SQLite says only "unable to open database file"; ask the OS why, so a read-only directory
/// reads `permission-denied` and a missing one `not-found`.
fn diagnose_open(dsn: &str, kind: Kind, err: Error) -> Error {
    if kind != Kind::File || dsn.starts_with("file:") || err.code() != ErrorCode::Io {
        return err;
    }
    let path = Path::new(dsn);
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Err(io) => Error::io(format!("open database {dsn}"), io),
        Ok(_) => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{with_reader, with_writer};

    #[test]
    fn private_memory_uses_the_writer_for_reads() {
        let db = SqliteDatabase::open(":memory:").unwrap();
        with_writer(&db, |c| c.execute("CREATE TABLE t(x)", &[])).unwrap();
        let rows = with_reader(&db, |c| c.query("SELECT count(*) FROM t", &[])).unwrap();
        assert_eq!(rows, vec![vec![crate::model::Value::Integer(0)]]);
    }

    #[test]
    fn file_uses_wal_and_read_only_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite");
        let db = SqliteDatabase::open(path.to_str().unwrap()).unwrap();
        let mode = with_writer(&db, |c| c.query("PRAGMA journal_mode", &[])).unwrap();
        assert_eq!(mode[0][0], crate::model::Value::Text("wal".into()));
        with_writer(&db, |c| c.execute("CREATE TABLE t(x)", &[])).unwrap();
        let err = with_reader(&db, |c| c.execute("INSERT INTO t VALUES (1)", &[])).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
    }

    #[test]
    fn a_panicking_reader_goes_back_to_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = SqliteOptions::new(dir.path().join("p.sqlite").to_str().unwrap());
        options.max_connections = 2; // one reader
        let db = SqliteDatabase::open_with(options).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = with_reader(&db, |_| -> Result<()> { panic!("boom") });
        }));
        assert!(panicked.is_err());
        let one = with_reader(&db, |c| c.query("SELECT 1", &[])).unwrap();
        assert_eq!(one, vec![vec![crate::model::Value::Integer(1)]]);
    }

    #[test]
    fn missing_directory_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/x.sqlite");
        let err = SqliteDatabase::open(path.to_str().unwrap()).err().unwrap();
        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    }
}
