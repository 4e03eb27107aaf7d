//! The plugin world's driver: the host's `sqlite` import as a core [`Connection`] (wrapped by
//! the glue in the core's `SingleConnection`: one connection, no threads in the component), the
//! file-system capacity from the host's `host-info`, and segments compressed by the host's
//! `compression` streams. The standalone world's counterpart, with the same three functions, is
//! `local.rs`.

use std::io;
use std::sync::Arc;

use super::convert::{error_from_wit, row_from_wit, row_to_wit};
use super::edgestore::storage::{compression, host_info, sqlite as host};
use crate::dir::Capacity;
use crate::error::Result;
use crate::model::{Row, Value};
use crate::spool::compress::{BrotliEngine, BrotliStream, Compressor};
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

/// Segments are compressed by the host, natively: the same bytes, several times faster than
/// Brotli compiled to wasm.
pub fn compressor() -> Compressor {
    Compressor::with_engine(Arc::new(HostBrotli))
}

/// Starts the host's Brotli streams.
struct HostBrotli;

/// One of the host's Brotli streams.
struct HostStream(compression::BrotliStream);

/// A host error as the I/O error the segment writer reports (its message kept).
fn stream_error(e: super::types::Error) -> io::Error {
    io::Error::other(error_from_wit(e))
}

impl BrotliEngine for HostBrotli {
    fn start(&self, level: u32, size_hint: u64) -> io::Result<Box<dyn BrotliStream>> {
        let stream = compression::BrotliStream::open(level, size_hint).map_err(stream_error)?;
        Ok(Box::new(HostStream(stream)))
    }
}

impl BrotliStream for HostStream {
    fn write(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(&self.0.write(data).map_err(stream_error)?);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(&self.0.finish().map_err(stream_error)?);
        Ok(())
    }
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
