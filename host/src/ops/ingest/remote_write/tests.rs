use std::collections::{BTreeMap, HashMap};

use edgestore::Metric;
use prost::Message;

use super::proto::{v1, v2};
use super::*;
use crate::ops::ingest::mapping::{series_id, STALE_NAN_BITS};
use crate::ops::ingest::DEFAULT_MAX_REQUEST_BYTES;

const RECEIVED: i64 = 1_700_000_100_000;
const T1: i64 = 1_700_000_000_000;
const T2: i64 = 1_700_000_015_000;

type Labels<'a> = &'a [(&'a str, &'a str)];

/// Content-Type, Content-Encoding, X-Prometheus-Remote-Write-Version.
type Headers<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn mapping() -> RowMapping {
    RowMapping {
        node_label: "node".into(),
        cluster_name: "prod".into(),
        cloud_account_id: "acct".into(),
    }
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

fn body(message: &impl Message) -> Vec<u8> {
    snappy(&message.encode_to_vec())
}

fn decode_with(version: Version, body: &[u8], limits: DecodeLimits) -> Result<Decoded, Rejection> {
    decode(version, body, &limits, &mapping(), RECEIVED)
}

fn decode_ok(version: Version, body: &[u8]) -> Decoded {
    decode_with(version, body, DecodeLimits::default()).unwrap()
}

/// The message of a 400, failing the test on anything else.
fn malformed(version: Version, body: &[u8]) -> String {
    malformed_with(version, body, DecodeLimits::default())
}

fn malformed_with(version: Version, body: &[u8], limits: DecodeLimits) -> String {
    match decode_with(version, body, limits) {
        Err(rejection @ Rejection::Malformed(_)) => {
            assert_eq!(rejection.status(), 400);
            rejection.to_string()
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

fn v1_series(labels: Labels, samples: &[(f64, i64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: labels
            .iter()
            .map(|(name, value)| v1::Label {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| v1::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn v1_request(series: Vec<v1::TimeSeries>) -> Vec<u8> {
    body(&v1::WriteRequest {
        timeseries: series,
        metadata: vec![],
    })
}

/// Interns strings the way a 2.0 sender does: `""` first, each string once.
struct Symbols(Vec<String>, HashMap<String, u32>);

impl Symbols {
    fn new() -> Self {
        Symbols(vec![String::new()], HashMap::from([(String::new(), 0)]))
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&index) = self.1.get(s) {
            return index;
        }
        let index = u32::try_from(self.0.len()).unwrap();
        self.0.push(s.to_owned());
        self.1.insert(s.to_owned(), index);
        index
    }

    fn refs(&mut self, labels: Labels) -> Vec<u32> {
        labels
            .iter()
            .flat_map(|(name, value)| [self.intern(name), self.intern(value)])
            .collect()
    }
}

fn v2_series(symbols: &mut Symbols, labels: Labels, samples: &[(f64, i64)]) -> v2::TimeSeries {
    v2::TimeSeries {
        labels_refs: symbols.refs(labels),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| v2::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn v2_request(symbols: Symbols, series: Vec<v2::TimeSeries>) -> Vec<u8> {
    body(&v2::Request {
        symbols: symbols.0,
        timeseries: series,
    })
}

/// A request of one series in either version.
fn one_series(version: Version, labels: Labels, samples: &[(f64, i64)]) -> Vec<u8> {
    match version {
        Version::V1 => v1_request(vec![v1_series(labels, samples)]),
        Version::V2 => {
            let mut symbols = Symbols::new();
            let series = v2_series(&mut symbols, labels, samples);
            v2_request(symbols, vec![series])
        }
    }
}

/// The row the agent expects, spelled out field by field (independent of `RowMapping::row`).
fn expected(labels: Labels, node: &str, value: &str, timestamp: i64) -> Metric {
    let all: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut rest = all.clone();
    let name = rest.remove("__name__").unwrap();
    Metric {
        cloud_account_id: "acct".into(),
        cluster_name: "prod".into(),
        created_at: RECEIVED.to_string(),
        id: series_id(&all, timestamp).to_string(),
        labels: rest,
        metric_name: name,
        node_name: node.into(),
        timestamp: timestamp.to_string(),
        value: value.into(),
    }
}

const UP: Labels = &[("__name__", "up"), ("instance", "h:9100"), ("job", "node")];
const REQUESTS: Labels = &[
    ("__name__", "http_requests_total"),
    ("code", "200"),
    ("instance", "h:8080"),
    ("node", "worker-1"),
];

fn round_trip_expected() -> Vec<Metric> {
    vec![
        expected(UP, "h:9100", "1", T1),
        expected(UP, "h:9100", "0.25", T2),
        expected(REQUESTS, "worker-1", "1234567", T1),
        expected(REQUESTS, "worker-1", "NaN", T2),
        expected(REQUESTS, "worker-1", "+Inf", T2 + 1),
    ]
}

const UP_SAMPLES: &[(f64, i64)] = &[(1.0, T1), (0.25, T2)];
const REQUESTS_SAMPLES: &[(f64, i64)] = &[(1234567.0, T1), (f64::NAN, T2), (f64::INFINITY, T2 + 1)];

#[test]
fn v1_round_trip_gives_the_agents_rows() {
    let body = v1_request(vec![
        v1_series(UP, UP_SAMPLES),
        v1_series(REQUESTS, REQUESTS_SAMPLES),
    ]);
    let decoded = decode_ok(Version::V1, &body);
    assert_eq!(decoded.rows, round_trip_expected());
    assert_eq!(
        (decoded.samples, decoded.histograms, decoded.exemplars),
        (5, 0, 0)
    );
}

#[test]
fn v2_round_trip_gives_the_same_rows_and_ids_as_v1() {
    let mut symbols = Symbols::new();
    let series = vec![
        v2_series(&mut symbols, UP, UP_SAMPLES),
        v2_series(&mut symbols, REQUESTS, REQUESTS_SAMPLES),
    ];
    let v2 = decode_ok(Version::V2, &v2_request(symbols, series));
    assert_eq!(v2.rows, round_trip_expected());
    assert_eq!((v2.samples, v2.histograms, v2.exemplars), (5, 0, 0));

    let v1 = decode_ok(
        Version::V1,
        &v1_request(vec![
            v1_series(UP, UP_SAMPLES),
            v1_series(REQUESTS, REQUESTS_SAMPLES),
        ]),
    );
    assert_eq!(v1, v2, "a series reads the same whatever version sent it");
}

#[test]
fn label_order_and_symbol_order_do_not_change_rows() {
    // Unsorted labels (the spec says sorted; we do not depend on it) and a symbol table in
    // another order than first use.
    let shuffled: Labels = &[("job", "node"), ("__name__", "up"), ("instance", "h:9100")];
    let mut symbols = Symbols::new();
    for s in ["node", "zzz", "h:9100", "job", "instance", "up", "__name__"] {
        symbols.intern(s);
    }
    let series = v2_series(&mut symbols, shuffled, &[(1.0, T1)]);
    let v2 = decode_ok(Version::V2, &v2_request(symbols, vec![series]));
    let v1 = decode_ok(
        Version::V1,
        &one_series(Version::V1, shuffled, &[(1.0, T1)]),
    );
    assert_eq!(v2.rows, vec![expected(UP, "h:9100", "1", T1)]);
    assert_eq!(v1.rows, v2.rows);
}

#[test]
fn empty_label_values_are_absent_labels() {
    for version in [Version::V1, Version::V2] {
        let with_empty: Labels = &[("__name__", "up"), ("instance", "h"), ("job", "")];
        let decoded = decode_ok(version, &one_series(version, with_empty, &[(1.0, T1)]));
        let without: Labels = &[("__name__", "up"), ("instance", "h")];
        assert_eq!(
            decoded.rows,
            vec![expected(without, "h", "1", T1)],
            "{version:?}"
        );
    }
}

#[test]
fn negotiation_table() {
    use Version::{V1, V2};
    const PROTOBUF: &str = "application/x-protobuf";
    const V1_TYPE: &str = "application/x-protobuf;proto=prometheus.WriteRequest";
    const V2_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
    const SPELLED: &str =
        " Application/X-Protobuf ; charset=utf-8 ;PROTO=\"io.prometheus.write.v2.Request\"";
    let two_protos = format!("{V2_TYPE};proto=prometheus.WriteRequest");
    let accepted: &[(Headers, Version)] = &[
        // What 1.0 senders send.
        ((Some(PROTOBUF), Some("snappy"), Some("0.1.0")), V1),
        ((Some(V1_TYPE), Some("snappy"), Some("0.1.0")), V1),
        // A 2.x sender may still send the deprecated message.
        ((Some(V1_TYPE), Some("snappy"), Some("2.0.0")), V1),
        ((Some(V2_TYPE), Some("snappy"), Some("2.0.0")), V2),
        // RFC 9110 spelling freedom: case, whitespace, quotes, other parameters.
        ((Some(SPELLED), Some(" SNAPPY "), Some("2.0")), V2),
        ((Some("application/x-protobuf;"), Some("snappy"), None), V1),
        ((Some(PROTOBUF), Some("snappy"), Some("1.0")), V1),
        // Missing headers: what old senders omit, as Prometheus assumes.
        ((None, None, None), V1),
        ((Some(""), Some(""), Some("")), V1),
        ((Some(V2_TYPE), None, None), V2),
    ];
    for &((content_type, encoding, version), want) in accepted {
        assert_eq!(
            negotiate(content_type, encoding, version),
            Ok(want),
            "{content_type:?} {encoding:?} {version:?}"
        );
    }

    let refused: &[Headers] = &[
        (Some("application/json"), Some("snappy"), None),
        (Some("text/plain"), None, None),
        (Some("application/x-protobuf-extra"), None, None),
        (
            Some("application/x-protobuf;proto=io.prometheus.write.v3.Request"),
            None,
            None,
        ),
        (
            Some("application/x-protobuf;proto=prometheus.ReadRequest"),
            None,
            None,
        ),
        (
            Some("application/x-protobuf;proto=Prometheus.WriteRequest"),
            None,
            None,
        ),
        (Some("application/x-protobuf;proto="), None, None),
        (Some("application/x-protobuf;proto"), None, None),
        (Some(&two_protos), None, None),
        (Some(PROTOBUF), Some("gzip"), None),
        (Some(PROTOBUF), Some("zstd"), None),
        (Some(PROTOBUF), Some("identity"), None),
        (Some(PROTOBUF), Some("snappy, gzip"), None),
        (Some(PROTOBUF), Some("x-snappy-framed"), None),
        (Some(V2_TYPE), Some("snappy"), Some("3.0.0")),
        (Some(V2_TYPE), Some("snappy"), Some("v2")),
        (Some(PROTOBUF), Some("snappy"), Some("latest")),
    ];
    for &(content_type, encoding, version) in refused {
        let got = negotiate(content_type, encoding, version);
        assert!(
            matches!(&got, Err(r @ Rejection::Unsupported(_)) if r.status() == 415),
            "{content_type:?} {encoding:?} {version:?}: {got:?}"
        );
    }
}

#[test]
fn an_empty_request_is_valid_and_an_empty_body_is_not() {
    let empty = snappy(&[]);
    assert_eq!(empty, [0], "an empty message is one snappy byte");
    for version in [Version::V1, Version::V2] {
        assert_eq!(
            decode_ok(version, &empty),
            Decoded::default(),
            "{version:?}"
        );
        assert_eq!(
            decode_ok(version, &body(&v1::WriteRequest::default())),
            Decoded::default()
        );
        assert!(
            malformed(version, &[]).contains("empty body"),
            "{version:?}"
        );
    }
}

/// `body` with its snappy header replaced by one declaring `declared` bytes.
fn with_declared_len(body: &[u8], declared: u64) -> Vec<u8> {
    let header_len = body.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    let mut out = varint(declared);
    out.extend_from_slice(&body[header_len..]);
    out
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

#[test]
fn bad_snappy_is_malformed() {
    for version in [Version::V1, Version::V2] {
        let good = one_series(version, UP, UP_SAMPLES);
        let declared = snap::raw::decompress_len(&good).unwrap() as u64;
        assert!(decode_with(version, &good, DecodeLimits::default()).is_ok());

        let truncated = &good[..good.len() - 3];
        assert!(
            malformed(version, truncated).contains("snappy"),
            "{version:?}"
        );
        for wrong in [declared + 5, declared - 1, 0] {
            let message = malformed(version, &with_declared_len(&good, wrong));
            assert!(message.contains("snappy"), "{version:?} {wrong}: {message}");
        }
        // A header that never ends, and one longer than snappy's five bytes.
        assert!(malformed(version, &[0x80, 0x80]).contains("snappy"));
        assert!(malformed(version, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0]).contains("snappy"));
        // The framed format, which the spec forbids.
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        let raw = snap::raw::Decoder::new().decompress_vec(&good).unwrap();
        std::io::Write::write_all(&mut framed, &raw).unwrap();
        let framed = framed.into_inner().unwrap();
        assert!(
            malformed(version, &framed).contains("snappy"),
            "{version:?}"
        );
    }
}

#[test]
fn garbage_protobuf_is_malformed() {
    for version in [Version::V1, Version::V2] {
        // Wire type 7 does not exist; a length-delimited field longer than the message.
        for garbage in [
            &[0x0f_u8, 0x01][..],
            &[0x0a, 0x10, 0x01],
            &[0x2a, 0x05, 0x0a],
        ] {
            let message = malformed(version, &snappy(garbage));
            assert!(message.contains("malformed request"), "{message}");
        }
    }
}

#[test]
fn a_v2_body_read_as_v1_is_empty_as_the_spec_promises() {
    // Fields 1 to 3 of the 2.0 message are reserved: a 1.0 reader finds nothing (the server
    // then answers without written counts, and 2.0 senders know what that means).
    let v2_body = one_series(Version::V2, UP, UP_SAMPLES);
    assert_eq!(decode_ok(Version::V1, &v2_body), Decoded::default());
}

#[test]
fn compressed_body_above_the_limit_is_413() {
    let limits = DecodeLimits {
        max_request_bytes: 64,
        ..DecodeLimits::default()
    };
    let big: Vec<u8> = (0..200u8).collect();
    let compressed = snappy(&big);
    assert!(compressed.len() > 64);
    let got = decode_with(Version::V1, &compressed, limits);
    assert_eq!(
        got,
        Err(Rejection::TooLarge {
            size: compressed.len() as u64,
            limit: 64
        })
    );
    assert_eq!(got.unwrap_err().status(), 413);
}

#[test]
fn decompressed_body_above_the_limit_is_413() {
    let limits = DecodeLimits {
        max_request_bytes: 500,
        ..DecodeLimits::default()
    };
    let compressed = snappy(&[0; 1000]);
    assert!(compressed.len() < 500);
    assert_eq!(
        decode_with(Version::V2, &compressed, limits),
        Err(Rejection::TooLarge {
            size: 1000,
            limit: 500
        })
    );
}

#[test]
fn huge_declared_lengths_are_refused_before_allocating() {
    // A tiny body declaring 100 MiB: refused from its header alone.
    let mut crafted = varint(100 << 20);
    crafted.extend_from_slice(&[0; 8]);
    assert_eq!(
        decode_with(Version::V1, &crafted, DecodeLimits::default()),
        Err(Rejection::TooLarge {
            size: 100 << 20,
            limit: DEFAULT_MAX_REQUEST_BYTES as u64
        })
    );
    // Beyond what snappy can declare at all (2^34 in five header bytes).
    let mut beyond = varint(1 << 34);
    beyond.push(0);
    assert_eq!(
        decode_with(Version::V2, &beyond, DecodeLimits::default()),
        Err(Rejection::TooLarge {
            size: 1 << 34,
            limit: DEFAULT_MAX_REQUEST_BYTES as u64
        })
    );
    // Under an unlimited limit, a length the body cannot expand to is malformed, still
    // without allocating it (4 GiB here).
    let unlimited = DecodeLimits {
        max_request_bytes: usize::MAX,
        ..DecodeLimits::default()
    };
    let mut lying = varint(u64::from(u32::MAX));
    lying.extend_from_slice(&[0; 8]);
    let message = malformed_with(Version::V1, &lying, unlimited);
    assert!(message.contains("more than"), "{message}");
}

#[test]
fn series_label_rules() {
    let cases: &[(Labels, &str)] = &[
        (&[("instance", "h"), ("job", "x")], "no __name__"),
        (&[("__name__", ""), ("job", "x")], "no __name__"),
        (&[], "no __name__"),
        (
            &[("__name__", "up"), ("job", "x"), ("job", "y")],
            "duplicate label \"job\"",
        ),
        (
            &[("__name__", "up"), ("job", ""), ("job", "y")],
            "duplicate label \"job\"",
        ),
        (
            &[("__name__", "up"), ("__name__", "down")],
            "duplicate label \"__name__\"",
        ),
        (&[("__name__", "up"), ("", "x")], "empty label name"),
    ];
    for version in [Version::V1, Version::V2] {
        for (labels, want) in cases {
            let message = malformed(version, &one_series(version, labels, &[(1.0, T1)]));
            assert!(message.contains(want), "{version:?} {labels:?}: {message}");
            assert!(message.contains("series 0"), "{message}");
        }
    }
}

#[test]
fn the_label_limit_is_inclusive() {
    let limits = DecodeLimits {
        max_labels_per_series: 3,
        ..DecodeLimits::default()
    };
    for version in [Version::V1, Version::V2] {
        let three = one_series(version, UP, &[(1.0, T1)]);
        assert!(decode_with(version, &three, limits).is_ok());
        let four = one_series(version, REQUESTS, &[(1.0, T1)]);
        let message = malformed_with(version, &four, limits);
        assert!(
            message.contains("4 labels, more than the limit of 3"),
            "{message}"
        );
    }
}

#[test]
fn fifty_thousand_labels_in_one_series_are_refused() {
    let names: Vec<String> = (0..50_000).map(|i| format!("l{i:05}")).collect();
    let mut labels: Vec<(&str, &str)> = vec![("__name__", "up")];
    labels.extend(names.iter().map(|n| (n.as_str(), "v")));
    for version in [Version::V1, Version::V2] {
        let body = one_series(version, &labels, &[(1.0, T1)]);
        assert!(body.len() < DEFAULT_MAX_REQUEST_BYTES);
        let message = malformed(version, &body);
        assert!(message.contains("50001 labels"), "{message}");
    }
}

/// Wire-compatible twins of the messages with `bytes` where the schema has `string`, to
/// put invalid UTF-8 on the wire.
mod raw {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(bytes = "vec", tag = "1")]
        pub name: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<super::v1::Sample>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(bytes = "vec", repeated, tag = "4")]
        pub symbols: Vec<Vec<u8>>,
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<super::v2::TimeSeries>,
    }
}

#[test]
fn invalid_utf8_is_malformed() {
    let bad = vec![b'a', 0xff, 0xfe];
    let label = |name: &[u8], value: &[u8]| raw::Label {
        name: name.to_vec(),
        value: value.to_vec(),
    };
    for labels in [
        vec![label(b"__name__", b"up"), label(&bad, b"x")],
        vec![label(b"__name__", b"up"), label(b"job", &bad)],
        vec![label(b"__name__", &bad)],
    ] {
        let request = raw::WriteRequest {
            timeseries: vec![raw::TimeSeries {
                labels,
                samples: vec![v1::Sample {
                    value: 1.0,
                    timestamp: T1,
                }],
            }],
        };
        let message = malformed(Version::V1, &body(&request));
        assert!(message.contains("UTF-8"), "{message}");
    }

    let request = raw::Request {
        symbols: vec![
            vec![],
            b"__name__".to_vec(),
            b"up".to_vec(),
            b"job".to_vec(),
            bad,
        ],
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![v2::Sample {
                value: 1.0,
                timestamp: T1,
            }],
            ..Default::default()
        }],
    };
    let message = malformed(Version::V2, &body(&request));
    assert!(message.contains("UTF-8"), "{message}");
}

/// A 2.0 request of one series `up{job="x"}` with `edit` applied to the message.
fn v2_edited(edit: impl FnOnce(&mut v2::Request)) -> Vec<u8> {
    let mut symbols = Symbols::new();
    let series = v2_series(
        &mut symbols,
        &[("__name__", "up"), ("job", "x")],
        &[(1.0, T1)],
    );
    let mut request = v2::Request {
        symbols: symbols.0,
        timeseries: vec![series],
    };
    edit(&mut request);
    body(&request)
}

#[test]
fn v2_symbol_rules() {
    // Symbols: "", "__name__", "up", "job", "x".
    assert!(decode_with(Version::V2, &v2_edited(|_| {}), DecodeLimits::default()).is_ok());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            v2_edited(|r| r.timeseries[0].labels_refs[3] = 5),
            "symbol reference 5 out of range (5 symbols)",
        ),
        (
            v2_edited(|r| r.timeseries[0].labels_refs[0] = u32::MAX),
            "out of range",
        ),
        (
            v2_edited(|r| {
                r.timeseries[0].labels_refs.pop();
            }),
            "odd number of labels_refs",
        ),
        (
            v2_edited(|r| r.symbols[0] = "not empty".into()),
            "symbols[0] must be the empty string",
        ),
        (v2_edited(|r| r.symbols.clear()), "out of range (0 symbols)"),
        // The same name twice, by the same reference and by two equal symbols.
        (
            v2_edited(|r| r.timeseries[0].labels_refs.extend([3, 2])),
            "duplicate label \"job\"",
        ),
        (
            v2_edited(|r| {
                r.symbols.push("job".into());
                r.timeseries[0].labels_refs.extend([5, 2]);
            }),
            "duplicate label \"job\"",
        ),
        (
            v2_edited(|r| {
                r.timeseries[0].exemplars.push(v2::Exemplar {
                    labels_refs: vec![1, 9],
                    value: 1.0,
                    timestamp: T1,
                })
            }),
            "symbol reference 9 out of range",
        ),
        (
            v2_edited(|r| {
                r.timeseries[0].exemplars.push(v2::Exemplar {
                    labels_refs: vec![1],
                    value: 1.0,
                    timestamp: T1,
                })
            }),
            "odd number of exemplar labels_refs",
        ),
        (
            v2_edited(|r| {
                r.timeseries[0].metadata = Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Gauge as i32,
                    help_ref: 7,
                    unit_ref: 0,
                })
            }),
            "symbol reference 7 out of range",
        ),
        (
            v2_edited(|r| {
                r.timeseries[0].metadata = Some(v2::Metadata {
                    r#type: 0,
                    help_ref: 0,
                    unit_ref: 6,
                })
            }),
            "symbol reference 6 out of range",
        ),
    ];
    for (body, want) in cases {
        let message = malformed(Version::V2, &body);
        assert!(message.contains(want), "want {want:?}: {message}");
    }
    // symbols[0] is checked even when no series uses it.
    let symbols_only = body(&v2::Request {
        symbols: vec!["x".into()],
        timeseries: vec![],
    });
    assert!(malformed(Version::V2, &symbols_only).contains("symbols[0]"));
}

#[test]
fn stale_markers_are_counted_not_stored() {
    let stale = f64::from_bits(STALE_NAN_BITS);
    for version in [Version::V1, Version::V2] {
        let body = one_series(version, UP, &[(1.0, T1), (stale, T2), (2.0, T2 + 1)]);
        let decoded = decode_ok(version, &body);
        assert_eq!(decoded.samples, 3, "{version:?}");
        assert_eq!(
            decoded.rows,
            vec![
                expected(UP, "h:9100", "1", T1),
                expected(UP, "h:9100", "2", T2 + 1)
            ]
        );
        // A series that only ends: accepted, nothing stored.
        let ended = decode_ok(version, &one_series(version, UP, &[(stale, T2)]));
        assert_eq!((ended.samples, ended.rows.len()), (1, 0));
        // An ordinary NaN is a value.
        let nan = decode_ok(version, &one_series(version, UP, &[(f64::NAN, T1)]));
        assert_eq!(nan.rows, vec![expected(UP, "h:9100", "NaN", T1)]);
    }
}

fn histogram(timestamp: i64) -> v2::Histogram {
    v2::Histogram {
        count: Some(v2::histogram::Count::CountInt(3)),
        sum: 4.5,
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![v2::BucketSpan {
            offset: -2,
            length: 2,
        }],
        positive_deltas: vec![1, -1],
        reset_hint: v2::histogram::ResetHint::No as i32,
        timestamp,
        ..Default::default()
    }
}

#[test]
fn v1_histograms_and_exemplars_are_counted_not_stored() {
    let mut with_extras = v1_series(UP, &[(1.0, T1)]);
    with_extras.exemplars = vec![
        v1::Exemplar {
            labels: vec![v1::Label {
                name: "trace_id".into(),
                value: "abc".into(),
            }],
            value: 0.5,
            timestamp: T1,
        };
        3
    ];
    let mut histograms = v1_series(&[("__name__", "latency_seconds")], &[]);
    histograms.histograms = vec![histogram(T1), histogram(T2)];
    let request = v1::WriteRequest {
        timeseries: vec![with_extras, histograms],
        metadata: vec![v1::MetricMetadata {
            r#type: v1::MetricType::Gauge as i32,
            metric_family_name: "up".into(),
            help: "Whether the target is up.".into(),
            unit: String::new(),
        }],
    };
    let decoded = decode_ok(Version::V1, &body(&request));
    assert_eq!(
        (decoded.samples, decoded.histograms, decoded.exemplars),
        (1, 2, 3)
    );
    assert_eq!(decoded.rows, vec![expected(UP, "h:9100", "1", T1)]);
}

#[test]
fn v2_histograms_exemplars_and_metadata_are_counted_or_ignored() {
    let mut symbols = Symbols::new();
    let mut floats = v2_series(&mut symbols, UP, &[(1.0, T1)]);
    let trace = symbols.refs(&[("trace_id", "abc")]);
    floats.exemplars = vec![
        v2::Exemplar {
            labels_refs: trace,
            value: 0.5,
            timestamp: T1,
        },
        v2::Exemplar {
            labels_refs: vec![],
            value: 0.7,
            timestamp: T1,
        },
    ];
    let help = symbols.intern("Whether the target is up.");
    floats.metadata = Some(v2::Metadata {
        r#type: v2::metadata::MetricType::Gauge as i32,
        help_ref: help,
        unit_ref: 0,
    });
    floats.created_timestamp = T1 - 1000;
    let mut native = v2_series(&mut symbols, &[("__name__", "latency_seconds")], &[]);
    native.histograms = vec![histogram(T1), histogram(T2), histogram(T2 + 1)];
    // Exemplar-only series, as Prometheus sends them.
    let mut exemplar_only = v2_series(&mut symbols, UP, &[]);
    exemplar_only.exemplars = vec![v2::Exemplar {
        labels_refs: vec![],
        value: 2.0,
        timestamp: T2,
    }];
    let decoded = decode_ok(
        Version::V2,
        &v2_request(symbols, vec![floats, native, exemplar_only]),
    );
    assert_eq!(
        (decoded.samples, decoded.histograms, decoded.exemplars),
        (1, 3, 3)
    );
    assert_eq!(decoded.rows, vec![expected(UP, "h:9100", "1", T1)]);
}

#[test]
fn one_bad_series_refuses_the_whole_request() {
    let body = v1_request(vec![
        v1_series(UP, UP_SAMPLES),
        v1_series(&[("job", "x")], &[(1.0, T1)]),
    ]);
    assert!(malformed(Version::V1, &body).contains("series 1: no __name__"));
}

#[test]
fn written_headers_name_every_count() {
    let decoded = Decoded {
        rows: vec![],
        samples: 5,
        histograms: 2,
        exemplars: 18_446_744_073_709_551_615,
        ..Decoded::default()
    };
    assert_eq!(
        written_headers(&decoded),
        [
            ("X-Prometheus-Remote-Write-Samples-Written", "5".to_owned()),
            (
                "X-Prometheus-Remote-Write-Histograms-Written",
                "2".to_owned()
            ),
            (
                "X-Prometheus-Remote-Write-Exemplars-Written",
                "18446744073709551615".to_owned()
            ),
        ]
    );
    assert!(written_headers(&Decoded::default())
        .iter()
        .all(|(_, value)| value == "0"));
}

#[test]
fn rows_that_would_dwarf_the_body_are_413_before_they_are_built() {
    // 64 labels of 1000 bytes, and 2-byte empty samples: each sample would be a row with its
    // own ~64 KB copy of the labels.
    let values: Vec<String> = (0..63).map(|i| format!("{i:0>1000}")).collect();
    let mut labels: Vec<(&str, &str)> = vec![("__name__", "up")];
    let names: Vec<String> = (0..63).map(|i| format!("l{i:02}")).collect();
    labels.extend(
        names
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str)),
    );
    let limits = DecodeLimits {
        max_request_bytes: 1 << 20,
        max_labels_per_series: 64,
    };
    for version in [Version::V1, Version::V2] {
        let few = one_series(version, &labels, &vec![(0.0, 0); 100]);
        assert_eq!(decode_with(version, &few, limits).unwrap().rows.len(), 100);

        let bomb = one_series(version, &labels, &vec![(0.0, 0); 100_000]);
        let raw = snap::raw::decompress_len(&bomb).unwrap();
        assert!(raw < 1 << 20, "the body itself is within the limit: {raw}");
        match decode_with(version, &bomb, limits) {
            Err(Rejection::TooLarge { size, limit }) => {
                assert_eq!(limit, 1 << 20);
                assert!(size > 64 << 20, "{version:?}: {size}");
            }
            other => panic!("{version:?}: expected a 413, got {other:?}"),
        }
    }
}

