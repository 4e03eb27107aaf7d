//! The read-only side shared by owners and inspectors: counting the rows that are still in
//! journals (not yet in a finished segment), without touching the journals.
//!
//! An inspector ([`Spool::inspect`]) runs beside the process that owns the directory, so every
//! journal it sees may be appended to, finished or removed while it reads: a torn last line
//! is not counted (check-then-parse, the same scanner recovery uses) and a journal that
//! vanished counts 0.

use std::io::{self, BufReader};

use super::journal::{JournalScanner, Line};
use super::name::JournalName;
use super::place::list_dir;
use super::{Shared, Spool};
use crate::error::{Error, Result};

/// Complete, checksum-valid rows in the journal `name`; 0 if it no longer exists.
fn rows_in_journal(shared: &Shared, name: &str) -> Result<u64> {
    let ctx = |e: io::Error| Error::io(format!("read journal {name}"), e);
    let file = match shared.dir.open_read(name) {
        Ok(f) => f,
        // Finished and removed meanwhile: its rows are in a segment now.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(ctx(e)),
    };
    let mut scanner = JournalScanner::new(BufReader::with_capacity(64 << 10, file));
    let mut rows = 0u64;
    loop {
        match scanner.next_line().map_err(ctx)? {
            Line::Row(_) => rows += 1,
            Line::Corrupt => {}
            Line::Torn | Line::End => return Ok(rows),
        }
    }
}

impl<R> Spool<R> {
    /// Rows in the journals on disk right now: complete lines whose checksum verifies, in the
    /// owner's active journal, journals sealed for finishing, and journals a killed process
    /// left (which the next owner's open recovers). Reads only, so owners and inspectors alike
    /// may call it while the owner appends: a torn last line is not counted, and a journal
    /// finished and removed meanwhile counts 0.
    ///
    /// A journal whose segment was published just before a crash (removed by the next open)
    /// is counted until then, as are, for a moment, the rows of a journal being finished; so
    /// are complete lines a failed append left past the last accepted row (finishing drops
    /// them).
    pub fn journal_rows(&self) -> Result<u64> {
        let mut total = 0u64;
        for e in list_dir(&self.shared, "")? {
            if e.is_dir || JournalName::parse(&e.name).is_none() {
                continue;
            }
            total = total.saturating_add(rows_in_journal(&self.shared, &e.name)?);
        }
        Ok(total)
    }
}

#[cfg(test)]
#[path = "inspect_tests.rs"]
mod tests;
