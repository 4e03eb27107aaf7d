//! The direct path from a row to a model struct: a serde `Deserializer` that hands each stored
//! value to the model's field as it is, the counterpart of `row_serializer`.
//!
//! Why: the reference mapping (`mapping::from_row_via_json`) builds a `serde_json::Value` tree
//! per row (a map with a `String` per column name, a tree per JSON column) and then walks that
//! tree again into the model. That was about a tenth of a `get`. Here scalars are visited
//! straight from the row and a JSON column is deserialized straight from its text.
//!
//! The result is the tree path's, value for value: every method answers as the tree's
//! `serde_json::Value` would for the JSON value the column maps to (`convert::value_to_json`),
//! and a JSON column is read by serde_json itself. Anything else, and every error, makes the
//! caller take the tree path, which then produces the model or the canonical error; so the
//! direct path may give up, but never disagree.

use serde::de::value::{BorrowedStrDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};

use super::{ColumnType, Row, Schema, Value};
use crate::fallback::Bail;

/// serde_json's marker for `RawValue`: the tree answers it with re-printed text, which the
/// stored text need not equal, so the direct path leaves it to the tree.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Methods the direct path does not answer: the tree path decides.
macro_rules! refuse {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Bail> {
                let _ = ($($arg,)* visitor);
                Err(Bail)
            }
        )*
    };
}

/// Map a full-width row (already checked against the schema's width) to a model, or `None` when
/// the tree path must decide.
pub(super) fn from_row_direct<M: DeserializeOwned>(schema: &Schema, row: &Row) -> Option<M> {
    M::deserialize(RowDe { schema, row }).ok()
}

/// The whole row: a JSON object of its non-NULL columns, in schema order.
struct RowDe<'de> {
    schema: &'de Schema,
    row: &'de Row,
}

impl<'de> RowDe<'de> {
    fn visit_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        let mut fields = Fields {
            schema: self.schema,
            row: self.row,
            next: 0,
            pending: None,
        };
        let out = visitor.visit_map(&mut fields)?;
        // As the tree: a visitor that leaves entries unread is an error.
        if fields.next_non_null().is_some() || fields.pending.is_some() {
            return Err(Bail);
        }
        Ok(out)
    }
}

