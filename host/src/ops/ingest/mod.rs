//! Ingest: Prometheus remote write (1.0 and 2.0) and OTLP/HTTP metrics received by `serve`,
//! decoded here in the host (the component imports no sockets) and handed to the spool in
//! batches. A 2xx means every row of the request is in the journal and synced by the
//! configured policy; bad input is a 4xx that names what is wrong, and storage that cannot
//! keep up answers 429 with `Retry-After`: never 2xx-and-drop.
//!
//! | concept | module |
//! |---|---|
//! | sample -> agent row (name, node, value format, name-based id) | [`mapping`] |
//! | remote write 1.0 / 2.0: content negotiation, snappy, protobuf | [`remote_write`] |
//! | OTLP/HTTP metrics, protobuf and JSON | [`otlp`] |
//! | group commit into the spool, back-pressure | [`writer`] |
//! | the HTTP routes, status codes, bearer token | [`http`] |

pub mod http;
pub mod mapping;
pub mod otlp;
pub mod remote_write;
pub mod writer;

use std::path::PathBuf;
use std::time::Duration;

use edgestore::Metric;
use serde::{Deserialize, Serialize};

use mapping::RowMapping;

/// When a request's rows are made durable before the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Synced before the 2xx; concurrent requests share one fsync (group commit).
    Request,
    /// Synced at most this long after the 2xx (a crash may lose that window, like a disk
    /// buffer that syncs on a timer).
    Interval(Duration),
}

/// `ingest.sync` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncSetting {
    /// See [`SyncMode::Request`].
    Request,
    /// See [`SyncMode::Interval`]; the interval is `ingest.syncInterval`.
    Interval,
}

/// The `ingest` section: how `serve` receives Prometheus remote write and OTLP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IngestConfig {
    /// `request` (default): 2xx only once the rows are synced; `interval`: synced at most
    /// `syncInterval` later.
    pub sync: SyncSetting,
    /// The longest a row waits for its sync in `interval` mode.
    #[serde(with = "crate::duration")]
    pub sync_interval: Duration,
    /// Largest request body, compressed or decompressed, in bytes (413 above it).
    pub max_request_bytes: usize,
    /// Most labels one series may carry: remote write refuses the request (400), OTLP the
    /// data point (partial success).
    pub max_labels_per_series: usize,
    /// Requests decoded and written at once; more wait for a turn (bounded memory).
    pub max_in_flight: usize,
    /// The label `node_name` is read from (then `instance`).
    pub node_label: String,
    /// Written into every ingested row's `cluster_name`.
    pub cluster_name: String,
    /// Written into every ingested row's `cloud_account_id`.
    pub cloud_account_id: String,
    /// A file holding the bearer token ingest requests must present
    /// (`Authorization: Bearer ...`); none means no token is asked for.
    pub bearer_token_file: Option<PathBuf>,
}

impl Default for IngestConfig {
    /// Sync per request (1 s when `interval`), 16 MiB, 512 labels, 16 requests in flight,
    /// `node` label, no token.
    fn default() -> Self {
        IngestConfig {
            sync: SyncSetting::Request,
            sync_interval: Duration::from_secs(1),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_labels_per_series: DEFAULT_MAX_LABELS_PER_SERIES,
            max_in_flight: 16,
            node_label: mapping::DEFAULT_NODE_LABEL.to_owned(),
            cluster_name: String::new(),
            cloud_account_id: String::new(),
            bearer_token_file: None,
        }
    }
}

impl IngestConfig {
    /// The sync mode this section describes.
    pub fn sync_mode(&self) -> SyncMode {
        match self.sync {
            SyncSetting::Request => SyncMode::Request,
            SyncSetting::Interval => SyncMode::Interval(self.sync_interval),
        }
    }

    /// What decoders may allocate.
    pub fn limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_request_bytes: self.max_request_bytes,
            max_labels_per_series: self.max_labels_per_series,
        }
    }

    /// How samples become rows.
    pub fn mapping(&self) -> RowMapping {
        RowMapping {
            node_label: self.node_label.clone(),
            cluster_name: self.cluster_name.clone(),
            cloud_account_id: self.cloud_account_id.clone(),
        }
    }

    /// Check the values a typo could make unusable; the error names the key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |key, value: &dyn std::fmt::Display, reason| {
            Err(InvalidSetting {
                key,
                value: value.to_string(),
                reason,
            })
        };
        if self.max_request_bytes == 0 {
            return bad("ingest.maxRequestBytes", &0, "must be at least 1");
        }
        if self.max_labels_per_series == 0 {
            return bad("ingest.maxLabelsPerSeries", &0, "must be at least 1");
        }
        if self.max_in_flight == 0 {
            return bad("ingest.maxInFlight", &0, "must be at least 1");
        }
        if self.sync == SyncSetting::Interval && self.sync_interval.is_zero() {
            return bad("ingest.syncInterval", &"0s", "must be positive");
        }
        if self.node_label.is_empty() {
            return bad("ingest.nodeLabel", &"\"\"", "must not be empty");
        }
        Ok(())
    }
}

/// A setting of the `ingest` section outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: bad value {value}: {reason}")]
pub struct InvalidSetting {
    /// Dotted key.
    pub key: &'static str,
    /// The value.
    pub value: String,
    /// The rule it breaks.
    pub reason: &'static str,
}

/// Default cap on a request body, compressed or decompressed.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Default cap on the labels of one series (label sets beyond it are malformed input, not a
/// reason to allocate without bound).
pub const DEFAULT_MAX_LABELS_PER_SERIES: usize = 512;

/// What a decoder may allocate for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest body, before and after decompression (`ingest.maxRequestBytes`); a declared
    /// decompressed length above it is refused before anything is allocated.
    pub max_request_bytes: usize,
    /// Most labels one series may carry.
    pub max_labels_per_series: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_labels_per_series: DEFAULT_MAX_LABELS_PER_SERIES,
        }
    }
}

/// A decoded request: its rows, and what the sender must be told it wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// One row per sample (float samples; classic histogram series are float samples too).
    pub rows: Vec<Metric>,
    /// Float samples accepted (rows, plus staleness markers, which end a series and are not
    /// stored).
    pub samples: u64,
    /// Native histogram samples received (not stored: the row format has no place for them).
    pub histograms: u64,
    /// Exemplars received (not stored).
    pub exemplars: u64,
    /// Data points refused one by one while the rest of the request is stored (OTLP's partial
    /// success): 0 for remote write, which refuses whole requests.
    pub rejected: u64,
    /// Why the first refused data point was refused (empty when none was).
    pub rejected_reason: String,
}

/// Why a request is refused before anything is stored: the sender's fault, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The body does not decode (bad snappy, bad protobuf, bad JSON, invalid UTF-8, a series
    /// without a name, too many labels in a remote write series, a symbol reference out of
    /// range, ...): 400.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The body, or its declared decompressed length, exceeds the limit: 413.
    #[error("request too large: {size} bytes, the limit is {limit} (ingest.maxRequestBytes)")]
    TooLarge {
        /// The size found or declared.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A protocol version, content type or encoding we do not speak: 415.
    #[error("unsupported media type: {0}")]
    Unsupported(String),
}

impl Rejection {
    /// The HTTP status of this rejection.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Malformed(_) => 400,
            Rejection::TooLarge { .. } => 413,
            Rejection::Unsupported(_) => 415,
        }
    }
}
