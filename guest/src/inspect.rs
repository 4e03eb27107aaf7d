//! Reads of a repository database for tools that have no model types: the standalone
//! component's command entry point (and the `edgestore` CLI). Tables and their schemas are those
//! the repository recorded when models were registered (`_edgestore_schema`, the schema as JSON),
//! so any database written by any engine can be inspected; SQL comes from the same statement
//! builders the repository uses (`sql::dml`), so a key lookup here is the repository's `get`.
//!
//! Command-line values are typed by the column, by one rule ([`arg_value`]) that both CLIs use
//! for `--where COLUMN=VALUE` and key values: `null` is NULL (`--where` matches it with
//! `IS NULL`), integers and reals are numbers, bools `true`/`false`/`1`/`0`, timestamps RFC3339
//! or UTC milliseconds ([`Timestamp::parse_arg`]), JSON columns a JSON document (a bare word is a
//! JSON string), text and uuids as given. Rows come back as JSON objects (column name -> value,
//! in column order) with the same typing. Printing is `present`'s job.

use serde::ser::SerializeMap as _;
use serde::{Serialize, Serializer};
use serde_json::Value as Json;

use crate::error::{Error, ErrorCode, Result};
use crate::model::naming::{quote, validate_ident};
use crate::model::{
    normalize, to_key, value_to_json, Column, ColumnType, Condition, Key, Query, ResourceTags, Row,
    Schema, Timestamp, Value,
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

/// A `--where COLUMN=VALUE` filter; the value is typed by the column ([`Filter::condition`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Column name.
    pub column: String,
    /// The value as given on the command line.
    pub value: String,
}

impl Filter {
    /// Parse `COLUMN=VALUE` (the value may contain `=`).
    pub fn parse(s: &str) -> Result<Filter> {
        let (column, value) = s.split_once('=').ok_or_else(|| {
            Error::invalid_input(format!("bad --where {s:?}: expected COLUMN=VALUE"))
        })?;
        Ok(Filter {
            column: column.to_owned(),
            value: value.to_owned(),
        })
    }

    /// The condition on a table of `schema`: `column IS NULL` for `null`, otherwise
    /// `column = value` with the value typed by [`arg_value`]. `invalid-input` for a column the
    /// table lacks or a value its type cannot take.
    pub fn condition(&self, schema: &Schema) -> Result<Condition> {
        let bad = |why: String| {
            Error::invalid_input(format!(
                "bad --where \"{}={}\": {why}",
                self.column, self.value
            ))
        };
        let col = schema
            .columns
            .iter()
            .find(|c| c.name == self.column)
            .ok_or_else(|| bad(format!("{} has no column {:?}", schema.table, self.column)))?;
        match arg_value(col, &self.value).map_err(|e| bad(e.message().to_owned()))? {
            Value::Null => Ok(Condition::is_null(&self.column)),
            v => Ok(Condition::eq(&self.column, v)),
        }
    }
}

/// A command-line value for column `col`, in the column's storage form: `null` is NULL for
/// every type; integer columns take an integer, real columns a finite number, bool columns
/// `true`/`false`/`1`/`0`, timestamp columns RFC3339 or UTC milliseconds, JSON columns a JSON
/// document (a bare word is a JSON string), text and uuid columns the text as given (a uuid
/// is checked and made canonical). Blob columns take no command-line value.
pub fn arg_value(col: &Column, raw: &str) -> Result<Value> {
    if raw == "null" {
        return Ok(Value::Null);
    }
    let bad = |takes: &str| {
        Error::invalid_input(format!("column {} takes {takes}, not {raw:?}", col.name))
    };
    let v = match col.ty {
        ColumnType::Integer => Value::Integer(raw.parse().map_err(|_| bad("an integer"))?),
        ColumnType::Real => match raw.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Real(f),
            _ => return Err(bad("a number")),
        },
        ColumnType::Bool => match raw {
            "true" | "1" => Value::Integer(1),
            "false" | "0" => Value::Integer(0),
            _ => return Err(bad("true, false, 1 or 0")),
        },
        ColumnType::Timestamp => Value::Integer(
            Timestamp::parse_arg(raw)
                .map_err(|_| bad("RFC3339 or UTC milliseconds"))?
                .0,
        ),
        ColumnType::Json => Value::Text(
            serde_json::from_str::<Json>(raw)
                .unwrap_or_else(|_| Json::String(raw.to_owned()))
                .to_string(),
        ),
        ColumnType::Text | ColumnType::Uuid => Value::Text(raw.to_owned()),
        ColumnType::Blob => {
            return Err(Error::invalid_input(format!(
                "column {} is a blob: command lines cannot give its value",
                col.name
            )))
        }
    };
    normalize(col, v)
}

