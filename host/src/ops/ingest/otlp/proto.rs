//! The OTLP metrics messages, written by hand with prost's derive from the specification's
//! schemas (`opentelemetry/proto/collector/metrics/v1/metrics_service.proto`,
//! `metrics/v1/metrics.proto`, `common/v1/common.proto`, `resource/v1/resource.proto`): field
//! numbers and wire types are the contract, names follow Rust. Fields we never read (entity
//! references, string-table indices of the profiles signal) are left out: prost skips unknown
//! fields. Public so tests can build request bodies with the types the decoder reads.

/// `DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`: the point marks the end of a
/// series (OTLP's staleness marker) and carries no value.
pub const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// `ExportMetricsServiceRequest`: the body of `POST /v1/metrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceRequest {
    /// Metrics grouped by the resource that produced them.
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

/// `ExportMetricsServiceResponse`: the body of a 200.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceResponse {
    /// Set when some data points were refused (or to carry a warning).
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportMetricsPartialSuccess>,
}

/// `ExportMetricsPartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsPartialSuccess {
    /// Data points refused (0: everything was accepted).
    #[prost(int64, tag = "1")]
    pub rejected_data_points: i64,
    /// Why, for the developer who reads the sender's logs.
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `ResourceMetrics`: the metrics of one resource (a process, a host, ...).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceMetrics {
    /// The resource; absent means an empty one.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// Metrics grouped by instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
    /// The schema of the resource's attributes.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `Resource`: what produced the telemetry, as attributes (`service.name`, ...).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// The resource's attributes.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    /// Attributes the sender dropped.
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

/// `ScopeMetrics`: the metrics of one instrumentation scope (a meter).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeMetrics {
    /// The scope; absent means an unknown one.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// The schema of the metrics' attributes.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `InstrumentationScope`: the library (meter) that recorded the metrics.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// The scope's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The scope's version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// The scope's attributes.
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    /// Attributes the sender dropped.
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

/// `Metric`: a name, a unit, and the data points of one kind.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// The metric's name (`http.server.duration`).
    #[prost(string, tag = "1")]
    pub name: String,
    /// A description.
    #[prost(string, tag = "2")]
    pub description: String,
    /// The unit, in UCUM (`s`, `By`, `1`, `{request}`).
    #[prost(string, tag = "3")]
    pub unit: String,
    /// The data points; absent makes a metric without points.
    #[prost(oneof = "metric::Data", tags = "5, 7, 9, 10, 11")]
    pub data: Option<metric::Data>,
    /// Non-identifying metadata.
    #[prost(message, repeated, tag = "12")]
    pub metadata: Vec<KeyValue>,
}

/// The oneof of [`Metric`].
pub mod metric {
    /// `Metric.data`: which kind of metric, with its points.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        /// A gauge.
        #[prost(message, tag = "5")]
        Gauge(super::Gauge),
        /// A sum (a counter when monotonic).
        #[prost(message, tag = "7")]
        Sum(super::Sum),
        /// An explicit-bucket histogram.
        #[prost(message, tag = "9")]
        Histogram(super::Histogram),
        /// An exponential histogram.
        #[prost(message, tag = "10")]
        ExponentialHistogram(super::ExponentialHistogram),
        /// A summary (quantiles).
        #[prost(message, tag = "11")]
        Summary(super::Summary),
    }
}

/// `AggregationTemporality`: whether points hold deltas or running totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AggregationTemporality {
    /// Not set: invalid for sums and histograms.
    Unspecified = 0,
    /// Each point covers the interval since the previous one.
    Delta = 1,
    /// Each point covers the interval since a fixed start.
    Cumulative = 2,
}

/// `Gauge`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    /// The points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
}

/// `Sum`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sum {
    /// The points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    /// [`AggregationTemporality`].
    #[prost(enumeration = "AggregationTemporality", tag = "2")]
    pub aggregation_temporality: i32,
    /// Whether the sum only goes up (a counter).
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

/// `Histogram` (explicit buckets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// The points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<HistogramDataPoint>,
    /// [`AggregationTemporality`].
    #[prost(enumeration = "AggregationTemporality", tag = "2")]
    pub aggregation_temporality: i32,
}

/// `ExponentialHistogram`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogram {
    /// The points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<ExponentialHistogramDataPoint>,
    /// [`AggregationTemporality`].
    #[prost(enumeration = "AggregationTemporality", tag = "2")]
    pub aggregation_temporality: i32,
}

/// `Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<SummaryDataPoint>,
}

/// `NumberDataPoint`: one value of a gauge or sum.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NumberDataPoint {
    /// The series' attributes.
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    /// Start of the interval, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// Time of the value, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// The value; absent makes the point invalid.
    #[prost(oneof = "number_data_point::Value", tags = "4, 6")]
    pub value: Option<number_data_point::Value>,
    /// Example measurements.
    #[prost(message, repeated, tag = "5")]
    pub exemplars: Vec<Exemplar>,
    /// `DataPointFlags` ([`FLAG_NO_RECORDED_VALUE`]).
    #[prost(uint32, tag = "8")]
    pub flags: u32,
}

/// The oneof of [`NumberDataPoint`].
pub mod number_data_point {
    /// `NumberDataPoint.value`.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A float value.
        #[prost(double, tag = "4")]
        AsDouble(f64),
        /// An integer value.
        #[prost(sfixed64, tag = "6")]
        AsInt(i64),
    }
}

