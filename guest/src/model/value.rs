//! [`Value`]: one SQL value, the unit rows are made of.
//!
//! It mirrors SQLite's five storage classes and the future WIT `value` variant one to one, so a
//! row crosses the component boundary without reinterpretation. Logical column types (bool,
//! timestamp, json, uuid) are encodings on top of these, decided by the schema.

use serde::{Deserialize, Serialize};

/// One SQL value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum Value {
    /// SQL NULL.
    #[default]
    Null,
    /// A 64-bit signed integer (also bools, timestamps in UTC ms).
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text (also JSON documents and uuids).
    Text(String),
    /// Raw bytes.
    Blob(Vec<u8>),
}

/// A row: one value per column, in the order of the schema's columns.
pub type Row = Vec<Value>;

/// A key: one value per key column, in the order of the schema's key.
pub type Key = Vec<Value>;

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The storage class name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Integer(i64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Integer(i64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_and_serde() {
        assert_eq!(Value::from(Some("a")), Value::Text("a".into()));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from(true), Value::Integer(1));
        let json = serde_json::to_string(&Value::Integer(3)).unwrap();
        assert_eq!(json, r#"{"kind":"integer","value":3}"#);
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Value::Integer(3));
    }
}
