//! OTLP/JSON: the protobuf messages in the protobuf JSON mapping, with OTLP's own rules
//! (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>): keys in lowerCamelCase,
//! trace and span ids as hex, enums as integers, 64-bit integers as strings or numbers, unknown
//! keys ignored. Also accepted as the protobuf JSON mapping allows: `null` for a default value,
//! doubles as `"NaN"`, `"Infinity"`, `"-Infinity"` or numeric strings, 32-bit integers as
//! strings, enum names. Read into these serde shapes, then converted to the [`proto`] messages,
//! so one translation serves both encodings; a oneof with two members set is malformed.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::proto;

/// Parse an OTLP/JSON `ExportMetricsServiceRequest`; the error says where and why.
pub fn parse(body: &[u8]) -> Result<proto::ExportMetricsServiceRequest, String> {
    let request: Request = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    request.into_proto()
}

/// A field whose `null` means its default (protobuf JSON mapping).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Messages are JSON objects only: serde's derive would also read a struct from an array of
/// its fields in order, which is not OTLP/JSON. Each shape derives its field handling as an
/// inherent `deserialize` (`serde(remote = "Self")`) and gets a `Deserialize` that asks for a
/// map.
macro_rules! objects {
    ($($name:ident),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("an object (", stringify!($name), ")"))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$name, A::Error> {
                        $name::deserialize(MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(V)
            }
        }
    )*};
}

