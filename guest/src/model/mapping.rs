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

/// Rows that [`to_rows`] made from typed models: their JSON columns hold serde_json's own text,
/// so writing them need not parse it again to know it is valid. Only [`to_rows`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct SerializedRows(Vec<Row>);

impl SerializedRows {
    /// The rows, full width, in schema column order.
    pub fn into_rows(self) -> Vec<Row> {
        self.0
    }
}

/// [`to_row`] of every model.
pub fn to_rows<M: Serialize>(schema: &Schema, models: &[M]) -> Result<SerializedRows> {
    models
        .iter()
        .map(|m| to_row(schema, m))
        .collect::<Result<Vec<_>>>()
        .map(SerializedRows)
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

/// [`to_key`] of each id, in order (a batch read's keys).
pub fn to_keys<Id: Serialize>(schema: &Schema, ids: &[Id]) -> Result<Vec<Key>> {
    ids.iter().map(|id| to_key(schema, id)).collect()
}

/// [`from_row`] of each row present, in order (a batch read's answer, `None` where missing).
pub fn from_optional_rows<M: DeserializeOwned>(
    schema: &Schema,
    rows: Vec<Option<Row>>,
) -> Result<Vec<Option<M>>> {
    rows.into_iter()
        .map(|row| row.map(|r| from_row(schema, r)).transpose())
        .collect()
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

    /// A model whose JSON columns hold anything serde can write: a document, a label map with
    /// any text, a float (NaN and infinities become `null`), a nullable map.
    #[derive(Debug, serde::Serialize)]
    struct Docs {
        id: i64,
        doc: Json,
        labels: std::collections::BTreeMap<String, String>,
        real: f64,
        maybe: Option<std::collections::BTreeMap<String, i64>>,
    }

    fn docs_schema() -> Schema {
        Schema::new("docs")
            .column(Column::new("id", ColumnType::Integer))
            .column(Column::new("doc", ColumnType::Json))
            .column(Column::new("labels", ColumnType::Json))
            .column(Column::new("real", ColumnType::Json))
            .column(Column::new("maybe", ColumnType::Json).nullable())
            .key(&["id"])
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Json> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            any::<f64>().prop_map(Json::from),
            any::<String>().prop_map(Json::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// What lets a write of [`SerializedRows`] skip parsing its JSON columns: every text
        /// `to_rows` puts there is JSON the checking `normalize` accepts as it is.
        #[test]
        fn serialized_json_columns_are_valid_json(
            doc in any_json(),
            labels in proptest::collection::btree_map(".*", ".*", 0..5),
            real in proptest::num::f64::ANY,
            maybe in proptest::option::of(proptest::collection::btree_map(".*", proptest::num::i64::ANY, 0..3)),
        ) {
            let s = docs_schema();
            let model = Docs { id: 1, doc, labels, real, maybe };
            let rows = to_rows(&s, std::slice::from_ref(&model)).unwrap().into_rows();
            for (col, v) in s.columns.iter().zip(&rows[0]) {
                let checked = crate::model::normalize(col, v.clone());
                let trusted = crate::model::normalize_json(col, v.clone(), crate::model::JsonText::Serialized);
                proptest::prop_assert_eq!(checked.ok(), trusted.ok(), "column {}", col.name);
            }
        }
    }
}
