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
//! 4. A journal split into pieces by an earlier recovery that did not get to remove it is
//!    whole again: its pieces (nonce = the journal's nonce + 8 hex digits) are removed.
//! 5. A journal larger than one segment should be ([`piece_bytes`]: what a component call
//!    compresses well inside its time bound) is split at line ends into piece journals, each
//!    synced, before the original is removed: each piece becomes one segment, and a finish
//!    stopped half-way (a killed process, a call past its deadline) loses one piece's work,
//!    never all of it, so repeated tries converge.
//! 6. Journals are finished into segments while the open's budget lasts ([`OPEN_BUDGET_MS`],
//!    only journals small enough to finish quickly): verified rows kept, a torn last row
//!    dropped and counted, corrupt lines counted and the journal kept in `quarantine/`. The
//!    rest stay queued for `flush` and the timer's `flush_due`, so opening never waits for a
//!    large backlog; if finishing fails (disk full), the journal stays queued too.

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

/// The open finishes recovered journals for at most this long (then leaves them queued).
pub(crate) const OPEN_BUDGET_MS: i64 = 1_000;

/// The largest journal recovery finishes as one segment at `level`; larger ones are split.
/// Chosen so a piece compresses in a few seconds inside a component even at level 11
/// (~0.2 MB/s there), and pieces at fast levels stay large enough to compress well.
pub(crate) fn piece_bytes(level: u32) -> u64 {
    match level {
        0..=6 => 16 << 20,
        7..=9 => 4 << 20,
        _ => 1 << 20,
    }
}

/// The largest journal the open finishes itself at `level` (well under a second natively).
fn quick_bytes(level: u32) -> u64 {
    match level {
        0..=6 => 4 << 20,
        7..=9 => 1 << 20,
        _ => 256 << 10,
    }
}

/// Hex digits a piece adds to its journal's nonce.
const PIECE_DIGITS: usize = 8;

/// True when `piece` is a piece of `whole` (same identifier and start, `whole`'s nonce plus
/// whole multiples of [`PIECE_DIGITS`] hex digits).
fn is_piece_of(piece: &JournalName, whole: &JournalName) -> bool {
    piece.identifier == whole.identifier
        && piece.start_ms == whole.start_ms
        && piece.nonce.len() > whole.nonce.len()
        && (piece.nonce.len() - whole.nonce.len()).is_multiple_of(PIECE_DIGITS)
        && piece.nonce.starts_with(&whole.nonce)
}

/// Split `journal` (rule 5) into pieces of at most `max_bytes` bytes and `max_rows` lines,
/// cut at line ends (a torn last line goes into the last piece as it was). Every piece is
/// written and synced, and the directory synced, before the original is removed. Returns
/// the pieces and their sizes, in order.
fn split_journal(
    shared: &Shared,
    journal: &JournalName,
    max_bytes: u64,
    max_rows: u64,
) -> Result<Vec<(JournalName, u64)>> {
    use std::io::{BufRead as _, Write as _};
    let dir = &*shared.dir;
    let name = journal.file_name();
    let mut reader = io::BufReader::with_capacity(
        256 << 10,
        dir.open_read(&name)
            .map_err(ctx("read a journal to split"))?,
    );
    let mut pieces: Vec<(JournalName, u64)> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut rows = 0u64;
    let mut line = Vec::new();
    let write_piece = |buf: &mut Vec<u8>, pieces: &mut Vec<(JournalName, u64)>| -> Result<()> {
        let piece = JournalName {
            identifier: journal.identifier.clone(),
            start_ms: journal.start_ms,
            nonce: format!(
                "{}{:0width$x}",
                journal.nonce,
                pieces.len(),
                width = PIECE_DIGITS
            ),
        };
        let mut f = dir
            .create_new(&piece.file_name())
            .map_err(ctx("create a journal piece"))?;
        f.write_all(buf).map_err(ctx("write a journal piece"))?;
        f.sync_data().map_err(ctx("sync a journal piece"))?;
        pieces.push((piece, buf.len() as u64));
        buf.clear();
        Ok(())
    };
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(ctx("read a journal to split"))?;
        if n == 0 {
            break;
        }
        if !buf.is_empty() && (rows >= max_rows || (buf.len() + n) as u64 > max_bytes) {
            write_piece(&mut buf, &mut pieces)?;
            rows = 0;
        }
        buf.extend_from_slice(&line);
        rows += 1;
    }
    if !buf.is_empty() {
        write_piece(&mut buf, &mut pieces)?;
    }
    dir.sync_dir("").map_err(ctx("sync root"))?;
    dir.remove(&name).map_err(ctx("remove a split journal"))?;
    dir.sync_dir("").map_err(ctx("sync root"))?;
    shared.note(|s| s.journals_split += 1);
    Ok(pieces)
}

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
        let mut unfinished = Vec::new();
        for j in journals {
            let name = j.file_name();
            if finished.contains(&name) {
                dir.remove(&name).map_err(ctx("remove finished journal"))?;
                shared.note(|s| s.finished_journals_removed += 1);
            } else {
                unfinished.push(j);
            }
        }
        // Rule 4: pieces of a journal that is still there are redone from it.
        let (stale, whole): (Vec<JournalName>, Vec<JournalName>) = unfinished
            .iter()
            .cloned()
            .partition(|j| unfinished.iter().any(|other| is_piece_of(j, other)));
        for piece in stale {
            dir.remove(&piece.file_name())
                .map_err(ctx("remove a piece of an unfinished split"))?;
        }
        let size = |j: &JournalName| {
            let name = j.file_name();
            root.iter().find(|e| e.name == name).map_or(0, |e| e.len)
        };
        let level = shared.config.compression_level;
        let max_rows = shared.config.max_records.max(1);
        for j in whole {
            let len = size(&j);
            let parts = if len > piece_bytes(level) {
                split_journal(shared, &j, piece_bytes(level), max_rows)?
            } else {
                vec![(j, len)]
            };
            for (journal, len) in parts {
                sealed.push((
                    Sealed {
                        journal,
                        limit: None,
                        rows: 0,
                        published: None,
                        unsynced: None,
                        memory: None,
                    },
                    len,
                ));
            }
        }
    }
    dir.sync_dir("").map_err(ctx("sync root"))?;
    shared.note(|s| s.temp_files_removed += removed);

    // Rule 6: what fits in the open's budget is finished now, the rest waits in the queue.
    let mut waiting = Vec::new();
    let started = shared.clock.now_ms();
    let quick = quick_bytes(shared.config.compression_level);
    for (mut s, len) in sealed {
        // In order: once one waits, the later ones wait behind it (segments keep the
        // journals' order).
        if !waiting.is_empty()
            || len > quick
            || shared.clock.now_ms().saturating_sub(started) >= OPEN_BUDGET_MS
        {
            waiting.push(s);
            continue;
        }
        match finish_journal(
            shared,
            (&s.journal, None, None),
            &mut last_stop,
            &mut s.published,
        ) {
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
