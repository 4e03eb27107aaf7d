//! Decoding and translation of whole requests, in both encodings.

use std::collections::BTreeMap;
use std::io::Write;

use super::proto::{self, any_value, metric::Data, number_data_point};
use super::*;
use edgestore::Metric;

const T: u64 = 1_700_000_000_123_456_789;
const T_MS: &str = "1700000000123";
const RECEIVED: i64 = 1_700_000_100_000;

fn kv(key: &str, value: any_value::Value) -> proto::KeyValue {
    proto::KeyValue {
        key: key.into(),
        value: Some(proto::AnyValue { value: Some(value) }),
    }
}

fn s(key: &str, value: &str) -> proto::KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn request(
    resource: Vec<proto::KeyValue>,
    metrics: Vec<proto::Metric>,
) -> proto::ExportMetricsServiceRequest {
    proto::ExportMetricsServiceRequest {
        resource_metrics: vec![proto::ResourceMetrics {
            resource: Some(proto::Resource {
                attributes: resource,
                dropped_attributes_count: 0,
            }),
            scope_metrics: vec![proto::ScopeMetrics {
                scope: Some(proto::InstrumentationScope {
                    name: "meter".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn metric(name: &str, unit: &str, data: Data) -> proto::Metric {
    proto::Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

fn number(
    attributes: Vec<proto::KeyValue>,
    value: Option<number_data_point::Value>,
) -> proto::NumberDataPoint {
    proto::NumberDataPoint {
        attributes,
        start_time_unix_nano: T - 60_000_000_000,
        time_unix_nano: T,
        value,
        ..Default::default()
    }
}

fn double(v: f64) -> Option<number_data_point::Value> {
    Some(number_data_point::Value::AsDouble(v))
}

fn int(v: i64) -> Option<number_data_point::Value> {
    Some(number_data_point::Value::AsInt(v))
}

fn gauge(points: Vec<proto::NumberDataPoint>) -> Data {
    Data::Gauge(proto::Gauge {
        data_points: points,
    })
}

fn sum(
    points: Vec<proto::NumberDataPoint>,
    monotonic: bool,
    temporality: proto::AggregationTemporality,
) -> Data {
    Data::Sum(proto::Sum {
        data_points: points,
        aggregation_temporality: temporality as i32,
        is_monotonic: monotonic,
    })
}

fn decode_with(format: Format, body: &[u8], limits: &DecodeLimits) -> Result<Decoded, Rejection> {
    let mapping = RowMapping {
        cluster_name: "prod".into(),
        ..RowMapping::default()
    };
    decode(format, body, limits, &mapping, RECEIVED)
}

fn decode_proto(request: &proto::ExportMetricsServiceRequest) -> Decoded {
    decode_with(
        Format::Protobuf,
        &request.encode_to_vec(),
        &DecodeLimits::default(),
    )
    .unwrap()
}

fn decode_json(body: &str) -> Result<Decoded, Rejection> {
    decode_with(Format::Json, body.as_bytes(), &DecodeLimits::default())
}

/// Rows as `name{labels} value`, sorted, for comparisons that read like exposition text.
fn lines(rows: &[Metric]) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| {
            let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{}{{{}}} {}", r.metric_name, labels.join(","), r.value)
        })
        .collect();
    out.sort();
    out
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[test]
fn gauges_become_rows_with_resource_labels() {
    let req = request(
        vec![
            s("service.name", "checkout"),
            s("service.namespace", "shop"),
            s("service.instance.id", "pod-7"),
            s("host.name", "worker-1"),
            s("telemetry.sdk.language", "python"),
        ],
        vec![metric(
            "queue.depth",
            "",
            gauge(vec![
                number(vec![s("queue", "high")], double(2.5)),
                number(vec![s("queue", "low")], int(-3)),
            ]),
        )],
    );
    let d = decode_proto(&req);
    assert_eq!(d.rows.len(), 2);
    assert_eq!(
        (d.samples, d.rejected, d.histograms, d.exemplars),
        (2, 0, 0, 0)
    );
    assert_eq!(d.rejected_reason, "");
    let row = &d.rows[0];
    assert_eq!(row.metric_name, "queue_depth");
    assert_eq!(
        row.labels,
        labels(&[
            ("host_name", "worker-1"),
            ("instance", "pod-7"),
            ("job", "shop/checkout"),
            ("queue", "high"),
            ("telemetry_sdk_language", "python"),
        ])
    );
    assert_eq!(row.value, "2.5");
    assert_eq!(row.timestamp, T_MS);
    assert_eq!(row.created_at, RECEIVED.to_string());
    assert_eq!(
        row.node_name, "pod-7",
        "no `node` label: falls back to instance"
    );
    assert_eq!(row.cluster_name, "prod");
    assert_eq!(d.rows[1].value, "-3");
}

#[test]
fn sums_name_counters_and_refuse_deltas() {
    use proto::AggregationTemporality::{Cumulative, Delta, Unspecified};
    let req = request(
        vec![s("service.name", "api")],
        vec![
            metric(
                "http.requests",
                "{request}",
                sum(vec![number(vec![], int(42))], true, Cumulative),
            ),
            metric(
                "net.sent",
                "By",
                sum(vec![number(vec![], double(1e6))], true, Cumulative),
            ),
            metric(
                "active.jobs",
                "",
                sum(vec![number(vec![], double(3.0))], false, Cumulative),
            ),
            metric(
                "deltas",
                "",
                sum(
                    vec![number(vec![], int(1)), number(vec![], int(2))],
                    true,
                    Delta,
                ),
            ),
            metric(
                "unset",
                "",
                sum(vec![number(vec![], int(1))], false, Unspecified),
            ),
        ],
    );
    let d = decode_proto(&req);
    assert_eq!(
        lines(&d.rows),
        [
            r#"active_jobs{job="api"} 3"#,
            r#"http_requests_total{job="api"} 42"#,
            r#"net_sent_bytes_total{job="api"} 1000000"#,
        ]
    );
    assert_eq!(d.rejected, 3);
    assert!(
        d.rejected_reason
            .contains(r#"metric "deltas": delta aggregation temporality"#),
        "{}",
        d.rejected_reason
    );
}

#[test]
fn histograms_become_cumulative_buckets() {
    let point = proto::HistogramDataPoint {
        attributes: vec![s("route", "/a")],
        time_unix_nano: T,
        count: 10,
        sum: Some(12.5),
        bucket_counts: vec![1, 2, 3, 4],
        explicit_bounds: vec![0.1, 1.0, 5.0],
        ..Default::default()
    };
    let no_sum = proto::HistogramDataPoint {
        attributes: vec![s("route", "/b")],
        time_unix_nano: T,
        count: 4,
        sum: None,
        ..Default::default()
    };
    let req = request(
        vec![],
        vec![metric(
            "http.server.duration",
            "s",
            Data::Histogram(proto::Histogram {
                data_points: vec![point, no_sum],
                aggregation_temporality: proto::AggregationTemporality::Cumulative as i32,
            }),
        )],
    );
    let d = decode_proto(&req);
    assert_eq!(
        lines(&d.rows),
        [
            r#"http_server_duration_seconds_bucket{le="+Inf",route="/a"} 10"#,
            r#"http_server_duration_seconds_bucket{le="+Inf",route="/b"} 4"#,
            r#"http_server_duration_seconds_bucket{le="0.1",route="/a"} 1"#,
            r#"http_server_duration_seconds_bucket{le="1",route="/a"} 3"#,
            r#"http_server_duration_seconds_bucket{le="5",route="/a"} 6"#,
            r#"http_server_duration_seconds_count{route="/a"} 10"#,
            r#"http_server_duration_seconds_count{route="/b"} 4"#,
            r#"http_server_duration_seconds_sum{route="/a"} 12.5"#,
        ]
    );
    assert_eq!(d.samples, 8);
    assert!(d.rows.iter().all(|r| r.timestamp == T_MS));
}

#[test]
fn inconsistent_histograms_are_refused() {
    let base = proto::HistogramDataPoint {
        time_unix_nano: T,
        count: 3,
        ..Default::default()
    };
    let points = vec![
        proto::HistogramDataPoint {
            bucket_counts: vec![1, 2],
            explicit_bounds: vec![1.0, 2.0],
            ..base.clone()
        },
        proto::HistogramDataPoint {
            bucket_counts: vec![1, 1, 1],
            explicit_bounds: vec![2.0, 1.0],
            ..base.clone()
        },
        proto::HistogramDataPoint {
            bucket_counts: vec![1, 2],
            explicit_bounds: vec![1.0],
            ..base
        },
    ];
    let req = request(
        vec![],
        vec![metric(
            "h",
            "",
            Data::Histogram(proto::Histogram {
                data_points: points,
                aggregation_temporality: proto::AggregationTemporality::Cumulative as i32,
            }),
        )],
    );
    let d = decode_proto(&req);
    assert_eq!(d.rejected, 2);
    assert!(
        d.rejected_reason.contains("2 bucket counts for 2 bounds"),
        "{}",
        d.rejected_reason
    );
    assert_eq!(lines(&d.rows)[0], r#"h_bucket{le="+Inf"} 3"#);
    assert_eq!(
        d.rows.len(),
        3,
        "the valid point's +Inf, 1 and count rows (no sum)"
    );
}

#[test]
fn summaries_become_quantiles() {
    use proto::summary_data_point::ValueAtQuantile;
    let req = request(
        vec![],
        vec![metric(
            "rpc.latency",
            "ms",
            Data::Summary(proto::Summary {
                data_points: vec![proto::SummaryDataPoint {
                    time_unix_nano: T,
                    count: 100,
                    sum: 250.0,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.5,
                            value: 2.0,
                        },
                        ValueAtQuantile {
                            quantile: 0.99,
                            value: 9.5,
                        },
                    ],
                    ..Default::default()
                }],
            }),
        )],
    );
    assert_eq!(
        lines(&decode_proto(&req).rows),
        [
            r#"rpc_latency_milliseconds_count{} 100"#,
            r#"rpc_latency_milliseconds_sum{} 250"#,
            r#"rpc_latency_milliseconds{quantile="0.5"} 2"#,
            r#"rpc_latency_milliseconds{quantile="0.99"} 9.5"#,
        ]
    );
}

#[test]
fn exponential_histograms_and_exemplars_are_counted_not_stored() {
    let exemplar = proto::Exemplar {
        time_unix_nano: T,
        value: Some(proto::exemplar::Value::AsDouble(1.0)),
        span_id: vec![1; 8],
        trace_id: vec![2; 16],
        ..Default::default()
    };
    let mut with_exemplar = number(vec![], double(1.0));
    with_exemplar.exemplars = vec![exemplar.clone(), exemplar.clone()];
    let req = request(
        vec![],
        vec![
            metric("g", "", gauge(vec![with_exemplar])),
            metric(
                "e",
                "",
                Data::ExponentialHistogram(proto::ExponentialHistogram {
                    data_points: vec![
                        proto::ExponentialHistogramDataPoint {
                            time_unix_nano: T,
                            count: 2,
                            exemplars: vec![exemplar],
                            ..Default::default()
                        },
                        proto::ExponentialHistogramDataPoint::default(),
                    ],
                    aggregation_temporality: proto::AggregationTemporality::Delta as i32,
                }),
            ),
        ],
    );
    let d = decode_proto(&req);
    assert_eq!(
        (d.rows.len(), d.histograms, d.exemplars, d.rejected),
        (1, 2, 3, 0)
    );
}

#[test]
fn names_are_sanitized() {
    let req = request(
        vec![],
        vec![
            metric("my-app.cache hits", "", gauge(vec![number(vec![], int(1))])),
            metric("9lives", "1", gauge(vec![number(vec![], int(1))])),
            metric(
                "温度",
                "",
                gauge(vec![number(vec![], int(1)), number(vec![], int(2))]),
            ),
        ],
    );
    let d = decode_proto(&req);
    assert_eq!(
        lines(&d.rows),
        ["_9lives_ratio{} 1", "my_app_cache_hits{} 1"]
    );
    assert_eq!(d.rejected, 2);
    assert!(
        d.rejected_reason.contains("no character of its name"),
        "{}",
        d.rejected_reason
    );
}

#[test]
fn attributes_become_labels() {
    use any_value::Value;
    let array = Value::ArrayValue(proto::ArrayValue {
        values: vec![
            proto::AnyValue {
                value: Some(Value::StringValue("a".into())),
            },
            proto::AnyValue {
                value: Some(Value::IntValue(2)),
            },
            proto::AnyValue {
                value: Some(Value::DoubleValue(f64::NAN)),
            },
        ],
    });
    let map = Value::KvlistValue(proto::KeyValueList {
        values: vec![kv("k", Value::BoolValue(true))],
    });
    let req = request(
        vec![
            s("service.name", "svc"),
            s("region", "eu"),
            s("shared", "from-resource"),
        ],
        vec![metric(
            "m",
            "",
            gauge(vec![number(
                vec![
                    kv("int", Value::IntValue(-7)),
                    kv("dbl", Value::DoubleValue(0.25)),
                    kv("flag", Value::BoolValue(false)),
                    kv("raw", Value::BytesValue(b"hi".to_vec())),
                    kv("list", array),
                    kv("map", map),
                    s("empty", ""),
                    proto::KeyValue {
                        key: "unset".into(),
                        value: None,
                    },
                    s("", "no key"),
                    s("shared", "from-point"),
                    s("a.b", "dot"),
                    s("a-b", "dash"),
                    s("job", "overridden"),
                    s("__name__", "ignored"),
                ],
                double(1.0),
            )]),
        )],
    );
    let d = decode_proto(&req);
    assert_eq!(d.rows.len(), 1);
    assert_eq!(d.rows[0].metric_name, "m");
    assert_eq!(
        d.rows[0].labels,
        labels(&[
            ("a_b", "dash;dot"),
            ("dbl", "0.25"),
            ("flag", "false"),
            ("int", "-7"),
            ("job", "svc"),
            ("list", r#"["a",2,"NaN"]"#),
            ("map", r#"{"k":true}"#),
            ("raw", "aGk="),
            ("region", "eu"),
            ("shared", "from-point"),
        ])
    );
}

#[test]
fn service_namespace_without_name_is_a_label() {
    let req = request(
        vec![s("service.namespace", "shop")],
        vec![metric("m", "", gauge(vec![number(vec![], int(1))]))],
    );
    assert_eq!(
        lines(&decode_proto(&req).rows),
        [r#"m{service_namespace="shop"} 1"#]
    );
}

#[test]
fn bad_points_are_refused_alone() {
    let mut stale = number(vec![], double(1.0));
    stale.flags = proto::FLAG_NO_RECORDED_VALUE;
    let mut untimed = number(vec![], double(1.0));
    untimed.time_unix_nano = 0;
    let many: Vec<proto::KeyValue> = (0..5).map(|i| s(&format!("l{i}"), "v")).collect();
    let req = request(
        vec![s("service.name", "svc")],
        vec![metric(
            "m",
            "",
            gauge(vec![
                number(vec![], None),
                stale,
                untimed,
                number(many.clone(), double(4.0)),
                number(many[..3].to_vec(), double(5.0)),
            ]),
        )],
    );
    // 3 attributes + job + __name__ = 5 labels: at the limit; 5 attributes are over it.
    let limits = DecodeLimits {
        max_labels_per_series: 5,
        ..DecodeLimits::default()
    };
    let d = decode_with(Format::Protobuf, &req.encode_to_vec(), &limits).unwrap();
    assert_eq!(d.rows.len(), 1);
    assert_eq!(d.rows[0].value, "5");
    assert_eq!(d.rejected, 4);
    assert_eq!(
        d.rejected_reason,
        r#"metric "m": data point without a value"#
    );

    let req = request(
        vec![],
        vec![metric("m", "", gauge(vec![number(many, double(1.0))]))],
    );
    let d = decode_with(Format::Protobuf, &req.encode_to_vec(), &limits).unwrap();
    assert_eq!(d.rejected, 1);
    assert_eq!(
        d.rejected_reason,
        r#"metric "m": 6 labels, the limit is 5 (ingest.maxLabelsPerSeries)"#
    );
}

#[test]
fn histogram_label_limit_counts_le() {
    let point = proto::HistogramDataPoint {
        attributes: vec![s("a", "1"), s("b", "2")],
        time_unix_nano: T,
        count: 1,
        bucket_counts: vec![1, 0],
        explicit_bounds: vec![1.0],
        ..Default::default()
    };
    let req = request(
        vec![],
        vec![metric(
            "h",
            "",
            Data::Histogram(proto::Histogram {
                data_points: vec![point],
                aggregation_temporality: proto::AggregationTemporality::Cumulative as i32,
            }),
        )],
    );
    let body = req.encode_to_vec();
    let at = |max| {
        let limits = DecodeLimits {
            max_labels_per_series: max,
            ..DecodeLimits::default()
        };
        decode_with(Format::Protobuf, &body, &limits)
            .unwrap()
            .rejected
    };
    assert_eq!(at(4), 0, "a, b, le, __name__");
    assert_eq!(at(3), 1);
}

/// The request of `gauges_become_rows_with_resource_labels`-like content, written as an OTLP/JSON
/// exporter writes it.
const JSON_REQUEST: &str = r#"{
  "resourceMetrics": [{
    "resource": {"attributes": [
      {"key": "service.name", "value": {"stringValue": "api"}},
      {"key": "service.instance.id", "value": {"stringValue": "i-1"}}
    ]},
    "scopeMetrics": [{
      "scope": {"name": "meter", "version": "1.0"},
      "metrics": [
        {"name": "temperature", "unit": "Cel", "gauge": {"dataPoints": [
          {"attributes": [{"key": "room", "value": {"stringValue": "lab"}}],
           "timeUnixNano": "1700000000123456789", "asDouble": 21.5}
        ]}},
        {"name": "requests", "unit": "1", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
          "dataPoints": [{"startTimeUnixNano": "1", "timeUnixNano": 1700000000123456789, "asInt": "7",
            "exemplars": [{"timeUnixNano": "1", "asInt": "1", "spanId": "0102030405060708",
                           "traceId": "0102030405060708090a0b0c0d0e0f10"}]}]}},
        {"name": "latency", "unit": "ms", "histogram": {"aggregationTemporality": 2, "dataPoints": [
          {"timeUnixNano": "1700000000123456789", "count": "3", "sum": 7.5,
           "bucketCounts": ["1", 2], "explicitBounds": [5]}
        ]}},
        {"name": "sizes", "summary": {"dataPoints": [
          {"timeUnixNano": "1700000000123456789", "count": 2, "sum": "Infinity",
           "quantileValues": [{"quantile": 0.5, "value": "NaN"}]}
        ]}},
        {"name": "gone", "gauge": {"dataPoints": [
          {"timeUnixNano": "1700000000123456789", "flags": 1}
        ]}}
      ]
    }]
  }]
}"#;

#[test]
fn json_requests_decode() {
    let d = decode_json(JSON_REQUEST).unwrap();
    assert_eq!(
        lines(&d.rows),
        [
            r#"latency_milliseconds_bucket{instance="i-1",job="api",le="+Inf"} 3"#,
            r#"latency_milliseconds_bucket{instance="i-1",job="api",le="5"} 1"#,
            r#"latency_milliseconds_count{instance="i-1",job="api"} 3"#,
            r#"latency_milliseconds_sum{instance="i-1",job="api"} 7.5"#,
            r#"requests_total{instance="i-1",job="api"} 7"#,
            r#"sizes_count{instance="i-1",job="api"} 2"#,
            r#"sizes_sum{instance="i-1",job="api"} +Inf"#,
            r#"sizes{instance="i-1",job="api",quantile="0.5"} NaN"#,
            r#"temperature_celsius{instance="i-1",job="api",room="lab"} 21.5"#,
        ]
    );
    assert!(d.rows.iter().all(|r| r.timestamp == T_MS));
    assert_eq!((d.exemplars, d.rejected), (1, 1));
    assert!(
        d.rejected_reason.contains("NO_RECORDED_VALUE"),
        "{}",
        d.rejected_reason
    );
}

#[test]
fn json_and_protobuf_make_the_same_rows() {
    let json = decode_json(JSON_REQUEST).unwrap();
    let request = json::parse(JSON_REQUEST.as_bytes()).unwrap();
    let protobuf = decode_proto(&request);
    assert_eq!(json, protobuf);
}

#[test]
fn malformed_bodies_are_400() {
    let malformed = |format, body: &[u8]| {
        matches!(
            decode_with(format, body, &DecodeLimits::default()),
            Err(Rejection::Malformed(_))
        )
    };
    // Field 1 (resource_metrics) claims 100 bytes and has 2.
    assert!(malformed(Format::Protobuf, &[0x0a, 100, 1, 2]));
    // Wire type 7 does not exist.
    assert!(malformed(Format::Protobuf, &[0x0f]));
    // A string that is not UTF-8 (metric name).
    let mut req = request(vec![], vec![metric("ab", "", gauge(vec![]))]).encode_to_vec();
    let at = req.windows(2).position(|w| w == b"ab").unwrap();
    req[at] = 0xff;
    assert!(malformed(Format::Protobuf, &req));
    assert!(malformed(Format::Json, b""));
    assert!(malformed(Format::Json, b"{"));
    // Messages are objects, never arrays of their fields in order.
    assert!(malformed(Format::Json, b"[]"));
    assert!(malformed(Format::Json, br#"{"resourceMetrics": [[]]}"#));
    assert!(malformed(Format::Json, br#"{"resourceMetrics": {}}"#));
    assert!(malformed(Format::Json, br#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"gauge": {"dataPoints": [{"asInt": "x"}]}}]}]}]}"#));
    assert!(malformed(
        Format::Json,
        b"{\"resourceMetrics\": [{\"scopeMetrics\": [{\"metrics\": [{\"name\": \"\xff\"}]}]}]}"
    ));
    let err = decode_json(r#"{"resourceMetrics": 5}"#).unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(
        err.to_string()
            .starts_with("malformed request: OTLP/JSON: "),
        "{err}"
    );
    // An empty protobuf body is an empty request.
    assert_eq!(
        decode_with(Format::Protobuf, b"", &DecodeLimits::default()),
        Ok(Decoded::default())
    );
    assert_eq!(decode_json("{}"), Ok(Decoded::default()));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzip_bodies_are_inflated_within_the_limit() {
    let req = request(
        vec![],
        vec![metric("up", "", gauge(vec![number(vec![], int(1))]))],
    );
    let plain = req.encode_to_vec();
    let d = decode_with(Format::Protobuf, &gzip(&plain), &DecodeLimits::default()).unwrap();
    assert_eq!(lines(&d.rows), ["up{} 1"]);
    let d = decode_with(
        Format::Json,
        &gzip(JSON_REQUEST.as_bytes()),
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(d, decode_json(JSON_REQUEST).unwrap());

    let limits = |max| DecodeLimits {
        max_request_bytes: max,
        ..DecodeLimits::default()
    };
    // Inflating to exactly the limit is fine; one byte more is refused.
    let many = request(
        vec![],
        vec![metric("up", "", gauge(vec![number(vec![], int(1)); 200]))],
    );
    let big = many.encode_to_vec();
    let big_gz = gzip(&big);
    assert!(big_gz.len() < big.len() / 10);
    assert_eq!(
        decode_with(Format::Protobuf, &big_gz, &limits(big.len())).map(|d| d.rows.len()),
        Ok(200)
    );
    assert_eq!(
        decode_with(Format::Protobuf, &big_gz, &limits(big.len() - 1)),
        Err(Rejection::TooLarge {
            size: big.len() as u64,
            limit: big.len() as u64 - 1
        })
    );
    let bomb = gzip(&vec![b' '; 1 << 20]);
    assert_eq!(
        decode_with(Format::Json, &bomb, &limits(64 * 1024)),
        Err(Rejection::TooLarge {
            size: 1 << 20,
            limit: 64 * 1024
        }),
        "the trailer's declared size is refused before inflating"
    );
    // A trailer that lies (declares 10 bytes) is caught while inflating.
    let mut liar = bomb.clone();
    let n = liar.len();
    liar[n - 4..].copy_from_slice(&10u32.to_le_bytes());
    assert_eq!(
        decode_with(Format::Json, &liar, &limits(64 * 1024)),
        Err(Rejection::TooLarge {
            size: 64 * 1024 + 1,
            limit: 64 * 1024
        })
    );
    // Corrupt gzip is malformed.
    let mut corrupt = gzip(&plain);
    let n = corrupt.len();
    corrupt[n / 2] ^= 0xff;
    corrupt[n - 8] ^= 0xff;
    assert!(matches!(
        decode_with(Format::Protobuf, &corrupt, &DecodeLimits::default()),
        Err(Rejection::Malformed(m)) if m.starts_with("gzip")
    ));
    // Two members (concatenated gzip streams) are one body.
    let mut two = gzip(&plain[..3]);
    two.extend(gzip(&plain[3..]));
    assert_eq!(
        decode_with(Format::Protobuf, &two, &DecodeLimits::default()).map(|d| d.rows.len()),
        Ok(1)
    );
}

#[test]
fn bodies_over_the_limit_are_413() {
    let limits = DecodeLimits {
        max_request_bytes: 10,
        ..DecodeLimits::default()
    };
    let err = decode_with(Format::Json, &[b' '; 11], &limits).unwrap_err();
    assert_eq!(
        err,
        Rejection::TooLarge {
            size: 11,
            limit: 10
        }
    );
    assert_eq!(err.status(), 413);
}

#[test]
fn negotiation() {
    use Format::{Json, Protobuf};
    let ok: &[(Option<&str>, Option<&str>, Format)] = &[
        (Some("application/x-protobuf"), None, Protobuf),
        (Some("application/x-protobuf"), Some("gzip"), Protobuf),
        (
            Some("Application/X-Protobuf; charset=binary"),
            Some(" GZIP "),
            Protobuf,
        ),
        (Some("application/protobuf"), Some("identity"), Protobuf),
        (Some("application/json"), None, Json),
        (Some("application/json; charset=utf-8"), Some("gzip"), Json),
        (Some("application/json"), Some("x-gzip"), Json),
        (Some("application/json"), Some(""), Json),
    ];
    for (ct, ce, want) in ok {
        assert_eq!(negotiate(*ct, *ce), Ok(*want), "{ct:?} {ce:?}");
    }
    let refused: &[(Option<&str>, Option<&str>)] = &[
        (None, None),
        (Some("text/plain"), None),
        (
            Some("application/x-protobuf;proto=prometheus.WriteRequest"),
            Some("snappy"),
        ),
        (Some("application/grpc"), None),
        (Some("application/x-protobuf"), Some("deflate")),
        (Some("application/json"), Some("br")),
        (Some("application/json"), Some("gzip, br")),
    ];
    for (ct, ce) in refused {
        let err = negotiate(*ct, *ce).unwrap_err();
        assert_eq!(err.status(), 415, "{ct:?} {ce:?}");
    }
    assert_eq!(Protobuf.content_type(), "application/x-protobuf");
    assert_eq!(Json.content_type(), "application/json");
}

#[test]
fn responses_carry_partial_success() {
    let full = response(Format::Protobuf, 0, "");
    assert!(full.is_empty(), "an empty ExportMetricsServiceResponse");
    let partial = response(
        Format::Protobuf,
        3,
        "metric \"m\": data point without a value",
    );
    let decoded = proto::ExportMetricsServiceResponse::decode(partial.as_slice()).unwrap();
    assert_eq!(
        decoded.partial_success,
        Some(proto::ExportMetricsPartialSuccess {
            rejected_data_points: 3,
            error_message: "metric \"m\": data point without a value".into(),
        })
    );
    assert_eq!(response(Format::Json, 0, ""), b"{}");
    let json: serde_json::Value =
        serde_json::from_slice(&response(Format::Json, 2, "why")).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"partialSuccess": {"rejectedDataPoints": "2", "errorMessage": "why"}})
    );
}

/// A request as the Python SDK's OTLP/HTTP exporter (1.45.2) sent it, plain and gzip
/// (`testdata/`, captured from `OTLPMetricExporter` with `compression=Gzip`; headers
/// `content-type: application/x-protobuf`, `Content-Encoding: gzip`): a counter with an
/// annotation unit, an up-down counter, a histogram in ms with the SDK's default bounds, a
/// float counter in bytes, an observable gauge of unit `1`.
#[test]
fn python_sdk_requests_decode() {
    let plain = include_bytes!("testdata/python-sdk-1.45.2.pb");
    let gzipped = include_bytes!("testdata/python-sdk-1.45.2.pb.gz");
    let format = negotiate(Some("application/x-protobuf"), Some("gzip")).unwrap();
    let d = decode_with(format, gzipped, &DecodeLimits::default()).unwrap();
    assert_eq!((d.rows.len(), d.rejected, d.histograms), (23, 0, 0));
    // Two exports of the same instruments: the same series, at other times.
    let other = decode_with(Format::Protobuf, plain, &DecodeLimits::default()).unwrap();
    assert_eq!(lines(&d.rows), lines(&other.rows));

    let resource = labels(&[
        ("deployment_environment", "test"),
        ("instance", "pod-1"),
        ("job", "checkout"),
        ("telemetry_sdk_language", "python"),
        ("telemetry_sdk_name", "opentelemetry"),
        ("telemetry_sdk_version", "1.45.2"),
    ]);
    let mut rows = d.rows.clone();
    for row in &mut rows {
        for (k, v) in &resource {
            assert_eq!(row.labels.remove(k).as_ref(), Some(v), "{row:?}");
        }
        assert_eq!(row.node_name, "pod-1");
        assert_eq!(row.timestamp, d.rows[0].timestamp);
    }
    let got = lines(&rows);
    let want = [
        r#"bytes_read_total{} 1.5"#,
        r#"cpu_utilization_ratio{cpu="0"} 0.25"#,
        r#"http_server_duration_milliseconds_bucket{http_route="/cart",le="+Inf"} 4"#,
        r#"http_server_duration_milliseconds_bucket{http_route="/cart",le="0"} 0"#,
        r#"http_server_duration_milliseconds_bucket{http_route="/cart",le="10"} 2"#,
    ];
    assert_eq!(got[..5], want);
    let want_tail = [
        r#"http_server_duration_milliseconds_bucket{http_route="/cart",le="7500"} 4"#,
        r#"http_server_duration_milliseconds_count{http_route="/cart"} 4"#,
        r#"http_server_duration_milliseconds_sum{http_route="/cart"} 4130"#,
        r#"orders_placed_total{payment_method="card"} 3"#,
        r#"orders_placed_total{payment_method="cash"} 2"#,
        r#"queue_length{} 3"#,
    ];
    assert_eq!(got[got.len() - 6..], want_tail);
}
