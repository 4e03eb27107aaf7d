//! A row as one line of compact JSON, byte for byte what `serde_json::to_writer` writes, but
//! faster for the rows a spool takes: a string that needs no escaping (almost every metric
//! name, label and value) is copied whole after a wide check, where serde_json looks up every
//! byte in a table and branches on it.
//!
//! The writer handles structs, maps with string keys, sequences, options, enums and strings
//! itself and hands every scalar to serde_json (numbers, floats, bytes), so those are
//! serde_json's own output. Anything else (a non-string map key, serde_json's `RawValue` or
//! `Number` tokens) and every error makes [`write_row`] start the row again with
//! `serde_json::to_writer`, which therefore defines every result and every error message.

use serde::ser::{self, Serialize};

use crate::fallback::Bail;

/// Appends `row` as compact JSON to `out`, exactly as `serde_json::to_writer` would.
pub(crate) fn write_row<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    row: &T,
) -> serde_json::Result<()> {
    let start = out.len();
    if row.serialize(&mut Writer { out: &mut *out }).is_ok() {
        return Ok(());
    }
    out.truncate(start);
    serde_json::to_writer(out, row)
}

/// True when serde_json would write `bytes` between quotes unchanged: no control character,
/// quote or backslash. Eight bytes at a time as one integer, without branching per byte; a
/// string's last word overlaps the one before it instead of being finished byte by byte (most
/// label names and values are shorter than 16 bytes, so this is one or two words).
#[inline(always)]
fn escape_free(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n >= 8 {
        let (words, _) = bytes.as_chunks::<8>();
        words.iter().all(|w| clean(u64::from_le_bytes(*w)))
            && bytes
                .last_chunk::<8>()
                .is_some_and(|w| clean(u64::from_le_bytes(*w)))
    } else if n >= 4 {
        // Two overlapping 4-byte words cover 4 to 7 bytes.
        match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
            (Some(a), Some(b)) => {
                clean(u64::from(u32::from_le_bytes(*a)) | (u64::from(u32::from_le_bytes(*b)) << 32))
            }
            _ => false,
        }
    } else {
        bytes.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
    }
}

/// No byte of `word` is below 0x20, a quote or a backslash. Each test is the exact "some byte
/// is below k" word test (k <= 128): subtracting k from every byte borrows out of a byte's top
/// bit only where the byte is below k, and bytes with the top bit set are masked out by `!x`.
#[inline(always)]
fn clean(word: u64) -> bool {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const TOPS: u64 = ONES << 7;
    let below = |x: u64, k: u8| x.wrapping_sub(ONES * u64::from(k)) & !x;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    (below(word, 0x20) | below(quote, 1) | below(backslash, 1)) & TOPS == 0
}

type Result<T = ()> = std::result::Result<T, Bail>;

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    /// serde_json's own serializer over the same buffer, for scalars.
    fn json(&mut self) -> serde_json::Serializer<&mut Vec<u8>> {
        serde_json::Serializer::new(&mut *self.out)
    }

    #[inline(always)]
    fn string(&mut self, v: &str) -> Result {
        if escape_free(v.as_bytes()) {
            self.out.push(b'"');
            self.out.extend_from_slice(v.as_bytes());
            self.out.push(b'"');
            Ok(())
        } else {
            ser::Serializer::serialize_str(&mut self.json(), v).map_err(|_| Bail)
        }
    }

    /// `{"variant":` before the value of a variant that carries data.
    fn open_variant(&mut self, variant: &str) -> Result {
        self.out.push(b'{');
        self.string(variant)?;
        self.out.push(b':');
        Ok(())
    }
}

/// Serializes a scalar with serde_json's serializer, so its text is serde_json's.
macro_rules! by_serde_json {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, v: $ty) -> Result {
            ser::Serializer::$method(&mut self.json(), v).map_err(|_| Bail)
        })*
    };
}

/// An array or object being written; `first` is false once an element is out.
struct Compound<'w, 'a> {
    w: &'w mut Writer<'a>,
    first: bool,
    /// Closing text: `]`, `}`, or `]}` / `}}` for a variant's.
    close: &'static [u8],
}

