//! SQL: the small [`Connection`] trait the repository talks through, SQL text built from schemas,
//! busy retry, and (natively) the rusqlite driver.
//!
//! | concept | file |
//! |---|---|
//! | `Connection`, `Database`, `SingleConnection` | `connection.rs` |
//! | DDL from a schema (tables, indexes, generated columns) | `ddl.rs` |
//! | DML from a schema and queries | `dml.rs` |
//! | bounded exponential backoff with jitter | `retry.rs` |
//! | rusqlite driver (feature `sqlite`) | `sqlite/` |

mod connection;
pub mod ddl;
pub mod dml;
mod retry;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use connection::{
    with_reader, with_writer, with_writer_in_transaction, Connection, Database, MaybeSendSync,
    SingleConnection, WriterLock,
};
pub use retry::RetryPolicy;
