//! [`SqliteConnection`]: the [`Connection`] trait over one rusqlite connection, with busy retry.
//!
//! What is retried, and where: SQLite's own busy handler is off (`busy_timeout = 0`); instead
//! each statement that fails with `SQLITE_BUSY` or `SQLITE_LOCKED` is re-run under the
//! connection's [`RetryPolicy`]. A failed statement had no effect, so re-running it is safe,
//! also inside a transaction (waiting for the write lock, or for `COMMIT` to get its locks).
//! The exception is `SQLITE_BUSY_SNAPSHOT`: a deferred transaction whose snapshot went stale
//! cannot be fixed by waiting, so it surfaces at once as `busy` and the caller must restart the
//! whole transaction. The repository begins write transactions `IMMEDIATE` to avoid that case.
//!
//! A connection made read-only ([`SqliteConnection::into_read_only`]) refuses every write with
//! `permission-denied` and a message saying why: only the data directory's owner writes it.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{ffi, params_from_iter};

use super::errors::translate;
use crate::error::{Error, ErrorCode, Result};
use crate::model::{Row, Value};
use crate::sql::{Connection, RetryPolicy};

/// Statements kept prepared per connection.
const STATEMENT_CACHE: usize = 64;

/// What a write through a read-only connection reports.
pub const READ_ONLY_MESSAGE: &str = "opened read-only: only the data directory's owner writes it";

/// One rusqlite connection with retry on busy.
pub struct SqliteConnection {
    conn: rusqlite::Connection,
    retry: RetryPolicy,
    read_only: bool,
}

fn retryable(err: &rusqlite::Error) -> bool {
    match err {
        rusqlite::Error::SqliteFailure(e, _) => {
            matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) && e.extended_code != ffi::SQLITE_BUSY_SNAPSHOT
        }
        _ => false,
    }
}

fn bind(v: &Value) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match v {
        Value::Null => ValueRef::Null,
        Value::Integer(i) => ValueRef::Integer(*i),
        Value::Real(f) => ValueRef::Real(*f),
        Value::Text(s) => ValueRef::Text(s.as_bytes()),
        Value::Blob(b) => ValueRef::Blob(b),
    })
}

fn read(v: ValueRef<'_>) -> Result<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec())
                .map_err(|e| Error::corrupt(format!("stored text is not UTF-8: {e}")))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

impl SqliteConnection {
    /// Wrap an open rusqlite connection: busy handler off (we retry ourselves), foreign keys on,
    /// `secure_delete` on (deleted content is overwritten with zeros, not left in free pages),
    /// a statement cache for `prepare_cached`.
    pub fn new(conn: rusqlite::Connection, retry: RetryPolicy) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(translate)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let c = SqliteConnection {
            conn,
            retry,
            read_only: false,
        };
        c.execute("PRAGMA foreign_keys = ON", &[])?;
        c.query("PRAGMA secure_delete = ON", &[])?;
        Ok(c)
    }

    /// Make this a reader that never writes: `PRAGMA query_only` (also refuses `BEGIN
    /// IMMEDIATE`), no checkpoint when it closes (a checkpoint writes the database file), and
    /// every write it refuses is `permission-denied` with [`READ_ONLY_MESSAGE`]. Open the
    /// underlying connection with `SQLITE_OPEN_READ_ONLY` too, so SQLite itself refuses writes
    /// and never creates the file. The journal mode is left as the file has it.
    pub fn into_read_only(mut self) -> Result<Self> {
        self.conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .map_err(translate)?;
        self.execute("PRAGMA query_only = ON", &[])?;
        self.read_only = true;
        Ok(self)
    }

    /// True after [`SqliteConnection::into_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The underlying rusqlite connection, for pragmas and tests.
    pub fn raw(&self) -> &rusqlite::Connection {
        &self.conn
    }

    /// True when no transaction is open.
    pub fn is_autocommit(&self) -> bool {
        self.conn.is_autocommit()
    }

    /// Run `op` under the retry policy and translate its error.
    pub fn retrying<T>(&self, op: impl FnMut() -> rusqlite::Result<T>) -> Result<T> {
        self.retry.run(op, retryable).map_err(|e| self.translate(e))
    }

    /// [`translate`], naming the reason when a read-only connection refused a write. Only the
    /// plain `SQLITE_READONLY` is that refusal: its extended codes (`READONLY_RECOVERY`,
    /// `READONLY_CANTINIT`, ...) are about the files, and keep SQLite's own message.
    fn translate(&self, err: rusqlite::Error) -> Error {
        let refused = self.read_only
            && matches!(&err, rusqlite::Error::SqliteFailure(e, _) if e.extended_code == ffi::SQLITE_READONLY);
        let err = translate(err);
        if refused {
            Error::new(ErrorCode::PermissionDenied, READ_ONLY_MESSAGE).with_source(err)
        } else {
            err
        }
    }
}

