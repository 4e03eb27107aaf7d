//! OTLP/HTTP metrics (`POST /v1/metrics`): content negotiation, gzip, protobuf and JSON
//! decoding, and the translation of OTLP's data model into the agent's Prometheus-style rows.
//! Pure: the HTTP route ([`super::http`]) reads the body and calls [`negotiate`], [`decode`]
//! and [`response`].
//!
//! **Message types.** Written by hand with prost's derive ([`proto`]) and a serde mapping for
//! OTLP/JSON ([`json`]), not taken from the `opentelemetry-proto` crate: that crate's protobuf
//! types are fine, but its JSON (0.33, `with-serde`) reads a oneof through `serde(flatten)`,
//! which turns a value it cannot read into "no value" instead of an error: a histogram whose
//! `sum` is `"Infinity"` loses its whole data silently, and `"asDouble": "NaN"` becomes a point
//! without a value. It also always builds `opentelemetry` and `opentelemetry_sdk`. The four
//! schemas we need are small and frozen (stable since OTLP 1.0).
//!
//! **Translation** (as the Collector's Prometheus exporter names series, see [`naming`]):
//!
//! | OTLP | rows |
//! |---|---|
//! | gauge, sum point | one row, `as_double` or `as_int` as f64; monotonic sums end in `_total` |
//! | histogram point | `<name>_bucket` per bound with `le` (cumulative) and `le="+Inf"` (the count), `<name>_sum` (when sent), `<name>_count` |
//! | summary point | `<name>` per quantile with `quantile`, `<name>_sum`, `<name>_count` |
//! | exponential histogram point | none: counted in [`Decoded::histograms`] |
//! | exemplars | none: counted in [`Decoded::exemplars`] |
//!
//! Labels are the point's attributes and the resource's (the point's win on the same key), with
//! `service.namespace`/`service.name` -> `job` and `service.instance.id` -> `instance` (which
//! win over attributes named so); values are stringified (arrays and maps as JSON, bytes as
//! base64), an empty value is no label, and two keys that sanitize to one label name have
//! their values joined with `;` in key order (as Prometheus' OTLP translation does). The
//! instrumentation scope is not a label (Prometheus' OTLP receiver does not add one by
//! default). The timestamp is `time_unix_nano` in milliseconds.
//!
//! **Partial success.** A point that cannot become rows is refused alone and counted in the
//! 200's `partial_success`, as the OTLP specification asks of a server that accepts part of a
//! request (a 400 would make the sender drop every good point with it): no value, flagged
//! `NO_RECORDED_VALUE`, no timestamp, more labels than `max_labels_per_series` (`__name__` and
//! `le`/`quantile` included), inconsistent buckets, a sum or histogram that is not cumulative
//! (a delta is not a Prometheus counter; Prometheus' OTLP receiver refuses them too), or a
//! metric name without one valid character. Only a body that does not decode is a 400.
//!
//! **Compression.** `Content-Encoding: gzip` (the one the OTLP specification names, and what
//! the SDKs send when told to compress) is inflated with a bound of `max_request_bytes`. The
//! route hands [`decode`] only the [`Format`], so a gzip body is recognised by its magic bytes,
//! which neither encoding can start with (protobuf's `0x1f` would be field 3 of wire type 7,
//! which does not exist; JSON starts with `{` or whitespace).

pub mod json;
pub mod naming;
pub mod proto;

use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine as _;
use prost::Message as _;

use super::mapping::{format_value, RowMapping, NAME_LABEL};
use super::{DecodeLimits, Decoded, Rejection};
use naming::Kind;
use proto::metric::Data;

/// The encoding of a request's body (and of our answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// The format of a request from its `Content-Type` and `Content-Encoding` headers: 415 for a
/// media type or an encoding we do not read (only gzip and identity).
pub fn negotiate(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Result<Format, Rejection> {
    let Some(content_type) = content_type else {
        return Err(Rejection::Unsupported(
            "no Content-Type: send application/x-protobuf or application/json".into(),
        ));
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let format = match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Format::Protobuf,
        "application/json" => Format::Json,
        _ => {
            return Err(Rejection::Unsupported(format!(
                "Content-Type {content_type:?}: send application/x-protobuf or application/json"
            )))
        }
    };
    match content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity" | "gzip" | "x-gzip") => Ok(format),
        Some(_) => Err(Rejection::Unsupported(format!(
            "Content-Encoding {:?}: send gzip or no encoding",
            content_encoding.unwrap_or_default()
        ))),
    }
}

