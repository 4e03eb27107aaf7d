//! Reads of a repository database for tools that have no model types: the standalone
//! component's command entry point (and the `edgestore` CLI). Tables and their schemas are those
//! the repository recorded when models were registered (`_edgestore_schema`, the schema as JSON),
//! so any database written by any engine can be inspected; SQL comes from the same statement
//! builders the repository uses (`sql::dml`), so a key lookup here is the repository's `get`.
//!
//! Command-line values are typed by the column (`42` for an integer, `true` for a bool, RFC3339
//! or ms for a timestamp, JSON for a JSON column); rows come back as JSON objects (column name ->
//! value, in column order) with the same typing. Printing is `present`'s job.

use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::error::{Error, ErrorCode, Result};
use crate::model::naming::{quote, validate_ident};
use crate::model::{
    json_to_value, value_to_json, ColumnType, Condition, Query, Row, Schema, Value,
};
use crate::repository::SCHEMA_TABLE;
use crate::sql::dml::{self, Statements};
use crate::sql::Connection;

/// One registered table (`db models`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// Table name.
    pub table: String,
    /// The schema version the repository recorded.
    pub version: i64,
    /// Rows in the table now.
    pub rows: u64,
}

/// A `column = value` filter for [`find`]; the value is typed by the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Column name.
    pub column: String,
    /// The value as given on the command line.
    pub value: String,
}

impl Filter {
    /// Parse `COLUMN=VALUE`.
    pub fn parse(s: &str) -> Result<Filter> {
        let (column, value) = s
            .split_once('=')
            .ok_or_else(|| Error::invalid_input(format!("filter {s:?}: expected COLUMN=VALUE")))?;
        Ok(Filter {
            column: column.to_owned(),
            value: value.to_owned(),
        })
    }
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

fn has_schema_table(conn: &dyn Connection) -> Result<bool> {
    Ok(!conn
        .query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            &[Value::Text(SCHEMA_TABLE.to_owned())],
        )?
        .is_empty())
}

/// The registered tables with their versions and row counts, by name.
pub fn models(conn: &dyn Connection) -> Result<Vec<ModelInfo>> {
    if !has_schema_table(conn)? {
        return Ok(Vec::new());
    }
    let rows = conn.query(
        &format!(
            "SELECT table_name, version FROM {} ORDER BY table_name",
            quote(SCHEMA_TABLE)
        ),
        &[],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (Some(table), Some(version)) = (row.first().and_then(text), row.get(1).and_then(int))
        else {
            return Err(Error::corrupt(format!("{SCHEMA_TABLE}: malformed row")));
        };
        let rows = count(conn, table)?;
        out.push(ModelInfo {
            table: table.to_owned(),
            version,
            rows,
        });
    }
    Ok(out)
}

/// The schema the repository recorded for `table`; `table-missing` when none was registered.
pub fn schema(conn: &dyn Connection, table: &str) -> Result<Schema> {
    validate_ident(table)?;
    let missing = || Error::new(ErrorCode::TableMissing, format!("no model table {table:?}"));
    if !has_schema_table(conn)? {
        return Err(missing());
    }
    let rows = conn.query(
        &format!(
            "SELECT schema FROM {} WHERE table_name = ?1",
            quote(SCHEMA_TABLE)
        ),
        &[Value::Text(table.to_owned())],
    )?;
    let json = rows
        .first()
        .and_then(|r| r.first())
        .and_then(text)
        .ok_or_else(missing)?;
    serde_json::from_str(json)
        .map_err(|e| Error::corrupt(format!("{SCHEMA_TABLE}: schema of {table}: {e}")))
}

