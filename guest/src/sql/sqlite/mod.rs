//! The native SQL driver: rusqlite with bundled SQLite.
//!
//! | concept | file |
//! |---|---|
//! | one connection, statement cache, busy retry | `connection.rs` |
//! | writer + reader pool, DSNs, WAL, read-only opening | `pool.rs` |
//! | SQLite error translation | `errors.rs` |
//! | encrypted files: SQLCipher keys, encrypting and re-keying in place | `cipher.rs` |

pub mod cipher;
mod connection;
mod errors;
mod pool;

pub use cipher::DatabaseKey;
pub use connection::{SqliteConnection, READ_ONLY_MESSAGE};
pub use errors::{classify, translate};
pub use pool::{SqliteDatabase, SqliteOptions, WriterHook, DEFAULT_MMAP_SIZE};
/// The rusqlite version the driver is built on, so the host and tests use the same one.
pub use rusqlite;
