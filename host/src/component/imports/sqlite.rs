//! The `sqlite` import, implemented natively with the core's own rusqlite driver
//! ([`edgestore::sql::sqlite::SqliteConnection`]: prepared-statement cache, busy retry, error
//! translation), so the component's SQL runs exactly as the native engine's does.
//!
//! Each `connection` resource is a [`SqliteHandle`] in the instance's resource table. Opening
//! follows the grants: a configured label that is not granted is `access-denied` (checked
//! first), an unknown label `no-such-database`. The guest never names a file: a label maps to a
//! file inside the data directory chosen by the embedder ([`crate::grants`]), or to one of the
//! store's anchored in-memory databases ([`MemoryAnchors`]). Database files are opened with
//! `SQLITE_OPEN_NOFOLLOW` after the grants' cap-std check that neither they nor their
//! `-wal`/`-shm`/`-journal` companions are symlinks ([`Grants::database_path`], which the
//! native engine uses too); `ATTACH` (and so `VACUUM INTO`) is refused by a zero attach limit
//! and an authorizer, as are pragmas that would change where or how files are written.

use std::sync::Arc;

use edgestore::sql::sqlite::rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use edgestore::sql::sqlite::rusqlite::limits::Limit;
use edgestore::sql::sqlite::rusqlite::{self, OpenFlags};
use edgestore::sql::sqlite::{translate, SqliteConnection};
use edgestore::sql::{Connection, RetryPolicy};
use edgestore::Value;

use edgestore::model::Row;
use wasmtime::component::{Resource, ResourceTable};

use crate::component::bindings::{self, wit_types as t};
use crate::component::convert::{error_to_wit, row_from_wit, row_to_wit, wit_error};
use crate::component::memory_anchors::MemoryAnchors;
use crate::component::state::{HostState, SqliteHandle};
use crate::grants::{DbTarget, Grants, LabelAccess};

/// Pragmas a guest may run (reads of schema and state, and the connection settings the core
/// itself issues). Anything else, e.g. `journal_mode`, `writable_schema` or
/// `temp_store_directory`, is refused.
const ALLOWED_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "foreign_keys",
    "user_version",
    "schema_version",
    "data_version",
    "page_count",
    "page_size",
    "freelist_count",
    "integrity_check",
    "quick_check",
    "query_only",
];

/// Why a label could not be opened, in the WIT's terms.
#[derive(Debug)]
enum OpenError {
    /// Not configured.
    NoSuchDatabase(String),
    /// Configured, not granted.
    AccessDenied(String),
    /// Opening failed.
    Store(edgestore::Error),
}

fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => Authorization::Deny,
        AuthAction::Pragma { pragma_name, .. } => {
            if ALLOWED_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name))
            {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        _ => Authorization::Allow,
    }
}

/// Open `label` for a guest.
fn open(
    grants: &Arc<Grants>,
    anchors: &MemoryAnchors,
    label: &str,
) -> Result<SqliteHandle, OpenError> {
    let target = match grants.access(label) {
        LabelAccess::Denied => {
            return Err(OpenError::AccessDenied(format!(
                "database {label:?} is not granted to this instance"
            )))
        }
        LabelAccess::Unknown => {
            return Err(OpenError::NoSuchDatabase(format!(
                "no database is configured under {label:?}"
            )))
        }
        LabelAccess::Granted(target) => target.clone(),
    };
    open_target(grants, anchors, label, &target).map_err(OpenError::Store)
}

