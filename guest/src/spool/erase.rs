//! Per-subject erasure: rewrite finished segments without the rows that match a label, so
//! that no segment on this device holds them any more (a request to erase someone's data).
//!
//! Every journal is finished first, so rows not yet in a segment are covered too. A segment
//! with matching rows is rewritten in place, crash-safe:
//!
//! 1. the kept rows are written to `.<segment>.tmp` in the spool root and `fsync`ed (as
//!    finishing does; recovery removes a leftover);
//! 2. the new sidecar is written to `.<segment>.sum.new` in the root, `fsync`ed, root synced;
//! 3. the temporary is renamed over the segment (in the root or `uploaded/`), synced;
//! 4. `.<segment>.sum.new` is renamed over the sidecar, synced.
//!
//! A crash before 3 leaves the old segment and sidecar (recovery drops the leftovers); after 3
//! the new segment matches `.sum.new`, which recovery (and a reader meanwhile) takes as the
//! sidecar. A segment whose rows all match is removed with its sidecar. Quarantined files
//! are evidence and are not rewritten (counted in the report). Copies that already left the
//! device (shipped objects, backups) are not touched: erasure there is the target's business.

use std::io;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::name::{
    join, new_sidecar_name, sidecar_name, tmp_name, SegmentName, QUARANTINE_DIR, UPLOADED_DIR,
};
use super::place::{list_dir, locate};
use super::reader::open_verified;
use super::segment::{write_sidecar, SegmentWriter, Sidecar, SIDECAR_FORMAT};
use super::{Shared, Spool};
use crate::error::{Error, ErrorCode, Result};

/// Which rows [`Spool::erase`] removes: those whose `labels` object has `label` equal to
/// `value`, or whose top-level field `label` is `value` (strings compared exactly; a number
/// or boolean by its JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraseFilter {
    /// The label (or top-level field) name.
    pub label: String,
    /// The value a row must have there to be erased.
    pub value: String,
}

impl EraseFilter {
    /// Parse `label=value`; `InvalidInput` without a `=` or with an empty label.
    pub fn parse(text: &str) -> Result<EraseFilter> {
        match text.split_once('=') {
            Some((label, value)) if !label.is_empty() => Ok(EraseFilter {
                label: label.to_string(),
                value: value.to_string(),
            }),
            _ => Err(Error::invalid_input(format!(
                "erase: {text:?} is not label=value"
            ))),
        }
    }

    fn matches(&self, row: &serde_json::Value) -> bool {
        let same = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => *s == self.value,
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                serde_json::from_str::<serde_json::Value>(&self.value).is_ok_and(|x| x == *v)
            }
            _ => false,
        };
        row.get("labels")
            .and_then(|l| l.get(&self.label))
            .is_some_and(same)
            || row.get(&self.label).is_some_and(same)
    }
}

/// What [`Spool::erase`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EraseReport {
    /// Segments read (pending and uploaded).
    pub checked: u64,
    /// Rows removed.
    pub rows_erased: u64,
    /// Segments rewritten without the matching rows.
    pub rewritten: Vec<String>,
    /// Segments removed because every row matched.
    pub removed: Vec<String>,
    /// Files in `quarantine/`, not rewritten (they may still hold matching rows).
    pub quarantined_untouched: u64,
}

impl<R> Spool<R> {
    /// Remove every row matching `filter` from this spool's finished segments (pending and
    /// uploaded), after finishing the journals (see the module docs for the protocol). A
    /// segment that fails verification is quarantined, as reading does, and the others are
    /// still erased.
    /// `PermissionDenied` on an inspecting spool; `KeyMissing` when an encrypted segment
    /// cannot be read or written again with the configured keys.
    pub fn erase(&self, filter: &EraseFilter) -> Result<EraseReport> {
        self.shared.writable("erase")?;
        self.flush()?;
        let _lifecycle = self.shared.lifecycle();
        let shared = &*self.shared;
        let mut report = EraseReport::default();
        for sub in ["", UPLOADED_DIR] {
            let mut names: Vec<SegmentName> = list_dir(shared, sub)?
                .into_iter()
                .filter_map(|e| SegmentName::parse(&e.name))
                .collect();
            names.sort();
            for seg in names {
                report.checked += 1;
                match erase_in(shared, &seg, filter, &mut report) {
                    Ok(()) => {}
                    // Failed verification: it was quarantined (counted below), and the rest
                    // are still erased.
                    Err(e) if e.code() == ErrorCode::Corrupt => {}
                    Err(e) => return Err(e),
                }
            }
        }
        report.quarantined_untouched = list_dir(shared, QUARANTINE_DIR)?
            .iter()
            .filter(|e| !e.is_dir)
            .count() as u64;
        Ok(report)
    }
}

