//! The remote write protobuf messages, written by hand with prost's derive from the
//! specifications' schemas: field numbers and wire types are the contract, names follow Rust.
//! Public so tests and benchmarks can build request bodies with the same types the decoder
//! reads.

/// Remote write 1.0: package `prometheus`, `prometheus.WriteRequest` (the 1.0 schema, plus the
/// exemplar, native histogram and metadata fields Prometheus senders add to it).
pub mod v1 {
    /// The request body: series, and metadata about metric families.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// The series of this request, each with its full label set.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        // Field 2 is reserved (used by Cortex for the request's source).
        /// Type, help and unit of metric families (not stored by us).
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    /// One series: its labels, and what was sampled of it.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// The full label set, `__name__` included.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Float samples, oldest first.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Exemplars attached to the samples.
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
        /// Native histogram samples.
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<Histogram>,
    }

    /// A label: name and value.
    #[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
    pub struct Label {
        /// The label name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// The label value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// A float sample.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Sample {
        /// The value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// An example observation (typically a trace id) attached to a series.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// The exemplar's own labels (may be empty).
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// The observed value.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// Metadata of a metric family.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        /// The family's type ([`MetricType`]).
        #[prost(enumeration = "MetricType", tag = "1")]
        pub r#type: i32,
        /// The family's name.
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        /// Help text.
        #[prost(string, tag = "4")]
        pub help: String,
        /// Unit.
        #[prost(string, tag = "5")]
        pub unit: String,
    }

    /// The type of a metric family in 1.0 metadata.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum MetricType {
        /// Not known.
        Unknown = 0,
        /// Counter.
        Counter = 1,
        /// Gauge.
        Gauge = 2,
        /// Histogram.
        Histogram = 3,
        /// Gauge histogram.
        Gaugehistogram = 4,
        /// Summary.
        Summary = 5,
        /// Info.
        Info = 6,
        /// State set.
        Stateset = 7,
    }

    /// 1.0 carries the same native histogram message as 2.0.
    pub use super::v2::{histogram, BucketSpan, Histogram};
}

/// Remote write 2.0: package `io.prometheus.write.v2`, `io.prometheus.write.v2.Request`
/// (strings interned in one symbol table, referenced by index).
pub mod v2 {
    /// The request body. Fields 1 to 3 are reserved so a 2.0 body read with the 1.0 schema
    /// decodes as an empty request (and the other way round).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        /// Every string of the request, de-duplicated; `symbols[0]` is always `""`.
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        /// The series of this request.
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// One series.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Name/value pairs of indexes into [`Request::symbols`] (an even count).
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// Float samples, oldest first.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Native histogram samples, oldest first.
        #[prost(message, repeated, tag = "3")]
        pub histograms: Vec<Histogram>,
        /// Exemplars attached to the samples.
        #[prost(message, repeated, tag = "4")]
        pub exemplars: Vec<Exemplar>,
        /// Type, help and unit of the series.
        #[prost(message, optional, tag = "5")]
        pub metadata: Option<Metadata>,
        /// When a counter started counting, in milliseconds (0: not set).
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }

    /// An example observation attached to a series.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Name/value pairs of indexes into [`Request::symbols`] (may be empty).
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// The observed value.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// A float sample.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Sample {
        /// The value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// Metadata of a series.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Metadata {
        /// The series' type ([`metadata::MetricType`]).
        #[prost(enumeration = "metadata::MetricType", tag = "1")]
        pub r#type: i32,
        /// Index of the help text in [`Request::symbols`] (0: none).
        #[prost(uint32, tag = "3")]
        pub help_ref: u32,
        /// Index of the unit in [`Request::symbols`] (0: none).
        #[prost(uint32, tag = "4")]
        pub unit_ref: u32,
    }

    /// Types nested in [`Metadata`].
    pub mod metadata {
        /// The type of a series in 2.0 metadata.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum MetricType {
            /// Not given.
            Unspecified = 0,
            /// Counter.
            Counter = 1,
            /// Gauge.
            Gauge = 2,
            /// Histogram.
            Histogram = 3,
            /// Gauge histogram.
            Gaugehistogram = 4,
            /// Summary.
            Summary = 5,
            /// Info.
            Info = 6,
            /// State set.
            Stateset = 7,
        }
    }

    /// A native (sparse or custom-bucket) histogram sample. Decoded whole so a malformed one
    /// is refused like any other malformed field, though only its presence is counted.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        /// Count of observations, integer or float.
        #[prost(oneof = "histogram::Count", tags = "1, 2")]
        pub count: Option<histogram::Count>,
        /// Sum of observations.
        #[prost(double, tag = "3")]
        pub sum: f64,
        /// Bucket schema (-4..=8 exponential, -53 custom buckets).
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        /// Width of the zero bucket.
        #[prost(double, tag = "5")]
        pub zero_threshold: f64,
        /// Count in the zero bucket, integer or float.
        #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
        pub zero_count: Option<histogram::ZeroCount>,
        /// Spans of the negative buckets.
        #[prost(message, repeated, tag = "8")]
        pub negative_spans: Vec<BucketSpan>,
        /// Negative bucket counts as deltas (integer histograms).
        #[prost(sint64, repeated, tag = "9")]
        pub negative_deltas: Vec<i64>,
        /// Negative bucket counts, absolute (float histograms).
        #[prost(double, repeated, tag = "10")]
        pub negative_counts: Vec<f64>,
        /// Spans of the positive buckets.
        #[prost(message, repeated, tag = "11")]
        pub positive_spans: Vec<BucketSpan>,
        /// Positive bucket counts as deltas (integer histograms).
        #[prost(sint64, repeated, tag = "12")]
        pub positive_deltas: Vec<i64>,
        /// Positive bucket counts, absolute (float histograms).
        #[prost(double, repeated, tag = "13")]
        pub positive_counts: Vec<f64>,
        /// Whether a counter reset happened ([`histogram::ResetHint`]).
        #[prost(enumeration = "histogram::ResetHint", tag = "14")]
        pub reset_hint: i32,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
        /// Upper bounds of custom buckets (schema -53).
        #[prost(double, repeated, tag = "16")]
        pub custom_values: Vec<f64>,
    }

    /// Types nested in [`Histogram`].
    pub mod histogram {
        /// A histogram's count of observations.
        #[derive(Clone, Copy, PartialEq, prost::Oneof)]
        pub enum Count {
            /// Integer histogram.
            #[prost(uint64, tag = "1")]
            CountInt(u64),
            /// Float histogram.
            #[prost(double, tag = "2")]
            CountFloat(f64),
        }

        /// A histogram's count in the zero bucket.
        #[derive(Clone, Copy, PartialEq, prost::Oneof)]
        pub enum ZeroCount {
            /// Integer histogram.
            #[prost(uint64, tag = "6")]
            ZeroCountInt(u64),
            /// Float histogram.
            #[prost(double, tag = "7")]
            ZeroCountFloat(f64),
        }

        /// Whether a counter reset happened before a histogram sample.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum ResetHint {
            /// Unknown: test for a reset.
            Unspecified = 0,
            /// The first sample after a reset.
            Yes = 1,
            /// No reset since the previous sample.
            No = 2,
            /// A gauge histogram: resets do not apply.
            Gauge = 3,
        }
    }

    /// A run of consecutive buckets.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
    pub struct BucketSpan {
        /// Gap to the previous span (or the first bucket's index).
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        /// Number of consecutive buckets.
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }
}
