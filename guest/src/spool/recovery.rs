//! Recovery on open: make the directory consistent again after whatever stopped the last
//! process, without ever deleting the only copy of a row and without finishing a journal twice.
//!
//! Rules, in order (they are idempotent: a crash during recovery is recovered the same way):
//! 1. `uploaded/` and `quarantine/` exist.
//! 2. A sidecar whose segment is in `uploaded/` or `quarantine/` follows it there (a crash
//!    inside `mark_uploaded`); a sidecar whose segment exists nowhere is an orphan of an
//!    unpublished finish and is removed, as is every `.<segment>.tmp` (both are derived data:
//!    their journal still exists).
//! 3. A journal named as the source by some sidecar was already published (crash after the
//!    rename, before the journal's removal): it is removed.
//! 4. Every other journal is finished into a segment: verified rows kept, a torn last row
//!    dropped and counted, corrupt lines counted and the journal kept in `quarantine/`.
//!    If finishing fails (disk full), the journal stays queued and the open still succeeds.

use std::collections::HashSet;
use std::io;

use super::name::{
    join, JournalName, SegmentName, NEW_SIDECAR_SUFFIX, QUARANTINE_DIR, SIDECAR_SUFFIX, TMP_SUFFIX,
    UPLOADED_DIR,
};
use super::segment::{finish_journal, read_sidecar, verify_file};
use super::{Sealed, Shared};
use crate::dir::Entry;
use crate::error::{Error, Result};

fn ctx(what: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::io(format!("spool recovery: {what}"), e)
}

fn sidecar_target(name: &str) -> Option<&str> {
    name.strip_suffix(SIDECAR_SUFFIX)
        .filter(|seg| SegmentName::parse(seg).is_some())
}

/// The segment of `.<segment>.sum.new`, an erase's new sidecar.
fn new_sidecar_target(name: &str) -> Option<&str> {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(NEW_SIDECAR_SUFFIX))
        .filter(|seg| SegmentName::parse(seg).is_some())
}

/// `.<segment>.tmp` for a valid segment name: only our own temporaries are ever removed.
fn is_segment_tmp(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(TMP_SUFFIX))
        .is_some_and(|seg| SegmentName::parse(seg).is_some())
}