impl<'de> de::Deserializer<'de> for RowDe<'de> {
    type Error = Bail;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_map(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Bail> {
        self.visit_map(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Bail> {
        if name == RAW_VALUE_TOKEN {
            return Err(Bail);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        visitor.visit_unit()
    }

    // Everything else the tree answers with an error (an object is not a number, a string, a
    // sequence, ...) or, for an enum, with rules not worth repeating here.
    refuse! {
        deserialize_bool(), deserialize_i8(), deserialize_i16(), deserialize_i32(),
        deserialize_i64(), deserialize_i128(), deserialize_u8(), deserialize_u16(),
        deserialize_u32(), deserialize_u64(), deserialize_u128(), deserialize_f32(),
        deserialize_f64(), deserialize_char(), deserialize_str(), deserialize_string(),
        deserialize_bytes(), deserialize_byte_buf(), deserialize_unit(), deserialize_seq(),
        deserialize_identifier(), deserialize_unit_struct(name: &'static str),
        deserialize_tuple(len: usize), deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    }
}

/// The row's non-NULL columns as map entries (SQL NULL is left out, so `Option` fields become
/// `None` and `#[serde(default)]` fields their default, as in the tree).
struct Fields<'de> {
    schema: &'de Schema,
    row: &'de Row,
    next: usize,
    pending: Option<Cell<'de>>,
}

impl<'de> Fields<'de> {
    fn next_non_null(&mut self) -> Option<(&'de str, Cell<'de>)> {
        while self.next < self.row.len() {
            let i = self.next;
            self.next += 1;
            let (col, value) = (&self.schema.columns[i], &self.row[i]);
            if !value.is_null() {
                return Some((&col.name, Cell::new(col.ty, value)));
            }
        }
        None
    }
}

impl<'de> MapAccess<'de> for &mut Fields<'de> {
    type Error = Bail;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Bail> {
        match self.next_non_null() {
            Some((name, cell)) => {
                self.pending = Some(cell);
                seed.deserialize(KeyDe(name)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Bail> {
        let cell = self.pending.take().ok_or(Bail)?;
        seed.deserialize(cell)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(
            self.row[self.next..]
                .iter()
                .filter(|v| !v.is_null())
                .count(),
        )
    }
}

/// A column name as a map key: a string, nothing else (the tree's key deserializer also reads
/// numbers out of keys; such models take the tree path).
struct KeyDe<'de>(&'de str);

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = Bail;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        visitor.visit_unit()
    }

    // The tree reads numbers, bools, options, newtypes and enums out of keys, and answers the
    // rest as a string: none of that is a column name's job.
    refuse! {
        deserialize_bool(), deserialize_i8(), deserialize_i16(), deserialize_i32(),
        deserialize_i64(), deserialize_i128(), deserialize_u8(), deserialize_u16(),
        deserialize_u32(), deserialize_u64(), deserialize_u128(), deserialize_f32(),
        deserialize_f64(), deserialize_char(), deserialize_bytes(), deserialize_byte_buf(),
        deserialize_option(), deserialize_unit(), deserialize_seq(), deserialize_map(),
        deserialize_unit_struct(name: &'static str), deserialize_newtype_struct(name: &'static str),
        deserialize_tuple(len: usize), deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    }
}

/// One stored value as the JSON value the tree maps it to (`convert::value_to_json`).
#[derive(Clone, Copy)]
enum Cell<'de> {
    /// JSON null: a non-finite real.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'de str),
    /// A blob: an array of byte numbers.
    Bytes(&'de [u8]),
    /// The text of a JSON column, read by serde_json.
    Json(&'de str),
}

impl<'de> Cell<'de> {
    fn new(ty: ColumnType, value: &'de Value) -> Cell<'de> {
        match (ty, value) {
            (_, Value::Null) => Cell::Null,
            (ColumnType::Bool, Value::Integer(i)) => Cell::Bool(*i != 0),
            (ColumnType::Json, Value::Text(s)) => Cell::Json(s),
            (_, Value::Integer(i)) => Cell::Int(*i),
            (_, Value::Real(f)) if f.is_finite() => Cell::Float(*f),
            (_, Value::Real(_)) => Cell::Null,
            (_, Value::Text(s)) => Cell::Str(s),
            (_, Value::Blob(b)) => Cell::Bytes(b),
        }
    }

    /// Numbers as serde_json's `Number` visits them: non-negative integers as `u64`.
    fn visit_number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        match self {
            Cell::Int(i) => match u64::try_from(i) {
                Ok(u) => visitor.visit_u64(u),
                Err(_) => visitor.visit_i64(i),
            },
            Cell::Float(f) => visitor.visit_f64(f),
            _ => Err(Bail),
        }
    }

    fn visit_bytes_seq<V: Visitor<'de>>(bytes: &[u8], visitor: V) -> Result<V::Value, Bail> {
        let mut seq = SeqDeserializer::<_, Bail>::new(bytes.iter().map(|&b| u64::from(b)));
        let out = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(out)
    }
}

/// Read a JSON column's text with serde_json, all of it (trailing text is an error, as when the
/// tree parses it).
fn from_json<'de, T>(
    text: &'de str,
    read: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
    ) -> serde_json::Result<T>,
) -> Result<T, Bail> {
    let mut de = serde_json::Deserializer::from_str(text);
    let out = read(&mut de).map_err(|_| Bail)?;
    de.end().map_err(|_| Bail)?;
    Ok(out)
}

/// The typed methods: a JSON column goes to serde_json's method of the same name; any other
/// value answers only when the tree's JSON value of it would, through `$scalar`.
macro_rules! typed {
    ($($method:ident => $scalar:expr;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
                match self {
                    Cell::Json(text) => from_json(text, |d| de::Deserializer::$method(d, visitor)),
                    other => ($scalar)(other, visitor),
                }
            }
        )*
    };
}

fn numbers<'de, V: Visitor<'de>>(cell: Cell<'de>, visitor: V) -> Result<V::Value, Bail> {
    cell.visit_number(visitor)
}

fn strings<'de, V: Visitor<'de>>(cell: Cell<'de>, visitor: V) -> Result<V::Value, Bail> {
    match cell {
        Cell::Str(s) => visitor.visit_borrowed_str(s),
        _ => Err(Bail),
    }
}

fn bools<'de, V: Visitor<'de>>(cell: Cell<'de>, visitor: V) -> Result<V::Value, Bail> {
    match cell {
        Cell::Bool(b) => visitor.visit_bool(b),
        _ => Err(Bail),
    }
}

fn byte_bufs<'de, V: Visitor<'de>>(cell: Cell<'de>, visitor: V) -> Result<V::Value, Bail> {
    match cell {
        Cell::Str(s) => visitor.visit_borrowed_str(s),
        Cell::Bytes(b) => Cell::visit_bytes_seq(b, visitor),
        _ => Err(Bail),
    }
}

fn units<'de, V: Visitor<'de>>(cell: Cell<'de>, visitor: V) -> Result<V::Value, Bail> {
    match cell {
        Cell::Null => visitor.visit_unit(),
        _ => Err(Bail),
    }
}

