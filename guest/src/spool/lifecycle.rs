//! Listing, upload marks, retention and usage: everything that looks at finished segments as
//! files. Listing and time filtering work from names alone; only row counts come from sidecars.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::name::{
    join, sidecar_name, JournalName, SegmentName, TimeRange, QUARANTINE_DIR, SIDECAR_SUFFIX,
    TMP_SUFFIX, UPLOADED_DIR,
};
use super::place::{list_dir, locate, move_segment, quarantine};
use super::reader::{brotli_stream, open_verified, RangeReader, SegmentReader};
use super::segment::{read_sidecar, verify_file};
use super::{Shared, Spool};
use crate::dir::Capacity;
use crate::error::{Error, ErrorCode, Result};

/// Where a finished segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentState {
    /// In the root, waiting to be uploaded.
    Pending,
    /// In `uploaded/`, kept until retention or the byte cap removes it.
    Uploaded,
}

/// A finished segment as listed by [`Spool::segments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// File name.
    pub name: String,
    /// Spool identifier from the name.
    pub identifier: String,
    /// First row's time (ms) from the name.
    pub start_ms: i64,
    /// Finish time (ms) from the name.
    pub stop_ms: i64,
    /// Rows, from the sidecar (`None` for a segment without one).
    pub rows: Option<u64>,
    /// Size on disk.
    pub bytes: u64,
    /// Pending or uploaded.
    pub state: SegmentState,
}

/// Files and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Number of files.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

impl Counts {
    fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }
}

/// What the spool holds on disk, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Finished segments waiting for upload (with their sidecars).
    pub pending: Counts,
    /// Uploaded segments (with their sidecars).
    pub uploaded: Counts,
    /// Quarantined segments and journals.
    pub quarantined: Counts,
    /// Journals and temporaries: rows not yet in a finished segment.
    pub journals: Counts,
    /// Capacity of the file system, where the platform reports it (natively via statvfs; the
    /// component's host supplies it).
    pub capacity: Option<Capacity>,
}

impl Usage {
    /// Every byte the spool holds.
    pub fn total_bytes(&self) -> u64 {
        self.pending.bytes + self.uploaded.bytes + self.quarantined.bytes + self.journals.bytes
    }
}

/// What [`Spool::purge`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Uploaded segments older than the retention age.
    pub expired: Vec<String>,
    /// Uploaded segments dropped, oldest first, to get under `max_bytes`.
    pub dropped_uploaded: Vec<String>,
    /// Pending (never uploaded) segments dropped to get under `max_bytes`, when allowed.
    pub dropped_pending: Vec<String>,
    /// Bytes freed.
    pub bytes_freed: u64,
}

/// What [`Spool::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments checked.
    pub checked: u64,
    /// Segments that failed and were quarantined.
    pub quarantined: Vec<String>,
    /// Segments that failed but were left where they are because the spool is open for
    /// inspection ([`Spool::inspect`]): the data directory's owner quarantines them. Always
    /// empty on an owner's spool.
    pub left_in_place: Vec<String>,
}

impl VerifyReport {
    /// Segments that failed, whether quarantined or left in place.
    pub fn bad(&self) -> u64 {
        (self.quarantined.len() + self.left_in_place.len()) as u64
    }
}

fn list_segments(shared: &Shared, range: &TimeRange, with_rows: bool) -> Result<Vec<SegmentInfo>> {
    let mut out = Vec::new();
    for (sub, state) in [
        ("", SegmentState::Pending),
        (UPLOADED_DIR, SegmentState::Uploaded),
    ] {
        let listed = list_dir(shared, sub)?;
        for e in listed.iter().filter(|e| !e.is_dir) {
            let Some(seg) = SegmentName::parse(&e.name) else {
                continue;
            };
            if !seg.overlaps(range) {
                continue;
            }
            let rows = if with_rows {
                read_sidecar(&*shared.dir, &join(sub, &sidecar_name(&e.name)))
                    .ok()
                    .flatten()
                    .map(|s| s.rows)
            } else {
                None
            };
            out.push(SegmentInfo {
                name: e.name.clone(),
                identifier: seg.identifier,
                start_ms: seg.start_ms,
                stop_ms: seg.stop_ms,
                rows,
                bytes: e.len,
                state,
            });
        }
    }
    out.sort_by(|a, b| (a.start_ms, a.stop_ms, &a.name).cmp(&(b.start_ms, b.stop_ms, &b.name)));
    // A segment moved to `uploaded/` between the two listings (by another thread, or by the
    // owner beside an inspector) is in both: it is listed once, as uploaded. Listing the root
    // first means a moving segment is seen twice rather than missed.
    out.dedup_by(|later, kept| {
        if later.name != kept.name {
            return false;
        }
        kept.state = SegmentState::Uploaded;
        kept.rows = kept.rows.or(later.rows);
        true
    });
    Ok(out)
}