impl Compound<'_, '_> {
    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.w.out.push(b',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.comma();
        value.serialize(&mut *self.w)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result {
        self.comma();
        self.w.string(key)?;
        self.w.out.push(b':');
        value.serialize(&mut *self.w)
    }

    fn end(self) -> Result {
        self.w.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = Bail;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    by_serde_json! {
        serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
        serialize_i128(i128), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_u128(u128), serialize_f32(f32), serialize_f64(f64),
        serialize_bytes(&[u8]),
    }

    fn serialize_bool(self, v: bool) -> Result {
        self.out
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result {
        self.string(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result {
        self.string(v)
    }

    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result {
        self.string(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result {
        if name.starts_with("$serde_json") {
            return Err(Bail);
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        self.open_variant(variant)?;
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        self.out.push(b'[');
        Ok(Compound {
            w: self,
            first: true,
            close: b"]",
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        self.open_variant(variant)?;
        self.out.push(b'[');
        Ok(Compound {
            w: self,
            first: true,
            close: b"]}",
        })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        self.out.push(b'{');
        Ok(Compound {
            w: self,
            first: true,
            close: b"}",
        })
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        if name.starts_with("$serde_json") {
            return Err(Bail);
        }
        self.serialize_map(None)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        self.open_variant(variant)?;
        self.out.push(b'{');
        Ok(Compound {
            w: self,
            first: true,
            close: b"}}",
        })
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.comma();
        key.serialize(KeyWriter { w: &mut *self.w })?;
        self.w.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

/// A map key: only a string (or a newtype around one) is written here; serde_json's rules for
/// every other key type are left to serde_json.
struct KeyWriter<'w, 'a> {
    w: &'w mut Writer<'a>,
}

impl ser::Serializer for KeyWriter<'_, '_> {
    type Ok = ();
    type Error = Bail;
    type SerializeSeq = ser::Impossible<(), Bail>;
    type SerializeTuple = ser::Impossible<(), Bail>;
    type SerializeTupleStruct = ser::Impossible<(), Bail>;
    type SerializeTupleVariant = ser::Impossible<(), Bail>;
    type SerializeMap = ser::Impossible<(), Bail>;
    type SerializeStruct = ser::Impossible<(), Bail>;
    type SerializeStructVariant = ser::Impossible<(), Bail>;

    fn serialize_str(self, v: &str) -> Result {
        self.w.string(v)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result {
        if name.starts_with("$serde_json") {
            return Err(Bail);
        }
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result {
        Err(Bail)
    }
    fn serialize_i8(self, _: i8) -> Result {
        Err(Bail)
    }
    fn serialize_i16(self, _: i16) -> Result {
        Err(Bail)
    }
    fn serialize_i32(self, _: i32) -> Result {
        Err(Bail)
    }
    fn serialize_i64(self, _: i64) -> Result {
        Err(Bail)
    }
    fn serialize_u8(self, _: u8) -> Result {
        Err(Bail)
    }
    fn serialize_u16(self, _: u16) -> Result {
        Err(Bail)
    }
    fn serialize_u32(self, _: u32) -> Result {
        Err(Bail)
    }
    fn serialize_u64(self, _: u64) -> Result {
        Err(Bail)
    }
    fn serialize_f32(self, _: f32) -> Result {
        Err(Bail)
    }
    fn serialize_f64(self, _: f64) -> Result {
        Err(Bail)
    }
    fn serialize_char(self, _: char) -> Result {
        Err(Bail)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result {
        Err(Bail)
    }
    fn serialize_none(self) -> Result {
        Err(Bail)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result {
        Err(Bail)
    }
    fn serialize_unit(self) -> Result {
        Err(Bail)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        Err(Bail)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result {
        Err(Bail)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result {
        Err(Bail)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(Bail)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(Bail)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(Bail)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(Bail)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(Bail)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(Bail)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(Bail)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::Value;

    use super::*;

    /// The line `write_row` appends after `prefix`, checked against serde_json's.
    fn same_as_serde_json<T: Serialize + ?Sized>(
        row: &T,
    ) -> std::result::Result<(), TestCaseError> {
        let mut out = b"prefix".to_vec();
        let ours = write_row(&mut out, row);
        let theirs = serde_json::to_vec(row);
        match (ours, theirs) {
            (Ok(()), Ok(theirs)) => {
                prop_assert_eq!(&out[..6], b"prefix");
                prop_assert_eq!(
                    String::from_utf8_lossy(&out[6..]),
                    String::from_utf8_lossy(&theirs)
                );
            }
            (Err(ours), Err(theirs)) => prop_assert_eq!(ours.to_string(), theirs.to_string()),
            (ours, theirs) => prop_assert!(false, "ours {ours:?}, serde_json {theirs:?}"),
        }
        Ok(())
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-z_.:/ -]{0,40}",
            // Escapes at every position of a 16-byte chunk and its remainder.
            prop::collection::vec(
                prop::sample::select(vec!['a', '"', '\\', '\n', '\u{1}', '\u{7f}', 'é', '😀']),
                0..40
            )
            .prop_map(|c| c.into_iter().collect()),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[derive(Debug, Clone, Serialize)]
    enum Shape {
        Unit,
        Newtype(String),
        Tuple(u8, Option<String>),
        EmptyTuple(),
        Struct { a: f32, b: Vec<char> },
        EmptyStruct {},
    }

    #[derive(Debug, Serialize)]
    struct Wrapper(String);

    #[derive(Debug, Serialize)]
    struct Everything {
        shapes: Vec<Shape>,
        #[serde(with = "serde_bytes_as_slice")]
        bytes: Vec<u8>,
        wide: (i128, u128),
        keyed_by_newtype: BTreeMap<String, Wrapper>,
        unit: (),
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        #[serde(flatten)]
        flat: BTreeMap<String, i32>,
    }

    /// Serializes a `Vec<u8>` with `serialize_bytes`, which serde_json writes as an array.
    mod serde_bytes_as_slice {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Unit),
            text().prop_map(Shape::Newtype),
            (any::<u8>(), proptest::option::of(text())).prop_map(|(a, b)| Shape::Tuple(a, b)),
            Just(Shape::EmptyTuple()),
            (any::<f32>(), prop::collection::vec(any::<char>(), 0..5))
                .prop_map(|(a, b)| Shape::Struct { a, b }),
            Just(Shape::EmptyStruct {}),
        ]
    }

    fn everything() -> impl Strategy<Value = Everything> {
        (
            prop::collection::vec(shape(), 0..5),
            prop::collection::vec(any::<u8>(), 0..10),
            any::<(i128, u128)>(),
            prop::collection::btree_map(text(), text().prop_map(Wrapper), 0..4),
            proptest::option::of(any::<u8>()),
            prop::collection::btree_map("[a-z]{1,3}", any::<i32>(), 0..3),
        )
            .prop_map(|(shapes, bytes, wide, keyed_by_newtype, skipped, flat)| {
                Everything {
                    shapes,
                    bytes,
                    wide,
                    keyed_by_newtype,
                    unit: (),
                    skipped,
                    flat,
                }
            })
    }

    proptest! {
        #[test]
        fn writes_what_serde_json_writes_for_any_json(v in json_value()) {
            same_as_serde_json(&v)?;
        }

        #[test]
        fn writes_what_serde_json_writes_for_every_kind_of_value(v in everything()) {
            same_as_serde_json(&v)?;
        }

        #[test]
        fn writes_what_serde_json_writes_for_metrics(
            labels in prop::collection::btree_map(text(), text(), 0..6),
            name in text(),
            value in text(),
        ) {
            let m = crate::spool::Metric {
                cloud_account_id: "acc-1".into(),
                cluster_name: "edge".into(),
                created_at: "1700000000000".into(),
                id: "0b5c4a52-6d16-4d3c-9d2b-1f3e5a7c9e11".into(),
                labels,
                metric_name: name,
                node_name: "node-1".into(),
                timestamp: "1700000000000".into(),
                value,
            };
            same_as_serde_json(&m)?;
        }

        #[test]
        fn non_string_keys_are_left_to_serde_json(
            ints in prop::collection::btree_map(any::<i64>(), text(), 0..4),
            bools in prop::collection::btree_map(any::<bool>(), any::<u8>(), 0..2),
            units in prop::collection::btree_map(Just(()), any::<u8>(), 0..2),
        ) {
            same_as_serde_json(&ints)?;
            same_as_serde_json(&bools)?;
            // A unit key is an error in serde_json: the same error comes back.
            same_as_serde_json(&units)?;
        }
    }

    #[test]
    fn serde_json_tokens_and_failing_rows_are_left_to_serde_json() {
        let raw = serde_json::value::RawValue::from_string(r#"{"a": [1, 2]}"#.into()).unwrap();
        let mut out = Vec::new();
        write_row(&mut out, &raw).unwrap();
        assert_eq!(out, br#"{"a": [1, 2]}"#);
        same_as_serde_json(&BTreeMap::from([("k", &raw)])).unwrap();

        /// Fails after writing part of itself.
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                use serde::ser::{Error, SerializeSeq};
                let mut seq = s.serialize_seq(None)?;
                seq.serialize_element("written")?;
                Err(S::Error::custom("this row cannot be written"))
            }
        }
        let mut out = b"kept".to_vec();
        let err = write_row(&mut out, &Fails).unwrap_err();
        assert_eq!(err.to_string(), "this row cannot be written");
        // serde_json's own partial output stays after the caller's text, as with to_writer.
        assert!(out.starts_with(b"kept"));
        same_as_serde_json(&Fails).unwrap();
    }

    #[test]
    fn escape_free_agrees_with_serde_json_on_every_byte_beside_any_neighbour() {
        let needs_no_escape = |s: &[u8]| s.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
        // Neighbours around the word tests' edges: borrows, the top bit, the three targets.
        let fillers = [
            b'a',
            0x00,
            0x1f,
            0x20,
            0x21,
            b'"' + 1,
            b'\\' + 1,
            0x7f,
            0x80,
            0xff,
        ];
        for len in 1..20 {
            for at in 0..len {
                for &filler in &fillers {
                    for b in 0..=255u8 {
                        let mut s = vec![filler; len];
                        s[at] = b;
                        assert_eq!(escape_free(&s), needs_no_escape(&s), "{s:?}");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn escape_free_agrees_with_serde_json_on_any_bytes(s in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let text: String = s.iter().map(|&b| char::from(b & 0x7f)).collect();
            let serde = serde_json::to_string(&text).unwrap_or_default();
            proptest::prop_assert_eq!(escape_free(text.as_bytes()), serde.len() == text.len() + 2);
        }
    }

    #[test]
    fn escape_free_finds_every_byte_that_needs_escaping_at_every_position() {
        for len in 0..40 {
            assert!(escape_free(&vec![b'a'; len]));
            for at in 0..len {
                for b in (0u8..0x20).chain([b'"', b'\\']) {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    assert!(!escape_free(&s), "byte {b:#x} at {at} of {len}");
                }
                let mut s = vec![b'a'; len];
                s[at] = 0x7f;
                assert!(escape_free(&s), "DEL is written as it is");
            }
        }
    }
}
