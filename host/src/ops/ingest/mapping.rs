//! From a decoded sample to the agent's metric row: one rule for every protocol we receive
//! (Prometheus remote write 1.0 and 2.0, OTLP), so a series reads the same whatever sent it.
//!
//! * `metric_name` is `__name__`; `labels` are every other label (kept, `node` included).
//! * `node_name` is the configured label (default `node`), else `instance`, else empty.
//! * `value` is formatted as the agent does: the shortest decimal that reads back as the same
//!   `f64`, never in exponent form (`1`, `0.25`, `1234567`), and `NaN`, `+Inf`, `-Inf`.
//! * `timestamp` is the sample's milliseconds, `created_at` the time the request arrived.
//! * `id` is a name-based UUID (v5) of the series' sorted labels and the timestamp: a sender
//!   that retries a request after a partial write produces the same ids, so uploaders and
//!   readers can de-duplicate.

use std::collections::BTreeMap;

use edgestore::Metric;
use sha1::{Digest as _, Sha1};
use uuid::Uuid;

/// The label that names a metric in Prometheus' data model.
pub const NAME_LABEL: &str = "__name__";

/// The label `node_name` falls back to when the configured one is missing.
pub const FALLBACK_NODE_LABEL: &str = "instance";

/// The default label `node_name` is read from.
pub const DEFAULT_NODE_LABEL: &str = "node";

/// The UUID namespace of ingested sample ids (a fixed, random v4: ids from other namespaces
/// never collide with ours).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x3f0b_8c1e_6a52_4d7e_9b1f_2c64_a8e0_d915);

/// How a sample becomes a row: the fields that come from configuration, not from the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMapping {
    /// The label `node_name` is read from (falls back to [`FALLBACK_NODE_LABEL`]).
    pub node_label: String,
    /// Written into every row's `cluster_name`.
    pub cluster_name: String,
    /// Written into every row's `cloud_account_id`.
    pub cloud_account_id: String,
}

impl Default for RowMapping {
    fn default() -> Self {
        RowMapping {
            node_label: DEFAULT_NODE_LABEL.to_owned(),
            cluster_name: String::new(),
            cloud_account_id: String::new(),
        }
    }
}

impl RowMapping {
    /// The row of one sample of a series. `labels` are the series' labels, `__name__`
    /// included (it becomes `metric_name` and leaves the map).
    pub fn row(
        &self,
        labels: BTreeMap<String, String>,
        value: f64,
        timestamp_ms: i64,
        received_ms: i64,
    ) -> Metric {
        self.series(labels)
            .into_row(value, timestamp_ms, received_ms)
    }

    /// What every row of one series shares, worked out once: the name, the node, the other
    /// labels and the id's hash over the labels (each sample only adds its timestamp).
    pub fn series(&self, mut labels: BTreeMap<String, String>) -> Series<'_> {
        let mut id = Sha1::new();
        id.update(ID_NAMESPACE.as_bytes());
        for (name, value) in &labels {
            id.update(name.as_bytes());
            id.update([0xfe]);
            id.update(value.as_bytes());
            id.update([0xff]);
        }
        let metric_name = labels.remove(NAME_LABEL).unwrap_or_default();
        let node_name = labels
            .get(&self.node_label)
            .or_else(|| labels.get(FALLBACK_NODE_LABEL))
            .cloned()
            .unwrap_or_default();
        Series {
            mapping: self,
            metric_name,
            node_name,
            labels,
            id,
        }
    }
}

/// One series on its way to rows (see [`RowMapping::series`]).
pub struct Series<'m> {
    mapping: &'m RowMapping,
    metric_name: String,
    node_name: String,
    labels: BTreeMap<String, String>,
    /// SHA-1 over the id namespace and the labels: [`series_id`]'s state before the timestamp.
    id: Sha1,
}

impl Series<'_> {
    /// The row of one sample, the series' labels copied.
    pub fn row(&self, value: f64, timestamp_ms: i64, received_ms: i64) -> Metric {
        self.build(
            self.metric_name.clone(),
            self.node_name.clone(),
            self.labels.clone(),
            value,
            timestamp_ms,
            received_ms,
        )
    }

    /// The row of the series' last sample: its strings move into the row.
    pub fn into_row(self, value: f64, timestamp_ms: i64, received_ms: i64) -> Metric {
        let id = self.id(timestamp_ms);
        let mapping = self.mapping;
        Metric {
            id,
            ..row_fields(
                mapping,
                self.metric_name,
                self.node_name,
                self.labels,
                value,
                timestamp_ms,
                received_ms,
            )
        }
    }

    fn build(
        &self,
        metric_name: String,
        node_name: String,
        labels: BTreeMap<String, String>,
        value: f64,
        timestamp_ms: i64,
        received_ms: i64,
    ) -> Metric {
        Metric {
            id: self.id(timestamp_ms),
            ..row_fields(
                self.mapping,
                metric_name,
                node_name,
                labels,
                value,
                timestamp_ms,
                received_ms,
            )
        }
    }

    /// UUID v5: the series' hash state, then the timestamp; the same bytes
    /// `Uuid::new_v5(&ID_NAMESPACE, key)` hashes.
    fn id(&self, timestamp_ms: i64) -> String {
        let mut hash = self.id.clone();
        hash.update(timestamp_ms.to_be_bytes());
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_sha1_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    }
}

