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
//!
//! Read-only ([`SqliteOptions::read_only`]): for a process that does not own the data directory
//! (an inspecting CLI beside a running server). Every connection, the writer's slot included,
//! is opened `SQLITE_OPEN_READ_ONLY` (never created: a missing file is `not-found`) and marked
//! `query_only`; the journal mode is never set, so beside an owner that keeps the file in WAL
//! the connections are WAL readers and see each commit of the owner as it happens. The writer
//! slot still hands out its (read-only) connection, so a deferred transaction
//! (`tx_with(TxMode::Deferred)`, `Store::begin(TxMode::Deferred)`) reads one consistent
//! snapshot; every write, and `BEGIN IMMEDIATE` / `EXCLUSIVE`, fails with `permission-denied`
//! ([`super::connection::READ_ONLY_MESSAGE`]).

use std::path::{Path, PathBuf};
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
    /// Open a database another process owns, without ever writing it (see the module docs):
    /// the file must exist, every write is `permission-denied`, and `Database::writer` hands
    /// out a read-only connection (reads in deferred transactions work). Not for a private
    /// `:memory:` database (`invalid-input`: it would always be empty).
    pub read_only: bool,
    /// Called with each connection opened for writing a file database, before its first
    /// use: the host installs its commit hooks there (continuous backup).
    pub on_open_writer: Option<WriterHook>,
    /// Database keys of an encrypted file database (SQLCipher; see [`super::cipher`]), the
    /// current one first: every connection is keyed before its first read. Opening for
    /// writing encrypts a plaintext file in place and re-keys one under an older key. Empty:
    /// not encrypted (an encrypted file is then `key-missing`). Not used for memory databases.
    pub keys: Vec<super::cipher::DatabaseKey>,
}

/// The function of a [`WriterHook`].
pub type WriterHookFn = dyn Fn(&rusqlite::Connection, &str) -> Result<()> + Send + Sync;

/// See [`SqliteOptions::on_open_writer`]: the connection, and the DSN it was opened with.
#[derive(Clone)]
pub struct WriterHook(pub std::sync::Arc<WriterHookFn>);

impl std::fmt::Debug for WriterHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterHook")
    }
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
            read_only: false,
            on_open_writer: None,
            keys: Vec::new(),
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
    /// Threads blocked in [`SqliteDatabase::checkout_reader`]: a check-in wakes one only when
    /// there is one, since `Condvar::notify_one` is a system call even with nobody waiting.
    waiting: usize,
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

    /// Open the writer (readers open on demand). Files are switched to WAL here, unless
    /// read-only, which leaves the journal mode as the owner set it.
    pub fn open_with(options: SqliteOptions) -> Result<Self> {
        let kind = kind_of(&options.dsn);
        if options.read_only && kind == Kind::PrivateMemory {
            return Err(Error::invalid_input(
                "a private in-memory database cannot be opened read-only: it would always be empty",
            ));
        }
        if kind == Kind::File && !options.read_only && !options.keys.is_empty() {
            if let Some(path) = file_path(&options.dsn) {
                super::cipher::prepare_file(&path, &options.keys)?;
            }
        }
        let writer = open_connection(&options, kind, false)?;
        if kind == Kind::File && !options.read_only {
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
                waiting: 0,
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

    /// True when opened with [`SqliteOptions::read_only`].
    pub fn is_read_only(&self) -> bool {
        self.options.read_only
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
                    // The slot is free again: a waiter may try to open it.
                    self.release(|state| state.opened -= 1);
                });
            }
            state.waiting += 1;
            state = self
                .available
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
    }

    fn checkin_reader(&self, conn: SqliteConnection) {
        self.release(|state| state.idle.push(conn));
    }

    /// Apply `change` (a reader or a slot given back), then wake one waiter if one waits.
    fn release(&self, change: impl FnOnce(&mut Readers)) {
        let mut state = lock(&self.readers);
        change(&mut state);
        let someone_waits = state.waiting > 0;
        drop(state);
        if someone_waits {
            self.available.notify_one();
        }
    }
}

