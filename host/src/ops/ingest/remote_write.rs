//! Prometheus remote write 1.0 and 2.0 request decoding: `POST /api/v1/write` bodies into
//! [`Decoded`] rows. Pure: the HTTP server calls [`negotiate`] with the request's headers,
//! [`decode`] with its body, and answers a 2xx with [`written_headers`] once the rows are
//! stored (a [`Rejection`] carries its own status).
//!
//! Decisions where the specifications leave room (they constrain senders; what a receiver
//! refuses is its own choice, as long as a refusal is a 4xx):
//!
//! * **Negotiation.** `Content-Type` picks the message (2.0: "Receivers MUST use the content
//!   type header"): `application/x-protobuf` alone or with `proto=prometheus.WriteRequest` is
//!   1.0, `proto=io.prometheus.write.v2.Request` is 2.0, anything else is 415. A missing
//!   `Content-Type` or `Content-Encoding` is taken as 1.0 and snappy, as Prometheus' own
//!   receiver does, so old senders keep working; any encoding but `snappy` is 415.
//!   `X-Prometheus-Remote-Write-Version` is informational (a 2.x sender may send the 1.0
//!   message), but a major version above 2, or one that is not a version, is 415.
//! * **Empty body.** A zero-length body is malformed (400): the snappy block format always
//!   starts with the decompressed length, so even an empty request is one byte (`0x00`).
//!   That one-byte body, an empty `WriteRequest`, is valid and writes nothing: 1.0 senders
//!   probe a receiver's version with exactly such a request.
//! * **Labels.** A series needs `__name__`; duplicate names, empty names, more than
//!   [`DecodeLimits::max_labels_per_series`] labels, invalid UTF-8 and (2.0) symbol references
//!   out of range or in odd count are malformed. A label with an empty value is dropped (in
//!   Prometheus' data model it is the same as an absent label). Label order is not checked:
//!   rows keep labels sorted whatever order they came in. Names are not checked against the
//!   1.0 regex, since 2.0 allows any UTF-8.
//! * **Samples.** Every float sample is one row, except staleness markers, which are counted
//!   as accepted samples (they are written in Prometheus' sense: they end a series) but stored
//!   nowhere. Native histograms and exemplars are counted and not stored; metadata and created
//!   timestamps are decoded (so a malformed one is refused) and ignored. Series with no
//!   samples, or with both samples and histograms, are accepted: Prometheus itself sends
//!   exemplar-only series.
//! * **All or nothing.** Any malformed series refuses the whole request, so the counts of a
//!   [`Decoded`] are exactly what a 2xx accepts, and a refusal wrote nothing.
//! * **Size.** The compressed body and the declared decompressed length are checked against
//!   [`DecodeLimits::max_request_bytes`] before the output buffer is allocated (413); a
//!   declared length that the body's bytes cannot possibly expand to is malformed (400) before
//!   allocating too. The rows are bounded as well, since every sample copies its series'
//!   labels (a 2-byte empty sample on a long label set is a row of kilobytes): their estimated
//!   memory may be at most 64 times the limit (1 GiB at the default 16 MiB, far above what real
//!   requests reach), checked before any row is built; above it is 413, the request counting
//!   as a 64th of its rows' memory.

pub mod proto;

use std::collections::btree_map::{BTreeMap, Entry};

use edgestore::Metric;
use prost::Message;

use super::mapping::{is_stale_marker, RowMapping, NAME_LABEL};
use super::{DecodeLimits, Decoded, Rejection};

/// The media type of every remote write body.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// `proto=` of the 1.0 message.
pub const PROTO_V1: &str = "prometheus.WriteRequest";

/// `proto=` of the 2.0 message.
pub const PROTO_V2: &str = "io.prometheus.write.v2.Request";

/// The only content coding the protocol defines.
pub const CONTENT_ENCODING: &str = "snappy";

/// The request (and optional response) header naming the protocol version.
pub const VERSION_HEADER: &str = "X-Prometheus-Remote-Write-Version";