/// Rows built in chunks are the rows `decode` builds, in order, chunk by chunk.
#[test]
fn checked_requests_build_the_same_rows_in_chunks() {
    let mapping = RowMapping::default();
    let limits = DecodeLimits::default();
    let mut series = Vec::new();
    for i in 0..7 {
        series.push(proto::v1::TimeSeries {
            labels: vec![
                proto::v1::Label {
                    name: "__name__".into(),
                    value: "m".into(),
                },
                proto::v1::Label {
                    name: "i".into(),
                    value: i.to_string(),
                },
            ],
            samples: vec![
                proto::v1::Sample {
                    value: f64::from(i),
                    timestamp: 1,
                },
                proto::v1::Sample {
                    value: f64::from_bits(crate::ops::ingest::mapping::STALE_NAN_BITS),
                    timestamp: 2,
                },
                proto::v1::Sample {
                    value: 0.5,
                    timestamp: 3,
                },
            ],
            ..Default::default()
        });
    }
    let request = proto::v1::WriteRequest {
        timeseries: series,
        ..Default::default()
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(&request))
        .unwrap();
    let whole = decode(Version::V1, &body, &limits, &mapping, 9).unwrap();
    assert_eq!(whole.rows.len(), 14);
    assert_eq!(whole.samples, 21);
    let checked = check(Version::V1, &body, &limits).unwrap();
    assert_eq!(checked.row_count(), 14);
    assert_eq!(checked.counts().samples, 21);
    let mut chunks = Vec::new();
    checked.rows(&mapping, 9, 3, |rows| chunks.push(rows));
    assert_eq!(
        chunks.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 3, 3, 2]
    );
    assert_eq!(chunks.concat(), whole.rows);
}
