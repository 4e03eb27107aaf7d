//! The [`Connection`] trait (one SQL connection) and the [`Database`] trait (where connections
//! come from), the only way the repository reaches SQL.
//!
//! Both are object-safe. `Connection` does not require `Sync`: the component's driver will be a
//! WIT import used from one thread. `Database` is `Send + Sync` natively (so a store can be shared
//! by threads through an `Arc`) and carries no thread bounds on wasm, where there are no threads.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};

use crate::error::{Error, Result};
use crate::model::{Row, Value};

/// One SQL connection. Savepoints and transactions are plain statements (`BEGIN IMMEDIATE`,
/// `SAVEPOINT sp_1`, `RELEASE sp_1`, ...). Values are always bound parameters (`?1`, `?2`, ...).
pub trait Connection {
    /// Run one statement; returns the number of rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Run one query; returns every row.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Run one prepared statement once per parameter set (one boundary crossing for a batch);
    /// returns the total number of rows changed. Not atomic by itself: wrap it in a transaction.
    fn execute_many(&self, sql: &str, param_sets: &[Row]) -> Result<u64>;
    /// The rowid of the last successful insert on this connection.
    fn last_insert_rowid(&self) -> i64;
    /// Rows changed by the last statement on this connection.
    fn changes(&self) -> u64;
}

pub use crate::MaybeSendSync;

/// A source of connections: one writer (which transactions pin) and readers.
///
/// The closure style keeps the trait object-safe and makes it impossible to hold a connection
/// past its checkout. Use [`with_writer`] / [`with_reader`] for closures that return values.
pub trait Database: MaybeSendSync {
    /// Run `f` with exclusive use of the writer connection.
    fn writer(&self, f: &mut dyn FnMut(&dyn Connection) -> Result<()>) -> Result<()>;
    /// Run `f` with a connection fit for reading committed data (the writer when there are no
    /// separate readers, e.g. a private `:memory:` database).
    fn reader(&self, f: &mut dyn FnMut(&dyn Connection) -> Result<()>) -> Result<()>;
    /// Run `f` on the writer inside an explicit transaction that an earlier call left open on
    /// purpose (`repository::Store::begin`). Unlike [`Database::writer`], a driver must not roll
    /// an open transaction back here. Such a transaction needs the writer to itself until it
    /// ends: another user of the same database would join it (or, with a pooled driver, roll
    /// it back), so a store with an open transaction should own its database.
    fn writer_in_transaction(
        &self,
        f: &mut dyn FnMut(&dyn Connection) -> Result<()>,
    ) -> Result<()> {
        self.writer(f)
    }
    /// True when the database was opened read-only (a process that does not own the data
    /// directory): every write through it fails with `permission-denied`, and opening a table
    /// never migrates it. A driver that cannot tell says false; writes through it still fail
    /// when the underlying connection refuses them, and opening a table then reports the same.
    fn read_only(&self) -> bool {
        false
    }
}

fn run_once<R>(
    run: impl FnOnce(&mut dyn FnMut(&dyn Connection) -> Result<()>) -> Result<()>,
    f: impl FnOnce(&dyn Connection) -> Result<R>,
) -> Result<R> {
    let mut f = Some(f);
    let mut out = None;
    run(&mut |conn| {
        let f = f
            .take()
            .ok_or_else(|| Error::internal("connection closure called twice"))?;
        out = Some(f(conn)?);
        Ok(())
    })?;
    out.ok_or_else(|| Error::internal("connection closure was not called"))
}

/// Run `f` on the writer and return its value.
pub fn with_writer<R>(
    db: &dyn Database,
    f: impl FnOnce(&dyn Connection) -> Result<R>,
) -> Result<R> {
    run_once(|g| db.writer(g), f)
}

/// Run `f` on the writer inside an explicit open transaction and return its value (see
/// [`Database::writer_in_transaction`]).
pub fn with_writer_in_transaction<R>(
    db: &dyn Database,
    f: impl FnOnce(&dyn Connection) -> Result<R>,
) -> Result<R> {
    run_once(|g| db.writer_in_transaction(g), f)
}

/// Run `f` on a reader and return its value.
pub fn with_reader<R>(
    db: &dyn Database,
    f: impl FnOnce(&dyn Connection) -> Result<R>,
) -> Result<R> {
    run_once(|g| db.reader(g), f)
}

/// A writer connection behind a lock that knows which thread holds it.
///
/// Calling the store (instead of the transaction handle) from inside a transaction closure would
/// wait for the writer that the same thread already holds: a self-deadlock. The owner check
/// turns that into an immediate `invalid-input` error instead.
pub struct WriterLock<C> {
    conn: Mutex<C>,
    owner: Mutex<Option<ThreadId>>,
}

impl<C> WriterLock<C> {
    /// Guard a connection.
    pub fn new(conn: C) -> Self {
        WriterLock {
            conn: Mutex::new(conn),
            owner: Mutex::new(None),
        }
    }

    fn owner(&self) -> MutexGuard<'_, Option<ThreadId>> {
        self.owner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `f` with the connection held by this thread.
    pub fn with<R>(&self, f: impl FnOnce(&C) -> Result<R>) -> Result<R> {
        let me = thread::current().id();
        if *self.owner() == Some(me) {
            return Err(Error::invalid_input(
                "this thread already holds the writer (inside a transaction): use the transaction's handle",
            ));
        }
        // A panic inside a transaction already rolled it back (the guard runs on unwind), so
        // the connection is usable: recover it from a poisoned lock.
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        *self.owner() = Some(me);
        struct Release<'a>(&'a Mutex<Option<ThreadId>>);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
            }
        }
        let _release = Release(&self.owner);
        f(&conn)
    }
}

/// A [`Database`] made of one connection used for everything: the shape of the component's
/// host-backed driver, and handy for tests of other drivers.
pub struct SingleConnection<C> {
    conn: WriterLock<C>,
}

impl<C: Connection> SingleConnection<C> {
    /// Wrap a connection.
    pub fn new(conn: C) -> Self {
        SingleConnection {
            conn: WriterLock::new(conn),
        }
    }
}

impl<C: Connection> Database for SingleConnection<C>
where
    WriterLock<C>: MaybeSendSync,
{
    fn writer(&self, f: &mut dyn FnMut(&dyn Connection) -> Result<()>) -> Result<()> {
        self.conn.with(|c| f(c))
    }

    fn reader(&self, f: &mut dyn FnMut(&dyn Connection) -> Result<()>) -> Result<()> {
        self.writer(f)
    }
}
