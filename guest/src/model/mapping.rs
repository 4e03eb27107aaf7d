//! The [`Model`] trait and the serde-based mapping between Rust values and rows.
//!
//! A model serializes to a JSON object; each schema column takes the field of the same name
//! (missing fields are NULL, generated columns are never written). Reading goes the other way.
//! Ids map to key values: a scalar for a single-column key, a tuple or array (positional) for a
//! composite key.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::convert::{json_to_value, value_to_json};
use super::row_deserializer::from_row_direct;
use super::row_serializer::{to_key_direct, to_row_direct};
use super::{Key, Row, Schema, Value};
use crate::error::{Error, Result};

/// A Rust type stored as rows of one table.
pub trait Model: Serialize + DeserializeOwned {
    /// The table this model lives in. Called once per `Storage`, so it may build the schema.
    fn schema() -> Schema;
}

/// Map a model to a full-width row in schema column order.
///
/// Plain structs take the direct serializer (`row_serializer`); everything else, and every
/// error, the `serde_json::Value` tree below, which defines the result.
pub fn to_row<M: Serialize + ?Sized>(schema: &Schema, model: &M) -> Result<Row> {
    match to_row_direct(schema, model) {
        Some(row) => Ok(row),
        None => to_row_via_json(schema, model),
    }
}

/// The reference mapping: model -> JSON object -> one value per column.
pub(super) fn to_row_via_json<M: Serialize + ?Sized>(schema: &Schema, model: &M) -> Result<Row> {
    let json = serde_json::to_value(model)?;
    let Json::Object(fields) = json else {
        return Err(Error::invalid_input(format!(
            "a {} model must serialize to a JSON object",
            schema.table
        )));
    };
    schema
        .columns
        .iter()
        .map(|col| {
            if col.generated.is_some() {
                return Ok(Value::Null);
            }
            json_to_value(col, fields.get(&col.name).unwrap_or(&Json::Null))
        })
        .collect()
}

/// Map a full-width row (schema column order) back to a model.
///
/// The direct deserializer (`row_deserializer`) reads the row as it is; a model it does not
/// handle, and every error, takes the `serde_json::Value` tree below, which defines the result.
pub fn from_row<M: DeserializeOwned>(schema: &Schema, row: Row) -> Result<M> {
    if row.len() != schema.columns.len() {
        return Err(Error::internal(format!(
            "row of {} values for {} columns of {}",
            row.len(),
            schema.columns.len(),
            schema.table
        )));
    }
    match from_row_direct(schema, &row) {
        Some(model) => Ok(model),
        None => from_row_via_json(schema, row),
    }
}

/// The reference mapping: row -> JSON object of the non-NULL columns -> model.
pub(super) fn from_row_via_json<M: DeserializeOwned>(schema: &Schema, row: Row) -> Result<M> {
    let mut fields = Map::with_capacity(row.len());
    for (col, v) in schema.columns.iter().zip(row) {
        // SQL NULL is left out rather than passed as JSON null, so `Option` fields become `None`
        // and `#[serde(default)]` fields (e.g. a generated column not yet computed) their default.
        if v.is_null() {
            continue;
        }
        fields.insert(col.name.clone(), value_to_json(col, v)?);
    }
    serde_json::from_value(Json::Object(fields)).map_err(|e| {
        Error::corrupt(format!(
            "stored {} row does not fit the model: {e}",
            schema.table
        ))
    })
}

/// Map an id to key values (schema key order).
///
/// Scalars and tuples of scalars take the direct serializer (`row_serializer::to_key_direct`);
/// everything else, and every error, the `serde_json::Value` tree below.
pub fn to_key<Id: Serialize + ?Sized>(schema: &Schema, id: &Id) -> Result<Key> {
    match to_key_direct(schema, id) {
        Some(key) => Ok(key),
        None => to_key_via_json(schema, id),
    }
}

/// The reference mapping: id -> JSON value (an array for a composite key) -> key values.
pub(super) fn to_key_via_json<Id: Serialize + ?Sized>(schema: &Schema, id: &Id) -> Result<Key> {
    let json = serde_json::to_value(id)?;
    let cols: Vec<_> = schema
        .key
        .iter()
        .map(|k| schema.column_named(k))
        .collect::<Result<_>>()?;
    let parts = match json {
        Json::Array(items) if cols.len() > 1 => items,
        // A single key: the id itself (even a byte array for a blob key).
        other if cols.len() == 1 => vec![other],
        other => {
            return Err(Error::invalid_input(format!(
                "{} has a {}-column key; pass a tuple or array, not {other}",
                schema.table,
                cols.len()
            )))
        }
    };
    if parts.len() != cols.len() {
        return Err(Error::invalid_input(format!(
            "{} key has {} columns, got {} values",
            schema.table,
            cols.len(),
            parts.len()
        )));
    }
    cols.iter()
        .zip(parts.iter())
        .map(|(c, j)| json_to_value(c, j))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, ColumnType};

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Pair {
        a: String,
        b: Option<i64>,
        on: bool,
    }

    fn schema() -> Schema {
        Schema::new("pair")
            .column(Column::new("a", ColumnType::Text))
            .column(Column::new("b", ColumnType::Integer).nullable())
            .column(Column::new("on", ColumnType::Bool))
            .key(&["a", "b"])
    }

    #[test]
    fn rows_and_keys() {
        let s = schema();
        let p = Pair {
            a: "x".into(),
            b: None,
            on: true,
        };
        let row = to_row(&s, &p).unwrap();
        assert_eq!(
            row,
            vec![Value::Text("x".into()), Value::Null, Value::Integer(1)]
        );
        assert_eq!(from_row::<Pair>(&s, row).unwrap(), p);
        let key = to_key(&s, &("x", None::<i64>)).unwrap();
        assert_eq!(key, vec![Value::Text("x".into()), Value::Null]);
        assert!(to_key(&s, &"x").is_err());
        assert!(to_key(&s, &("x", 1, 2)).is_err());
    }
}