impl Connection for SqliteConnection {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        // Pragmas and transaction control may return rows (journal_mode) or change nothing;
        // stepping through `query` handles both.
        self.retrying(|| {
            let mut stmt = self.conn.prepare_cached(sql)?;
            if stmt.readonly() || stmt.column_count() > 0 {
                let mut rows = stmt.query(params_from_iter(params.iter().map(bind)))?;
                while rows.next()?.is_some() {}
                Ok(0)
            } else {
                stmt.execute(params_from_iter(params.iter().map(bind)))
                    .map(|n| n as u64)
            }
        })
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        // Values are read into their rows as they come; the first that cannot be read (text that
        // is not UTF-8) is kept aside and answered once the statement is done.
        let (rows, unreadable) = self.retrying(|| {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let width = stmt.column_count();
            let mut rows = stmt.query(params_from_iter(params.iter().map(bind)))?;
            let mut out = Vec::new();
            let mut unreadable = None;
            while let Some(row) = rows.next()? {
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    values.push(read(row.get_ref(i)?).unwrap_or_else(|e| {
                        unreadable.get_or_insert(e);
                        Value::Null
                    }));
                }
                out.push(values);
            }
            Ok((out, unreadable))
        })?;
        match unreadable {
            Some(err) => Err(err),
            None => Ok(rows),
        }
    }

    fn execute_many(&self, sql: &str, param_sets: &[Row]) -> Result<u64> {
        let mut total = 0u64;
        let mut stmt = self.retrying(|| self.conn.prepare_cached(sql))?;
        for params in param_sets {
            total +=
                self.retrying(|| stmt.execute(params_from_iter(params.iter().map(bind))))? as u64;
        }
        Ok(total)
    }

    fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }

    fn changes(&self) -> u64 {
        self.conn.changes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> SqliteConnection {
        SqliteConnection::new(
            rusqlite::Connection::open_in_memory().unwrap(),
            RetryPolicy::none(),
        )
        .unwrap()
    }

    #[test]
    fn execute_query_many_rowid_changes_and_savepoints() {
        let c = conn();
        c.execute(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, b BLOB, r REAL)",
            &[],
        )
        .unwrap();
        let n = c
            .execute_many(
                "INSERT INTO t(name, b, r) VALUES (?1, ?2, ?3)",
                &[
                    vec![
                        Value::Text("a".into()),
                        Value::Blob(vec![1]),
                        Value::Real(0.5),
                    ],
                    vec![Value::Text("b".into()), Value::Null, Value::Null],
                ],
            )
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(c.last_insert_rowid(), 2);
        assert_eq!(
            c.execute("UPDATE t SET name = ?1", &[Value::Text("z".into())])
                .unwrap(),
            2
        );
        assert_eq!(c.changes(), 2);
        c.execute("SAVEPOINT sp_1", &[]).unwrap();
        c.execute("DELETE FROM t", &[]).unwrap();
        c.execute("ROLLBACK TO sp_1", &[]).unwrap();
        c.execute("RELEASE sp_1", &[]).unwrap();
        let rows = c
            .query("SELECT id, name, b, r FROM t ORDER BY id", &[])
            .unwrap();
        assert_eq!(
            rows[0],
            vec![
                Value::Integer(1),
                Value::Text("z".into()),
                Value::Blob(vec![1]),
                Value::Real(0.5)
            ]
        );
        assert_eq!(rows[1][2], Value::Null);
        assert!(c.is_autocommit());
        let fk = c.query("PRAGMA foreign_keys", &[]).unwrap();
        assert_eq!(fk, vec![vec![Value::Integer(1)]]);
    }

    #[test]
    fn text_that_is_not_utf8_is_corrupt_and_named() {
        let c = conn();
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT)", &[])
            .unwrap();
        c.execute(
            "INSERT INTO t(s) VALUES ('fine'), (CAST(x'ff61' AS TEXT))",
            &[],
        )
        .unwrap();
        let err = c.query("SELECT id, s FROM t ORDER BY id", &[]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Corrupt);
        assert!(err.message().contains("not UTF-8"), "{err}");
        // The readable row alone reads.
        let rows = c.query("SELECT id, s FROM t WHERE id = 1", &[]).unwrap();
        assert_eq!(
            rows,
            vec![vec![Value::Integer(1), Value::Text("fine".into())]]
        );
    }

    #[test]
    fn deleted_rows_leave_no_trace_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let c = SqliteConnection::new(
            rusqlite::Connection::open(&path).unwrap(),
            RetryPolicy::default(),
        )
        .unwrap();
        c.execute("PRAGMA journal_mode = WAL", &[]).unwrap();
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", &[])
            .unwrap();
        for i in 0..200 {
            c.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                &[
                    Value::Integer(i),
                    Value::Text(format!("keep-{i:04}-{}", "k".repeat(40))),
                ],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO t VALUES (1000, 'secret-7f3a9c-subject-to-erasure')",
            &[],
        )
        .unwrap();
        c.query("PRAGMA wal_checkpoint(TRUNCATE)", &[]).unwrap();
        c.execute("DELETE FROM t WHERE id = 1000", &[]).unwrap();
        c.query("PRAGMA wal_checkpoint(TRUNCATE)", &[]).unwrap();
        let needle = b"secret-7f3a9c";
        for file in [path.clone(), dir.path().join("db.sqlite-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} still holds the deleted value",
                file.display()
            );
        }
        assert_eq!(
            c.query("SELECT count(*) FROM t", &[]).unwrap(),
            vec![vec![Value::Integer(200)]]
        );
    }

    #[test]
    fn snapshot_conflicts_are_not_retried() {
        let snapshot =
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_BUSY_SNAPSHOT), None);
        assert!(!retryable(&snapshot));
        let busy = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_BUSY), None);
        assert!(retryable(&busy));
        let locked = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_LOCKED), None);
        assert!(retryable(&locked));
    }
}