/// The newest protocol version we speak: what a response's [`VERSION_HEADER`] may advertise
/// (1.0 senders probe with an empty request and read it).
pub const NEWEST_VERSION: &str = "2.0.0";

/// Response header: float samples written (2.0).
pub const SAMPLES_WRITTEN_HEADER: &str = "X-Prometheus-Remote-Write-Samples-Written";

/// Response header: native histogram samples written (2.0).
pub const HISTOGRAMS_WRITTEN_HEADER: &str = "X-Prometheus-Remote-Write-Histograms-Written";

/// Response header: exemplars written (2.0).
pub const EXEMPLARS_WRITTEN_HEADER: &str = "X-Prometheus-Remote-Write-Exemplars-Written";

/// Bound on snappy's expansion per compressed byte: its densest element, a 3-byte copy, writes
/// at most 64 bytes (21.3x), so a declared length beyond `compressed * 22` cannot be honest.
const SNAPPY_MAX_EXPANSION: usize = 22;

/// Rows may take this many times `max_request_bytes` of memory (1 GiB at the default 16 MiB):
/// far more than real requests expand to, far less than a body of 2-byte empty samples on a
/// long label set would (every sample is a row with its own copy of the labels).
const ROW_MEMORY_FACTOR: u64 = 64;

/// Estimated memory of a row without its labels (the struct, its fixed strings).
const ROW_BYTES: u64 = 256;

/// Estimated memory of a label beside its text (two strings in a map node).
const LABEL_BYTES: u64 = 64;

/// The stream identifier that starts snappy's framed format, which the spec forbids: named in
/// the refusal, since "corrupt input" would not tell the sender what it got wrong.
const SNAPPY_FRAMED_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// The protobuf message a remote write body carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Remote write 1.0: `prometheus.WriteRequest`.
    V1,
    /// Remote write 2.0: `io.prometheus.write.v2.Request`.
    V2,
}

/// The message of a request, from its headers (`None`: header absent). 415 for a media type,
/// `proto=`, content coding or major protocol version we do not speak.
pub fn negotiate(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    version_header: Option<&str>,
) -> Result<Version, Rejection> {
    check_encoding(content_encoding)?;
    check_version_header(version_header)?;
    message_of(content_type)
}

