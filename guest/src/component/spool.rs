//! The `spool` export: `spool` and `reader` resources over a core `Spool<Document>`.
//!
//! One spool takes metrics and JSON documents alike, so records are kept as validated JSON
//! text ([`Document`], a `RawValue`): `put-documents` validates without building a tree and
//! stores the caller's bytes, `put` serialises each metric once through the core's `Metric`
//! (the reference agent's field order), and readers hand text back without re-encoding.
//! A `serde_json::Value` spool would parse every document into a tree and print it again.
//!
//! Files live under the preopened data directory ([`super::data_root`], `/data` by default), in
//! the relative directory `config.path`; the file-system capacity comes from the world's driver
//! (the host's `host-info` in `plugin`, unknown in `standalone`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::exports::edgestore::storage::spool as s;
use super::{admin, data_root, driver, track, types, Component};
use crate::dir::{PathDir, WithCapacity};
use crate::error::{Error, Result};
use crate::layout::check_spool_path;
use crate::spool::compress::Compressor;
use crate::spool::{
    document_metric, documents, Counts, Document, EraseFilter, PurgeReport, RangeReader,
    SegmentInfo, SegmentReader, SegmentState, Spool, SpoolConfig, SpoolKeys, SyncPolicy, TimeRange,
    Usage,
};
use crate::{Metric, SystemClock};

impl s::Guest for Component {
    type Spool = SpoolRes;
    type Reader = ReaderRes;
}

/// The `spool` resource.
pub struct SpoolRes {
    inner: Rc<Spool<Document>>,
}

/// The `reader` resource: one segment or a time range.
pub struct ReaderRes {
    inner: RefCell<Reader>,
}

enum Reader {
    Segment(SegmentReader<Document>),
    Range(RangeReader<Document>),
}

impl Reader {
    fn next(&mut self, max: u32) -> Result<Vec<Document>> {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        match self {
            Reader::Segment(r) => r.next(max),
            Reader::Range(r) => r.next(max),
        }
    }
}

fn config_from_wit(c: &s::Config) -> SpoolConfig {
    SpoolConfig {
        identifier: c.identifier.clone(),
        compression_level: c.compression_level,
        max_records: c.max_records,
        max_interval: Duration::from_millis(c.max_interval_ms),
        sync_policy: match c.sync_policy {
            s::SyncPolicy::OnFlush => SyncPolicy::OnFlush,
            s::SyncPolicy::EveryRows(n) => SyncPolicy::EveryRows(n),
            s::SyncPolicy::EveryMillis(ms) => SyncPolicy::EveryMillis(ms),
        },
        retention: Duration::from_millis(c.retention_ms),
        max_bytes: c.max_bytes,
        drop_pending_over_cap: c.drop_pending_over_cap,
        keys: SpoolKeys {
            recipients: c.recipients.clone(),
            identities: c.identities.clone(),
        },
        // `open_spool` sets the world's.
        compressor: Compressor::local(),
    }
}

fn metric_from_wit(m: s::Metric) -> Metric {
    Metric {
        cloud_account_id: m.cloud_account_id,
        cluster_name: m.cluster_name,
        created_at: m.created_at,
        id: m.id,
        labels: m.labels.into_iter().collect::<BTreeMap<_, _>>(),
        metric_name: m.metric_name,
        node_name: m.node_name,
        timestamp: m.timestamp,
        value: m.value,
    }
}

fn metric_to_wit(m: Metric) -> s::Metric {
    s::Metric {
        cloud_account_id: m.cloud_account_id,
        cluster_name: m.cluster_name,
        created_at: m.created_at,
        id: m.id,
        labels: m.labels.into_iter().collect(),
        metric_name: m.metric_name,
        node_name: m.node_name,
        timestamp: m.timestamp,
        value: m.value,
    }
}

fn range_from_wit(r: s::TimeRange) -> TimeRange {
    TimeRange {
        from_ms: r.from_ms,
        to_ms: r.to_ms,
    }
}