impl<R> Spool<R> {
    /// Finished segments (pending and uploaded) overlapping `range`, oldest first. The filter
    /// uses names only; row counts come from the sidecars of the segments that match.
    pub fn segments(&self, range: TimeRange) -> Result<Vec<SegmentInfo>> {
        list_segments(&self.shared, &range, true)
    }

    /// Move segments to `uploaded/` (and fsync both directories). Every name is validated
    /// first: a name that is not a segment name (separators, `..`, absolute) is
    /// `InvalidInput` and nothing moves. Already-uploaded names are accepted; unknown names are
    /// `NotFound`. Returns how many segments moved. `PermissionDenied` on an inspecting spool.
    pub fn mark_uploaded<S: AsRef<str>>(&self, names: &[S]) -> Result<usize> {
        self.shared.writable("mark_uploaded")?;
        for n in names {
            SegmentName::parse_user(n.as_ref())?;
        }
        let _lifecycle = self.shared.lifecycle();
        let mut moved = 0;
        for n in names {
            let name = n.as_ref();
            if locate(&self.shared, name)?.is_empty() {
                move_segment(&self.shared, "", UPLOADED_DIR, name)
                    .map_err(|e| Error::io(format!("mark {name} uploaded"), e))?;
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Delete uploaded segments whose stop time is older than the retention age; then, while
    /// usage exceeds `max_bytes`, drop the oldest uploaded segments, and (only if
    /// `drop_pending_over_cap`) the oldest pending ones. Quarantined files are never dropped
    /// automatically: they are evidence for an operator. `PermissionDenied` on an inspecting
    /// spool.
    pub fn purge(&self) -> Result<PurgeReport> {
        self.shared.writable("purge")?;
        let _lifecycle = self.shared.lifecycle();
        let cfg = &self.shared.config;
        let now = self.shared.clock.now_ms();
        let retention = i64::try_from(cfg.retention.as_millis()).unwrap_or(i64::MAX);
        let mut report = PurgeReport::default();
        let segs = list_segments(&self.shared, &TimeRange::all(), false)?;
        let mut usage = self.usage()?.total_bytes();
        let mut kept = Vec::new();
        for s in segs {
            if s.state == SegmentState::Uploaded && now.saturating_sub(s.stop_ms) > retention {
                usage = usage.saturating_sub(self.remove_segment(UPLOADED_DIR, &s)?);
                report.bytes_freed += s.bytes;
                report.expired.push(s.name);
            } else {
                kept.push(s);
            }
        }
        if let Some(cap) = cfg.max_bytes {
            let mut order: Vec<&SegmentInfo> = kept
                .iter()
                .filter(|s| s.state == SegmentState::Uploaded)
                .collect();
            if cfg.drop_pending_over_cap {
                order.extend(kept.iter().filter(|s| s.state == SegmentState::Pending));
            }
            for s in order {
                if usage <= cap {
                    break;
                }
                let sub = if s.state == SegmentState::Uploaded {
                    UPLOADED_DIR
                } else {
                    ""
                };
                let freed = self.remove_segment(sub, s)?;
                usage = usage.saturating_sub(freed);
                report.bytes_freed += freed;
                match s.state {
                    SegmentState::Uploaded => report.dropped_uploaded.push(s.name.clone()),
                    SegmentState::Pending => report.dropped_pending.push(s.name.clone()),
                }
            }
        }
        Ok(report)
    }

    /// Remove a segment then its sidecar (an orphan sidecar is cleaned on open); returns the
    /// bytes freed.
    fn remove_segment(&self, sub: &str, s: &SegmentInfo) -> Result<u64> {
        let dir = &*self.shared.dir;
        let sum = join(sub, &sidecar_name(&s.name));
        let sum_len = dir
            .list(sub)
            .ok()
            .and_then(|l| {
                l.into_iter()
                    .find(|e| join(sub, &e.name) == sum)
                    .map(|e| e.len)
            })
            .unwrap_or(0);
        let res = dir
            .remove(&join(sub, &s.name))
            .and_then(|_| match dir.remove(&sum) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => dir.sync_dir(sub),
            });
        match res {
            Ok(()) => Ok(s.bytes + sum_len),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io(format!("purge {}", s.name), e)),
        }
    }

    /// Bytes and files by state, plus the file system's capacity where reported. Files that
    /// vanish while they are listed (finished, moved or purged meanwhile) are not counted.
    pub fn usage(&self) -> Result<Usage> {
        let dir = &*self.shared.dir;
        let mut u = Usage::default();
        let list = |sub: &str| list_dir(&self.shared, sub);
        let segment_file =
            |n: &str| SegmentName::parse(n.strip_suffix(SIDECAR_SUFFIX).unwrap_or(n)).is_some();
        for e in list("")?.iter().filter(|e| !e.is_dir) {
            if segment_file(&e.name) {
                u.pending.add(e.len);
            } else if JournalName::parse(&e.name).is_some()
                || (e.name.starts_with('.') && e.name.ends_with(TMP_SUFFIX))
            {
                // Journals and segments being written; not other dot-files (an owner's lock
                // file or socket when the spool is the data directory itself).
                u.journals.add(e.len);
            }
        }
        for e in list(UPLOADED_DIR)?.iter().filter(|e| !e.is_dir) {
            u.uploaded.add(e.len);
        }
        for e in list(QUARANTINE_DIR)?.iter().filter(|e| !e.is_dir) {
            u.quarantined.add(e.len);
        }
        u.capacity = dir
            .capacity()
            .map_err(|e| Error::io("file system capacity", e))?;
        Ok(u)
    }

    /// Verify every finished segment against its sidecar (or, without one, by decoding it);
    /// failures move to `quarantine/`. On an inspecting spool nothing moves: failures are
    /// reported in [`VerifyReport::left_in_place`] for the owner to quarantine.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for s in list_segments(&self.shared, &TimeRange::all(), false)? {
            let sub = if s.state == SegmentState::Uploaded {
                UPLOADED_DIR
            } else {
                ""
            };
            let dir = &*self.shared.dir;
            let path = join(sub, &s.name);
            report.checked += 1;
            let io_err = |e: io::Error| Error::io(format!("verify {}", s.name), e);
            let ok = match read_sidecar(dir, &join(sub, &sidecar_name(&s.name))) {
                Ok(Some(sc)) => match verify_file(dir, &path, &sc) {
                    Ok(ok) => ok,
                    // Moved or purged meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(e)),
                },
                Ok(None) => match decodes(&self.shared, &path, &s.name) {
                    Ok(ok) => ok,
                    Err(e) if e.code() == ErrorCode::NotFound => continue,
                    Err(e) => return Err(e),
                },
                Err(e) if e.kind() == io::ErrorKind::InvalidData => false,
                Err(e) => return Err(io_err(e)),
            };
            if !ok {
                quarantine(&self.shared, sub, &s.name)?;
                if self.shared.read_only {
                    report.left_in_place.push(s.name);
                } else {
                    report.quarantined.push(s.name);
                }
            }
        }
        Ok(report)
    }

    /// Journals still waiting to be finished, by name (for diagnostics).
    pub fn journals(&self) -> Result<Vec<String>> {
        let listed = list_dir(&self.shared, "")?;
        Ok(listed
            .into_iter()
            .filter(|e| JournalName::parse(&e.name).is_some())
            .map(|e| e.name)
            .collect())
    }
}