/// Decode one request body into rows; see the module documentation for what becomes a row and
/// what is refused point by point ([`Decoded::rejected`]). `received_ms` is every row's
/// `created_at`.
pub fn decode(
    format: Format,
    body: &[u8],
    limits: &DecodeLimits,
    mapping: &RowMapping,
    received_ms: i64,
) -> Result<Decoded, Rejection> {
    let body = inflate(body, limits.max_request_bytes)?;
    let request = match format {
        Format::Protobuf => proto::ExportMetricsServiceRequest::decode(body.as_ref())
            .map_err(|e| Rejection::Malformed(format!("OTLP protobuf: {e}")))?,
        Format::Json => {
            json::parse(&body).map_err(|e| Rejection::Malformed(format!("OTLP/JSON: {e}")))?
        }
    };
    let mut translator = Translator {
        limits,
        mapping,
        received_ms,
        out: Decoded::default(),
    };
    for resource_metrics in &request.resource_metrics {
        translator.resource(resource_metrics);
    }
    let mut decoded = translator.out;
    decoded.samples = decoded.rows.len() as u64;
    Ok(decoded)
}

/// The body of a 200: `ExportMetricsServiceResponse`, with `partial_success` when points were
/// refused (or `message` has something to say), in the request's format.
pub fn response(format: Format, rejected_data_points: u64, message: &str) -> Vec<u8> {
    let rejected = i64::try_from(rejected_data_points).unwrap_or(i64::MAX);
    let partial =
        (rejected > 0 || !message.is_empty()).then(|| proto::ExportMetricsPartialSuccess {
            rejected_data_points: rejected,
            error_message: message.to_owned(),
        });
    match format {
        Format::Protobuf => proto::ExportMetricsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Format::Json => {
            // int64 as a decimal string, as the protobuf JSON mapping writes it.
            let body = match partial {
                None => serde_json::json!({}),
                Some(p) => serde_json::json!({
                    "partialSuccess": {
                        "rejectedDataPoints": p.rejected_data_points.to_string(),
                        "errorMessage": p.error_message,
                    }
                }),
            };
            body.to_string().into_bytes()
        }
    }
}

/// gzip's magic number: no protobuf or JSON body starts with it.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The body, inflated when it is gzip; 413 when it, or what it inflates to, exceeds `limit`.
fn inflate(body: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, Rejection> {
    let too_large = |size: u64| Rejection::TooLarge {
        size,
        limit: limit as u64,
    };
    if body.len() > limit {
        return Err(too_large(body.len() as u64));
    }
    if !body.starts_with(&GZIP_MAGIC) {
        return Ok(Cow::Borrowed(body));
    }
    // The trailer declares the last member's length mod 2^32: a lower bound of the whole, so
    // one above the limit is refused before inflating anything.
    let declared = match body.len().checked_sub(4).and_then(|at| body.get(at..)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => 0,
    };
    if declared > limit {
        return Err(too_large(declared as u64));
    }
    let mut out = Vec::with_capacity(declared);
    let mut reader = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| Rejection::Malformed(format!("gzip: {e}")))?;
    if out.len() > limit {
        return Err(too_large(out.len() as u64));
    }
    Ok(Cow::Owned(out))
}

/// A resource's share of every label set: its attributes (minus those that make `job` and
/// `instance`), stringified once.
struct ResourceLabels {
    attributes: Vec<(String, String)>,
    job: Option<String>,
    instance: Option<String>,
}

impl ResourceLabels {
    fn new(resource: Option<&proto::Resource>) -> ResourceLabels {
        let attributes = resource.map_or(&[][..], |r| &r.attributes[..]);
        let find = |key: &str| {
            attributes
                .iter()
                .rev()
                .find(|kv| kv.key == key)
                .map(|kv| any_value_string(kv.value.as_ref()))
                .filter(|v| !v.is_empty())
        };
        let name = find("service.name");
        let namespace = find("service.namespace");
        let instance = find("service.instance.id");
        let job = name.as_ref().map(|name| match &namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.clone(),
        });
        let identifying = |key: &str| {
            key == "service.instance.id"
                || (job.is_some() && (key == "service.name" || key == "service.namespace"))
        };
        ResourceLabels {
            attributes: attributes
                .iter()
                .filter(|kv| !identifying(&kv.key))
                .map(|kv| (kv.key.clone(), any_value_string(kv.value.as_ref())))
                .collect(),
            job,
            instance,
        }
    }
}

