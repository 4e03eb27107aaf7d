//! [`AsyncSpool`] and its streaming [`AsyncReader`] on a [`Store`].

use edgestore::spool::{EraseFilter, EraseReport, PurgeReport, SegmentInfo, Usage, VerifyReport};
use edgestore::{ErrorCode, Metric, TimeRange};
use tokio::sync::mpsc;

use super::{Job, Store};
use crate::backend::{on_spool, ReadFrom};
use crate::error::Result;

/// An open spool of metrics and JSON documents.
#[derive(Clone, Debug)]
pub struct AsyncSpool {
    pub(super) store: Store,
    pub(super) id: u64,
    pub(super) max_records: u64,
    pub(super) identifier: String,
}

impl AsyncSpool {
    async fn on<R: Send + 'static>(
        &self,
        op: &'static str,
        f: impl Fn(&dyn crate::backend::DynSpool) -> edgestore::Result<R> + Send + Sync + 'static,
    ) -> Result<R> {
        let id = self.id;
        self.store.call(op, move |b| on_spool(b, id, &f)).await
    }

    /// Segments finished while `finished_rows` rows left the pending count: rotation happens
    /// at `max_records`, so this is exact unless an interval rotation split a segment early.
    fn count_segments(&self, finished_rows: u64) {
        self.store
            .metrics()
            .spool_segments(finished_rows.div_ceil(self.max_records));
    }

    /// The audit line of a mutation of this spool (its identifier is the target).
    fn audit<R>(&self, op: &str, count: impl FnOnce(&R) -> Option<u64>, out: &Result<R>) {
        self.store.audit_result(op, &self.identifier, count, out);
    }

    /// The identifier that names this spool's segments.
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// Rows in the journals on disk, not yet in finished segments: for an inspecting store,
    /// what the owner holds in its active journal (or a killed process left behind).
    pub async fn journal_rows(&self) -> Result<u64> {
        self.on("spool.journal_rows", |s| s.journal_rows()).await
    }

    /// Append metrics (one call for the whole batch).
    pub async fn put(&self, rows: Vec<Metric>) -> Result<()> {
        let n = rows.len() as u64;
        let out = self
            .on("spool.put", move |s| {
                let before = s.pending()?;
                s.put(&rows)?;
                Ok((before + n).saturating_sub(s.pending()?))
            })
            .await;
        self.audit("spool.put", |_| Some(n), &out);
        let finished = out?;
        self.store.metrics().spool_rows(n);
        self.count_segments(finished);
        Ok(())
    }
    /// Append JSON documents, each one JSON value as text, stored verbatim (a document that
    /// spans lines is compacted). The first malformed one fails the whole batch
    /// (`invalid-input` naming its position) and nothing of the batch is written.
    pub async fn put_documents(&self, docs: Vec<String>) -> Result<()> {
        let n = docs.len() as u64;
        // Cloned per attempt: the dispatch may retry a transient failure.
        let out = self
            .on("spool.put_documents", move |s| {
                s.put_documents(docs.clone())
            })
            .await;
        self.audit("spool.put_documents", |_| Some(n), &out);
        out?;
        self.store.metrics().spool_rows(n);
        Ok(())
    }
    /// Finish the active segment: every row put before is durable in a finished segment.
    ///
    /// A backlog larger than one call's time bound (a large journal a crash left, which the
    /// open splits into pieces) is finished over several calls: a call stopped by the bound
    /// keeps the segments it published, and the flush goes on as long as each call leaves
    /// fewer journal bytes than the one before.
    pub async fn flush(&self) -> Result<()> {
        let mut left: Option<u64> = None;
        let out = loop {
            let out = self
                .on("spool.flush", |s| {
                    let before = s.pending()?;
                    s.flush()?;
                    Ok(before.saturating_sub(s.pending()?))
                })
                .await;
            match &out {
                Err(e) if e.code() == ErrorCode::TimeLimit => {
                    let now = self.usage().await.map(|u| u.journals.bytes).ok();
                    let progressed = match (left, now) {
                        (_, None) => false,
                        (None, Some(_)) => true,
                        (Some(before), Some(now)) => now < before,
                    };
                    if progressed {
                        left = now;
                        continue;
                    }
                    break out;
                }
                _ => break out,
            }
        };
        self.audit("spool.flush", |rows| Some(*rows), &out);
        let finished = out?;
        self.count_segments(finished);
        Ok(())
    }
    /// Finish the active segment if its interval has passed at `now_ms`.
    pub async fn flush_due(&self, now_ms: i64) -> Result<u64> {
        let n = self
            .on("spool.flush_due", move |s| s.flush_due(now_ms))
            .await?;
        self.store.metrics().spool_segments(n);
        Ok(n)
    }
    /// Make the active segment's rows durable without finishing it.
    pub async fn sync(&self) -> Result<()> {
        self.on("spool.sync", |s| s.sync()).await
    }
    /// Rows not yet in a finished segment.
    pub async fn pending(&self) -> Result<u64> {
        self.on("spool.pending", |s| s.pending()).await
    }
    /// Finished segments overlapping `range`.
    pub async fn segments(&self, range: TimeRange) -> Result<Vec<SegmentInfo>> {
        self.on("spool.segments", move |s| s.segments(range)).await
    }
    /// Move segments to `uploaded/`; returns how many moved.
    pub async fn mark_uploaded(&self, names: Vec<String>) -> Result<u64> {
        let out = self
            .on("spool.mark_uploaded", move |s| s.mark_uploaded(&names))
            .await;
        self.audit("spool.ack", |moved| Some(*moved), &out);
        out
    }
    /// Apply retention and the byte cap.
    pub async fn purge(&self) -> Result<PurgeReport> {
        let out = self.on("spool.purge", |s| s.purge()).await;
        self.audit(
            "spool.purge",
            |r: &PurgeReport| {
                Some((r.expired.len() + r.dropped_uploaded.len() + r.dropped_pending.len()) as u64)
            },
            &out,
        );
        out
    }
    /// Finish the journals, then rewrite every finished segment without the rows matching
    /// `filter` (see [`edgestore::spool::EraseFilter`]); audited with the rows erased.
    pub async fn erase(&self, filter: EraseFilter) -> Result<EraseReport> {
        // The audit line names the label and a digest of the value, never the value: the
        // log must not keep what was erased.
        let target = format!(
            "{} {}=sha256:{}",
            self.identifier,
            filter.label,
            crate::digest::sha256_hex(filter.value.as_bytes())
        );
        let out = self.on("spool.erase", move |s| s.erase(&filter)).await;
        self.store.audit_result(
            "spool.erase",
            &target,
            |r: &EraseReport| Some(r.rows_erased),
            &out,
        );
        out
    }
    /// Bytes and files by state.
    pub async fn usage(&self) -> Result<Usage> {
        self.on("spool.usage", |s| s.usage()).await
    }
    /// Verify every finished segment; quarantine the bad ones.
    pub async fn verify(&self) -> Result<VerifyReport> {
        let out = self.on("spool.verify", |s| s.verify()).await;
        self.audit(
            "spool.verify",
            |r: &VerifyReport| Some(r.quarantined.len() as u64),
            &out,
        );
        out
    }
    /// Stream every pending segment overlapping `range`, oldest first.
    pub async fn read_range(&self, range: TimeRange) -> Result<AsyncReader> {
        self.reader(ReadFrom::Range(range)).await
    }
    /// Stream one finished segment.
    pub async fn read_segment(&self, name: &str) -> Result<AsyncReader> {
        self.reader(ReadFrom::Segment(name.to_owned())).await
    }
    async fn reader(&self, from: ReadFrom) -> Result<AsyncReader> {
        let spool = self.id;
        let id = self
            .store
            .call("reader.open", move |b| b.open_reader(spool, from.clone()))
            .await?;
        Ok(AsyncReader {
            store: self.store.clone(),
            id,
        })
    }
}