/// Rewrite one segment without the rows matching `filter`, if it has any.
fn erase_in(
    shared: &Shared,
    seg: &SegmentName,
    filter: &EraseFilter,
    report: &mut EraseReport,
) -> Result<()> {
    let name = seg.file_name();
    // First pass: does anything match? (Most segments are left alone, unwritten.)
    let mut reader = open_verified::<Box<RawValue>>(shared, seg)?;
    let mut matching = 0u64;
    let mut total = 0u64;
    loop {
        let rows = reader.next(1024)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            total += 1;
            if row_matches(filter, row, &name)? {
                matching += 1;
            }
        }
    }
    if matching == 0 {
        return Ok(());
    }
    if seg.encrypted && !shared.cipher.encrypts() {
        return Err(Error::new(
            ErrorCode::KeyMissing,
            format!(
                "erase: segment {name} is encrypted and the spool has no age recipient to \
                 encrypt its rewrite to"
            ),
        ));
    }
    let dir = &*shared.dir;
    let sub = locate(shared, &name)?;
    let path = join(sub, &name);
    let sum = join(sub, &sidecar_name(&name));
    let io_err = |what: &str| {
        let what = format!("erase: {what} {name}");
        move |e: io::Error| Error::io(what, e)
    };
    report.rows_erased += matching;
    if matching == total {
        dir.remove(&path).map_err(io_err("remove"))?;
        match dir.remove(&sum) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove")(e)),
            _ => {}
        }
        dir.sync_dir(sub).map_err(io_err("sync after removing"))?;
        report.removed.push(name);
        return Ok(());
    }
    // Second pass: write the kept rows.
    let tmp = tmp_name(&name);
    let size = dir
        .list(sub)
        .ok()
        .and_then(|l| l.into_iter().find(|e| e.name == name).map(|e| e.len * 8))
        .unwrap_or(0);
    let compression = (&shared.config.compressor, shared.config.compression_level);
    let write = || -> Result<super::segment::Compressed> {
        let mut out =
            SegmentWriter::create(dir, &tmp, compression, size, &shared.cipher, seg.encrypted)
                .map_err(|e| Error::own_file_io(format!("erase: write {tmp}"), e))?;
        let mut reader = open_verified::<Box<RawValue>>(shared, seg)?;
        loop {
            let rows = reader.next(1024)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                if !row_matches(filter, row, &name)? {
                    out.push(row.get().as_bytes())
                        .map_err(|e| Error::own_file_io(format!("erase: write {tmp}"), e))?;
                }
            }
        }
        out.finish()
            .map_err(|e| Error::own_file_io(format!("erase: write {tmp}"), e))
    };
    let counts = match write() {
        Ok(c) => c,
        Err(e) => {
            let _ = dir.remove(&tmp);
            return Err(e);
        }
    };
    let old = super::segment::read_sidecar(dir, &sum).ok().flatten();
    let sidecar = Sidecar {
        format: SIDECAR_FORMAT,
        crc32: counts.crc32,
        bytes: counts.bytes,
        rows: counts.rows,
        journal: old.as_ref().map_or_else(String::new, |s| s.journal.clone()),
        recipients: if seg.encrypted {
            shared.cipher.recipients()
        } else {
            Vec::new()
        },
    };
    let new_sum = new_sidecar_name(&name);
    let publish = || -> io::Result<()> {
        write_sidecar(dir, &new_sum, &sidecar)?;
        dir.sync_dir("")?;
        dir.rename(&tmp, &path)?;
        dir.sync_dir(sub)?;
        dir.rename(&new_sum, &sum)?;
        dir.sync_dir(sub)?;
        dir.sync_dir("")
    };
    if let Err(e) = publish() {
        let renamed = !dir
            .list("")
            .is_ok_and(|l| l.iter().any(|en| en.name == tmp));
        if !renamed {
            let _ = dir.remove(&tmp);
            let _ = dir.remove(&new_sum);
        }
        return Err(Error::io(format!("erase: publish {name}"), e));
    }
    report.rewritten.push(name);
    Ok(())
}