impl Database for SqliteDatabase {
    /// Exclusive use of the writer slot. On a read-only database its connection is read-only
    /// too: reads (also in a deferred transaction) work, every write is `permission-denied`.
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

    fn read_only(&self) -> bool {
        self.options.read_only
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
    let mut flags = if options.read_only {
        // Never CREATE: a reader must not make an empty database where the owner's will be.
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if options.dsn.starts_with("file:") {
        flags |= OpenFlags::SQLITE_OPEN_URI;
    }
    let raw = match kind {
        Kind::PrivateMemory => rusqlite::Connection::open_in_memory(),
        _ => rusqlite::Connection::open_with_flags(&options.dsn, flags),
    };
    let raw = raw.map_err(|e| diagnose_open(options, kind, translate(e)))?;
    if kind == Kind::File {
        if let Some(path) = file_path(&options.dsn) {
            // Before anything reads the file: the key, or `key-missing` for an encrypted one.
            super::cipher::apply(&raw, &path, &options.keys)?;
        }
    }
    if let (Some(hook), false, false, Kind::File) =
        (&options.on_open_writer, reader, options.read_only, kind)
    {
        (hook.0)(&raw, &options.dsn)?;
    }
    let mut conn = SqliteConnection::new(raw, options.retry)?;
    if kind == Kind::File {
        // A pragma result row is returned (the size in force): `query`, not `execute`.
        conn.query(&format!("PRAGMA mmap_size = {}", options.mmap_size), &[])?;
    }
    if options.read_only {
        conn = conn.into_read_only()?;
    } else if reader && kind == Kind::File {
        conn.execute("PRAGMA query_only = ON", &[])?;
    }
    Ok(conn)
}

/// SQLite says only "unable to open database file"; ask the OS why, so a read-only directory
/// reads `permission-denied` and a missing one `not-found`. Read-only, a missing file is
/// `not-found` (the owner has not created it yet), and nothing is created to find out.
fn diagnose_open(options: &SqliteOptions, kind: Kind, err: Error) -> Error {
    let dsn = options.dsn.as_str();
    if kind != Kind::File || err.code() != ErrorCode::Io {
        return err;
    }
    if options.read_only {
        let Some(path) = file_path(dsn) else {
            return err;
        };
        // Opened for reading only: this never creates the file.
        return match std::fs::File::open(&path) {
            Err(io) if io.kind() == std::io::ErrorKind::NotFound => {
                Error::not_found(format!("no database at {} yet", path.display())).with_source(err)
            }
            Err(io) => Error::io(format!("open database {}", path.display()), io),
            Ok(_) => err,
        };
    }
    if dsn.starts_with("file:") {
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

/// The file a file DSN names: a plain path as is; a `file:` URI's path (empty or `localhost`
/// authority, percent-decoded, without query or fragment). `None` when it cannot tell.
fn file_path(dsn: &str) -> Option<PathBuf> {
    let Some(uri) = dsn.strip_prefix("file:") else {
        return Some(PathBuf::from(dsn));
    };
    let uri = uri.split(['?', '#']).next().unwrap_or_default();
    let path = match uri.strip_prefix("//") {
        Some(rest) => {
            let slash = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(slash);
            if !(authority.is_empty() || authority == "localhost") {
                return None;
            }
            path
        }
        None => uri,
    };
    let mut bytes = Vec::with_capacity(path.len());
    let mut rest = path.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok().map(PathBuf::from)
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
    fn readers_queued_for_a_full_pool_are_all_served() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = SqliteOptions::new(dir.path().join("q.sqlite").to_str().unwrap());
        options.max_connections = 2; // one reader for four threads
        let db = std::sync::Arc::new(SqliteDatabase::open_with(options).unwrap());
        let (done, finished) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let (db, done) = (db.clone(), done.clone());
            std::thread::spawn(move || {
                let mut sum = 0;
                for _ in 0..200 {
                    sum += with_reader(&*db, |c| {
                        std::thread::yield_now(); // hold it, so others queue
                        c.query("SELECT 1", &[])
                    })
                    .map(int)
                    .unwrap_or(0);
                }
                let _ = done.send(sum);
            });
        }
        for _ in 0..4 {
            // A check-in that woke nobody would leave a thread waiting here forever.
            let sum = finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("every queued reader is served");
            assert_eq!(sum, 200);
        }
        assert_eq!(db.open_connections(), 2);
    }

    fn read_only(dsn: &str) -> Result<SqliteDatabase> {
        let mut options = SqliteOptions::new(dsn);
        options.read_only = true;
        options.max_connections = 3;
        SqliteDatabase::open_with(options)
    }

    fn int(rows: Vec<crate::model::Row>) -> i64 {
        match rows.first().and_then(|r| r.first()) {
            Some(crate::model::Value::Integer(n)) => *n,
            other => panic!("not an integer: {other:?}"),
        }
    }

    fn sizes(path: &Path) -> (u64, u64) {
        let len = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        (len(path.to_owned()), len(PathBuf::from(wal)))
    }

    fn assert_refused(err: Error) {
        assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err}");
        assert_eq!(
            err.message(),
            super::super::connection::READ_ONLY_MESSAGE,
            "{err}"
        );
    }

    #[test]
    fn read_only_beside_a_wal_writer_reads_its_commits_and_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owner.sqlite");
        let dsn = path.to_str().unwrap();
        let owner = SqliteDatabase::open(dsn).unwrap();
        with_writer(&owner, |c| {
            c.execute("CREATE TABLE t(x INTEGER)", &[])?;
            c.execute("INSERT INTO t VALUES (1)", &[])
        })
        .unwrap();
        let ro = read_only(dsn).unwrap();
        assert!(ro.is_read_only() && Database::read_only(&ro));
        assert!(!Database::read_only(&owner));
        // Changes whenever another connection (the owner's, or the reader's) commits.
        let observer = rusqlite::Connection::open(&path).unwrap();
        let data_version = || -> i64 {
            observer
                .query_row("PRAGMA data_version", [], |r| r.get(0))
                .unwrap()
        };
        let (before, version) = (sizes(&path), data_version());

        let count = |db: &dyn Database| {
            int(with_reader(db, |c| c.query("SELECT count(*) FROM t", &[])).unwrap())
        };
        assert_eq!(count(&ro), 1);
        // Committed after the reader opened: seen by its readers and its writer slot.
        with_writer(&owner, |c| c.execute("INSERT INTO t VALUES (2)", &[])).unwrap();
        assert_eq!(count(&ro), 2);
        let in_tx = with_writer(&ro, |c| {
            c.execute("BEGIN DEFERRED", &[])?;
            let n = c.query("SELECT count(*) FROM t", &[])?;
            c.execute("COMMIT", &[])?;
            Ok(n)
        })
        .unwrap();
        assert_eq!(int(in_tx), 2);
        let mode = with_reader(&ro, |c| c.query("PRAGMA journal_mode", &[])).unwrap();
        assert_eq!(mode[0][0], crate::model::Value::Text("wal".into()));
        let (after_insert, version_after_insert) = (sizes(&path), data_version());

        for sql in [
            "INSERT INTO t VALUES (3)",
            "UPDATE t SET x = 0",
            "DELETE FROM t",
            "CREATE TABLE u(y)",
            "DROP TABLE t",
            "CREATE TEMP TABLE tmp(z)",
            "PRAGMA user_version = 7",
            "BEGIN IMMEDIATE",
            "BEGIN EXCLUSIVE",
        ] {
            assert_refused(with_writer(&ro, |c| c.execute(sql, &[])).unwrap_err());
            assert_refused(with_reader(&ro, |c| c.execute(sql, &[])).unwrap_err());
        }
        let many = with_writer(&ro, |c| {
            c.execute_many(
                "INSERT INTO t VALUES (?1)",
                &[vec![crate::model::Value::Integer(9)]],
            )
        });
        assert_refused(many.unwrap_err());
        // Inside a deferred transaction the writer slot still refuses, and stays usable.
        let err = with_writer(&ro, |c| {
            c.execute("BEGIN DEFERRED", &[])?;
            let err = c.execute("INSERT INTO t VALUES (4)", &[]).unwrap_err();
            c.execute("ROLLBACK", &[])?;
            Ok(err)
        })
        .unwrap();
        assert_refused(err);

        assert_eq!(count(&owner), 2);
        assert_eq!(sizes(&path), after_insert, "the reader wrote a file");
        assert_eq!(data_version(), version_after_insert, "the reader committed");
        assert_ne!(version, version_after_insert);
        assert_ne!(before, after_insert);
        let user_version = with_reader(&owner, |c| c.query("PRAGMA user_version", &[])).unwrap();
        assert_eq!(int(user_version), 0);
        // Closing the reader checkpoints nothing: the owner's WAL keeps its frames.
        drop(ro);
        assert_eq!(sizes(&path), after_insert);
        assert_eq!(count(&owner), 2);
    }