/// Recover the spool directory; returns journals still to finish and the largest stop time
/// seen for this identifier.
pub(crate) fn recover(shared: &Shared) -> Result<(Vec<Sealed>, i64)> {
    let dir = &*shared.dir;
    let id = &shared.config.identifier;
    for sub in [UPLOADED_DIR, QUARANTINE_DIR] {
        dir.create_dir(sub).map_err(ctx(sub))?;
    }
    dir.sync_dir("").map_err(ctx("sync root"))?;

    let mut listings: Vec<(&str, Vec<Entry>)> = Vec::new();
    for sub in ["", UPLOADED_DIR, QUARANTINE_DIR] {
        listings.push((sub, dir.list(sub).map_err(ctx("list"))?));
    }
    let index: HashSet<(&str, &str)> = listings
        .iter()
        .flat_map(|(d, l)| l.iter().map(move |e| (*d, e.name.as_str())))
        .collect();
    let present = |sub: &str, name: &str| index.contains(&(sub, name));
    let mut last_stop = 0i64;
    for (_, l) in &listings {
        for seg in l.iter().filter_map(|e| SegmentName::parse(&e.name)) {
            if &seg.identifier == id {
                last_stop = last_stop.max(seg.stop_ms);
            }
        }
    }

    let mut journals: Vec<JournalName> = Vec::new();
    let mut removed = 0u64;
    let root = &listings[0].1;
    for e in root {
        if e.is_dir {
            continue;
        }
        if let Some(j) = JournalName::parse(&e.name) {
            journals.push(j);
        } else if is_segment_tmp(&e.name) {
            dir.remove(&e.name).map_err(ctx("remove temporary"))?;
            removed += 1;
        } else if let Some(seg) = new_sidecar_target(&e.name) {
            // An erase rewrote `seg` up to its new sidecar: if the segment is the new one,
            // the new sidecar replaces the old; otherwise the rewrite never happened.
            let sub = [UPLOADED_DIR, ""].into_iter().find(|s| present(s, seg));
            let new = read_sidecar(dir, &e.name).ok().flatten();
            let current = match (sub, &new) {
                (Some(sub), Some(sc)) => {
                    verify_file(dir, &join(sub, seg), sc).map_err(ctx("verify"))?
                }
                _ => false,
            };
            match sub {
                Some(sub) if current => {
                    dir.rename(&e.name, &join(sub, &format!("{seg}{SIDECAR_SUFFIX}")))
                        .map_err(ctx("replace sidecar"))?;
                    dir.sync_dir(sub).map_err(ctx("sync"))?;
                }
                _ => {
                    dir.remove(&e.name).map_err(ctx("remove new sidecar"))?;
                    removed += 1;
                }
            }
        } else if let Some(seg) = sidecar_target(&e.name) {
            if present("", seg) {
                continue;
            }
            if let Some(sub) = [UPLOADED_DIR, QUARANTINE_DIR]
                .into_iter()
                .find(|s| present(s, seg))
            {
                dir.rename(&e.name, &join(sub, &e.name))
                    .map_err(ctx("move sidecar"))?;
                dir.sync_dir(sub).map_err(ctx("sync"))?;
            } else {
                dir.remove(&e.name).map_err(ctx("remove orphan sidecar"))?;
                removed += 1;
            }
        }
    }
    // Orphan sidecars under uploaded/ (a crash inside purge).
    for e in &listings[1].1 {
        if let Some(seg) = sidecar_target(&e.name) {
            if !present(UPLOADED_DIR, seg) {
                dir.remove(&join(UPLOADED_DIR, &e.name))
                    .map_err(ctx("remove orphan sidecar"))?;
                removed += 1;
            }
        }
    }

    let mut sealed = Vec::new();
    if !journals.is_empty() {
        let mut finished: HashSet<String> = HashSet::new();
        for (sub, l) in &listings {
            for e in l {
                if let Some(seg) = sidecar_target(&e.name) {
                    if present(sub, seg) {
                        // An unreadable sidecar names no journal; its segment is verified by
                        // decoding when read.
                        if let Ok(Some(sc)) = read_sidecar(dir, &join(sub, &e.name)) {
                            finished.insert(sc.journal);
                        }
                    }
                }
            }
        }
        journals.sort_by(|a, b| (a.start_ms, &a.nonce).cmp(&(b.start_ms, &b.nonce)));
        for j in journals {
            let name = j.file_name();
            if finished.contains(&name) {
                dir.remove(&name).map_err(ctx("remove finished journal"))?;
                shared.note(|s| s.finished_journals_removed += 1);
            } else {
                sealed.push(Sealed {
                    journal: j,
                    limit: None,
                    rows: 0,
                    published: None,
                    unsynced: None,
                });
            }
        }
    }
    dir.sync_dir("").map_err(ctx("sync root"))?;
    shared.note(|s| s.temp_files_removed += removed);

    let mut waiting = Vec::new();
    for mut s in sealed {
        match finish_journal(shared, &s.journal, None, &mut last_stop, &mut s.published) {
            Ok(f) => {
                let c = f.counts;
                shared.note(|st| {
                    st.journals_recovered += 1;
                    st.segments_written += u64::from(f.segment.is_some());
                    st.rows_written += c.rows;
                    st.torn_rows_dropped += c.torn;
                    st.corrupt_lines += c.corrupt;
                });
            }
            Err(_) => {
                // Kept for `flush` to retry; the open goes on.
                shared.note(|st| st.deferred_errors += 1);
                waiting.push(s);
            }
        }
    }
    Ok((waiting, last_stop))
}