/// The response headers 2.0 requires: what was written. Senders read a 2xx without them as a
/// 1.0 receiver that silently dropped a 2.0 body. A refusal writes nothing: its headers are
/// those of `Decoded::default()`, or absent, which 2.0 senders read as zero.
pub fn written_headers(decoded: &Decoded) -> [(&'static str, String); 3] {
    [
        (SAMPLES_WRITTEN_HEADER, decoded.samples.to_string()),
        (HISTOGRAMS_WRITTEN_HEADER, decoded.histograms.to_string()),
        (EXEMPLARS_WRITTEN_HEADER, decoded.exemplars.to_string()),
    ]
}

/// A request body (snappy block of a `version` message) as rows, every row's `created_at`
/// being `received_ms`.
pub fn decode(
    version: Version,
    body: &[u8],
    limits: &DecodeLimits,
    mapping: &RowMapping,
    received_ms: i64,
) -> Result<Decoded, Rejection> {
    let checked = check(version, body, limits)?;
    let mut out = checked.counts();
    out.rows = Vec::with_capacity(checked.rows);
    checked.rows(mapping, received_ms, usize::MAX, |rows| {
        out.rows.extend(rows)
    });
    Ok(out)
}

/// A request body decoded and checked in full, before any row exists: a server can then build
/// and write its rows in chunks (writing one while building the next) knowing nothing in the
/// request will be refused.
pub fn check(version: Version, body: &[u8], limits: &DecodeLimits) -> Result<Checked, Rejection> {
    let raw = decompress(body, limits.max_request_bytes)?;
    match version {
        Version::V1 => check_v1(&raw, limits),
        Version::V2 => check_v2(&raw, limits),
    }
}

/// One checked series: its labels (`__name__` included) and float samples `(value, ms)`.
type CheckedSeries = (BTreeMap<String, String>, Vec<(f64, i64)>);

/// A checked request: every series' labels and float samples, and the counts a 2xx reports.
#[derive(Debug, Default)]
pub struct Checked {
    series: Vec<CheckedSeries>,
    samples: u64,
    histograms: u64,
    exemplars: u64,
    /// Rows the series make (samples minus staleness markers).
    rows: usize,
}

impl Checked {
    /// What a 2xx reports as written, without rows.
    pub fn counts(&self) -> Decoded {
        Decoded {
            samples: self.samples,
            histograms: self.histograms,
            exemplars: self.exemplars,
            ..Decoded::default()
        }
    }

    /// Rows the request makes.
    pub fn row_count(&self) -> usize {
        self.rows
    }

    /// Build the rows, handing them to `sink` in chunks of at most `chunk` rows, in order.
    /// Staleness markers make no row. What a series' rows share is worked out once
    /// ([`RowMapping::series`]), and its last row takes it.
    pub fn rows(
        self,
        mapping: &RowMapping,
        received_ms: i64,
        chunk: usize,
        mut sink: impl FnMut(Vec<Metric>),
    ) {
        let chunk = chunk.max(1);
        let mut rows = Vec::with_capacity(chunk.min(self.rows));
        for (labels, samples) in self.series {
            let series = mapping.series(labels);
            let mut live = samples.into_iter().filter(|(v, _)| !is_stale_marker(*v));
            let mut pending = live.next();
            while let Some((value, timestamp)) = pending {
                pending = live.next();
                if rows.len() == chunk {
                    sink(std::mem::replace(
                        &mut rows,
                        Vec::with_capacity(chunk.min(self.rows)),
                    ));
                }
                if pending.is_none() {
                    rows.push(series.into_row(value, timestamp, received_ms));
                    break;
                }
                rows.push(series.row(value, timestamp, received_ms));
            }
        }
        if !rows.is_empty() {
            sink(rows);
        }
    }

    fn push(&mut self, labels: BTreeMap<String, String>, samples: Vec<(f64, i64)>) {
        self.samples += samples.len() as u64;
        self.rows += samples.iter().filter(|(v, _)| !is_stale_marker(*v)).count();
        self.series.push((labels, samples));
    }
}

/// 415 unless the body is snappy (absent: snappy, as Prometheus assumes for old senders).
fn check_encoding(content_encoding: Option<&str>) -> Result<(), Rejection> {
    match content_encoding.map(str::trim) {
        None | Some("") => Ok(()),
        Some(coding) if coding.eq_ignore_ascii_case(CONTENT_ENCODING) => Ok(()),
        Some(coding) => Err(Rejection::Unsupported(format!(
            "Content-Encoding {coding:?}: remote write bodies must be snappy (block format)"
        ))),
    }
}

/// 415 for a protocol major version above the newest we speak, or a value that is no version.
fn check_version_header(version: Option<&str>) -> Result<(), Rejection> {
    let Some(version) = version.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u64>().ok());
    match major {
        Some(0..=2) => Ok(()),
        _ => Err(Rejection::Unsupported(format!(
            "{VERSION_HEADER} {version:?}: this receiver speaks remote write 1.x and 2.x"
        ))),
    }
}

/// The message named by `Content-Type` (RFC 9110: case-insensitive media type and parameter
/// names, optional whitespace, quoted values; parameters other than `proto` are ignored).
fn message_of(content_type: Option<&str>) -> Result<Version, Rejection> {
    let Some(content_type) = content_type.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(Version::V1);
    };
    let unsupported = |why: &str| {
        Err(Rejection::Unsupported(format!(
            "Content-Type {content_type:?}: {why}; expected {CONTENT_TYPE:?} with no proto or \
             proto={PROTO_V1} or proto={PROTO_V2}"
        )))
    };
    let mut parts = content_type.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case(CONTENT_TYPE) {
        return unsupported("not protobuf");
    }
    let mut proto = None;
    for parameter in parts.map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = parameter.split_once('=') else {
            return unsupported("a parameter without a value");
        };
        if !name.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if proto.replace(value).is_some() {
            return unsupported("proto given twice");
        }
    }
    match proto {
        None | Some(PROTO_V1) => Ok(Version::V1),
        Some(PROTO_V2) => Ok(Version::V2),
        Some(_) => unsupported("unknown proto"),
    }
}