fn seqs<'de, V: Visitor<'de>>(cell: Cell<'de>, visitor: V) -> Result<V::Value, Bail> {
    match cell {
        Cell::Bytes(b) => Cell::visit_bytes_seq(b, visitor),
        _ => Err(Bail),
    }
}

impl<'de> de::Deserializer<'de> for Cell<'de> {
    type Error = Bail;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        match self {
            Cell::Null => visitor.visit_unit(),
            Cell::Bool(b) => visitor.visit_bool(b),
            Cell::Int(_) | Cell::Float(_) => self.visit_number(visitor),
            Cell::Str(s) => visitor.visit_borrowed_str(s),
            Cell::Bytes(b) => Cell::visit_bytes_seq(b, visitor),
            Cell::Json(text) => from_json(text, |d| de::Deserializer::deserialize_any(d, visitor)),
        }
    }

    typed! {
        deserialize_bool => bools;
        deserialize_i8 => numbers;
        deserialize_i16 => numbers;
        deserialize_i32 => numbers;
        deserialize_i64 => numbers;
        deserialize_i128 => numbers;
        deserialize_u8 => numbers;
        deserialize_u16 => numbers;
        deserialize_u32 => numbers;
        deserialize_u64 => numbers;
        deserialize_u128 => numbers;
        deserialize_f32 => numbers;
        deserialize_f64 => numbers;
        deserialize_char => strings;
        deserialize_str => strings;
        deserialize_string => strings;
        deserialize_identifier => strings;
        deserialize_bytes => byte_bufs;
        deserialize_byte_buf => byte_bufs;
        deserialize_unit => units;
        deserialize_seq => seqs;
        deserialize_map => |_, _| Err(Bail);
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        match self {
            Cell::Null => visitor.visit_none(),
            Cell::Json(text) => {
                from_json(text, |d| de::Deserializer::deserialize_option(d, visitor))
            }
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Bail> {
        match self {
            Cell::Json(text) => from_json(text, |d| {
                de::Deserializer::deserialize_unit_struct(d, name, visitor)
            }),
            other => units(other, visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Bail> {
        if name == RAW_VALUE_TOKEN {
            return Err(Bail);
        }
        match self {
            Cell::Json(text) => from_json(text, |d| {
                de::Deserializer::deserialize_newtype_struct(d, name, visitor)
            }),
            other => visitor.visit_newtype_struct(other),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Bail> {
        match self {
            Cell::Json(text) => from_json(text, |d| {
                de::Deserializer::deserialize_tuple(d, len, visitor)
            }),
            other => seqs(other, visitor),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Bail> {
        match self {
            Cell::Json(text) => from_json(text, |d| {
                de::Deserializer::deserialize_tuple_struct(d, name, len, visitor)
            }),
            other => seqs(other, visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Bail> {
        match self {
            Cell::Json(text) => from_json(text, |d| {
                de::Deserializer::deserialize_struct(d, name, fields, visitor)
            }),
            other => seqs(other, visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Bail> {
        match self {
            Cell::Json(text) => from_json(text, |d| {
                de::Deserializer::deserialize_enum(d, name, variants, visitor)
            }),
            // A unit variant by name, as the tree reads a JSON string.
            Cell::Str(s) => visitor.visit_enum(BorrowedStrDeserializer::<Bail>::new(s)),
            _ => Err(Bail),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::from_row_direct;
    use crate::model::mapping::from_row_via_json;
    use crate::model::{
        to_row, Column, ColumnType, Model, ResourceTags, Row, Schema, Timestamp, Value,
    };

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Kind {
        Small,
        Big(u8),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Inner {
        a: i32,
        b: Vec<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Wide {
        flag: bool,
        small: u8,
        big: f64,
        ts: Timestamp,
        name: Option<String>,
        letter: char,
        kind: Kind,
        data: Vec<u8>,
        doc: BTreeMap<String, i32>,
        inner: Option<Inner>,
        json_null: Option<i32>,
        #[serde(default)]
        size: i64,
    }

    fn wide_schema() -> Schema {
        Schema::new("wide")
            .column(Column::new("flag", ColumnType::Bool))
            .column(Column::new("small", ColumnType::Integer))
            .column(Column::new("big", ColumnType::Real))
            .column(Column::new("ts", ColumnType::Timestamp))
            .column(Column::new("name", ColumnType::Text).nullable())
            .column(Column::new("letter", ColumnType::Text))
            .column(Column::new("kind", ColumnType::Text))
            .column(Column::new("data", ColumnType::Blob))
            .column(Column::new("doc", ColumnType::Json))
            .column(Column::new("inner", ColumnType::Json).nullable())
            .column(Column::new("json_null", ColumnType::Json).nullable())
            .column(Column::new("extra", ColumnType::Text).nullable())
            .column(Column::new("size", ColumnType::Integer))
            .key(&["small"])
    }

    fn wide() -> Wide {
        Wide {
            flag: true,
            small: 7,
            big: -0.5,
            ts: Timestamp(1_700_000_000_123),
            name: Some("n\"é\n".into()),
            letter: 'é',
            kind: Kind::Small,
            data: vec![0, 255],
            doc: BTreeMap::from([("b".into(), 2), ("a".into(), -1)]),
            inner: Some(Inner {
                a: -3,
                b: vec!["x".into(), "\u{2028}".into()],
            }),
            json_null: None,
            size: 3,
        }
    }

    /// The direct path either gives up or agrees with the tree.
    fn agree<M: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
        schema: &Schema,
        row: &Row,
    ) -> Option<M> {
        let direct = from_row_direct::<M>(schema, row);
        let tree = from_row_via_json::<M>(schema, row.clone());
        match (&direct, tree) {
            (Some(d), Ok(t)) => assert_eq!(d, &t, "row {row:?}"),
            (Some(d), Err(e)) => panic!("tree failed ({e}) but direct gave {d:?} for {row:?}"),
            (None, _) => {}
        }
        direct
    }

    #[test]
    fn plain_models_take_the_direct_path_and_agree() {
        let s = wide_schema();
        let mut row = to_row(&s, &wide()).unwrap();
        // A column the model does not know, and JSON null text in a JSON column.
        row[11] = Value::Text("ignored".into());
        row[10] = Value::Text("null".into());
        assert_eq!(agree::<Wide>(&s, &row), Some(wide()));
        let rs = ResourceTags::schema();
        let mut t = ResourceTags::new("pod", "web", Some("prod"), Timestamp(5));
        t.labels.insert("app".into(), "web\"\n".into());
        t.sent_at = Some(Timestamp(-7));
        let row = to_row(&rs, &t).unwrap();
        assert_eq!(agree::<ResourceTags>(&rs, &row), Some(t.clone()));
        let mut none = t;
        none.namespace = None;
        none.sent_at = None;
        let row = to_row(&rs, &none).unwrap();
        assert_eq!(agree::<ResourceTags>(&rs, &row), Some(none));
    }

    #[test]
    fn raw_values_and_mismatches_take_the_tree_path() {
        #[derive(Debug, Deserialize)]
        struct Raw {
            doc: Box<serde_json::value::RawValue>,
        }
        let s = Schema::new("raw")
            .column(Column::new("doc", ColumnType::Json))
            .key(&["doc"]);
        let row = vec![Value::Text("{ \"a\" : 1 }".into())];
        assert!(from_row_direct::<Raw>(&s, &row).is_none());
        // The tree's answer: its own printing of the document.
        let tree: Raw = from_row_via_json(&s, row).unwrap();
        assert_eq!(tree.doc.get(), "{\"a\":1}");
        // A stored text where the model wants a number: no direct answer, the tree's error.
        let s = wide_schema();
        let mut row = to_row(&s, &wide()).unwrap();
        row[1] = Value::Text("7".into());
        assert!(from_row_direct::<Wide>(&s, &row).is_none());
        assert!(from_row_via_json::<Wide>(&s, row).is_err());
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            (-300i64..300).prop_map(Value::Integer),
            any::<f64>().prop_map(Value::Real),
            prop::sample::select(vec![f64::NAN, f64::INFINITY, 0.0, -1.5, 1e300])
                .prop_map(Value::Real),
            ".{0,6}".prop_map(Value::Text),
            prop::sample::select(vec![
                "Small",
                "Big",
                "é",
                "null",
                "{\"a\":1,\"b\":[\"x\"]}",
                "{\"a\":1} x",
                "[1,2]",
                "{\"b\":2,\"b\":3}",
                "\"s\"",
                "true",
                "12",
                "{\"a\":1.5,\"b\":[]}",
                "{",
                "{\"Big\":3}",
            ])
            .prop_map(|s| Value::Text(s.to_owned())),
            prop::collection::vec(any::<u8>(), 0..4).prop_map(Value::Blob),
        ]
    }

    proptest! {
        /// Arbitrary stored values, right or wrong for the model: whatever the direct path
        /// answers, the tree answers the same.
        #[test]
        fn never_disagrees_with_the_tree(row in prop::collection::vec(any_value(), 13)) {
            let s = wide_schema();
            agree::<Wide>(&s, &row);
            agree::<BTreeMap<String, serde_json::Value>>(&s, &row);
            agree::<BTreeMap<String, Option<Kind>>>(&s, &row);
            agree::<(bool,)>(&s, &row);
            let rs = ResourceTags::schema();
            let width = rs.columns.len();
            agree::<ResourceTags>(&rs, &row.iter().cycle().take(width).cloned().collect());
        }
    }
}