fn counts(c: Counts) -> s::Counts {
    s::Counts {
        files: c.files,
        bytes: c.bytes,
    }
}

fn usage_to_wit(u: Usage) -> s::Usage {
    s::Usage {
        pending: counts(u.pending),
        uploaded: counts(u.uploaded),
        quarantined: counts(u.quarantined),
        journals: counts(u.journals),
        capacity: u.capacity.map(|c| types::Capacity {
            total_bytes: c.total,
            available_bytes: c.available,
        }),
    }
}

fn segment_to_wit(i: SegmentInfo) -> s::SegmentInfo {
    s::SegmentInfo {
        name: i.name,
        identifier: i.identifier,
        start_ms: i.start_ms,
        stop_ms: i.stop_ms,
        rows: i.rows,
        bytes: i.bytes,
        state: match i.state {
            SegmentState::Pending => s::SegmentState::Pending,
            SegmentState::Uploaded => s::SegmentState::Uploaded,
        },
    }
}

fn purge_to_wit(p: PurgeReport) -> s::PurgeReport {
    s::PurgeReport {
        expired: p.expired,
        dropped_uploaded: p.dropped_uploaded,
        dropped_pending: p.dropped_pending,
        bytes_freed: p.bytes_freed,
    }
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The spool directory `path` under the data directory, checked by the core's spool-path rule
/// ([`check_spool_path`]: relative, not empty, no `..`, no empty or `.` components), so it is
/// always a directory strictly inside the data directory.
pub(super) fn spool_root(path: &str) -> Result<String> {
    check_spool_path(path)?;
    Ok(format!("{}/{path}", data_root()))
}

/// Open the spool in `path` (relative to the data directory) on the world's capacity source.
/// The `spool` export and the standalone command entry point both open spools here.
pub(super) fn open_spool(path: &str, mut config: SpoolConfig) -> Result<Spool<Document>> {
    config.compressor = driver::compressor();
    let root = spool_root(path)?;
    let dir =
        PathDir::open(&root).map_err(|e| Error::io(format!("open spool directory {root}"), e))?;
    let dir = Arc::new(WithCapacity::new(dir, driver::capacity));
    Spool::open(dir, config, Arc::new(SystemClock))
}

/// Inspect the spool in `path` read-only ([`Spool::inspect`]): no recovery, nothing created
/// (a missing directory is `not-found`) or written. The `spool.inspect` export and the
/// standalone command's inspection commands both open spools here.
pub(super) fn inspect_spool(path: &str, config: SpoolConfig) -> Result<Spool<Document>> {
    let root = spool_root(path)?;
    let dir = PathDir::open_existing(&root)
        .map_err(|e| Error::io(format!("open spool directory {root}"), e))?;
    let dir = Arc::new(WithCapacity::new(dir, driver::capacity));
    Spool::inspect(dir, config, Arc::new(SystemClock))
}

impl s::GuestSpool for SpoolRes {
    fn open(config: s::Config) -> std::result::Result<s::Spool, types::Error> {
        track("spool.open", || {
            let inner = Rc::new(open_spool(&config.path, config_from_wit(&config))?);
            admin::register_spool(&inner);
            Ok(s::Spool::new(SpoolRes { inner }))
        })
    }

    fn inspect(config: s::Config) -> std::result::Result<s::Spool, types::Error> {
        track("spool.inspect", || {
            let inner = Rc::new(inspect_spool(&config.path, config_from_wit(&config))?);
            admin::register_spool(&inner);
            Ok(s::Spool::new(SpoolRes { inner }))
        })
    }

    fn put(&self, rows: Vec<s::Metric>) -> std::result::Result<(), types::Error> {
        track("spool.put", || {
            let rows: Vec<Metric> = rows.into_iter().map(metric_from_wit).collect();
            self.inner.put_serialized(&rows)
        })
    }

    fn put_documents(&self, docs: Vec<String>) -> std::result::Result<(), types::Error> {
        track("spool.put-documents", || self.inner.put(&documents(docs)?))
    }

    fn put_lines(&self, lines: Vec<u8>) -> std::result::Result<(), types::Error> {
        track("spool.put-lines", || self.inner.put_lines(&lines))
    }

    fn flush(&self) -> std::result::Result<(), types::Error> {
        track("spool.flush", || self.inner.flush())
    }

    fn flush_due(&self, now_ms: i64) -> std::result::Result<u32, types::Error> {
        track("spool.flush-due", || {
            self.inner.flush_due(now_ms).map(count_u32)
        })
    }

    fn sync(&self) -> std::result::Result<(), types::Error> {
        track("spool.sync", || self.inner.sync())
    }

    fn pending(&self) -> u64 {
        self.inner.pending()
    }

    fn segments(
        &self,
        range: s::TimeRange,
    ) -> std::result::Result<Vec<s::SegmentInfo>, types::Error> {
        track("spool.segments", || {
            let list = self.inner.segments(range_from_wit(range))?;
            Ok(list.into_iter().map(segment_to_wit).collect())
        })
    }

    fn read_segment(&self, name: String) -> std::result::Result<s::Reader, types::Error> {
        track("spool.read-segment", || {
            let reader = Reader::Segment(self.inner.read_segment(&name)?);
            Ok(s::Reader::new(ReaderRes {
                inner: RefCell::new(reader),
            }))
        })
    }

    fn read_range(&self, range: s::TimeRange) -> std::result::Result<s::Reader, types::Error> {
        track("spool.read-range", || {
            let reader = Reader::Range(self.inner.read_range(range_from_wit(range))?);
            Ok(s::Reader::new(ReaderRes {
                inner: RefCell::new(reader),
            }))
        })
    }

    fn mark_uploaded(&self, names: Vec<String>) -> std::result::Result<u32, types::Error> {
        track("spool.mark-uploaded", || {
            self.inner.mark_uploaded(&names).map(count_u32)
        })
    }

    fn purge(&self) -> std::result::Result<s::PurgeReport, types::Error> {
        track("spool.purge", || self.inner.purge().map(purge_to_wit))
    }

    fn erase(
        &self,
        label: String,
        value: String,
    ) -> std::result::Result<s::EraseReport, types::Error> {
        track("spool.erase", || {
            let r = self.inner.erase(&EraseFilter { label, value })?;
            Ok(s::EraseReport {
                checked: r.checked,
                rows_erased: r.rows_erased,
                rewritten: r.rewritten,
                removed: r.removed,
                quarantined_untouched: r.quarantined_untouched,
            })
        })
    }

    fn usage(&self) -> std::result::Result<s::Usage, types::Error> {
        track("spool.usage", || self.inner.usage().map(usage_to_wit))
    }

    fn verify(&self) -> std::result::Result<s::VerifyReport, types::Error> {
        track("spool.verify", || {
            let v = self.inner.verify()?;
            Ok(s::VerifyReport {
                checked: v.checked,
                quarantined: v.quarantined,
                left_in_place: v.left_in_place,
            })
        })
    }

    fn journal_rows(&self) -> std::result::Result<u64, types::Error> {
        track("spool.journal-rows", || self.inner.journal_rows())
    }
}

impl s::GuestReader for ReaderRes {
    fn next_metrics(&self, max: u32) -> std::result::Result<Vec<s::Metric>, types::Error> {
        track("reader.next-metrics", || {
            let docs = self.inner.borrow_mut().next(max)?;
            docs.iter()
                .map(|d| document_metric(d).map(metric_to_wit))
                .collect()
        })
    }

    fn next_documents(&self, max: u32) -> std::result::Result<Vec<String>, types::Error> {
        track("reader.next-documents", || {
            let docs = self.inner.borrow_mut().next(max)?;
            Ok(docs
                .into_iter()
                .map(|d| String::from(Box::<str>::from(d)))
                .collect())
        })
    }
}
