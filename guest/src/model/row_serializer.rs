//! The direct path from a model struct to a row: a serde `Serializer` that puts each field
//! straight into its column's [`Value`].
//!
//! Why: the reference mapping (`mapping::to_row_via_json`) builds a `serde_json::Value` tree per
//! row (a map, a `String` per field name and value) and then prints the JSON columns out of that
//! tree again. That was about 4 µs of a ResourceTags `create_many` row, more than SQLite's own
//! insert. Here scalars become values directly and a JSON column is printed once from the
//! field itself.
//!
//! The result is the tree path's, value for value: scalars go through the same
//! [`json_to_value`] rules, and anything this serializer does not handle itself (a model that
//! is not a plain struct, e.g. `#[serde(flatten)]`; compound values in non-JSON columns, e.g.
//! bytes for a blob; any error) makes the caller take the tree path, which then produces the
//! value or the canonical error. One difference, on purpose: a struct stored in a JSON column
//! keeps its field order (the tree path sorted object keys); the document is the same.
//!
//! Ids take the same per-column mapping (`to_key_direct`): a get's key no longer goes through a
//! JSON array of JSON strings first.

use serde::ser::{
    Impossible, Serialize, SerializeSeq, SerializeStruct, SerializeTuple, SerializeTupleStruct,
    Serializer,
};
use serde_json::Value as Json;

use super::convert::json_to_value;
use super::{Column, ColumnType, Key, Row, Schema, Value};
use crate::fallback::Bail;

/// Map `model` to a full-width row, or `None` when the tree path must decide.
pub(super) fn to_row_direct<M: Serialize + ?Sized>(schema: &Schema, model: &M) -> Option<Row> {
    model.serialize(RowSer { schema }).ok()
}

struct RowSer<'s> {
    schema: &'s Schema,
}

/// What a column holds when its field is missing (the tree path's `Json::Null`).
fn absent(col: &Column) -> Option<Value> {
    if col.generated.is_some() {
        return Some(Value::Null);
    }
    json_to_value(col, &Json::Null).ok()
}

macro_rules! bail {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<Self::Ok, Bail> { Err(Bail) })*
    };
}

impl<'s> Serializer for RowSer<'s> {
    type Ok = Row;
    type Error = Bail;
    type SerializeSeq = Impossible<Row, Bail>;
    type SerializeTuple = Impossible<Row, Bail>;
    type SerializeTupleStruct = Impossible<Row, Bail>;
    type SerializeTupleVariant = Impossible<Row, Bail>;
    type SerializeMap = Impossible<Row, Bail>;
    type SerializeStruct = StructSer<'s>;
    type SerializeStructVariant = Impossible<Row, Bail>;

