//! Migrations: create a table and its indexes from a schema, or extend an existing table
//! additively, and record the schema's version in `_edgestore_schema`.
//!
//! Additive means: new nullable columns (or generated columns), new indexes. Anything else
//! (a removed column, a changed type, nullability, generated expression or key, a new NOT NULL
//! column) is refused with an `invalid-input` error naming the column, and nothing is changed:
//! the whole migration runs in one immediate transaction.

use crate::error::{Error, Result};
use crate::model::naming::quote;
use crate::model::{Schema, Value};
use crate::sql::{ddl, Connection};

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

/// Bring the table of a validated schema up to date. Run on the writer in a transaction.
pub fn migrate(conn: &dyn Connection, schema: &Schema) -> Result<Migration> {
    conn.execute(
        &format!(
            "CREATE TABLE IF NOT EXISTS {} (table_name TEXT PRIMARY KEY, version INTEGER NOT NULL, \
             schema JSON TEXT NOT NULL)",
            quote(SCHEMA_TABLE)
        ),
        &[],
    )?;
    let table = Value::Text(schema.table.clone());
    let exists = !conn
        .query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            std::slice::from_ref(&table),
        )?
        .is_empty();
    let stored = conn.query(
        &format!(
            "SELECT version, schema FROM {} WHERE table_name = ?1",
            quote(SCHEMA_TABLE)
        ),
        std::slice::from_ref(&table),
    )?;
    let (old_version, old_schema) = match stored.first().map(Vec::as_slice) {
        Some([Value::Integer(v), Value::Text(s)]) => (*v, serde_json::from_str::<Schema>(s).ok()),
        _ => (0, None),
    };
    let mut migration = Migration {
        version: old_version.max(1),
        created: !exists,
        added_columns: Vec::new(),
    };
    if exists {
        let existing = existing_columns(conn, &schema.table)?;
        migration.added_columns = check_additive(schema, &existing, old_schema.as_ref())?;
        for name in &migration.added_columns {
            let col = schema.column_named(name)?;
            conn.execute(&ddl::add_column(schema, col), &[])?;
        }
    } else {
        conn.execute(&ddl::create_table(schema), &[])?;
    }
    for sql in ddl::create_indexes(schema) {
        conn.execute(&sql, &[])?;
    }
    if old_schema.as_ref() != Some(schema) {
        migration.version = if stored.is_empty() {
            1
        } else {
            old_version + 1
        };
        let json = serde_json::to_string(schema)?;
        conn.execute(
            &format!(
                "INSERT INTO {} (table_name, version, schema) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (table_name) DO UPDATE SET version = excluded.version, schema = excluded.schema",
                quote(SCHEMA_TABLE)
            ),
            &[table, Value::Integer(migration.version), Value::Text(json)],
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
