//! Migrations: create a table and its indexes from a schema, or extend an existing table
//! additively, and record the schema's version in `_edgestore_schema`.
//!
//! Additive means: new nullable columns (or generated columns), new indexes. Anything else
//! (a removed column, a changed type, nullability, generated expression or key, a new NOT NULL
//! column) is refused with an `invalid-input` error naming the column, and nothing is changed:
//! the whole migration runs in one immediate transaction.
//!
//! Opening a table writes only when something must change. [`ensure`] first looks with plain
//! reads (a deferred transaction on a reader, so one consistent snapshot): when the table, its
//! indexes and the stored schema already match, that is all. Otherwise it takes the write lock
//! (`BEGIN IMMEDIATE`) and [`migrate`] looks again inside, since another process may have
//! migrated meanwhile. So a process that does not own the database (opened read-only) can open
//! tables that are up to date; one that needs a change is refused: `table-missing` for a table
//! not created yet, `permission-denied` for one that needs migrating.

use crate::error::{Error, ErrorCode, Result};
use crate::model::naming::quote;
use crate::model::{Schema, Value};
use crate::sql::{ddl, with_reader, with_writer, Connection};

use super::ops::Core;
use super::transaction::run_top;
use super::TxMode;

/// The table recording each table's schema and version.
pub const SCHEMA_TABLE: &str = "_edgestore_schema";

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Schema version after the migration (1 for a new table).
    pub version: i64,
    /// True when the table was created.
    pub created: bool,
    /// Columns added.
    pub added_columns: Vec<String>,
}

struct ExistingColumn {
    name: String,
    decl_type: String,
    not_null: bool,
    generated: bool,
}

fn not_additive(table: &str, column: &str, why: &str) -> Error {
    Error::invalid_input(format!(
        "schema change to {table}.{column} is not additive: {why}; migrate it by hand"
    ))
}

/// What the database holds for one schema's table, found by reads only.
struct Found {
    /// `_edgestore_schema` exists.
    schema_table: bool,
    /// The table exists.
    exists: bool,
    /// The stored version, when `_edgestore_schema` has a row for the table.
    stored_version: Option<i64>,
    /// The stored schema, when that row parses.
    stored_schema: Option<Schema>,
    /// Columns to add (an existing table only).
    added: Vec<String>,
    /// Every index of the schema exists (by name, as `CREATE INDEX IF NOT EXISTS` decides).
    indexes_exist: bool,
}

impl Found {
    /// What opening amounts to when nothing needs to change; `None` when something does.
    fn up_to_date(&self, schema: &Schema) -> Option<Migration> {
        let current = self.schema_table
            && self.exists
            && self.added.is_empty()
            && self.indexes_exist
            && self.stored_schema.as_ref() == Some(schema);
        match (current, self.stored_version) {
            (true, Some(version)) => Some(Migration {
                version,
                created: false,
                added_columns: Vec::new(),
            }),
            _ => None,
        }
    }

    /// The error for a needed change that this process may not make; `cause` is how the
    /// database refused it, when it was asked.
    fn refused(&self, table: &str, cause: Option<Error>) -> Error {
        let (code, message) = if self.exists {
            (
                ErrorCode::PermissionDenied,
                format!(
                    "table {table} needs migrating; only the data directory's owner migrates it"
                ),
            )
        } else {
            (
                ErrorCode::TableMissing,
                format!("table {table} needs creating; only the data directory's owner creates it"),
            )
        };
        match cause {
            Some(cause) => {
                Error::new(code, format!("{message} ({})", cause.message())).with_source(cause)
            }
            None => Error::new(code, message),
        }
    }
}