/// `HistogramDataPoint`: one explicit-bucket histogram.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramDataPoint {
    /// The series' attributes.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// Start of the interval, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// Time of the point, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Sum of the observations, when known.
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    /// Observations per bucket (not cumulative): one more than `explicit_bounds`, or none.
    #[prost(fixed64, repeated, tag = "6")]
    pub bucket_counts: Vec<u64>,
    /// The buckets' inclusive upper bounds, strictly increasing.
    #[prost(double, repeated, tag = "7")]
    pub explicit_bounds: Vec<f64>,
    /// Example measurements.
    #[prost(message, repeated, tag = "8")]
    pub exemplars: Vec<Exemplar>,
    /// `DataPointFlags` ([`FLAG_NO_RECORDED_VALUE`]).
    #[prost(uint32, tag = "10")]
    pub flags: u32,
    /// Smallest observation, when known.
    #[prost(double, optional, tag = "11")]
    pub min: Option<f64>,
    /// Largest observation, when known.
    #[prost(double, optional, tag = "12")]
    pub max: Option<f64>,
}

/// `ExponentialHistogramDataPoint` (received and counted, not stored).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogramDataPoint {
    /// The series' attributes.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    /// Start of the interval, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// Time of the point, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Sum of the observations, when known.
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    /// Resolution of the buckets.
    #[prost(sint32, tag = "6")]
    pub scale: i32,
    /// Observations in the zero bucket.
    #[prost(fixed64, tag = "7")]
    pub zero_count: u64,
    /// Buckets of positive observations.
    #[prost(message, optional, tag = "8")]
    pub positive: Option<exponential_histogram_data_point::Buckets>,
    /// Buckets of negative observations.
    #[prost(message, optional, tag = "9")]
    pub negative: Option<exponential_histogram_data_point::Buckets>,
    /// `DataPointFlags`.
    #[prost(uint32, tag = "10")]
    pub flags: u32,
    /// Example measurements.
    #[prost(message, repeated, tag = "11")]
    pub exemplars: Vec<Exemplar>,
    /// Smallest observation, when known.
    #[prost(double, optional, tag = "12")]
    pub min: Option<f64>,
    /// Largest observation, when known.
    #[prost(double, optional, tag = "13")]
    pub max: Option<f64>,
    /// Width of the zero bucket.
    #[prost(double, tag = "14")]
    pub zero_threshold: f64,
}

/// The nested message of [`ExponentialHistogramDataPoint`].
pub mod exponential_histogram_data_point {
    /// `ExponentialHistogramDataPoint.Buckets`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Buckets {
        /// Index of the first bucket.
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        /// Observations per bucket.
        #[prost(uint64, repeated, tag = "2")]
        pub bucket_counts: Vec<u64>,
    }
}

/// `SummaryDataPoint`: quantiles, sum and count.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryDataPoint {
    /// The series' attributes.
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    /// Start of the interval, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// Time of the point, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Sum of the observations.
    #[prost(double, tag = "5")]
    pub sum: f64,
    /// The quantiles.
    #[prost(message, repeated, tag = "6")]
    pub quantile_values: Vec<summary_data_point::ValueAtQuantile>,
    /// `DataPointFlags` ([`FLAG_NO_RECORDED_VALUE`]).
    #[prost(uint32, tag = "8")]
    pub flags: u32,
}

/// The nested message of [`SummaryDataPoint`].
pub mod summary_data_point {
    /// `SummaryDataPoint.ValueAtQuantile`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct ValueAtQuantile {
        /// The quantile, in [0, 1].
        #[prost(double, tag = "1")]
        pub quantile: f64,
        /// The value at it.
        #[prost(double, tag = "2")]
        pub value: f64,
    }
}

/// `Exemplar`: an example measurement (counted, not stored).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Attributes filtered out of the point's.
    #[prost(message, repeated, tag = "7")]
    pub filtered_attributes: Vec<KeyValue>,
    /// Time of the measurement, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "2")]
    pub time_unix_nano: u64,
    /// The measured value.
    #[prost(oneof = "exemplar::Value", tags = "3, 6")]
    pub value: Option<exemplar::Value>,
    /// The span the measurement was made in (8 bytes).
    #[prost(bytes = "vec", tag = "4")]
    pub span_id: Vec<u8>,
    /// The trace the measurement was made in (16 bytes).
    #[prost(bytes = "vec", tag = "5")]
    pub trace_id: Vec<u8>,
}

/// The oneof of [`Exemplar`].
pub mod exemplar {
    /// `Exemplar.value`.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A float value.
        #[prost(double, tag = "3")]
        AsDouble(f64),
        /// An integer value.
        #[prost(sfixed64, tag = "6")]
        AsInt(i64),
    }
}

/// `AnyValue`: an attribute's value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The value; absent is an empty value.
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<any_value::Value>,
}

/// The oneof of [`AnyValue`].
pub mod any_value {
    /// `AnyValue.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A string.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// A boolean.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// An integer.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// A float.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// A list of values.
        #[prost(message, tag = "5")]
        ArrayValue(super::ArrayValue),
        /// A map of values.
        #[prost(message, tag = "6")]
        KvlistValue(super::KeyValueList),
        /// Raw bytes.
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }
}

/// `ArrayValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// `KeyValueList` (a map; keys should be unique).
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    /// The entries.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// `KeyValue`: an attribute.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The attribute's key (`service.name`).
    #[prost(string, tag = "1")]
    pub key: String,
    /// The attribute's value; absent is an empty value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}
