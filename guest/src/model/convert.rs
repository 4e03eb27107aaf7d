//! Column-type-aware conversions: normalizing written values, and mapping between serde JSON
//! (the typed layer's view of a model) and [`Value`] (the dynamic layer's).
//!
//! Normalization lives here, in the dynamic layer, so rows arriving over WIT and rows produced
//! from Rust structs obey exactly the same rules (no logic twice).

use serde_json::Value as Json;

use super::{Column, ColumnType, Timestamp, Value};
use crate::error::{Error, Result};

fn mismatch(col: &Column, v: &Value) -> Error {
    Error::invalid_input(format!(
        "column {:?} ({:?}) cannot store a {} value",
        col.name,
        col.ty,
        v.kind()
    ))
}

/// Coerce a written value into the column's storage form: RFC3339 text becomes integer ms for
/// timestamps, uuids become canonical text, JSON text is validated, integers widen to reals.
/// NULL passes through; NOT NULL is SQLite's to enforce (it answers `constraint`).
pub fn normalize(col: &Column, v: Value) -> Result<Value> {
    normalize_json(col, v, JsonText::Unchecked)
}

/// Where the text of a row's JSON columns comes from, so it is parsed only when it may be
/// invalid: parsing a typed model's label maps again cost `create_many` ~5 % of its instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonText {
    /// A caller's text (a WIT row, a dynamic row): validated.
    Unchecked,
    /// Written by serde_json from a typed value ([`super::to_row`]): valid by construction.
    Serialized,
}

/// [`normalize`], trusting JSON text that `json` says serde_json wrote.
pub fn normalize_json(col: &Column, v: Value, json: JsonText) -> Result<Value> {
    Ok(match (col.ty, v) {
        (_, Value::Null) => Value::Null,
        (ColumnType::Integer, v @ Value::Integer(_)) => v,
        (ColumnType::Real, Value::Integer(i)) =>
        {
            #[allow(clippy::cast_precision_loss)]
            Value::Real(i as f64)
        }
        (ColumnType::Real, v @ Value::Real(_)) => v,
        (ColumnType::Text, v @ Value::Text(_)) => v,
        (ColumnType::Blob, v @ Value::Blob(_)) => v,
        (ColumnType::Bool, Value::Integer(i)) if i == 0 || i == 1 => Value::Integer(i),
        (ColumnType::Timestamp, v @ Value::Integer(_)) => v,
        (ColumnType::Timestamp, Value::Text(s)) => Value::Integer(Timestamp::parse_rfc3339(&s)?.0),
        (ColumnType::Json, v @ Value::Text(_)) if json == JsonText::Serialized => v,
        (ColumnType::Json, Value::Text(s)) => {
            serde_json::from_str::<serde::de::IgnoredAny>(&s).map_err(|e| {
                Error::invalid_input(format!("column {:?} holds invalid JSON: {e}", col.name))
            })?;
            Value::Text(s)
        }
        (ColumnType::Uuid, Value::Text(s)) => Value::Text(canonical_uuid(col, s)?),
        (ColumnType::Uuid, Value::Blob(b)) => match uuid::Uuid::from_slice(&b) {
            Ok(u) => Value::Text(u.hyphenated().to_string()),
            Err(_) => {
                return Err(Error::invalid_input(format!(
                    "column {:?}: not a 16-byte uuid",
                    col.name
                )))
            }
        },
        (_, v) => return Err(mismatch(col, &v)),
    })
}

/// True when [`normalize`] returns `v` as it is, with nothing to check: callers may then use
/// the value without copying it.
pub fn is_normal(col: &Column, v: &Value) -> bool {
    matches!(
        (col.ty, v),
        (_, Value::Null)
            | (
                ColumnType::Integer | ColumnType::Timestamp,
                Value::Integer(_)
            )
            | (ColumnType::Real, Value::Real(_))
            | (ColumnType::Text, Value::Text(_))
            | (ColumnType::Blob, Value::Blob(_))
    )
}

/// The canonical (lower-case, hyphenated) text of a uuid; keeps `s` when it already is.
fn canonical_uuid(col: &Column, s: String) -> Result<String> {
    let u = uuid::Uuid::parse_str(&s).map_err(|e| {
        Error::invalid_input(format!("column {:?}: not a uuid {s:?}: {e}", col.name))
    })?;
    let mut buf = uuid::Uuid::encode_buffer();
    let canonical = u.hyphenated().encode_lower(&mut buf);
    Ok(if *canonical == *s {
        s
    } else {
        canonical.to_owned()
    })
}

