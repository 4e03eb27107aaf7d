//! `put`: serialise rows into checksummed journal lines, split a batch exactly at
//! `max_records`, and rotate. Writes go out in blocks of [`WRITE_CHUNK`] so a batch never needs
//! more than one block of buffer beyond the caller's rows.

use serde::Serialize;

use super::journal::encode_line;
use super::json_line;
use std::sync::atomic::Ordering;

use super::{document_lines, Document, Spool, Writer, DEFERRED_BACKLOG};
use crate::error::{Error, Result};

/// Write buffered rows out once this many bytes are pending inside one `put`.
const WRITE_CHUNK: usize = 256 << 10;

impl<R: Serialize> Spool<R> {
    /// Append rows. A batch that crosses `max_records` is split: the segment is finished at
    /// exactly `max_records` rows and the rest starts the next one.
    ///
    /// `Ok` means the rows are accepted (durable as the [`super::SyncPolicy`] says, and certainly
    /// after the next successful [`Spool::flush`]). On `Err` the rows after the last rotation
    /// inside this batch were not accepted (retrying them will not duplicate them in this
    /// process, nor in a later one: what the failed chunk left in the journal is cut off);
    /// rows before that rotation were. Only a crash between the failed write and that cut can
    /// bring rows of a failed `put` back: ids (`Metric::id`) let an uploader de-duplicate.
    ///
    /// On an inspecting spool ([`Spool::inspect`]) this is `PermissionDenied`.
    pub fn put(&self, rows: &[R]) -> Result<()> {
        self.shared.writable("put")?;
        self.put_rows(rows)
    }

    /// `put` of rows of any type, each written as its JSON (the `append` of `put`).
    fn put_rows<T: Serialize>(&self, rows: &[T]) -> Result<()> {
        let res = self.append(rows.len(), |i, json| {
            json_line::write_row(json, &rows[i])
                .map_err(|e| Error::invalid_input(format!("row does not serialize: {e}")))
        });
        self.help_finish();
        res
    }

    /// `put` under the writer lock, of `count` rows whose JSON `write_row(i, buffer)` appends
    /// (one line, without its newline).
    fn append(
        &self,
        count: usize,
        mut write_row: impl FnMut(usize, &mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let mut w = self.writer();
        let now = self.shared.clock.now_ms();
        let max = self.shared.config.max_records;
        if let Some(a) = &w.active {
            if now.saturating_sub(a.journal.start_ms) >= self.shared.config.max_interval_ms() {
                self.rotate(&mut w);
            }
        }
        let mut next = 0;
        // Lines go out in chunks of about WRITE_CHUNK: room for a chunk (or the whole put,
        // when smaller) of lines as long as the last journals', so it is not regrown per put.
        let line = w.kept.line_bytes().min(1 << 16);
        let mut buf = Vec::with_capacity(count.saturating_mul(line).min(WRITE_CHUNK) + line);
        let mut json = Vec::with_capacity(line);
        while next < count {
            if w.active.is_none() {
                let kept = w.kept;
                w.active = Some(self.open_journal(now, kept)?);
            }
            let Some(a) = w.active.as_mut() else {
                return Err(Error::internal("no active journal after opening one"));
            };
            let room = usize::try_from(max - a.rows).unwrap_or(usize::MAX);
            let chunk = next..next + room.min(count - next);
            let chunk_start = a.committed;
            buf.clear();
            let mut written = 0u64;
            let mut failure = None;
            let mut io_failed = false;
            for i in chunk.clone() {
                json.clear();
                if let Err(e) = write_row(i, &mut json) {
                    failure = Some(e);
                    break;
                }
                encode_line(&json, &mut buf);
                if a.memory.as_mut().is_some_and(|m| !m.push(&json)) {
                    a.memory = None;
                }
                if buf.len() >= WRITE_CHUNK {
                    if let Err(e) = a.file.write_all(&buf) {
                        io_failed = true;
                        failure =
                            Some(Error::io(format!("append to {}", a.journal.file_name()), e));
                        break;
                    }
                    written += buf.len() as u64;
                    buf.clear();
                }
            }
            if failure.is_none() && !buf.is_empty() {
                match a.file.write_all(&buf) {
                    Ok(()) => written += buf.len() as u64,
                    Err(e) => {
                        io_failed = true;
                        failure = Some(Error::io(format!("append to {}", a.journal.file_name()), e))
                    }
                }
            }
            if let Some(err) = failure {
                if written > 0 || io_failed {
                    // Part of the chunk may be in the file: stop using it, keep only what was
                    // accepted before this chunk.
                    self.seal_active(&mut w, Some(chunk_start));
                }
                return Err(err);
            }
            a.committed += written;
            a.rows += chunk.len() as u64;
            a.unsynced_rows += chunk.len() as u64;
            next = chunk.end;
            if a.rows >= max {
                self.rotate(&mut w);
            } else if self.sync_due(a, now) {
                if let Err(e) = self.sync_file(a) {
                    // This chunk is not acknowledged: seal the journal without it.
                    a.rows -= chunk.len() as u64;
                    self.seal_active(&mut w, Some(chunk_start));
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Seal and finish at a rotation point. Failure to finish is deferred: the rows are
    /// accepted and safe in the sealed journal, and `flush`/`flush_due` retry. With deferred
    /// finishing only seal; `put` helps once the backlog grows (see `help_finish`).
    fn rotate(&self, w: &mut Writer) {
        if self.deferred.load(Ordering::Relaxed) {
            return self.seal_active(w, None);
        }
        self.seal_to_finish(w);
        // Within the budget: a backlog left by recovery is not all finished inside one put.
        if self
            .finish_sealed_within(w, Some(super::FINISH_BUDGET_MS))
            .is_err()
        {
            self.shared.note(|s| s.deferred_errors += 1);
        }
    }

    /// Deferred finishing: after the writer lock is released, finish sealed journals while
    /// more than [`DEFERRED_BACKLOG`] wait. Failures are deferred like rotation's.
    fn help_finish(&self) {
        while self.deferred.load(Ordering::Relaxed) && self.sealed_waiting() > DEFERRED_BACKLOG {
            match self.finish_next() {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => {
                    self.shared.note(|s| s.deferred_errors += 1);
                    break;
                }
            }
        }
    }
}

impl Spool<Document> {
    /// Append typed rows (metrics, say) as documents: each written straight into the journal
    /// as the JSON `serde_json::to_string` makes of it, which is what `put` of their
    /// documents ([`super::metric_document`]) writes, without a document allocated per row.
    pub fn put_serialized<T: Serialize>(&self, rows: &[T]) -> Result<()> {
        self.shared.writable("put")?;
        self.put_rows(rows)
    }

    /// Append a batch given as one buffer of JSON documents, one per line (see
    /// [`document_lines`]): the same journal lines `put` of those documents writes, without a
    /// string or a document per row. Every line is validated first, so a malformed one refuses
    /// the whole batch and nothing of it is written; otherwise as [`Spool::put`].
    pub fn put_lines(&self, lines: &[u8]) -> Result<()> {
        self.shared.writable("put")?;
        let docs = document_lines(lines)?;
        let res = self.append(docs.len(), |i, json| {
            json.extend_from_slice(docs[i].as_bytes());
            Ok(())
        });
        self.help_finish();
        res
    }
}