/// The keys a `db get` command line names in a table of `schema`, each with its text for
/// messages: for `resource_tags` every argument is one key in the model's syntax
/// ([`ResourceTags::parse_key`]: `TYPE/NAMESPACE/NAME` or `TYPE/NAME`, as in the `edgestore`
/// CLI); for any other table the arguments are one key, one value per key column in key order
/// ([`arg_value`]).
pub fn keys(schema: &Schema, args: &[String]) -> Result<Vec<(String, Key)>> {
    if schema.table == ResourceTags::TABLE {
        return args
            .iter()
            .map(|arg| {
                let key = to_key(schema, &ResourceTags::parse_key(arg)?)?;
                Ok((arg.clone(), normalize_key(schema, key)?))
            })
            .collect();
    }
    if schema.key.len() != args.len() {
        return Err(Error::invalid_input(format!(
            "table {} is keyed by {} column(s) ({}); {} value(s) given",
            schema.table,
            schema.key.len(),
            schema.key.join(", "),
            args.len()
        )));
    }
    let key = schema
        .key
        .iter()
        .zip(args)
        .map(|(name, raw)| arg_value(schema.column_named(name)?, raw))
        .collect::<Result<Key>>()?;
    Ok(vec![(format!("{args:?}"), key)])
}

fn normalize_key(schema: &Schema, key: Key) -> Result<Key> {
    schema
        .key
        .iter()
        .zip(key)
        .map(|(name, v)| normalize(schema.column_named(name)?, v))
        .collect()
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

/// One row as a JSON object: column name -> value, in the table's column order (the order a
/// model's fields serialize in, so `present::json_line` prints it as the `edgestore` CLI
/// prints the model's row).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Column name and value, in column order.
    pub fields: Vec<(String, Json)>,
}