/// Every field of a row but its id.
fn row_fields(
    mapping: &RowMapping,
    metric_name: String,
    node_name: String,
    labels: BTreeMap<String, String>,
    value: f64,
    timestamp_ms: i64,
    received_ms: i64,
) -> Metric {
    Metric {
        cloud_account_id: mapping.cloud_account_id.clone(),
        cluster_name: mapping.cluster_name.clone(),
        created_at: received_ms.to_string(),
        id: String::new(),
        labels,
        metric_name,
        node_name,
        timestamp: timestamp_ms.to_string(),
        value: format_value(value),
    }
}

/// The id of a series' sample at `timestamp_ms`: UUID v5 over the sorted `name=value` pairs
/// (separated by bytes that cannot occur in UTF-8, so no two label sets share an encoding)
/// and the timestamp.
pub fn series_id(labels: &BTreeMap<String, String>, timestamp_ms: i64) -> Uuid {
    let mut key = Vec::with_capacity(
        labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
            + 8,
    );
    for (name, value) in labels {
        key.extend_from_slice(name.as_bytes());
        key.push(0xfe);
        key.extend_from_slice(value.as_bytes());
        key.push(0xff);
    }
    key.extend_from_slice(&timestamp_ms.to_be_bytes());
    Uuid::new_v5(&ID_NAMESPACE, &key)
}

/// A sample value as the agent writes it: Rust's `Display` for `f64` is the shortest decimal
/// that round-trips and never uses an exponent (Go's `FormatFloat(v, 'f', -1, 64)`); the
/// special values are spelled as Prometheus spells them.
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else if value == 0.0 {
        // `-0` reads back as the same number; the agent never writes a signed zero.
        "0".to_owned()
    } else {
        value.to_string()
    }
}

/// Prometheus' staleness marker: a NaN with this exact bit pattern ends a series; it is not a
/// sample.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `value` is Prometheus' staleness marker.
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn values_read_as_the_agent_writes_them() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(1234567.0), "1234567");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(1e-7), "0.0000001");
        assert_eq!(format_value(-0.0), "0");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        for v in [0.1, 1.0 / 3.0, 12_345.678_9, f64::MAX, f64::MIN_POSITIVE] {
            assert_eq!(format_value(v).parse::<f64>().ok(), Some(v), "{v}");
        }
    }

    #[test]
    fn rows_take_name_node_and_configured_fields() {
        let mapping = RowMapping {
            node_label: "node".into(),
            cluster_name: "prod".into(),
            cloud_account_id: "acct".into(),
        };
        let m = mapping.row(
            labels(&[("__name__", "up"), ("instance", "h:9100"), ("job", "node")]),
            1.0,
            1_700_000_000_123,
            1_700_000_001_000,
        );
        assert_eq!(m.metric_name, "up");
        assert_eq!(m.node_name, "h:9100", "falls back to instance");
        assert_eq!(m.labels, labels(&[("instance", "h:9100"), ("job", "node")]));
        assert_eq!(m.timestamp, "1700000000123");
        assert_eq!(m.created_at, "1700000001000");
        assert_eq!(m.value, "1");
        assert_eq!(m.cluster_name, "prod");
        assert_eq!(m.cloud_account_id, "acct");

        let with_node = mapping.row(
            labels(&[("__name__", "up"), ("instance", "h"), ("node", "worker-1")]),
            0.0,
            1,
            2,
        );
        assert_eq!(with_node.node_name, "worker-1");
        assert_eq!(
            with_node.labels.get("node").map(String::as_str),
            Some("worker-1")
        );
    }

    #[test]
    fn ids_depend_on_series_and_time_only() {
        let a = labels(&[("__name__", "up"), ("job", "x")]);
        let mapping = RowMapping::default();
        let first = mapping.row(a.clone(), 1.0, 10, 100);
        let retried = mapping.row(a.clone(), 1.0, 10, 999);
        assert_eq!(first.id, retried.id, "a retry produces the same id");
        assert_ne!(first.id, mapping.row(a.clone(), 1.0, 11, 100).id);
        let b = labels(&[("__name__", "up"), ("job", "y")]);
        assert_ne!(first.id, mapping.row(b, 1.0, 10, 100).id);
        // Label boundaries are part of the key: {a="bc"} and {ab="c"} differ.
        assert_ne!(
            series_id(&labels(&[("a", "bc")]), 0),
            series_id(&labels(&[("ab", "c")]), 0)
        );
        assert_eq!(
            Uuid::parse_str(&first.id).map(|u| u.get_version_num()).ok(),
            Some(5)
        );
    }

    /// The per-series hash state gives exactly the UUID v5 of the whole key.
    #[test]
    fn series_rows_carry_the_v5_id_of_labels_and_time() {
        let mapping = RowMapping::default();
        let l = labels(&[
            ("__name__", "node_cpu_seconds_total"),
            ("cpu", "0"),
            ("mode", "idle"),
        ]);
        let series = mapping.series(l.clone());
        for ts in [0, 1, 1_700_000_000_123, -5] {
            assert_eq!(series.row(1.0, ts, 9).id, series_id(&l, ts).to_string());
        }
        let last = mapping.series(l.clone()).into_row(2.5, 42, 9);
        assert_eq!(last.id, series_id(&l, 42).to_string());
        assert_eq!(last, mapping.series(l).row(2.5, 42, 9));
    }

    #[test]
    fn stale_markers_are_told_from_nan() {
        assert!(is_stale_marker(f64::from_bits(STALE_NAN_BITS)));
        assert!(!is_stale_marker(f64::NAN));
        assert!(!is_stale_marker(1.0));
    }
}