/// Rows in `table`.
pub fn count(conn: &dyn Connection, table: &str) -> Result<u64> {
    let schema = schema(conn, table)?;
    let rows = conn.query(&Statements::new(&schema).count, &[])?;
    let n = rows
        .first()
        .and_then(|r| r.first())
        .and_then(int)
        .ok_or_else(|| Error::internal("count(*) returned no integer"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A command-line value for column `name`, typed as the repository stores it.
fn parse_arg(schema: &Schema, name: &str, raw: &str) -> Result<Value> {
    let col = schema.column_named(name)?;
    let json = match col.ty {
        ColumnType::Text | ColumnType::Uuid | ColumnType::Timestamp | ColumnType::Blob => {
            // A timestamp given as a number of ms stays a number.
            match (col.ty, raw.parse::<i64>()) {
                (ColumnType::Timestamp, Ok(ms)) => Json::from(ms),
                _ => Json::String(raw.to_owned()),
            }
        }
        // Any document; a bare word is a JSON string.
        ColumnType::Json => {
            serde_json::from_str(raw).unwrap_or_else(|_| Json::String(raw.to_owned()))
        }
        ColumnType::Integer | ColumnType::Real | ColumnType::Bool => {
            let json: Json = serde_json::from_str(raw).map_err(|_| {
                Error::invalid_input(format!("column {name}: {raw:?} is not a {:?}", col.ty))
            })?;
            if !(json.is_number() || json.is_boolean() || json.is_null()) {
                return Err(Error::invalid_input(format!(
                    "column {name}: {raw:?} is not a {:?}",
                    col.ty
                )));
            }
            json
        }
    };
    json_to_value(col, &json)
}

fn row_to_json(schema: &Schema, row: Row) -> Result<Map<String, Json>> {
    schema
        .columns
        .iter()
        .zip(row)
        .map(|(c, v)| Ok((c.name.clone(), value_to_json(c, v)?)))
        .collect()
}

/// The row of `table` whose key is `key` (one value per key column, in key order);
/// `not-found` when there is none.
pub fn get(conn: &dyn Connection, table: &str, key: &[String]) -> Result<Map<String, Json>> {
    let schema = schema(conn, table)?;
    if schema.key.len() != key.len() {
        return Err(Error::invalid_input(format!(
            "table {table} is keyed by {} column(s) ({}); {} value(s) given",
            schema.key.len(),
            schema.key.join(", "),
            key.len()
        )));
    }
    let params = schema
        .key
        .iter()
        .zip(key)
        .map(|(name, raw)| parse_arg(&schema, name, raw))
        .collect::<Result<Vec<_>>>()?;
    let row = conn
        .query(&Statements::new(&schema).get, &params)?
        .pop()
        .ok_or_else(|| Error::not_found(format!("no row in {table} with key {key:?}")))?;
    row_to_json(&schema, row)
}

/// The rows of `table` matching every filter (all rows without filters), in key order, at most
/// `limit`.
pub fn find(
    conn: &dyn Connection,
    table: &str,
    filters: &[Filter],
    limit: Option<u64>,
) -> Result<Vec<Map<String, Json>>> {
    let schema = schema(conn, table)?;
    let conditions = filters
        .iter()
        .map(|f| {
            Ok(Condition::eq(
                &f.column,
                parse_arg(&schema, &f.column, &f.value)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let query = Query {
        conditions,
        limit,
        ..Query::default()
    };
    let (sql, params) = dml::select(&schema, &query)?;
    conn.query(&sql, &params)?
        .into_iter()
        .map(|r| row_to_json(&schema, r))
        .collect()
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::model::{Column, ColumnType, Schema};
    use crate::repository::Store;
    use crate::SqliteDatabase;
    use std::sync::Arc;

    fn store() -> Store {
        let db = Arc::new(SqliteDatabase::open(":memory:").unwrap());
        let store = Store::new(db);
        let schema = Schema::new("item")
            .column(Column::new("id", ColumnType::Integer))
            .column(Column::new("name", ColumnType::Text))
            .column(Column::new("score", ColumnType::Real))
            .key(&["id"]);
        store.register(schema).unwrap();
        for (id, name, score) in [(2, "b", 2.5), (1, "a", 1.5), (3, "a", 3.5)] {
            store
                .create(
                    "item",
                    &vec![
                        Value::Integer(id),
                        Value::Text(name.into()),
                        Value::Real(score),
                    ],
                )
                .unwrap();
        }
        store
    }

    fn with<T>(store: &Store, f: impl Fn(&dyn Connection) -> Result<T>) -> Result<T> {
        let mut out = None;
        store.database().reader(&mut |c| {
            out = Some(f(c)?);
            Ok(())
        })?;
        Ok(out.unwrap())
    }

    #[test]
    fn models_get_find_count() {
        let s = store();
        let models = with(&s, |c| models(c)).unwrap();
        assert_eq!(models.len(), 1);
        assert_eq!((models[0].table.as_str(), models[0].rows), ("item", 3));
        let row = with(&s, |c| get(c, "item", &["2".into()])).unwrap();
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"id":2,"name":"b","score":2.5}"#
        );
        let err = with(&s, |c| get(c, "item", &["9".into()])).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::NotFound);
        let err = with(&s, |c| get(c, "item", &["x".into()])).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidInput);
        let found = with(&s, |c| find(c, "item", &[Filter::parse("name=a")?], None)).unwrap();
        let ids: Vec<_> = found.iter().map(|r| r["id"].clone()).collect();
        assert_eq!(ids, vec![Json::from(1), Json::from(3)]);
        let limited = with(&s, |c| find(c, "item", &[], Some(2))).unwrap();
        assert_eq!(limited.len(), 2);
        assert_eq!(with(&s, |c| count(c, "item")).unwrap(), 3);
        let err = with(&s, |c| count(c, "nope")).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::TableMissing);
        let err = with(&s, |c| find(c, "item", &[Filter::parse("nope=1")?], None)).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidInput);
    }
}