fn open_target(
    grants: &Grants,
    anchors: &MemoryAnchors,
    label: &str,
    target: &DbTarget,
) -> edgestore::Result<SqliteHandle> {
    let raw = match target {
        DbTarget::Memory => anchors.connect(label)?,
        DbTarget::File(name) => {
            let path = grants.database_path(name)?;
            let flags = if grants.read_only() {
                OpenFlags::SQLITE_OPEN_READ_ONLY
            } else {
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
            } | OpenFlags::SQLITE_OPEN_NOFOLLOW
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let raw = rusqlite::Connection::open_with_flags(&path, flags).map_err(translate)?;
            // The key before anything reads the file (the owner encrypted or re-keyed it at
            // open); an encrypted file without a key that opens it is `key-missing`.
            edgestore::sql::sqlite::cipher::apply(&raw, &path, grants.database_keys())?;
            if !grants.read_only() {
                // Commits are captured as they happen when a backup of this file runs.
                crate::commit_hooks::install(&raw, &path);
            }
            raw
        }
    };
    raw.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
        .map_err(translate)?;
    let conn = SqliteConnection::new(raw, RetryPolicy::default())?;
    if matches!(target, DbTarget::File(_)) && !grants.read_only() {
        conn.execute("PRAGMA journal_mode = WAL", &[])?;
    }
    if grants.read_only() {
        conn.execute("PRAGMA query_only = ON", &[])?;
    }
    // Installed last: the host's own setup pragmas above are not the guest's.
    conn.raw().authorizer(Some(authorize));
    Ok(SqliteHandle::new(conn))
}

// What the import runs on a handle; the type lives in `state`, below the bindings that name it.
impl SqliteHandle {
    /// Run one statement.
    fn execute(&self, sql: &str, params: &[Value]) -> edgestore::Result<u64> {
        self.conn.execute(sql, params)
    }
    /// Run one query.
    fn query(&self, sql: &str, params: &[Value]) -> edgestore::Result<Vec<Vec<Value>>> {
        self.conn.query(sql, params)
    }
    /// Run one statement per parameter set.
    fn execute_many(&self, sql: &str, sets: &[Vec<Value>]) -> edgestore::Result<u64> {
        self.conn.execute_many(sql, sets)
    }
}

// The import itself: `connection` resources are `SqliteHandle`s in the instance's table.
impl bindings::edgestore::storage::sqlite::Host for HostState {}

fn handle<'a>(
    table: &'a ResourceTable,
    r: &Resource<SqliteHandle>,
) -> wasmtime::Result<&'a SqliteHandle> {
    Ok(table.get(r)?)
}

type WitResult<T> = wasmtime::Result<std::result::Result<T, t::Error>>;

impl bindings::edgestore::storage::sqlite::HostConnection for HostState {
    fn open(&mut self, label: String) -> WitResult<Resource<SqliteHandle>> {
        match open(&self.grants, &self.anchors, &label) {
            Ok(h) => Ok(Ok(self
                .table
                .push(h.counted_in(self.open_connections.clone()))?)),
            Err(OpenError::AccessDenied(m)) => Ok(Err(wit_error(t::ErrorCode::AccessDenied, m))),
            Err(OpenError::NoSuchDatabase(m)) => {
                Ok(Err(wit_error(t::ErrorCode::NoSuchDatabase, m)))
            }
            Err(OpenError::Store(e)) => Ok(Err(error_to_wit(&e))),
        }
    }

    fn execute(
        &mut self,
        this: Resource<SqliteHandle>,
        sql: String,
        params: Vec<t::Value>,
    ) -> WitResult<u64> {
        let h = handle(&self.table, &this)?;
        Ok(h.execute(&sql, &row_from_wit(params))
            .map_err(|e| error_to_wit(&e)))
    }

    fn query(
        &mut self,
        this: Resource<SqliteHandle>,
        sql: String,
        params: Vec<t::Value>,
    ) -> WitResult<Vec<Vec<t::Value>>> {
        let h = handle(&self.table, &this)?;
        Ok(h.query(&sql, &row_from_wit(params))
            .map(|rows| rows.into_iter().map(row_to_wit).collect())
            .map_err(|e| error_to_wit(&e)))
    }

