//! The plugin world's driver: the host's `sqlite` import as a core [`Connection`] (wrapped by
//! the glue in the core's `SingleConnection`: one connection, no threads in the component), and
//! the file-system capacity from the host's `host-info`. The standalone world's counterpart,
//! with the same two functions, is `local.rs`.

use super::convert::{error_from_wit, row_from_wit, row_to_wit};
use super::edgestore::storage::{host_info, sqlite as host};
use crate::dir::Capacity;
use crate::error::Result;
use crate::model::{Row, Value};
use crate::sql::Connection;

/// One connection to a database the host granted under a label.
pub struct HostConnection {
    conn: host::Connection,
}

impl HostConnection {
    /// Open the database granted under `label` (`no-such-database` / `access-denied` when the
    /// host refuses).
    pub fn open(label: &str) -> Result<Self> {
        let conn = host::Connection::open(label).map_err(error_from_wit)?;
        Ok(HostConnection { conn })
    }
}

/// Open the database the host granted under `label`.
pub fn open(label: &str) -> Result<HostConnection> {
    HostConnection::open(label)
}

/// Capacity of the file system holding the data directory, as the host reports it.
pub fn capacity() -> std::io::Result<Option<Capacity>> {
    Ok(host_info::disk_capacity().map(|c| Capacity {
        total: c.total_bytes,
        available: c.available_bytes,
    }))
}

impl Connection for HostConnection {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        self.conn
            .execute(sql, &row_to_wit(params))
            .map_err(error_from_wit)
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let rows = self
            .conn
            .query(sql, &row_to_wit(params))
            .map_err(error_from_wit)?;
        Ok(rows.into_iter().map(row_from_wit).collect())
    }

    fn execute_many(&self, sql: &str, param_sets: &[Row]) -> Result<u64> {
        let sets: Vec<_> = param_sets.iter().map(|r| row_to_wit(r)).collect();
        self.conn.execute_many(sql, &sets).map_err(error_from_wit)
    }

    fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }

    fn changes(&self) -> u64 {
        self.conn.changes()
    }
}