/// Decode a whole segment: `Ok(false)` if it is corrupt, `Err` for I/O failures.
fn decodes(shared: &Shared, path: &str, name: &str) -> Result<bool> {
    let file = shared
        .dir
        .open_read(path)
        .map_err(|e| Error::io(format!("open {name}"), e))?;
    let file = match SegmentName::parse(name) {
        Some(seg) => match brotli_stream(shared, &seg, file, &[]) {
            Ok(file) => file,
            Err(e) if e.code() == ErrorCode::Corrupt => return Ok(false),
            Err(e) => return Err(e),
        },
        None => file,
    };
    let mut r = SegmentReader::<serde::de::IgnoredAny>::new(name.to_string(), file);
    loop {
        match r.next(1024) {
            Ok(rows) if rows.is_empty() => return Ok(true),
            Ok(_) => {}
            Err(e) if e.code() == ErrorCode::Corrupt => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

impl<R: DeserializeOwned> Spool<R> {
    /// Stream one finished segment (pending or uploaded), verified against its sidecar first.
    /// A segment that fails verification is quarantined (left in place on an inspecting
    /// spool) and the call is `Corrupt`.
    pub fn read_segment(&self, name: &str) -> Result<SegmentReader<R>> {
        let seg = SegmentName::parse_user(name)?;
        open_verified(&self.shared, &seg)
    }

    /// Stream every finished segment (pending and uploaded) overlapping `range`, oldest first.
    pub fn read_range(&self, range: TimeRange) -> Result<RangeReader<R>> {
        let queue: VecDeque<SegmentName> = list_segments(&self.shared, &range, false)?
            .into_iter()
            .filter_map(|s| SegmentName::parse(&s.name))
            .collect();
        Ok(RangeReader::new(Arc::clone(&self.shared), queue))
    }
}