    fn execute_many(
        &mut self,
        this: Resource<SqliteHandle>,
        sql: String,
        param_sets: Vec<Vec<t::Value>>,
    ) -> WitResult<u64> {
        let h = handle(&self.table, &this)?;
        let sets: Vec<Row> = param_sets.into_iter().map(row_from_wit).collect();
        Ok(h.execute_many(&sql, &sets).map_err(|e| error_to_wit(&e)))
    }

    fn last_insert_rowid(&mut self, this: Resource<SqliteHandle>) -> wasmtime::Result<i64> {
        Ok(handle(&self.table, &this)?.conn.raw().last_insert_rowid())
    }

    fn changes(&mut self, this: Resource<SqliteHandle>) -> wasmtime::Result<u64> {
        Ok(handle(&self.table, &this)?.conn.raw().changes())
    }

    fn drop(&mut self, this: Resource<SqliteHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::Labels;
    use edgestore::ErrorCode;

    #[test]
    fn attach_vacuum_into_and_pragmas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let grants = Arc::new(Grants::new(dir.path(), false, Labels::default()).unwrap());
        let anchors = MemoryAnchors::new(&grants).unwrap();
        let h = open(&grants, &anchors, "default").unwrap();
        h.execute("CREATE TABLE t(x)", &[]).unwrap();
        let outside = dir.path().join("..").join("escape.sqlite");
        for sql in [
            format!("ATTACH '{}' AS x", outside.display()),
            format!("VACUUM INTO '{}'", outside.display()),
            "PRAGMA journal_mode = DELETE".to_owned(),
            "PRAGMA writable_schema = ON".to_owned(),
        ] {
            assert!(h.execute(&sql, &[]).is_err(), "{sql}");
        }
        assert!(!outside.exists());
        assert!(h.query("PRAGMA table_xinfo(t)", &[]).is_ok());
        assert!(matches!(
            open(&grants, &anchors, "nope"),
            Err(OpenError::NoSuchDatabase(_))
        ));
    }

    /// A guest cannot change or remove the database key the host set (which would lock the
    /// host out of its own database), nor read it.
    #[test]
    fn a_guest_cannot_rekey_an_encrypted_database() {
        use edgestore::sql::sqlite::{cipher, DatabaseKey};
        if !cipher::available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let key = DatabaseKey::from_bytes([9; 32]);
        let grants = Arc::new(
            Grants::new(dir.path(), false, Labels::default())
                .unwrap()
                .with_database_keys(vec![key.clone()]),
        );
        let anchors = MemoryAnchors::new(&grants).unwrap();
        let h = open(&grants, &anchors, "default").unwrap();
        h.execute("CREATE TABLE t(x)", &[]).unwrap();
        h.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
        for sql in [
            "PRAGMA rekey = \"x'0000000000000000000000000000000000000000000000000000000000000000'\"",
            "PRAGMA key = 'guest'",
            "PRAGMA cipher_export",
            "SELECT sqlcipher_export('main')",
        ] {
            assert!(h.execute(sql, &[]).is_err(), "{sql}");
        }
        assert!(h.query("PRAGMA cipher_settings", &[]).is_err());
        drop(h);
        let path = dir.path().join("edgestore.sqlite");
        assert_eq!(
            cipher::file_state(&path).unwrap(),
            cipher::FileState::Encrypted
        );
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(cipher::apply(&conn, &path, &[key]).unwrap(), Some(0));
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_database_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim.sqlite");
        std::fs::write(&target, b"untouched").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("edgestore.sqlite")).unwrap();
        let grants = Arc::new(Grants::new(dir.path(), false, Labels::default()).unwrap());
        let anchors = MemoryAnchors::new(&grants).unwrap();
        match open(&grants, &anchors, "default") {
            Err(OpenError::Store(e)) => assert_eq!(e.code(), ErrorCode::PermissionDenied),
            other => panic!("expected permission-denied, got {:?}", other.is_ok()),
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
    }
}