/// A streaming reader of metrics; closed when dropped.
#[derive(Debug)]
pub struct AsyncReader {
    store: Store,
    id: u64,
}

impl AsyncReader {
    /// Up to `max` next metrics; empty at the end.
    pub async fn next(&mut self, max: u32) -> Result<Vec<Metric>> {
        let id = self.id;
        self.store
            .call("reader.next", move |b| b.read(id, max))
            .await
    }

    /// Up to `max` next rows as the JSON text stored (a metric's canonical serialisation, a
    /// document's own bytes); empty at the end.
    pub async fn next_documents(&mut self, max: u32) -> Result<Vec<String>> {
        let id = self.id;
        self.store
            .call("reader.next_documents", move |b| b.read_documents(id, max))
            .await
    }

    /// Every remaining metric.
    pub async fn collect(mut self) -> Result<Vec<Metric>> {
        let mut all = Vec::new();
        loop {
            let batch = self.next(10_000).await?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }
}

impl Drop for AsyncReader {
    fn drop(&mut self) {
        let id = self.id;
        let job = Job::Run(Box::new(move |b| b.close_reader(id)));
        // A full queue: close it once there is room (a closed store dropped it already).
        if let Err(mpsc::error::TrySendError::Full(job)) = self.store.jobs.try_send(job) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let jobs = self.store.jobs.clone();
                rt.spawn(async move {
                    let _ = jobs.send(job).await;
                });
            }
        }
    }
}
