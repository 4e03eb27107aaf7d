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

/// A key as a person reads it, for messages: its values in key order joined by `/`, text as
/// is, NULL as nothing, numbers as numbers, bytes as hex (`x'0a1b'`). A ResourceTags key
/// (type, name, namespace) reads `pod/api-0/payments`; a cluster-scoped one `node/worker-1/`.
pub fn key_text(key: &[Value]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (i, value) in key.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        let _ = match value {
            Value::Null => Ok(()),
            Value::Integer(n) => write!(out, "{n}"),
            Value::Real(x) => write!(out, "{x}"),
            Value::Text(t) => out.write_str(t),
            Value::Blob(b) => {
                out.push_str("x'");
                for byte in b {
                    let _ = write!(out, "{byte:02x}");
                }
                out.write_str("'")
            }
        };
    }
    out
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

    #[test]
    fn keys_read_as_values_joined_by_slashes() {
        let tags = [
            Value::from("pod"),
            Value::from("api-0"),
            Value::from("payments"),
        ];
        assert_eq!(key_text(&tags), "pod/api-0/payments");
        let cluster_scoped = [Value::from("node"), Value::from("worker-1"), Value::Null];
        assert_eq!(key_text(&cluster_scoped), "node/worker-1/");
        let mixed = [
            Value::Integer(-7),
            Value::Real(1.5),
            Value::Blob(vec![0x0a, 0xff]),
        ];
        assert_eq!(key_text(&mixed), "-7/1.5/x'0aff'");
        assert_eq!(key_text(&[]), "");
    }
}