    #[test]
    fn read_only_leaves_the_journal_mode_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollback.sqlite");
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(raw);
        let header = std::fs::read(&path).unwrap();
        let ro = read_only(path.to_str().unwrap()).unwrap();
        let mode = with_writer(&ro, |c| c.query("PRAGMA journal_mode", &[])).unwrap();
        assert_eq!(mode[0][0], crate::model::Value::Text("delete".into()));
        let n = with_reader(&ro, |c| c.query("SELECT count(*) FROM t", &[])).unwrap();
        assert_eq!(int(n), 1);
        drop(ro);
        assert_eq!(std::fs::read(&path).unwrap(), header);
        assert!(!dir.path().join("rollback.sqlite-wal").exists());
    }

    #[test]
    fn read_only_of_a_missing_file_is_not_found_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later.sqlite");
        let err = read_only(path.to_str().unwrap()).err().unwrap();
        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
        assert_eq!(
            err.message(),
            format!("no database at {} yet", path.display())
        );
        assert!(!path.exists());
        let uri = format!("file:{}?cache=private", path.display());
        let err = read_only(&uri).err().unwrap();
        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
        assert!(err.message().contains(&path.display().to_string()), "{err}");
        let gone = dir.path().join("no/such/dir/x.sqlite");
        let err = read_only(gone.to_str().unwrap()).err().unwrap();
        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
        assert!(!path.exists() && !dir.path().join("no").exists());
    }

    #[test]
    fn read_only_private_memory_is_invalid_input() {
        for dsn in [":memory:", ""] {
            let err = read_only(dsn).err().unwrap();
            assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
        }
    }

    #[test]
    fn read_only_shared_memory_reads_the_owners_database() {
        let dsn = "file:ro_shared_test?mode=memory&cache=shared";
        let owner = SqliteDatabase::open(dsn).unwrap();
        with_writer(&owner, |c| c.execute("CREATE TABLE t(x)", &[])).unwrap();
        let ro = read_only(dsn).unwrap();
        let n = with_reader(&ro, |c| c.query("SELECT count(*) FROM t", &[])).unwrap();
        assert_eq!(int(n), 0);
        assert_refused(
            with_writer(&ro, |c| c.execute("INSERT INTO t VALUES (1)", &[])).unwrap_err(),
        );
    }

    #[test]
    fn file_uri_paths() {
        assert_eq!(file_path("/a/b.sqlite"), Some(PathBuf::from("/a/b.sqlite")));
        assert_eq!(
            file_path("file:/a/b%20c.sqlite?mode=ro"),
            Some(PathBuf::from("/a/b c.sqlite"))
        );
        assert_eq!(
            file_path("file:///a/b.sqlite"),
            Some(PathBuf::from("/a/b.sqlite"))
        );
        assert_eq!(
            file_path("file://localhost/a/b.sqlite#x"),
            Some(PathBuf::from("/a/b.sqlite"))
        );
        assert_eq!(
            file_path("file:rel.sqlite"),
            Some(PathBuf::from("rel.sqlite"))
        );
        assert_eq!(file_path("file://elsewhere/a.sqlite"), None);
        assert_eq!(file_path("file:/a%2"), None);
    }

    #[test]
    fn missing_directory_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/x.sqlite");
        let err = SqliteDatabase::open(path.to_str().unwrap()).err().unwrap();
        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    }
}