/// Read what the database holds for the schema's table. Writes nothing; a non-additive change
/// is reported here already.
fn inspect(conn: &dyn Connection, schema: &Schema) -> Result<Found> {
    let table = Value::Text(schema.table.clone());
    let tables = conn.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?1, ?2)",
        &[table.clone(), Value::Text(SCHEMA_TABLE.to_owned())],
    )?;
    let has = |name: &str| {
        tables
            .iter()
            .any(|r| matches!(r.as_slice(), [Value::Text(n)] if n == name))
    };
    let (schema_table, exists) = (has(SCHEMA_TABLE), has(&schema.table));
    let stored = if schema_table {
        conn.query(
            &format!(
                "SELECT version, schema FROM {} WHERE table_name = ?1",
                quote(SCHEMA_TABLE)
            ),
            std::slice::from_ref(&table),
        )?
    } else {
        Vec::new()
    };
    let (stored_version, stored_schema) = match stored.first().map(Vec::as_slice) {
        Some([Value::Integer(v), Value::Text(s)]) => {
            (Some(*v), serde_json::from_str::<Schema>(s).ok())
        }
        Some([Value::Integer(v), _]) => (Some(*v), None),
        _ => (None, None),
    };
    let mut found = Found {
        schema_table,
        exists,
        stored_version,
        stored_schema,
        added: Vec::new(),
        indexes_exist: false,
    };
    if exists {
        let existing = existing_columns(conn, &schema.table)?;
        found.added = check_additive(schema, &existing, found.stored_schema.as_ref())?;
        let names = conn.query("SELECT name FROM sqlite_master WHERE type = 'index'", &[])?;
        found.indexes_exist = ddl::indexes(schema).iter().all(|(name, _)| {
            names
                .iter()
                .any(|r| matches!(r.as_slice(), [Value::Text(n)] if n == name))
        });
    }
    Ok(found)
}

/// Open the table of a validated schema: look first, migrate only when something must change.
/// A change this process may not make (its database is read-only, or the write lock is refused
/// with `permission-denied`) is `table-missing` for a table not created yet and
/// `permission-denied` naming the table otherwise; nothing is written either way.
pub(crate) fn ensure(core: &Core) -> Result<Migration> {
    let schema = &core.schema;
    let found = with_reader(&*core.db, |conn| {
        run_top(core, conn, TxMode::Deferred, |tx| inspect(tx.conn, schema))
    })?;
    if let Some(migration) = found.up_to_date(schema) {
        return Ok(migration);
    }
    if core.db.read_only() {
        return Err(found.refused(&schema.table, None));
    }
    with_writer(&*core.db, |conn| {
        run_top(core, conn, TxMode::Immediate, |tx| migrate(tx.conn, schema))
    })
    .map_err(|e| {
        // A database that does not know it is read-only (the component's, through the host)
        // refuses `BEGIN IMMEDIATE` or the first write.
        if e.code() == ErrorCode::PermissionDenied {
            found.refused(&schema.table, Some(e))
        } else {
            e
        }
    })
}

/// Bring the table of a validated schema up to date. Run on the writer in an immediate
/// transaction: it looks again first, and writes nothing when someone else already did it.
pub fn migrate(conn: &dyn Connection, schema: &Schema) -> Result<Migration> {
    let found = inspect(conn, schema)?;
    if let Some(migration) = found.up_to_date(schema) {
        return Ok(migration);
    }
    if !found.schema_table {
        conn.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {} (table_name TEXT PRIMARY KEY, version INTEGER NOT NULL, \
                 schema JSON TEXT NOT NULL)",
                quote(SCHEMA_TABLE)
            ),
            &[],
        )?;
    }
    let old_version = found.stored_version.unwrap_or(0);
    let mut migration = Migration {
        version: old_version.max(1),
        created: !found.exists,
        added_columns: Vec::new(),
    };
    if found.exists {
        for name in &found.added {
            let col = schema.column_named(name)?;
            conn.execute(&ddl::add_column(schema, col), &[])?;
        }
        migration.added_columns = found.added;
    } else {
        conn.execute(&ddl::create_table(schema), &[])?;
    }
    for sql in ddl::create_indexes(schema) {
        conn.execute(&sql, &[])?;
    }
    if found.stored_schema.as_ref() != Some(schema) {
        migration.version = match found.stored_version {
            None => 1,
            Some(v) => v + 1,
        };
        let json = serde_json::to_string(schema)?;
        conn.execute(
            &format!(
                "INSERT INTO {} (table_name, version, schema) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (table_name) DO UPDATE SET version = excluded.version, schema = excluded.schema",
                quote(SCHEMA_TABLE)
            ),
            &[
                Value::Text(schema.table.clone()),
                Value::Integer(migration.version),
                Value::Text(json),
            ],
        )?;
    }
    Ok(migration)
}