fn row_matches(filter: &EraseFilter, row: &RawValue, name: &str) -> Result<bool> {
    let value: serde_json::Value = serde_json::from_str(row.get())
        .map_err(|e| Error::corrupt(format!("segment {name}: row does not decode: {e}")))?;
    Ok(filter.matches(&value))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::*;
    use crate::clock::ManualClock;
    use crate::dir::{Directory, MemDir};
    use crate::spool::tests::read_all;
    use crate::spool::{SpoolConfig, TimeRange};

    const T0: i64 = 1_700_000_000_000;

    fn rows(n: std::ops::Range<u64>) -> Vec<Value> {
        n.map(|i| {
            let user = if i % 3 == 0 { "alice" } else { "bob" };
            json!({"i": i, "labels": {"user": user}, "note": format!("row of {user}")})
        })
        .collect()
    }

    fn open(dir: &MemDir) -> Spool<Value> {
        let mut c = SpoolConfig::new("agent");
        c.max_records = 30;
        Spool::open(Arc::new(dir.clone()), c, Arc::new(ManualClock::new(T0))).unwrap()
    }

    fn filter() -> EraseFilter {
        EraseFilter::parse("user=alice").unwrap()
    }

    fn bytes(dir: &MemDir, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        dir.open_read(path).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    fn put_file(dir: &MemDir, path: &str, data: &[u8]) {
        let _ = dir.remove(path);
        dir.create_new(path).unwrap().write_all(data).unwrap();
    }

    #[test]
    fn erase_removes_matching_rows_from_pending_uploaded_and_journal_rows() {
        let dir = MemDir::new();
        let spool = open(&dir);
        spool.put(&rows(0..60)).unwrap();
        let first = spool.segments(TimeRange::all()).unwrap()[0].name.clone();
        spool.mark_uploaded(&[&first]).unwrap();
        spool.put(&rows(60..70)).unwrap(); // left in the journal
                                           // A segment of alice's rows only is removed whole.
        spool
            .put(
                &(0..30)
                    .map(|i| json!({"i": 100 + i, "user": "alice"}))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        let report = spool.erase(&filter()).unwrap();
        assert_eq!(report.rows_erased, 20 + 4 + 30, "{report:?}");
        assert_eq!(report.rewritten.len(), 3, "{report:?}");
        assert_eq!(report.removed.len(), 1, "{report:?}");
        let kept = read_all(&spool);
        let expected: Vec<Value> = rows(0..70)
            .into_iter()
            .filter(|r| r["labels"]["user"] != "alice")
            .collect();
        assert_eq!(kept, expected);
        // No segment holds the value any more (decompressed), and verification passes.
        for sub in ["", UPLOADED_DIR] {
            for e in dir.list(sub).unwrap() {
                if SegmentName::parse(&e.name).is_some() {
                    let mut json = Vec::new();
                    let raw = bytes(&dir, &join(sub, &e.name));
                    brotli::BrotliDecompress(&mut &raw[..], &mut json).unwrap();
                    assert!(
                        !String::from_utf8_lossy(&json).contains("alice"),
                        "{}",
                        e.name
                    );
                }
            }
        }
        let v = spool.verify().unwrap();
        assert_eq!(v.quarantined.len(), 0);
        assert_eq!(spool.segments(TimeRange::all()).unwrap()[0].name, first);
        // Nothing matches a second time.
        assert_eq!(spool.erase(&filter()).unwrap().rows_erased, 0);
    }

    #[test]
    fn a_crash_between_segment_and_sidecar_is_recovered_either_way() {
        let dir = MemDir::new();
        let spool = open(&dir);
        spool.put(&rows(0..30)).unwrap();
        let name = spool.segments(TimeRange::all()).unwrap()[0].name.clone();
        let sum = sidecar_name(&name);
        let (old_seg, old_sum) = (bytes(&dir, &name), bytes(&dir, &sum));
        spool.erase(&filter()).unwrap();
        let (new_seg, new_sum) = (bytes(&dir, &name), bytes(&dir, &sum));
        drop(spool);

        // Crashed after step 3: the new segment, the old sidecar, the new one waiting.
        put_file(&dir, &sum, &old_sum);
        put_file(&dir, &new_sidecar_name(&name), &new_sum);
        let spool = open(&dir);
        assert_eq!(read_all(&spool).len(), 20);
        assert_eq!(bytes(&dir, &sum), new_sum);
        assert!(dir.open_read(&new_sidecar_name(&name)).is_err());
        drop(spool);

        // Crashed before step 3: the old segment and sidecar, a new sidecar that is not its.
        put_file(&dir, &name, &old_seg);
        put_file(&dir, &sum, &old_sum);
        put_file(&dir, &new_sidecar_name(&name), &new_sum);
        put_file(&dir, &tmp_name(&name), &new_seg);
        let spool = open(&dir);
        assert_eq!(read_all(&spool).len(), 30, "the old segment, whole");
        assert!(dir.open_read(&new_sidecar_name(&name)).is_err());
        assert!(dir.open_read(&tmp_name(&name)).is_err());
        assert_eq!(spool.verify().unwrap().quarantined.len(), 0);
    }

    #[test]
    fn a_corrupt_segment_is_quarantined_and_the_others_are_still_erased() {
        let dir = MemDir::new();
        let spool = open(&dir);
        spool.put(&rows(0..60)).unwrap();
        let names: Vec<String> = spool
            .segments(TimeRange::all())
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        let mut data = bytes(&dir, &names[0]);
        let last = data.len() - 3;
        data[last] ^= 0xff;
        put_file(&dir, &names[0], &data);
        let report = spool.erase(&filter()).unwrap();
        assert_eq!(report.rewritten, [names[1].clone()], "{report:?}");
        assert_eq!(
            report.quarantined_untouched, 2,
            "the segment and its sidecar"
        );
        assert!(!read_all(&spool)
            .iter()
            .any(|r| r["labels"]["user"] == "alice"));
    }

    #[test]
    fn filters_parse_and_match_labels_or_fields() {
        assert!(EraseFilter::parse("novalue").is_err());
        assert!(EraseFilter::parse("=x").is_err());
        let f = EraseFilter::parse("node=7").unwrap();
        assert!(f.matches(&json!({"node": 7})));
        assert!(f.matches(&json!({"labels": {"node": "7"}})));
        assert!(!f.matches(&json!({"labels": {"node": "8"}, "node": "x"})));
        assert!(!f.matches(&json!({"other": "7"})));
    }
}
