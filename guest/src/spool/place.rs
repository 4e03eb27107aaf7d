//! Where finished segments are: listing the spool's sub-directories, finding which one holds a
//! segment, and moving a segment (with its sidecar) between them. Both the lifecycle
//! operations (upload marks, retention, verification) and the readers (which quarantine what
//! fails verification) need these, so they sit below both.

use std::io;

use super::name::{join, sidecar_name, QUARANTINE_DIR, UPLOADED_DIR};
use super::Shared;
use crate::error::{Error, Result};

/// List `sub`; a directory that does not exist (never created, or removed meanwhile) lists as
/// empty, so an inspecting spool never needs to create one.
pub(crate) fn list_dir(shared: &Shared, sub: &str) -> Result<Vec<crate::dir::Entry>> {
    match shared.dir.list(sub) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("list {sub:?}"), e)),
    }
}

/// Which directory holds segment `name` now (`""` root, or `uploaded`). Probes by opening
/// rather than listing, so it costs the same however many segments the spool holds.
pub(crate) fn locate(shared: &Shared, name: &str) -> Result<&'static str> {
    for sub in ["", UPLOADED_DIR] {
        match shared.dir.open_read(&join(sub, name)) {
            Ok(_) => return Ok(sub),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("open {name}"), e)),
        }
    }
    Err(Error::not_found(format!("segment {name}")))
}

/// Rename a segment, then its sidecar (a segment without one is fine), then fsync both
/// directories so the move survives a crash.
pub(crate) fn move_segment(shared: &Shared, from: &str, to: &str, name: &str) -> io::Result<()> {
    let dir = &*shared.dir;
    dir.rename(&join(from, name), &join(to, name))?;
    let sum = sidecar_name(name);
    match dir.rename(&join(from, &sum), &join(to, &sum)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    dir.sync_dir(to)?;
    dir.sync_dir(from)
}

/// Move a segment (and its sidecar) from `sub` to `quarantine/` and count it. On an
/// inspecting spool nothing moves: the segment is counted as left in place for the owner.
pub(crate) fn quarantine(shared: &Shared, sub: &str, name: &str) -> Result<()> {
    if shared.read_only {
        shared.note(|s| s.segments_left_in_place += 1);
        return Ok(());
    }
    match move_segment(shared, sub, QUARANTINE_DIR, name) {
        Ok(()) => {}
        // Moved by someone else meanwhile (uploaded, purged, quarantined by another reader).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("quarantine {name}"), e)),
    }
    shared.note(|s| s.segments_quarantined += 1);
    Ok(())
}