/// A point's label set before `__name__`, or why the point is refused.
type Labels = Result<BTreeMap<String, String>, String>;

/// Walks a request, turning points into rows and refusals.
struct Translator<'a> {
    limits: &'a DecodeLimits,
    mapping: &'a RowMapping,
    received_ms: i64,
    out: Decoded,
}

impl Translator<'_> {
    fn resource(&mut self, resource_metrics: &proto::ResourceMetrics) {
        let resource = ResourceLabels::new(resource_metrics.resource.as_ref());
        for scope in &resource_metrics.scope_metrics {
            for metric in &scope.metrics {
                self.metric(&resource, metric);
            }
        }
    }

    /// Refuse `points` points, remembering the first reason.
    fn reject(&mut self, points: usize, reason: impl FnOnce() -> String) {
        if points == 0 {
            return;
        }
        self.out.rejected += points as u64;
        if self.out.rejected_reason.is_empty() {
            self.out.rejected_reason = reason();
        }
    }

    fn metric(&mut self, resource: &ResourceLabels, metric: &proto::Metric) {
        let Some(data) = &metric.data else {
            return;
        };
        let (points, kind, temporality) = match data {
            Data::Gauge(g) => (g.data_points.len(), Kind::Gauge, None),
            Data::Sum(s) => {
                let kind = if s.is_monotonic {
                    Kind::Counter
                } else {
                    Kind::Other
                };
                (s.data_points.len(), kind, Some(s.aggregation_temporality))
            }
            Data::Histogram(h) => (
                h.data_points.len(),
                Kind::Other,
                Some(h.aggregation_temporality),
            ),
            Data::ExponentialHistogram(e) => {
                self.out.histograms += e.data_points.len() as u64;
                self.out.exemplars += exemplars(e.data_points.iter().map(|p| &p.exemplars));
                return;
            }
            Data::Summary(s) => (s.data_points.len(), Kind::Other, None),
        };
        self.out.exemplars += match data {
            Data::Gauge(proto::Gauge { data_points })
            | Data::Sum(proto::Sum { data_points, .. }) => {
                exemplars(data_points.iter().map(|p| &p.exemplars))
            }
            Data::Histogram(h) => exemplars(h.data_points.iter().map(|p| &p.exemplars)),
            Data::ExponentialHistogram(_) | Data::Summary(_) => 0,
        };
        if let Some(t) = temporality {
            if t != proto::AggregationTemporality::Cumulative as i32 {
                let what = match proto::AggregationTemporality::try_from(t) {
                    Ok(proto::AggregationTemporality::Delta) => "delta".to_owned(),
                    Ok(_) => "unspecified".to_owned(),
                    Err(_) => format!("unknown ({t})"),
                };
                return self.reject(points, || {
                    format!(
                        "metric {:?}: {what} aggregation temporality, only cumulative sums and \
                         histograms are stored (set the exporter's temporality preference to \
                         cumulative)",
                        metric.name
                    )
                });
            }
        }
        let Some(name) = naming::metric_name(&metric.name, &metric.unit, kind) else {
            return self.reject(points, || {
                format!(
                    "metric {:?}: no character of its name is valid in a Prometheus name",
                    metric.name
                )
            });
        };
        match data {
            Data::Gauge(proto::Gauge { data_points })
            | Data::Sum(proto::Sum { data_points, .. }) => {
                for point in data_points {
                    let rows = self.number(resource, &name, point);
                    self.emit(&metric.name, rows);
                }
            }
            Data::Histogram(h) => {
                for point in &h.data_points {
                    let rows = self.histogram(resource, &name, point);
                    self.emit(&metric.name, rows);
                }
            }
            Data::Summary(s) => {
                for point in &s.data_points {
                    let rows = self.summary(resource, &name, point);
                    self.emit(&metric.name, rows);
                }
            }
            Data::ExponentialHistogram(_) => {}
        }
    }

    /// Store one point's rows, or count it refused.
    fn emit(&mut self, metric: &str, rows: Result<Vec<Sample>, String>) {
        match rows {
            Ok(samples) => {
                for s in samples {
                    let row = self
                        .mapping
                        .row(s.labels, s.value, s.timestamp_ms, self.received_ms);
                    self.out.rows.push(row);
                }
            }
            Err(reason) => self.reject(1, || format!("metric {metric:?}: {reason}")),
        }
    }

    /// The checks every point passes: a value is recorded, a timestamp is set.
    fn point_time(flags: u32, time_unix_nano: u64) -> Result<i64, String> {
        if flags & proto::FLAG_NO_RECORDED_VALUE != 0 {
            return Err("data point flagged NO_RECORDED_VALUE (no value to store)".into());
        }
        if time_unix_nano == 0 {
            return Err("data point without time_unix_nano".into());
        }
        // u64::MAX / 10^6 fits an i64.
        Ok(i64::try_from(time_unix_nano / 1_000_000).unwrap_or(i64::MAX))
    }

    /// The point's labels: resource and point attributes, `job`, `instance`; refused when,
    /// with `__name__` and the `extra` labels its rows add (`le`, `quantile`), it exceeds the
    /// limit.
    fn labels(
        &self,
        resource: &ResourceLabels,
        attributes: &[proto::KeyValue],
        extra: Option<&str>,
    ) -> Labels {
        let mut raw: BTreeMap<&str, Cow<'_, str>> = resource
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str())))
            .collect();
        for kv in attributes {
            raw.insert(&kv.key, Cow::Owned(any_value_string(kv.value.as_ref())));
        }
        let mut labels = BTreeMap::new();
        for (key, value) in raw {
            let name = naming::label_name(key);
            if name.is_empty() || value.is_empty() {
                continue;
            }
            match labels.entry(name) {
                Entry::Vacant(e) => {
                    e.insert(value.into_owned());
                }
                Entry::Occupied(mut e) => {
                    let joined = e.get_mut();
                    joined.push(';');
                    joined.push_str(&value);
                }
            }
        }
        if let Some(job) = &resource.job {
            labels.insert("job".to_owned(), job.clone());
        }
        if let Some(instance) = &resource.instance {
            labels.insert("instance".to_owned(), instance.clone());
        }
        labels.remove(NAME_LABEL);
        let added = extra.filter(|e| !labels.contains_key(*e)).map_or(0, |_| 1);
        let count = labels.len() + 1 + added;
        if count > self.limits.max_labels_per_series {
            return Err(format!(
                "{count} labels, the limit is {} (ingest.maxLabelsPerSeries)",
                self.limits.max_labels_per_series
            ));
        }
        Ok(labels)
    }

    fn number(
        &self,
        resource: &ResourceLabels,
        name: &str,
        point: &proto::NumberDataPoint,
    ) -> Result<Vec<Sample>, String> {
        use proto::number_data_point::Value;
        let timestamp_ms = Self::point_time(point.flags, point.time_unix_nano)?;
        let value = match point.value {
            Some(Value::AsDouble(v)) => v,
            Some(Value::AsInt(v)) => v as f64,
            None => return Err("data point without a value".into()),
        };
        let labels = self.labels(resource, &point.attributes, None)?;
        Ok(vec![Sample::new(labels, name, None, value, timestamp_ms)])
    }

    fn histogram(
        &self,
        resource: &ResourceLabels,
        name: &str,
        point: &proto::HistogramDataPoint,
    ) -> Result<Vec<Sample>, String> {
        let timestamp_ms = Self::point_time(point.flags, point.time_unix_nano)?;
        let bounds = &point.explicit_bounds;
        let counts = &point.bucket_counts;
        if !(counts.is_empty() && bounds.is_empty()) && counts.len() != bounds.len() + 1 {
            return Err(format!(
                "histogram with {} bucket counts for {} bounds (needs one more count than bounds)",
                counts.len(),
                bounds.len()
            ));
        }
        let increasing = bounds
            .windows(2)
            .all(|w| w[0].partial_cmp(&w[1]) == Some(std::cmp::Ordering::Less));
        if !increasing || bounds.iter().any(|b| b.is_nan()) {
            return Err("histogram bounds are not strictly increasing".into());
        }
        let labels = self.labels(resource, &point.attributes, Some("le"))?;
        let bucket = format!("{name}_bucket");
        let mut rows = Vec::with_capacity(bounds.len() + 3);
        let mut cumulative: u64 = 0;
        for (bound, count) in bounds.iter().zip(counts) {
            cumulative = cumulative.saturating_add(*count);
            rows.push(Sample::new(
                labels.clone(),
                &bucket,
                Some(("le", format_value(*bound))),
                cumulative as f64,
                timestamp_ms,
            ));
        }
        rows.push(Sample::new(
            labels.clone(),
            &bucket,
            Some(("le", "+Inf".to_owned())),
            point.count as f64,
            timestamp_ms,
        ));
        sum_and_count(
            &mut rows,
            labels,
            name,
            point.sum,
            point.count,
            timestamp_ms,
        );
        Ok(rows)
    }

    fn summary(
        &self,
        resource: &ResourceLabels,
        name: &str,
        point: &proto::SummaryDataPoint,
    ) -> Result<Vec<Sample>, String> {
        let timestamp_ms = Self::point_time(point.flags, point.time_unix_nano)?;
        let extra = (!point.quantile_values.is_empty()).then_some("quantile");
        let labels = self.labels(resource, &point.attributes, extra)?;
        let mut rows = Vec::with_capacity(point.quantile_values.len() + 2);
        for q in &point.quantile_values {
            rows.push(Sample::new(
                labels.clone(),
                name,
                Some(("quantile", format_value(q.quantile))),
                q.value,
                timestamp_ms,
            ));
        }
        sum_and_count(
            &mut rows,
            labels,
            name,
            Some(point.sum),
            point.count,
            timestamp_ms,
        );
        Ok(rows)
    }
}