impl Record {
    /// The value of column `name`.
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for (name, value) in &self.fields {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

fn row_to_json(schema: &Schema, row: Row) -> Result<Record> {
    let fields = schema
        .columns
        .iter()
        .zip(row)
        .map(|(c, v)| Ok((c.name.clone(), value_to_json(c, v)?)))
        .collect::<Result<_>>()?;
    Ok(Record { fields })
}

/// The rows of `table` the command-line keys `args` name ([`keys`]), in their order;
/// `not-found` for the first key without a row.
pub fn get(conn: &dyn Connection, table: &str, args: &[String]) -> Result<Vec<Record>> {
    let schema = schema(conn, table)?;
    let sql = Statements::new(&schema).get;
    keys(&schema, args)?
        .into_iter()
        .map(|(text, key)| {
            let row = conn
                .query(&sql, &key)?
                .pop()
                .ok_or_else(|| Error::not_found(format!("no row in {table} with key {text}")))?;
            row_to_json(&schema, row)
        })
        .collect()
}

/// The rows of `table` matching every filter (all rows without filters), in key order, at most
/// `limit`.
pub fn find(
    conn: &dyn Connection,
    table: &str,
    filters: &[Filter],
    limit: Option<u64>,
) -> Result<Vec<Record>> {
    let schema = schema(conn, table)?;
    let conditions = filters
        .iter()
        .map(|f| f.condition(&schema))
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
    use crate::model::{Column, ColumnType, Model as _, Schema};
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
        let rows = with(&s, |c| get(c, "item", &["2".into()])).unwrap();
        assert_eq!(
            serde_json::to_string(&rows).unwrap(),
            r#"[{"id":2,"name":"b","score":2.5}]"#
        );
        let err = with(&s, |c| get(c, "item", &["9".into()])).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::NotFound);
        let err = with(&s, |c| get(c, "item", &["x".into()])).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidInput);
        let found = with(&s, |c| find(c, "item", &[Filter::parse("name=a")?], None)).unwrap();
        let ids: Vec<_> = found.iter().map(|r| r.get("id").cloned()).collect();
        assert_eq!(ids, vec![Some(Json::from(1)), Some(Json::from(3))]);
        let limited = with(&s, |c| find(c, "item", &[], Some(2))).unwrap();
        assert_eq!(limited.len(), 2);
        assert_eq!(with(&s, |c| count(c, "item")).unwrap(), 3);
        let err = with(&s, |c| count(c, "nope")).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::TableMissing);
        let err = with(&s, |c| find(c, "item", &[Filter::parse("nope=1")?], None)).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidInput);
        assert!(err.message().contains("no column \"nope\""), "{err}");
        let err = with(&s, |c| get(c, "item", &["1".into(), "2".into()])).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidInput);
    }

    #[test]
    fn one_typing_rule_for_command_line_values() {
        let col = |ty| Column::new("c", ty).nullable();
        let v = |ty, raw| arg_value(&col(ty), raw);
        for ty in [
            ColumnType::Integer,
            ColumnType::Real,
            ColumnType::Text,
            ColumnType::Bool,
            ColumnType::Timestamp,
            ColumnType::Json,
            ColumnType::Uuid,
            ColumnType::Blob,
        ] {
            assert_eq!(v(ty, "null").unwrap(), Value::Null, "{ty:?}");
        }
        assert_eq!(v(ColumnType::Integer, "-42").unwrap(), Value::Integer(-42));
        assert!(v(ColumnType::Integer, "1.5").is_err());
        assert!(v(ColumnType::Integer, "true").is_err());
        assert_eq!(v(ColumnType::Real, "2").unwrap(), Value::Real(2.0));
        assert!(v(ColumnType::Real, "NaN").is_err());
        assert!(v(ColumnType::Real, "inf").is_err());
        for (raw, b) in [("true", 1), ("1", 1), ("false", 0), ("0", 0)] {
            assert_eq!(
                v(ColumnType::Bool, raw).unwrap(),
                Value::Integer(b),
                "{raw}"
            );
        }
        for raw in ["yes", "2", "TRUE"] {
            assert!(v(ColumnType::Bool, raw).is_err(), "{raw}");
        }
        assert_eq!(
            v(ColumnType::Timestamp, "1000").unwrap(),
            Value::Integer(1000)
        );
        assert_eq!(
            v(ColumnType::Timestamp, "1970-01-01T00:00:01Z").unwrap(),
            Value::Integer(1000)
        );
        assert!(v(ColumnType::Timestamp, "soon").is_err());
        assert_eq!(
            v(ColumnType::Json, r#"{"b": 1, "a": [true]}"#).unwrap(),
            Value::Text(r#"{"a":[true],"b":1}"#.into())
        );
        assert_eq!(
            v(ColumnType::Json, "word").unwrap(),
            Value::Text(r#""word""#.into())
        );
        assert_eq!(
            v(ColumnType::Text, "true").unwrap(),
            Value::Text("true".into())
        );
        assert_eq!(
            v(ColumnType::Uuid, "67E55044-10B1-426F-9247-BB680E5FE0C8").unwrap(),
            Value::Text("67e55044-10b1-426f-9247-bb680e5fe0c8".into())
        );
        assert!(v(ColumnType::Uuid, "nope").is_err());
        assert!(v(ColumnType::Blob, "00").is_err());

        let schema = ResourceTags::schema();
        let cond = |text: &str| Filter::parse(text)?.condition(&schema);
        assert_eq!(
            cond("namespace=prod").unwrap(),
            Condition::eq("namespace", "prod")
        );
        assert_eq!(cond("sent_at=null").unwrap(), Condition::is_null("sent_at"));
        assert_eq!(
            cond("sent_at=1970-01-01T00:00:00.005Z").unwrap(),
            Condition::eq("sent_at", 5)
        );
        assert_eq!(cond("name=a=b").unwrap(), Condition::eq("name", "a=b"));
        let e = cond("size=big").unwrap_err();
        assert!(e.message().starts_with("bad --where \"size=big\""), "{e}");
        assert!(cond("nosuch=1").unwrap_err().message().contains("nosuch"));
        assert!(Filter::parse("namespace").is_err());
    }

    #[test]
    fn resource_tags_keys_are_the_cli_syntax() {
        let schema = ResourceTags::schema();
        let keys = keys(&schema, &["pod/prod/web-0".into(), "node/worker-1".into()]).unwrap();
        assert_eq!(
            keys,
            vec![
                (
                    "pod/prod/web-0".to_owned(),
                    vec![
                        Value::Text("pod".into()),
                        Value::Text("web-0".into()),
                        Value::Text("prod".into())
                    ]
                ),
                (
                    "node/worker-1".to_owned(),
                    vec![
                        Value::Text("node".into()),
                        Value::Text("worker-1".into()),
                        Value::Null
                    ]
                ),
            ]
        );
        let e = super::keys(&schema, &["pod".into()]).unwrap_err();
        assert!(e.message().contains("bad resource_tags key"), "{e}");

        let db = Arc::new(SqliteDatabase::open(":memory:").unwrap());
        let store = Store::new(db);
        store.register(schema).unwrap();
        let tags: crate::repository::SqlStorage<ResourceTags, crate::model::ResourceTagsKey> =
            crate::repository::SqlStorage::open(store.database().clone()).unwrap();
        use crate::repository::{Creator as _, Reader as _};
        let web = ResourceTags::new("pod", "web-0", Some("prod"), Timestamp(5));
        let node = ResourceTags::new("node", "worker-1", None, Timestamp(6));
        tags.create(&web).unwrap();
        tags.create(&node).unwrap();
        // As the typed layer reads them back (the generated `size` filled in).
        let web = tags.get(&web.key()).unwrap();
        let node = tags.get(&node.key()).unwrap();
        let rows = with(&store, |c| {
            get(
                c,
                "resource_tags",
                &["node/worker-1".into(), "pod/prod/web-0".into()],
            )
        })
        .unwrap();
        assert_eq!(
            serde_json::to_string(&rows).unwrap(),
            serde_json::to_string(&[&node, &web]).unwrap()
        );
        let err = with(&store, |c| {
            get(c, "resource_tags", &["pod/dev/web-0".into()])
        })
        .unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::NotFound);
        assert!(err.message().contains("pod/dev/web-0"), "{err}");
    }
}