/// The decompressed body, sized from snappy's declared length after it passed the limit.
fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, Rejection> {
    let too_large = |size: u64| Rejection::TooLarge {
        size,
        limit: limit as u64,
    };
    if body.is_empty() {
        return Err(malformed(
            "empty body: a snappy block starts with its length, even an empty request's",
        ));
    }
    if body.len() > limit {
        return Err(too_large(body.len() as u64));
    }
    if body.starts_with(SNAPPY_FRAMED_MAGIC) {
        return Err(malformed(
            "framed snappy: remote write bodies are one snappy block (block format)",
        ));
    }
    let declared = match snap::raw::decompress_len(body) {
        Ok(declared) => declared,
        Err(snap::Error::TooBig { given, .. }) => return Err(too_large(given)),
        Err(e) => return Err(malformed(e.to_string())),
    };
    if declared > limit {
        return Err(too_large(declared as u64));
    }
    if declared > body.len().saturating_mul(SNAPPY_MAX_EXPANSION) {
        return Err(malformed(format!(
            "snappy: declares {declared} bytes, more than {} compressed bytes can hold",
            body.len()
        )));
    }
    let mut raw = vec![0; declared];
    // The decoder fails unless it writes exactly `declared` bytes.
    let written = snap::raw::Decoder::new()
        .decompress(body, &mut raw)
        .map_err(|e| malformed(e.to_string()))?;
    raw.truncate(written);
    Ok(raw)
}

fn check_v1(raw: &[u8], limits: &DecodeLimits) -> Result<Checked, Rejection> {
    let request =
        proto::v1::WriteRequest::decode(raw).map_err(|e| malformed(format!("{PROTO_V1}: {e}")))?;
    let costs = request.timeseries.iter().map(|series| {
        let labels = series.labels.iter().map(|l| l.name.len() + l.value.len());
        (label_set_bytes(labels), series.samples.len())
    });
    let mut out = with_rows(costs, limits)?;
    for (index, series) in request.timeseries.into_iter().enumerate() {
        let labels = series_labels(
            index,
            series.labels.len(),
            series.labels.into_iter().map(|l| Ok((l.name, l.value))),
            limits,
        )?;
        out.histograms += series.histograms.len() as u64;
        out.exemplars += series.exemplars.len() as u64;
        let samples = series
            .samples
            .iter()
            .map(|s| (s.value, s.timestamp))
            .collect();
        out.push(labels, samples);
    }
    Ok(out)
}

fn check_v2(raw: &[u8], limits: &DecodeLimits) -> Result<Checked, Rejection> {
    let request =
        proto::v2::Request::decode(raw).map_err(|e| malformed(format!("{PROTO_V2}: {e}")))?;
    let symbols = &request.symbols;
    if symbols.first().is_some_and(|first| !first.is_empty()) {
        return Err(malformed("symbols[0] must be the empty string"));
    }
    // Out-of-range references cost nothing here; the loop below refuses them.
    let costs = request.timeseries.iter().map(|series| {
        let labels = series.labels_refs.chunks(2).map(|pair| {
            pair.iter()
                .map(|&r| symbols.get(r as usize).map_or(0, String::len))
                .sum()
        });
        (label_set_bytes(labels), series.samples.len())
    });
    let mut out = with_rows(costs, limits)?;
    for (index, series) in request.timeseries.iter().enumerate() {
        let refs = &series.labels_refs;
        if !refs.len().is_multiple_of(2) {
            return Err(series_error(index, "odd number of labels_refs"));
        }
        let pairs = refs.chunks_exact(2).map(|pair| {
            let name = symbol(symbols, pair[0], index)?;
            let value = symbol(symbols, pair[1], index)?;
            Ok((name.to_owned(), value.to_owned()))
        });
        let labels = series_labels(index, refs.len() / 2, pairs, limits)?;
        for exemplar in &series.exemplars {
            if !exemplar.labels_refs.len().is_multiple_of(2) {
                return Err(series_error(index, "odd number of exemplar labels_refs"));
            }
            for &r in &exemplar.labels_refs {
                symbol(symbols, r, index)?;
            }
        }
        if let Some(metadata) = &series.metadata {
            symbol(symbols, metadata.help_ref, index)?;
            symbol(symbols, metadata.unit_ref, index)?;
        }
        out.histograms += series.histograms.len() as u64;
        out.exemplars += series.exemplars.len() as u64;
        let samples = series
            .samples
            .iter()
            .map(|s| (s.value, s.timestamp))
            .collect();
        out.push(labels, samples);
    }
    Ok(out)
}