/// Map one serde field value to a column value (before [`normalize`]).
pub fn json_to_value(col: &Column, j: &Json) -> Result<Value> {
    if col.ty == ColumnType::Json {
        // A JSON column stores any document; JSON null in a nullable column is SQL NULL.
        return Ok(match j {
            Json::Null if col.nullable => Value::Null,
            other => Value::Text(other.to_string()),
        });
    }
    Ok(match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(i64::from(*b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Integer(i)
            } else if let Some(f) = n.as_f64() {
                if col.ty == ColumnType::Real || col.ty == ColumnType::Timestamp {
                    if col.ty == ColumnType::Timestamp {
                        #[allow(clippy::cast_possible_truncation)]
                        return Ok(Value::Integer(f.floor() as i64));
                    }
                    Value::Real(f)
                } else {
                    return Err(Error::invalid_input(format!(
                        "column {:?}: number {n} does not fit",
                        col.name
                    )));
                }
            } else {
                return Err(Error::invalid_input(format!(
                    "column {:?}: bad number",
                    col.name
                )));
            }
        }
        Json::String(s) => Value::Text(s.clone()),
        Json::Array(items) if col.ty == ColumnType::Blob => {
            let mut bytes = Vec::with_capacity(items.len());
            for item in items {
                let b = item
                    .as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .ok_or_else(|| {
                        Error::invalid_input(format!("column {:?}: not a byte", col.name))
                    })?;
                bytes.push(b);
            }
            Value::Blob(bytes)
        }
        Json::Array(_) | Json::Object(_) => {
            return Err(Error::invalid_input(format!(
                "column {:?} ({:?}) cannot store a JSON array or object; declare it json",
                col.name, col.ty
            )))
        }
    })
}

/// Map a stored value back to the serde field value of the typed layer.
pub fn value_to_json(col: &Column, v: Value) -> Result<Json> {
    Ok(match (col.ty, v) {
        (_, Value::Null) => Json::Null,
        (ColumnType::Bool, Value::Integer(i)) => Json::Bool(i != 0),
        (ColumnType::Json, Value::Text(s)) => serde_json::from_str(&s).map_err(|e| {
            Error::corrupt(format!("column {:?} holds invalid JSON: {e}", col.name))
        })?,
        (_, Value::Integer(i)) => Json::from(i),
        (_, Value::Real(f)) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        (_, Value::Text(s)) => Json::String(s),
        (_, Value::Blob(b)) => Json::Array(b.into_iter().map(Json::from).collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_by_type() {
        let ts = Column::new("t", ColumnType::Timestamp);
        let v = normalize(&ts, Value::Text("1970-01-01T00:00:01.0009Z".into())).unwrap();
        assert_eq!(v, Value::Integer(1000));
        let id = Column::new("id", ColumnType::Uuid);
        let v = normalize(
            &id,
            Value::Text("67E55044-10B1-426F-9247-BB680E5FE0C8".into()),
        )
        .unwrap();
        assert_eq!(
            v,
            Value::Text("67e55044-10b1-426f-9247-bb680e5fe0c8".into())
        );
        assert!(normalize(&id, Value::Text("nope".into())).is_err());
        let b = Column::new("b", ColumnType::Bool);
        assert!(normalize(&b, Value::Integer(2)).is_err());
        let j = Column::new("j", ColumnType::Json);
        assert!(normalize(&j, Value::Text("{".into())).is_err());
        let i = Column::new("i", ColumnType::Integer);
        let err = normalize(&i, Value::Text("x".into())).unwrap_err();
        assert!(err.message().contains("\"i\""));
    }

    #[test]
    fn normal_values_are_what_normalize_returns() {
        let kinds = [
            Value::Null,
            Value::Integer(2),
            Value::Integer(1),
            Value::Real(0.5),
            Value::Text("67E55044-10B1-426F-9247-BB680E5FE0C8".into()),
            Value::Text("{}".into()),
            Value::Text("x".into()),
            Value::Blob(vec![1]),
        ];
        for ty in [
            ColumnType::Integer,
            ColumnType::Real,
            ColumnType::Text,
            ColumnType::Blob,
            ColumnType::Bool,
            ColumnType::Timestamp,
            ColumnType::Json,
            ColumnType::Uuid,
        ] {
            let col = Column::new("c", ty);
            for v in &kinds {
                if is_normal(&col, v) {
                    assert_eq!(normalize(&col, v.clone()).ok().as_ref(), Some(v), "{ty:?}");
                }
            }
        }
    }

    #[test]
    fn json_round_trip() {
        let j = Column::new("j", ColumnType::Json);
        let doc = serde_json::json!({"a": [1, 2], "b": "c"});
        let v = json_to_value(&j, &doc).unwrap();
        assert_eq!(value_to_json(&j, v).unwrap(), doc);
        let b = Column::new("b", ColumnType::Bool);
        let v = json_to_value(&b, &Json::Bool(true)).unwrap();
        assert_eq!(value_to_json(&b, v).unwrap(), Json::Bool(true));
        let blob = Column::new("x", ColumnType::Blob);
        let v = json_to_value(&blob, &serde_json::json!([1, 255])).unwrap();
        assert_eq!(v, Value::Blob(vec![1, 255]));
        assert!(
            json_to_value(&Column::new("t", ColumnType::Text), &serde_json::json!({})).is_err()
        );
    }
}