fn existing_columns(conn: &dyn Connection, table: &str) -> Result<Vec<ExistingColumn>> {
    // table_xinfo also lists generated columns (hidden = 2 virtual, 3 stored).
    let rows = conn.query(&format!("PRAGMA table_xinfo({})", quote(table)), &[])?;
    rows.into_iter()
        .map(|r| match r.as_slice() {
            [_, Value::Text(name), Value::Text(decl), Value::Integer(nn), _, _, Value::Integer(hidden)] => {
                Ok(ExistingColumn {
                    name: name.clone(),
                    decl_type: decl.clone(),
                    not_null: *nn != 0,
                    generated: *hidden >= 2,
                })
            }
            _ => Err(Error::internal(format!("unexpected table_xinfo row for {table}"))),
        })
        .collect()
}

/// The columns to add, or the first non-additive change.
fn check_additive(
    schema: &Schema,
    existing: &[ExistingColumn],
    old: Option<&Schema>,
) -> Result<Vec<String>> {
    let t = &schema.table;
    for e in existing {
        if schema.position(&e.name).is_none() {
            return Err(not_additive(t, &e.name, "the column was removed"));
        }
    }
    if let Some(old) = old {
        if old.key != schema.key {
            return Err(not_additive(t, &schema.key.join(","), "the key changed"));
        }
    }
    let mut added = Vec::new();
    for col in &schema.columns {
        match existing.iter().find(|e| e.name == col.name) {
            Some(e) => {
                if !e.decl_type.eq_ignore_ascii_case(col.ty.sql_type()) {
                    return Err(not_additive(
                        t,
                        &col.name,
                        &format!("type {} became {}", e.decl_type, col.ty.sql_type()),
                    ));
                }
                if e.generated != col.generated.is_some() {
                    return Err(not_additive(t, &col.name, "generated-ness changed"));
                }
                if !e.generated && e.not_null == col.nullable {
                    return Err(not_additive(t, &col.name, "nullability changed"));
                }
                let old_expr = old
                    .and_then(|o| o.columns.iter().find(|c| c.name == col.name))
                    .map(|c| &c.generated);
                if old_expr.is_some_and(|g| g != &col.generated) {
                    return Err(not_additive(
                        t,
                        &col.name,
                        "the generated expression changed",
                    ));
                }
            }
            None if col.generated.is_some() || col.nullable => added.push(col.name.clone()),
            None => return Err(not_additive(t, &col.name, "a new column must be nullable")),
        }
    }
    Ok(added)
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::model::{Column, ColumnType};
    use crate::repository::{SqlRepository, Store};
    use crate::sql::sqlite::rusqlite::{self, OpenFlags};
    use crate::sql::sqlite::SqliteConnection;
    use crate::sql::{Database, RetryPolicy, SingleConnection};
    use crate::SqliteDatabase;

    fn v1() -> Schema {
        Schema::new("gadget")
            .column(Column::new("id", ColumnType::Integer))
            .column(Column::new("name", ColumnType::Text))
            .key(&["id"])
    }

    fn v2() -> Schema {
        v1().column(Column::new("colour", ColumnType::Text).nullable().indexed())
    }

    /// Counts the writer checkouts of the database it wraps.
    struct Counting {
        inner: Arc<dyn Database>,
        writers: AtomicUsize,
    }

    impl Database for Counting {
        fn writer(
            &self,
            f: &mut dyn FnMut(&dyn Connection) -> crate::Result<()>,
        ) -> crate::Result<()> {
            self.writers.fetch_add(1, Ordering::SeqCst);
            self.inner.writer(f)
        }
        fn reader(
            &self,
            f: &mut dyn FnMut(&dyn Connection) -> crate::Result<()>,
        ) -> crate::Result<()> {
            self.inner.reader(f)
        }
        fn read_only(&self) -> bool {
            self.inner.read_only()
        }
    }

    /// `PRAGMA data_version` of a connection of its own: it changes whenever any other
    /// connection commits to the file.
    struct Observer(rusqlite::Connection);

    impl Observer {
        fn new(path: &Path) -> Self {
            Observer(rusqlite::Connection::open(path).unwrap())
        }
        fn version(&self) -> i64 {
            self.0
                .query_row("PRAGMA data_version", [], |r| r.get(0))
                .unwrap()
        }
        fn stored_version(&self, table: &str) -> i64 {
            self.0
                .query_row(
                    &format!("SELECT version FROM {SCHEMA_TABLE} WHERE table_name = ?1"),
                    [table],
                    |r| r.get(0),
                )
                .unwrap()
        }
    }

    #[test]
    fn an_up_to_date_table_is_only_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let db = Arc::new(Counting {
            inner: Arc::new(SqliteDatabase::open(path.to_str().unwrap()).unwrap()),
            writers: AtomicUsize::new(0),
        });
        let shared: Arc<dyn Database> = db.clone();
        let store = Store::new(shared.clone());
        let created = store.register(v1()).unwrap();
        assert!(created.created);
        assert_eq!(db.writers.load(Ordering::SeqCst), 1);
        let observer = Observer::new(&path);
        let seen = observer.version();

        // Registered again, on the same store and through a new repository: nothing written,
        // the writer not even asked for.
        let again = store.register(v1()).unwrap();
        assert_eq!((again.version, again.created), (1, false));
        assert!(again.added_columns.is_empty());
        let repo = SqlRepository::open(shared.clone(), v1()).unwrap();
        assert_eq!(repo.migration(), &again);
        assert_eq!(db.writers.load(Ordering::SeqCst), 1);
        assert_eq!(observer.version(), seen);
        assert_eq!(observer.stored_version("gadget"), 1);

        // A change takes the writer once; then it is current again.
        let migrated = store.register(v2()).unwrap();
        assert_eq!(migrated.version, 2);
        assert_eq!(migrated.added_columns, ["colour"]);
        assert_eq!(db.writers.load(Ordering::SeqCst), 2);
        let seen = observer.version();
        assert_eq!(store.register(v2()).unwrap().version, 2);
        assert_eq!(db.writers.load(Ordering::SeqCst), 2);
        assert_eq!(observer.version(), seen);
    }

    #[test]
    fn a_dropped_index_or_schema_row_is_restored() {
        let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(":memory:").unwrap());
        let store = Store::new(db.clone());
        store.register(v2()).unwrap();
        crate::sql::with_writer(&*db, |c| c.execute("DROP INDEX gadget__i_colour", &[])).unwrap();
        assert_eq!(store.register(v2()).unwrap().version, 1);
        let indexes = crate::sql::with_reader(&*db, |c| {
            c.query(
                "SELECT name FROM sqlite_master WHERE name = 'gadget__i_colour'",
                &[],
            )
        })
        .unwrap();
        assert_eq!(indexes.len(), 1);
        crate::sql::with_writer(&*db, |c| {
            c.execute(&format!("DROP TABLE {SCHEMA_TABLE}"), &[])
        })
        .unwrap();
        assert_eq!(store.register(v2()).unwrap().version, 1);
        assert_eq!(store.register(v2()).unwrap().version, 1);
    }

    /// The component's case: a database that does not know it is read-only, over a connection
    /// that refuses writes (the host opens it `SQLITE_OPEN_READ_ONLY` with `query_only`).
    #[test]
    fn a_connection_that_refuses_writes_opens_current_tables_and_names_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owned.sqlite");
        let owner = Store::new(Arc::new(
            SqliteDatabase::open(path.to_str().unwrap()).unwrap(),
        ));
        owner.register(v1()).unwrap();
        owner
            .create("gadget", &vec![Value::Integer(1), Value::Text("a".into())])
            .unwrap();

        let raw = rusqlite::Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap();
        let conn = SqliteConnection::new(raw, RetryPolicy::none()).unwrap();
        conn.execute("PRAGMA query_only = ON", &[]).unwrap();
        // `migrate` itself looks before it writes.
        assert_eq!(migrate(&conn, &v1()).unwrap().version, 1);
        let guest = Store::new(Arc::new(SingleConnection::new(conn)));
        assert!(!guest.database().read_only());
        let observer = Observer::new(&path);
        let seen = observer.version();

        let m = guest.register(v1()).unwrap();
        assert_eq!((m.version, m.created), (1, false));
        assert_eq!(guest.count("gadget").unwrap(), 1);

        let err = guest.register(v2()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err}");
        assert!(
            err.message().starts_with(
                "table gadget needs migrating; only the data directory's owner migrates it"
            ),
            "{err}"
        );
        let other = Schema::new("other")
            .column(Column::new("id", ColumnType::Integer))
            .key(&["id"]);
        let err = guest.register(other).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TableMissing, "{err}");
        assert!(
            err.message().contains("table other needs creating"),
            "{err}"
        );

        assert_eq!(observer.version(), seen);
        assert_eq!(observer.stored_version("gadget"), 1);
        assert_eq!(guest.tables(), ["gadget"]);
    }
}