objects!(
    Request,
    ResourceMetrics,
    Resource,
    ScopeMetrics,
    Scope,
    Metric,
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
    NumberDataPoint,
    HistogramDataPoint,
    ExponentialHistogramDataPoint,
    Buckets,
    SummaryDataPoint,
    ValueAtQuantile,
    Exemplar,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
);

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct Request {
    #[serde(deserialize_with = "nullable")]
    resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct ResourceMetrics {
    resource: Option<Resource>,
    #[serde(deserialize_with = "nullable")]
    scope_metrics: Vec<ScopeMetrics>,
    #[serde(deserialize_with = "nullable")]
    schema_url: String,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct Resource {
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    dropped_attributes_count: U32,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct ScopeMetrics {
    scope: Option<Scope>,
    #[serde(deserialize_with = "nullable")]
    metrics: Vec<Metric>,
    #[serde(deserialize_with = "nullable")]
    schema_url: String,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct Scope {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    version: String,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    dropped_attributes_count: U32,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct Metric {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    description: String,
    #[serde(deserialize_with = "nullable")]
    unit: String,
    gauge: Option<Gauge>,
    sum: Option<Sum>,
    histogram: Option<Histogram>,
    exponential_histogram: Option<ExponentialHistogram>,
    summary: Option<Summary>,
    #[serde(deserialize_with = "nullable")]
    metadata: Vec<KeyValue>,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct Gauge {
    #[serde(deserialize_with = "nullable")]
    data_points: Vec<NumberDataPoint>,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct Sum {
    #[serde(deserialize_with = "nullable")]
    data_points: Vec<NumberDataPoint>,
    aggregation_temporality: Temporality,
    #[serde(deserialize_with = "nullable")]
    is_monotonic: bool,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct Histogram {
    #[serde(deserialize_with = "nullable")]
    data_points: Vec<HistogramDataPoint>,
    aggregation_temporality: Temporality,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct ExponentialHistogram {
    #[serde(deserialize_with = "nullable")]
    data_points: Vec<ExponentialHistogramDataPoint>,
    aggregation_temporality: Temporality,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct Summary {
    #[serde(deserialize_with = "nullable")]
    data_points: Vec<SummaryDataPoint>,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct NumberDataPoint {
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    as_double: Option<F64>,
    as_int: Option<I64>,
    #[serde(deserialize_with = "nullable")]
    exemplars: Vec<Exemplar>,
    flags: U32,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct HistogramDataPoint {
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    count: U64,
    sum: Option<F64>,
    #[serde(deserialize_with = "nullable")]
    bucket_counts: Vec<U64>,
    #[serde(deserialize_with = "nullable")]
    explicit_bounds: Vec<F64>,
    #[serde(deserialize_with = "nullable")]
    exemplars: Vec<Exemplar>,
    flags: U32,
    min: Option<F64>,
    max: Option<F64>,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct ExponentialHistogramDataPoint {
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    count: U64,
    sum: Option<F64>,
    scale: I32,
    zero_count: U64,
    positive: Option<Buckets>,
    negative: Option<Buckets>,
    flags: U32,
    #[serde(deserialize_with = "nullable")]
    exemplars: Vec<Exemplar>,
    min: Option<F64>,
    max: Option<F64>,
    zero_threshold: F64,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct Buckets {
    offset: I32,
    #[serde(deserialize_with = "nullable")]
    bucket_counts: Vec<U64>,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct SummaryDataPoint {
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    count: U64,
    sum: F64,
    #[serde(deserialize_with = "nullable")]
    quantile_values: Vec<ValueAtQuantile>,
    flags: U32,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct ValueAtQuantile {
    quantile: F64,
    value: F64,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct Exemplar {
    #[serde(deserialize_with = "nullable")]
    filtered_attributes: Vec<KeyValue>,
    time_unix_nano: U64,
    as_double: Option<F64>,
    as_int: Option<I64>,
    #[serde(deserialize_with = "nullable")]
    span_id: String,
    #[serde(deserialize_with = "nullable")]
    trace_id: String,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct KeyValue {
    #[serde(deserialize_with = "nullable")]
    key: String,
    value: Option<AnyValue>,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct AnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    int_value: Option<I64>,
    double_value: Option<F64>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KeyValueList>,
    bytes_value: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct ArrayValue {
    #[serde(deserialize_with = "nullable")]
    values: Vec<AnyValue>,
}

#[derive(Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", default)]
struct KeyValueList {
    #[serde(deserialize_with = "nullable")]
    values: Vec<KeyValue>,
}

impl Request {
    fn into_proto(self) -> Result<proto::ExportMetricsServiceRequest, String> {
        Ok(proto::ExportMetricsServiceRequest {
            resource_metrics: collect(self.resource_metrics, ResourceMetrics::into_proto)?,
        })
    }
}

/// Convert every element, stopping at the first error.
fn collect<A, B>(items: Vec<A>, f: impl Fn(A) -> Result<B, String>) -> Result<Vec<B>, String> {
    items.into_iter().map(f).collect()
}

impl ResourceMetrics {
    fn into_proto(self) -> Result<proto::ResourceMetrics, String> {
        Ok(proto::ResourceMetrics {
            resource: self
                .resource
                .map(|r| -> Result<_, String> {
                    Ok(proto::Resource {
                        attributes: key_values(r.attributes)?,
                        dropped_attributes_count: r.dropped_attributes_count.0,
                    })
                })
                .transpose()?,
            scope_metrics: collect(self.scope_metrics, ScopeMetrics::into_proto)?,
            schema_url: self.schema_url,
        })
    }
}

impl ScopeMetrics {
    fn into_proto(self) -> Result<proto::ScopeMetrics, String> {
        Ok(proto::ScopeMetrics {
            scope: self
                .scope
                .map(|s| -> Result<_, String> {
                    Ok(proto::InstrumentationScope {
                        name: s.name,
                        version: s.version,
                        attributes: key_values(s.attributes)?,
                        dropped_attributes_count: s.dropped_attributes_count.0,
                    })
                })
                .transpose()?,
            metrics: collect(self.metrics, Metric::into_proto)?,
            schema_url: self.schema_url,
        })
    }
}

impl Metric {
    fn into_proto(self) -> Result<proto::Metric, String> {
        use proto::metric::Data;
        let set = [
            self.gauge.is_some(),
            self.sum.is_some(),
            self.histogram.is_some(),
            self.exponential_histogram.is_some(),
            self.summary.is_some(),
        ];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(format!(
                "metric {:?} sets more than one of gauge, sum, histogram, exponentialHistogram, summary",
                self.name
            ));
        }
        let data = if let Some(g) = self.gauge {
            Some(Data::Gauge(proto::Gauge {
                data_points: collect(g.data_points, NumberDataPoint::into_proto)?,
            }))
        } else if let Some(s) = self.sum {
            Some(Data::Sum(proto::Sum {
                data_points: collect(s.data_points, NumberDataPoint::into_proto)?,
                aggregation_temporality: s.aggregation_temporality.0,
                is_monotonic: s.is_monotonic,
            }))
        } else if let Some(h) = self.histogram {
            Some(Data::Histogram(proto::Histogram {
                data_points: collect(h.data_points, HistogramDataPoint::into_proto)?,
                aggregation_temporality: h.aggregation_temporality.0,
            }))
        } else if let Some(e) = self.exponential_histogram {
            Some(Data::ExponentialHistogram(proto::ExponentialHistogram {
                data_points: collect(e.data_points, ExponentialHistogramDataPoint::into_proto)?,
                aggregation_temporality: e.aggregation_temporality.0,
            }))
        } else if let Some(s) = self.summary {
            Some(Data::Summary(proto::Summary {
                data_points: collect(s.data_points, SummaryDataPoint::into_proto)?,
            }))
        } else {
            None
        };
        Ok(proto::Metric {
            name: self.name,
            description: self.description,
            unit: self.unit,
            data,
            metadata: key_values(self.metadata)?,
        })
    }
}

impl NumberDataPoint {
    fn into_proto(self) -> Result<proto::NumberDataPoint, String> {
        use proto::number_data_point::Value;
        let value = match (self.as_double, self.as_int) {
            (Some(_), Some(_)) => return Err("a data point sets both asDouble and asInt".into()),
            (Some(d), None) => Some(Value::AsDouble(d.0)),
            (None, Some(i)) => Some(Value::AsInt(i.0)),
            (None, None) => None,
        };
        Ok(proto::NumberDataPoint {
            attributes: key_values(self.attributes)?,
            start_time_unix_nano: self.start_time_unix_nano.0,
            time_unix_nano: self.time_unix_nano.0,
            value,
            exemplars: collect(self.exemplars, Exemplar::into_proto)?,
            flags: self.flags.0,
        })
    }
}

impl HistogramDataPoint {
    fn into_proto(self) -> Result<proto::HistogramDataPoint, String> {
        Ok(proto::HistogramDataPoint {
            attributes: key_values(self.attributes)?,
            start_time_unix_nano: self.start_time_unix_nano.0,
            time_unix_nano: self.time_unix_nano.0,
            count: self.count.0,
            sum: self.sum.map(|s| s.0),
            bucket_counts: self.bucket_counts.into_iter().map(|c| c.0).collect(),
            explicit_bounds: self.explicit_bounds.into_iter().map(|b| b.0).collect(),
            exemplars: collect(self.exemplars, Exemplar::into_proto)?,
            flags: self.flags.0,
            min: self.min.map(|m| m.0),
            max: self.max.map(|m| m.0),
        })
    }
}

impl ExponentialHistogramDataPoint {
    fn into_proto(self) -> Result<proto::ExponentialHistogramDataPoint, String> {
        let buckets = |b: Buckets| proto::exponential_histogram_data_point::Buckets {
            offset: b.offset.0,
            bucket_counts: b.bucket_counts.into_iter().map(|c| c.0).collect(),
        };
        Ok(proto::ExponentialHistogramDataPoint {
            attributes: key_values(self.attributes)?,
            start_time_unix_nano: self.start_time_unix_nano.0,
            time_unix_nano: self.time_unix_nano.0,
            count: self.count.0,
            sum: self.sum.map(|s| s.0),
            scale: self.scale.0,
            zero_count: self.zero_count.0,
            positive: self.positive.map(buckets),
            negative: self.negative.map(buckets),
            flags: self.flags.0,
            exemplars: collect(self.exemplars, Exemplar::into_proto)?,
            min: self.min.map(|m| m.0),
            max: self.max.map(|m| m.0),
            zero_threshold: self.zero_threshold.0,
        })
    }
}

impl SummaryDataPoint {
    fn into_proto(self) -> Result<proto::SummaryDataPoint, String> {
        Ok(proto::SummaryDataPoint {
            attributes: key_values(self.attributes)?,
            start_time_unix_nano: self.start_time_unix_nano.0,
            time_unix_nano: self.time_unix_nano.0,
            count: self.count.0,
            sum: self.sum.0,
            quantile_values: self
                .quantile_values
                .into_iter()
                .map(|q| proto::summary_data_point::ValueAtQuantile {
                    quantile: q.quantile.0,
                    value: q.value.0,
                })
                .collect(),
            flags: self.flags.0,
        })
    }
}

impl Exemplar {
    fn into_proto(self) -> Result<proto::Exemplar, String> {
        use proto::exemplar::Value;
        let value = match (self.as_double, self.as_int) {
            (Some(_), Some(_)) => return Err("an exemplar sets both asDouble and asInt".into()),
            (Some(d), None) => Some(Value::AsDouble(d.0)),
            (None, Some(i)) => Some(Value::AsInt(i.0)),
            (None, None) => None,
        };
        Ok(proto::Exemplar {
            filtered_attributes: key_values(self.filtered_attributes)?,
            time_unix_nano: self.time_unix_nano.0,
            value,
            span_id: hex(&self.span_id)
                .ok_or_else(|| format!("spanId {:?} is not hex", self.span_id))?,
            trace_id: hex(&self.trace_id)
                .ok_or_else(|| format!("traceId {:?} is not hex", self.trace_id))?,
        })
    }
}

fn key_values(items: Vec<KeyValue>) -> Result<Vec<proto::KeyValue>, String> {
    collect(items, |kv| {
        Ok(proto::KeyValue {
            value: kv.value.map(AnyValue::into_proto).transpose()?,
            key: kv.key,
        })
    })
}

impl AnyValue {
    fn into_proto(self) -> Result<proto::AnyValue, String> {
        use proto::any_value::Value;
        let mut values = Vec::with_capacity(1);
        if let Some(s) = self.string_value {
            values.push(Value::StringValue(s));
        }
        if let Some(b) = self.bool_value {
            values.push(Value::BoolValue(b));
        }
        if let Some(i) = self.int_value {
            values.push(Value::IntValue(i.0));
        }
        if let Some(d) = self.double_value {
            values.push(Value::DoubleValue(d.0));
        }
        if let Some(a) = self.array_value {
            values.push(Value::ArrayValue(proto::ArrayValue {
                values: collect(a.values, AnyValue::into_proto)?,
            }));
        }
        if let Some(kv) = self.kvlist_value {
            values.push(Value::KvlistValue(proto::KeyValueList {
                values: key_values(kv.values)?,
            }));
        }
        if let Some(b) = self.bytes_value {
            values.push(Value::BytesValue(
                base64(&b).ok_or_else(|| format!("bytesValue {b:?} is not base64"))?,
            ));
        }
        if values.len() > 1 {
            return Err(
                "an attribute value sets more than one of stringValue, boolValue, \
                        intValue, doubleValue, arrayValue, kvlistValue, bytesValue"
                    .into(),
            );
        }
        Ok(proto::AnyValue {
            value: values.pop(),
        })
    }
}

/// Trace and span ids: hex, either case (the empty string is an empty id).
fn hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// `bytes` fields: base64, standard or URL-safe alphabet, padded or not (protobuf JSON).
fn base64(text: &str) -> Option<Vec<u8>> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    if text.contains(['-', '_']) {
        URL_SAFE.decode(text).ok()
    } else {
        STANDARD.decode(text).ok()
    }
}

/// Implements `Deserialize` for a number wrapper through a visitor that accepts JSON numbers,
/// numeric strings, and `null` (the default).
macro_rules! number {
    ($name:ident, $ty:ty, $what:literal, |$v:ident| from_str $parse:expr) => {
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        struct $name($ty);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        <$ty as FromNumber>::from_u64(v)
                            .map($name)
                            .ok_or_else(|| E::custom(format!("{v} is out of range for {}", $what)))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        <$ty as FromNumber>::from_i64(v)
                            .map($name)
                            .ok_or_else(|| E::custom(format!("{v} is out of range for {}", $what)))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$name, E> {
                        <$ty as FromNumber>::from_f64(v)
                            .map($name)
                            .ok_or_else(|| E::custom(format!("{v} is not {}", $what)))
                    }
                    fn visit_str<E: de::Error>(self, $v: &str) -> Result<$name, E> {
                        let parsed: Option<$ty> = $parse;
                        parsed
                            .map($name)
                            .ok_or_else(|| E::custom(format!("{:?} is not {}", $v, $what)))
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<$name, E> {
                        Ok($name::default())
                    }
                }
                deserializer.deserialize_any(V)
            }
        }
    };
}

/// Lossless conversions from what a JSON number decodes to.
trait FromNumber: Sized {
    fn from_u64(v: u64) -> Option<Self>;
    fn from_i64(v: i64) -> Option<Self>;
    fn from_f64(v: f64) -> Option<Self>;
}

macro_rules! integer {
    ($ty:ty) => {
        impl FromNumber for $ty {
            fn from_u64(v: u64) -> Option<Self> {
                <$ty>::try_from(v).ok()
            }
            fn from_i64(v: i64) -> Option<Self> {
                <$ty>::try_from(v).ok()
            }
            /// `1e3` or `5.0`: an integer written as a float (the protobuf JSON mapping
            /// accepts it).
            fn from_f64(v: f64) -> Option<Self> {
                // `as i128` saturates, so a huge float lands out of range below.
                (v.is_finite() && v.fract() == 0.0)
                    .then(|| <$ty>::try_from(v as i128).ok())
                    .flatten()
            }
        }
    };
}

integer!(u64);
integer!(i64);
integer!(u32);
integer!(i32);

impl FromNumber for f64 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}

number!(U64, u64, "an unsigned 64-bit integer", |v| from_str v.trim().parse().ok());
number!(I64, i64, "a signed 64-bit integer", |v| from_str v.trim().parse().ok());
number!(U32, u32, "an unsigned 32-bit integer", |v| from_str v.trim().parse().ok());
number!(I32, i32, "a signed 32-bit integer", |v| from_str v.trim().parse().ok());
number!(F64, f64, "a double", |v| from_str parse_double(v));
number!(Temporality, i32, "an aggregation temporality (0, 1, 2 or its name)", |v| from_str
match v {
    "AGGREGATION_TEMPORALITY_UNSPECIFIED" => Some(0),
    "AGGREGATION_TEMPORALITY_DELTA" => Some(1),
    "AGGREGATION_TEMPORALITY_CUMULATIVE" => Some(2),
    other => other.trim().parse().ok(),
});

/// A double written as a string: the protobuf JSON mapping's special values, or a number.
fn parse_double(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        // Rust's parser also takes `inf` and `nan`: only plain decimal numbers get here.
        other
            if other
                .bytes()
                .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        other => other.trim().parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(json: &str) -> Result<proto::NumberDataPoint, String> {
        let body = format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"m","gauge":{{"dataPoints":[{json}]}}}}]}}]}}]}}"#
        );
        let request = parse(body.as_bytes())?;
        match request.resource_metrics[0].scope_metrics[0].metrics[0]
            .data
            .clone()
        {
            Some(proto::metric::Data::Gauge(g)) => Ok(g.data_points[0].clone()),
            _ => Err("not a gauge".into()),
        }
    }

    #[test]
    fn integers_read_from_numbers_and_strings() {
        use proto::number_data_point::Value;
        let p = point(r#"{"timeUnixNano":"1700000000000000000","asInt":"-5"}"#).unwrap();
        assert_eq!(p.time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(p.value, Some(Value::AsInt(-5)));
        let p = point(r#"{"timeUnixNano":1700000000000000000,"asInt":7,"flags":"1"}"#).unwrap();
        assert_eq!(p.time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(p.value, Some(Value::AsInt(7)));
        assert_eq!(p.flags, 1);
        let p = point(r#"{"timeUnixNano":1e3,"asInt":"9223372036854775807"}"#).unwrap();
        assert_eq!(p.time_unix_nano, 1000);
        assert_eq!(p.value, Some(Value::AsInt(i64::MAX)));
        assert!(point(r#"{"timeUnixNano":"-1"}"#).is_err());
        assert!(point(r#"{"timeUnixNano":1.5}"#).is_err());
        assert!(point(r#"{"asInt":"9223372036854775808"}"#).is_err());
        assert!(point(r#"{"flags":4294967296}"#).is_err());
    }

    #[test]
    fn doubles_take_the_special_strings() {
        use proto::number_data_point::Value;
        let value = |json: &str| point(json).map(|p| p.value);
        assert!(
            matches!(value(r#"{"asDouble":"NaN"}"#), Ok(Some(Value::AsDouble(v))) if v.is_nan())
        );
        assert_eq!(
            value(r#"{"asDouble":"Infinity"}"#),
            Ok(Some(Value::AsDouble(f64::INFINITY)))
        );
        assert_eq!(
            value(r#"{"asDouble":"-Infinity"}"#),
            Ok(Some(Value::AsDouble(f64::NEG_INFINITY)))
        );
        assert_eq!(
            value(r#"{"asDouble":"2.5"}"#),
            Ok(Some(Value::AsDouble(2.5)))
        );
        assert_eq!(value(r#"{"asDouble":3}"#), Ok(Some(Value::AsDouble(3.0))));
        assert!(value(r#"{"asDouble":"inf"}"#).is_err());
        assert!(value(r#"{"asDouble":"x"}"#).is_err());
    }

    #[test]
    fn nulls_and_unknown_keys_are_defaults() {
        let p =
            point(r#"{"timeUnixNano":null,"asDouble":null,"attributes":null,"future":{"x":[1]}}"#)
                .unwrap();
        assert_eq!(p, proto::NumberDataPoint::default());
    }

    #[test]
    fn oneofs_take_one_member() {
        assert!(point(r#"{"asDouble":1,"asInt":"1"}"#).is_err());
        let two = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{},"sum":{}}]}]}]}"#;
        assert!(parse(two.as_bytes()).unwrap_err().contains("more than one"));
        let attr = r#"{"attributes":[{"key":"k","value":{"stringValue":"a","intValue":1}}]}"#;
        assert!(point(attr).is_err());
    }

    #[test]
    fn attribute_values_of_every_kind() {
        use proto::any_value::Value;
        let p = point(
            r#"{"attributes":[
                {"key":"s","value":{"stringValue":"x"}},
                {"key":"b","value":{"boolValue":true}},
                {"key":"i","value":{"intValue":"12"}},
                {"key":"d","value":{"doubleValue":0.5}},
                {"key":"a","value":{"arrayValue":{"values":[{"intValue":1},{"stringValue":"y"}]}}},
                {"key":"m","value":{"kvlistValue":{"values":[{"key":"k","value":{"boolValue":false}}]}}},
                {"key":"y","value":{"bytesValue":"aGk="}},
                {"key":"u","value":{"bytesValue":"_-8"}},
                {"key":"e","value":{}}
            ]}"#,
        )
        .unwrap();
        let values: Vec<Option<Value>> = p
            .attributes
            .into_iter()
            .map(|kv| kv.value.and_then(|v| v.value))
            .collect();
        assert_eq!(values[0], Some(Value::StringValue("x".into())));
        assert_eq!(values[1], Some(Value::BoolValue(true)));
        assert_eq!(values[2], Some(Value::IntValue(12)));
        assert_eq!(values[3], Some(Value::DoubleValue(0.5)));
        assert!(matches!(&values[4], Some(Value::ArrayValue(a)) if a.values.len() == 2));
        assert!(matches!(&values[5], Some(Value::KvlistValue(m)) if m.values.len() == 1));
        assert_eq!(values[6], Some(Value::BytesValue(b"hi".to_vec())));
        assert_eq!(values[7], Some(Value::BytesValue(vec![0xff, 0xef])));
        assert_eq!(values[8], None);
        assert!(point(r#"{"attributes":[{"key":"y","value":{"bytesValue":"!!"}}]}"#).is_err());
    }

    #[test]
    fn exemplar_ids_are_hex() {
        let p = point(
            r#"{"exemplars":[{"timeUnixNano":"1","asDouble":2,
                "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174"}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.exemplars[0].span_id,
            vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        assert_eq!(p.exemplars[0].trace_id.len(), 16);
        assert!(point(r#"{"exemplars":[{"spanId":"xyz"}]}"#).is_err());
    }

    #[test]
    fn temporality_as_number_or_name() {
        let sum = |t: &str| {
            let body = format!(
                r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"m","sum":{{"aggregationTemporality":{t}}}}}]}}]}}]}}"#
            );
            parse(body.as_bytes()).map(|r| {
                match &r.resource_metrics[0].scope_metrics[0].metrics[0].data {
                    Some(proto::metric::Data::Sum(s)) => s.aggregation_temporality,
                    _ => -1,
                }
            })
        };
        assert_eq!(sum("2"), Ok(2));
        assert_eq!(sum("\"AGGREGATION_TEMPORALITY_DELTA\""), Ok(1));
        assert!(sum("\"CUMULATIVE\"").is_err());
    }
}