/// Estimated memory of one row of a series whose labels have these text lengths.
fn label_set_bytes(label_text_lengths: impl Iterator<Item = usize>) -> u64 {
    label_text_lengths.fold(ROW_BYTES, |bytes, text| {
        bytes.saturating_add(LABEL_BYTES + text as u64)
    })
}

/// An empty [`Checked`] with room for every series, once the rows' estimated memory
/// (`(row bytes, samples)` per series) is known to fit: 413 otherwise, counting the rows as
/// `1 / ROW_MEMORY_FACTOR` of their memory against the body limit.
fn with_rows(
    series: impl ExactSizeIterator<Item = (u64, usize)>,
    limits: &DecodeLimits,
) -> Result<Checked, Rejection> {
    let count = series.len();
    let mut memory = 0u64;
    for (row_bytes, samples) in series {
        memory = memory.saturating_add(row_bytes.saturating_mul(samples as u64));
    }
    let limit = limits.max_request_bytes as u64;
    if memory > limit.saturating_mul(ROW_MEMORY_FACTOR) {
        return Err(Rejection::TooLarge {
            size: memory.div_ceil(ROW_MEMORY_FACTOR),
            limit,
        });
    }
    Ok(Checked {
        series: Vec::with_capacity(count),
        ..Checked::default()
    })
}

/// A 2.0 symbol reference resolved (out of range is malformed).
fn symbol(symbols: &[String], reference: u32, series: usize) -> Result<&str, Rejection> {
    usize::try_from(reference)
        .ok()
        .and_then(|i| symbols.get(i))
        .map(String::as_str)
        .ok_or_else(|| {
            series_error(
                series,
                format!(
                    "symbol reference {reference} out of range ({} symbols)",
                    symbols.len()
                ),
            )
        })
}

/// A series' label set, checked once (the map is then shared by all its samples): at most
/// the limit, no empty or repeated names, `__name__` present; empty values dropped.
fn series_labels(
    index: usize,
    count: usize,
    labels: impl Iterator<Item = Result<(String, String), Rejection>>,
    limits: &DecodeLimits,
) -> Result<BTreeMap<String, String>, Rejection> {
    if count > limits.max_labels_per_series {
        return Err(series_error(
            index,
            format!(
                "{count} labels, more than the limit of {}",
                limits.max_labels_per_series
            ),
        ));
    }
    let mut map = BTreeMap::new();
    let mut empty_values = false;
    for label in labels {
        let (name, value) = label?;
        if name.is_empty() {
            return Err(series_error(index, "empty label name"));
        }
        empty_values |= value.is_empty();
        match map.entry(name) {
            Entry::Vacant(entry) => {
                entry.insert(value);
            }
            Entry::Occupied(entry) => {
                return Err(series_error(
                    index,
                    format!("duplicate label {:?}", entry.key()),
                ));
            }
        }
    }
    if empty_values {
        map.retain(|_, value| !value.is_empty());
    }
    if !map.contains_key(NAME_LABEL) {
        return Err(series_error(index, format!("no {NAME_LABEL} label")));
    }
    Ok(map)
}

fn malformed(why: impl Into<String>) -> Rejection {
    Rejection::Malformed(why.into())
}

fn series_error(index: usize, why: impl std::fmt::Display) -> Rejection {
    Rejection::Malformed(format!("series {index}: {why}"))
}

#[cfg(test)]
mod tests;