/// The `<name>_sum` (when there is one) and `<name>_count` rows histograms and summaries end
/// with, as the Prometheus exposition names them.
fn sum_and_count(
    rows: &mut Vec<Sample>,
    labels: BTreeMap<String, String>,
    name: &str,
    sum: Option<f64>,
    count: u64,
    timestamp_ms: i64,
) {
    if let Some(sum) = sum {
        rows.push(Sample::new(
            labels.clone(),
            &format!("{name}_sum"),
            None,
            sum,
            timestamp_ms,
        ));
    }
    rows.push(Sample::new(
        labels,
        &format!("{name}_count"),
        None,
        count as f64,
        timestamp_ms,
    ));
}

/// How many exemplars the points carry (received, not stored).
fn exemplars<'a>(points: impl Iterator<Item = &'a Vec<proto::Exemplar>>) -> u64 {
    points.map(|e| e.len() as u64).sum()
}

/// One row before the mapping: its full label set, value and time.
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
    timestamp_ms: i64,
}

impl Sample {
    fn new(
        mut labels: BTreeMap<String, String>,
        name: &str,
        extra: Option<(&str, String)>,
        value: f64,
        timestamp_ms: i64,
    ) -> Sample {
        if let Some((label, v)) = extra {
            labels.insert(label.to_owned(), v);
        }
        labels.insert(NAME_LABEL.to_owned(), name.to_owned());
        Sample {
            labels,
            value,
            timestamp_ms,
        }
    }
}

/// An attribute value as a label value: strings as they are, numbers as the agent writes
/// them, booleans `true`/`false`, bytes in base64, arrays and maps as JSON; empty when unset.
fn any_value_string(value: Option<&proto::AnyValue>) -> String {
    use proto::any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => format_value(*d),
        Some(Value::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(v @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            any_value_json(Some(v)).to_string()
        }
    }
}

fn any_value_json(value: Option<&proto::any_value::Value>) -> serde_json::Value {
    use proto::any_value::Value;
    use serde_json::Value as J;
    match value {
        None => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        // JSON has no NaN or infinities: those are written as strings.
        Some(Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or_else(|| J::String(format_value(*d)), J::Number)
        }
        Some(Value::BytesValue(b)) => {
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(Value::ArrayValue(a)) => J::Array(
            a.values
                .iter()
                .map(|v| any_value_json(v.value.as_ref()))
                .collect(),
        ),
        Some(Value::KvlistValue(m)) => J::Object(
            m.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        any_value_json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests;