    bail!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Row, Bail> {
        v.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Row, Bail> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Row, Bail> {
        Err(Bail)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Bail> {
        Err(Bail)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Bail> {
        Err(Bail)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Bail> {
        Err(Bail)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Bail> {
        Err(Bail)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Bail> {
        Err(Bail)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<StructSer<'s>, Bail> {
        let width = self.schema.columns.len();
        if width > 64 {
            return Err(Bail);
        }
        Ok(StructSer {
            schema: self.schema,
            row: vec![Value::Null; width],
            set: 0,
            next: 0,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Bail> {
        Err(Bail)
    }
}

struct StructSer<'s> {
    schema: &'s Schema,
    row: Row,
    /// Bit `i`: column `i` got its field (the others get [`absent`] at the end).
    set: u64,
    /// Where the next field most likely is (fields usually follow column order).
    next: usize,
}

impl StructSer<'_> {
    fn position(&self, name: &str) -> Option<usize> {
        let cols = &self.schema.columns;
        if cols.get(self.next).is_some_and(|c| c.name == name) {
            return Some(self.next);
        }
        self.schema.position(name)
    }
}

impl SerializeStruct for StructSer<'_> {
    type Ok = Row;
    type Error = Bail;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Bail> {
        // Fields without a column are ignored, as the tree path ignores them.
        let Some(i) = self.position(key) else {
            return Ok(());
        };
        self.next = i + 1;
        self.set |= 1 << i;
        let col = &self.schema.columns[i];
        if col.generated.is_some() {
            return Ok(());
        }
        self.row[i] = if col.ty == ColumnType::Json {
            let text = serde_json::to_string(value).map_err(|_| Bail)?;
            if col.nullable && text == "null" {
                Value::Null
            } else {
                Value::Text(text)
            }
        } else {
            match value.serialize(FieldSer { col }) {
                Ok(v) => v,
                // Compound values (bytes for a blob, ...): this one field through the tree.
                Err(Bail) => {
                    let json = serde_json::to_value(value).map_err(|_| Bail)?;
                    json_to_value(col, &json).map_err(|_| Bail)?
                }
            }
        };
        Ok(())
    }

    fn end(mut self) -> Result<Row, Bail> {
        for (i, col) in self.schema.columns.iter().enumerate() {
            if self.set & (1 << i) == 0 {
                self.row[i] = absent(col).ok_or(Bail)?;
            }
        }
        Ok(self.row)
    }
}

/// One scalar field of a non-JSON column.
struct FieldSer<'c> {
    col: &'c Column,
}

impl FieldSer<'_> {
    fn via(&self, j: &Json) -> Result<Value, Bail> {
        json_to_value(self.col, j).map_err(|_| Bail)
    }
}

impl Serializer for FieldSer<'_> {
    type Ok = Value;
    type Error = Bail;
    type SerializeSeq = Impossible<Value, Bail>;
    type SerializeTuple = Impossible<Value, Bail>;
    type SerializeTupleStruct = Impossible<Value, Bail>;
    type SerializeTupleVariant = Impossible<Value, Bail>;
    type SerializeMap = Impossible<Value, Bail>;
    type SerializeStruct = Impossible<Value, Bail>;
    type SerializeStructVariant = Impossible<Value, Bail>;

    fn serialize_bool(self, v: bool) -> Result<Value, Bail> {
        Ok(Value::Integer(i64::from(v)))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Bail> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Bail> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Bail> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Bail> {
        Ok(Value::Integer(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Bail> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Bail> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Bail> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Bail> {
        self.via(&Json::from(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Bail> {
        self.via(&Json::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Bail> {
        self.via(&Json::from(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, Bail> {
        Ok(Value::Text(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Bail> {
        Ok(Value::Text(v.to_owned()))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Value, Bail> {
        Err(Bail)
    }
    fn serialize_none(self) -> Result<Value, Bail> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, Bail> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Bail> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, Bail> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Value, Bail> {
        Ok(Value::Text(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Value, Bail> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Value, Bail> {
        Err(Bail)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Bail> {
        Err(Bail)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Bail> {
        Err(Bail)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Bail> {
        Err(Bail)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Bail> {
        Err(Bail)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Bail> {
        Err(Bail)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Bail> {
        Err(Bail)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Bail> {
        Err(Bail)
    }
}

/// Map an id to key values (schema key order), or `None` when the tree path must decide: a
/// scalar for a one-column key, a tuple, array or tuple struct for a composite one, each value
/// as the row serializer maps a field of its column. JSON key columns take the tree path.
pub(super) fn to_key_direct<Id: Serialize + ?Sized>(schema: &Schema, id: &Id) -> Option<Key> {
    if schema.key.len() == 1 {
        let col = key_column(schema, 0).ok()?;
        return id.serialize(FieldSer { col }).ok().map(|v| vec![v]);
    }
    id.serialize(KeySer { schema }).ok()
}

/// The column of key part `i`, unless the direct path leaves it to the tree.
fn key_column(schema: &Schema, i: usize) -> Result<&Column, Bail> {
    let name = schema.key.get(i).ok_or(Bail)?;
    let col = schema.column_named(name).map_err(|_| Bail)?;
    if col.ty == ColumnType::Json {
        return Err(Bail);
    }
    Ok(col)
}

/// A composite key: a sequence of exactly one value per key column.
struct KeySer<'s> {
    schema: &'s Schema,
}

impl<'s> KeySer<'s> {
    fn parts(self, len: Option<usize>) -> Result<KeyParts<'s>, Bail> {
        if len.is_some_and(|n| n != self.schema.key.len()) {
            return Err(Bail);
        }
        Ok(KeyParts {
            schema: self.schema,
            key: Vec::with_capacity(self.schema.key.len()),
        })
    }
}

impl<'s> Serializer for KeySer<'s> {
    type Ok = Key;
    type Error = Bail;
    type SerializeSeq = KeyParts<'s>;
    type SerializeTuple = KeyParts<'s>;
    type SerializeTupleStruct = KeyParts<'s>;
    type SerializeTupleVariant = Impossible<Key, Bail>;
    type SerializeMap = Impossible<Key, Bail>;
    type SerializeStruct = Impossible<Key, Bail>;
    type SerializeStructVariant = Impossible<Key, Bail>;

    bail!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Key, Bail> {
        v.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Key, Bail> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Key, Bail> {
        Err(Bail)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<KeyParts<'s>, Bail> {
        self.parts(len)
    }
    fn serialize_tuple(self, len: usize) -> Result<KeyParts<'s>, Bail> {
        self.parts(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<KeyParts<'s>, Bail> {
        self.parts(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Bail> {
        Err(Bail)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Bail> {
        Err(Bail)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Bail> {
        Err(Bail)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Bail> {
        Err(Bail)
    }
}

struct KeyParts<'s> {
    schema: &'s Schema,
    key: Key,
}

impl KeyParts<'_> {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Bail> {
        let col = key_column(self.schema, self.key.len())?;
        self.key.push(value.serialize(FieldSer { col })?);
        Ok(())
    }

    fn end(self) -> Result<Key, Bail> {
        if self.key.len() == self.schema.key.len() {
            Ok(self.key)
        } else {
            Err(Bail)
        }
    }
}

impl SerializeSeq for KeyParts<'_> {
    type Ok = Key;
    type Error = Bail;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Bail> {
        self.push(value)
    }
    fn end(self) -> Result<Key, Bail> {
        KeyParts::end(self)
    }
}

impl SerializeTuple for KeyParts<'_> {
    type Ok = Key;
    type Error = Bail;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Bail> {
        self.push(value)
    }
    fn end(self) -> Result<Key, Bail> {
        KeyParts::end(self)
    }
}

impl SerializeTupleStruct for KeyParts<'_> {
    type Ok = Key;
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Bail> {
        self.push(value)
    }
    fn end(self) -> Result<Key, Bail> {
        KeyParts::end(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::super::mapping::to_row_via_json;
    use super::*;
    use crate::model::{Expr, Model, ResourceTags, Timestamp};

    #[derive(Serialize)]
    enum Kind {
        Small,
        #[allow(dead_code)]
        Big(u8),
    }

    #[derive(Serialize)]
    struct Wide {
        flag: bool,
        small: u8,
        big: u64,
        real: f64,
        int_as_real: i32,
        ts: Timestamp,
        ts_float: f64,
        name: Option<String>,
        letter: char,
        kind: Kind,
        data: Vec<u8>,
        doc: BTreeMap<String, i32>,
        nothing: Option<BTreeMap<String, i32>>,
        json_null: Option<i32>,
        unknown: i32,
        size: i64,
    }

    fn wide_schema() -> Schema {
        Schema::new("wide")
            .column(Column::new("flag", ColumnType::Bool))
            .column(Column::new("small", ColumnType::Integer))
            .column(Column::new("big", ColumnType::Real))
            .column(Column::new("real", ColumnType::Real))
            .column(Column::new("int_as_real", ColumnType::Real))
            .column(Column::new("ts", ColumnType::Timestamp))
            .column(Column::new("ts_float", ColumnType::Timestamp))
            .column(Column::new("name", ColumnType::Text).nullable())
            .column(Column::new("letter", ColumnType::Text))
            .column(Column::new("kind", ColumnType::Text))
            .column(Column::new("data", ColumnType::Blob))
            .column(Column::new("doc", ColumnType::Json))
            .column(Column::new("nothing", ColumnType::Json).nullable())
            .column(Column::new("json_null", ColumnType::Json))
            .column(Column::new("missing", ColumnType::Json))
            .column(Column::new("missing_text", ColumnType::Text).nullable())
            .column(
                Column::new("size", ColumnType::Integer)
                    .generated(Expr::Sum(vec![Expr::byte_length_or_zero("letter")])),
            )
            .key(&["small"])
    }

    fn wide(big: u64, real: f64, kind: Kind) -> Wide {
        Wide {
            flag: true,
            small: 7,
            big,
            real,
            int_as_real: -3,
            ts: Timestamp(1_700_000_000_123),
            ts_float: 12.75,
            name: None,
            letter: 'é',
            kind,
            data: vec![0, 255],
            doc: BTreeMap::from([("b".into(), 2), ("a".into(), 1)]),
            nothing: None,
            json_null: None,
            unknown: 1,
            size: 99,
        }
    }

    #[test]
    fn direct_rows_equal_tree_rows() {
        let s = wide_schema();
        for w in [
            wide(5, 0.5, Kind::Small),
            wide(u64::MAX, f64::NAN, Kind::Small),
            wide(1, f64::INFINITY, Kind::Big(1)),
        ] {
            let tree = to_row_via_json(&s, &w);
            let direct = to_row_direct(&s, &w);
            match (tree, direct) {
                (Ok(t), Some(d)) => assert_eq!(t, d),
                // The direct path may only give up; it must never disagree.
                (_, None) => {}
                (Err(e), Some(d)) => panic!("tree failed ({e}) but direct gave {d:?}"),
            }
        }
        // The plain case really takes the direct path.
        assert!(to_row_direct(&s, &wide(5, 0.5, Kind::Small)).is_some());
        let mut t = ResourceTags::new("pod", "web", Some("prod"), Timestamp(5));
        t.labels.insert("app".into(), "web\"\n".into());
        let rs = ResourceTags::schema();
        assert_eq!(
            to_row_direct(&rs, &t).unwrap(),
            to_row_via_json(&rs, &t).unwrap()
        );
    }

    /// The direct key either gives up or equals the tree's; returns whether it answered.
    fn key_agrees<Id: Serialize + ?Sized + std::fmt::Debug>(s: &Schema, id: &Id) -> bool {
        let tree = crate::model::mapping::to_key_via_json(s, id);
        match (to_key_direct(s, id), tree) {
            (Some(d), Ok(t)) => assert_eq!(d, t, "{id:?}"),
            (Some(d), Err(e)) => panic!("tree failed ({e}) but direct gave {d:?} for {id:?}"),
            (None, _) => return false,
        }
        true
    }

    #[test]
    fn direct_keys_equal_tree_keys() {
        let rs = ResourceTags::schema();
        assert!(key_agrees(&rs, &("pod", "web", Some("prod"))));
        assert!(key_agrees(&rs, &("node", "n1", None::<&str>)));
        assert!(key_agrees(&rs, &vec!["pod", "web", "prod"]));
        assert!(key_agrees(&rs, &Some(("pod", "web", Some("x")))));
        assert!(!key_agrees(&rs, &("pod", "web")));
        assert!(!key_agrees(&rs, &("pod", "web", Some("a"), "extra")));
        assert!(!key_agrees(&rs, &vec!["pod", "web"]));
        assert!(!key_agrees(&rs, &"pod"));
        assert!(!key_agrees(&rs, &BTreeMap::from([("type", "pod")])));
        // One-column keys: the value itself, mapped as its column maps a field.
        let s = wide_schema();
        assert!(key_agrees(&s, &7u8));
        assert!(key_agrees(&s, &-1i64));
        assert!(key_agrees(&s, &"7"));
        assert!(key_agrees(&s, &None::<u8>));
        assert!(!key_agrees(&s, &u64::MAX)); // does not fit: the tree's error
        assert!(key_agrees(&s, &Timestamp(5)));
        assert!(!key_agrees(&s, &(7,)));
        assert!(!key_agrees(&s, &vec![1u8, 2]));
        // A JSON key column is the tree's to map.
        let j = Schema::new("j")
            .column(Column::new("doc", ColumnType::Json))
            .key(&["doc"]);
        assert!(!key_agrees(&j, &BTreeMap::from([("a", 1)])));
    }

    #[test]
    fn non_structs_bail() {
        let s = wide_schema();
        assert!(to_row_direct(&s, &BTreeMap::from([("small", 1)])).is_none());
        assert!(to_row_direct(&s, &5).is_none());
        assert!(to_row_direct(&s, &Kind::Big(2)).is_none());
    }
}
