//! The active segment's journal: JSON lines, each prefixed with its own checksum.
//!
//! A line is `<crc32 of json, 8 lowercase hex> <json>\n`. Reading follows mini-redis's
//! check-then-parse: a line is first *checked* (terminated? checksum matches?) and only a line
//! that passes is used. An unterminated last line is a torn tail (the writer died mid-write)
//! and is dropped and counted; a terminated line whose checksum fails is corruption, counted,
//! and never silently mixed into a segment. The JSON itself is copied verbatim into the
//! segment, so it is never re-parsed here.

use std::io::{self, BufRead, Read};

/// Bytes of the `crc32 ` prefix.
const PREFIX: usize = 9;
/// A line longer than this is treated as corrupt rather than buffered without bound.
pub const MAX_LINE: usize = 16 << 20;

/// Append one journal line for `json` to `out`.
pub fn encode_line(json: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let crc = crc32fast::hash(json);
    out.reserve(PREFIX + json.len() + 1);
    out.extend((0..8).rev().map(|i| HEX[((crc >> (i * 4)) & 0xf) as usize]));
    out.push(b' ');
    out.extend_from_slice(json);
    out.push(b'\n');
}

/// Most bytes of row JSON an active journal keeps in memory (see [`RowsInMemory`]).
pub const MEMORY_CAP: usize = 8 << 20;

/// The JSON of the rows this process appended to its active journal, in order, kept so that
/// finishing the journal compresses them from memory instead of reading every row back and
/// checking its line again. Only while every row the journal accepted is here and they fit
/// [`MEMORY_CAP`]; otherwise (a larger segment, a failed append, a journal another process
/// left) finishing reads the journal, which holds the same rows.
#[derive(Debug, Default)]
pub struct RowsInMemory {
    json: Vec<u8>,
    /// Where each row ends in `json`.
    ends: Vec<usize>,
}

impl RowsInMemory {
    /// Empty, with room for `size` (a journal's kept JSON bytes and rows, capped at
    /// [`MEMORY_CAP`]): sized like the journal before, a segment's rows are not copied again
    /// each time the buffer doubles.
    pub fn with_capacity(size: KeptSize) -> Self {
        let bytes = size.bytes.min(MEMORY_CAP);
        RowsInMemory {
            json: Vec::with_capacity(bytes),
            // Every row is at least one byte.
            ends: Vec::with_capacity(size.rows.min(bytes)),
        }
    }

    /// The JSON bytes and rows kept.
    pub fn size(&self) -> KeptSize {
        KeptSize {
            bytes: self.json.len(),
            rows: self.ends.len(),
        }
    }

    /// Keep one more row; `false` (and nothing kept) once the cap would be passed.
    pub fn push(&mut self, json: &[u8]) -> bool {
        if self.json.len() + json.len() > MEMORY_CAP {
            return false;
        }
        self.json.extend_from_slice(json);
        self.ends.push(self.json.len());
        true
    }

    /// How many rows are kept.
    pub fn rows(&self) -> u64 {
        self.ends.len() as u64
    }

    /// The rows' JSON, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.json[start..end])
    }
}

/// The size of a journal's rows kept in memory: what the next journal reserves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeptSize {
    /// Bytes of row JSON.
    pub bytes: usize,
    /// Rows.
    pub rows: usize,
}

impl KeptSize {
    /// The larger of `self` decayed by a quarter and `latest`: a short journal (one cut by a
    /// flush) lowers the next reservation only gradually, a larger one raises it at once.
    pub fn after(self, latest: KeptSize) -> KeptSize {
        KeptSize {
            bytes: (self.bytes - self.bytes / 4).max(latest.bytes),
            rows: (self.rows - self.rows / 4).max(latest.rows),
        }
    }

    /// Bytes of one journal line of an average row (0 while nothing is known).
    pub fn line_bytes(self) -> usize {
        match self.bytes.checked_div(self.rows) {
            Some(row) => row + PREFIX + 1,
            None => 0,
        }
    }
}

/// What one step of reading a journal found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A verified row: its JSON bytes.
    Row(&'a [u8]),
    /// A terminated line that failed its checksum (or is malformed): skipped.
    Corrupt,
    /// The unterminated last line: the writer died mid-write.
    Torn,
    /// End of journal.
    End,
}

/// Check one terminated line (without its `\n`) and return the JSON if it verifies.
fn check(line: &[u8]) -> Option<&[u8]> {
    if line.len() <= PREFIX || line[PREFIX - 1] != b' ' {
        return None;
    }
    let hex = std::str::from_utf8(&line[..PREFIX - 1]).ok()?;
    let want = u32::from_str_radix(hex, 16).ok()?;
    let json = &line[PREFIX..];
    (crc32fast::hash(json) == want).then_some(json)
}

/// Reads a journal line by line in memory bounded by one line.
pub struct JournalScanner<B> {
    input: B,
    line: Vec<u8>,
    done: bool,
}

impl<B: BufRead> JournalScanner<B> {
    /// Scan `input`.
    pub fn new(input: B) -> Self {
        JournalScanner {
            input,
            line: Vec::new(),
            done: false,
        }
    }

    /// The next line's verdict.
    pub fn next_line(&mut self) -> io::Result<Line<'_>> {
        if self.done {
            return Ok(Line::End);
        }
        self.line.clear();
        let n = self
            .input
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.line)?;
        if n == 0 {
            self.done = true;
            return Ok(Line::End);
        }
        if self.line.last() != Some(&b'\n') {
            if self.line.len() > MAX_LINE {
                // Skip the rest of this over-long line, then go on.
                let mut sink = Vec::new();
                loop {
                    sink.clear();
                    let m = self
                        .input
                        .by_ref()
                        .take(1 << 16)
                        .read_until(b'\n', &mut sink)?;
                    if m == 0 || sink.last() == Some(&b'\n') {
                        break;
                    }
                }
                return Ok(Line::Corrupt);
            }
            self.done = true;
            return Ok(Line::Torn);
        }
        let body = &self.line[..self.line.len() - 1];
        Ok(match check(body) {
            Some(json) => Line::Row(json),
            None => Line::Corrupt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(bytes: &[u8]) -> Vec<String> {
        let mut s = JournalScanner::new(bytes);
        let mut out = Vec::new();
        loop {
            match s.next_line().unwrap() {
                Line::Row(j) => out.push(String::from_utf8(j.to_vec()).unwrap()),
                Line::Corrupt => out.push("CORRUPT".into()),
                Line::Torn => out.push("TORN".into()),
                Line::End => return out,
            }
        }
    }

    #[test]
    fn rows_in_memory_come_back_in_order_and_stop_at_the_cap() {
        let mut m = RowsInMemory::default();
        for row in [&b"{}"[..], b"[1,2]", b"\"x\""] {
            assert!(m.push(row));
        }
        assert_eq!(m.rows(), 3);
        let back: Vec<&[u8]> = m.iter().collect();
        assert_eq!(back, vec![&b"{}"[..], b"[1,2]", b"\"x\""]);
        let big = vec![b'1'; MEMORY_CAP];
        assert!(!m.push(&big));
        assert_eq!(m.rows(), 3);
    }

    #[test]
    fn a_journal_reserves_what_the_last_ones_kept() {
        let mut m = RowsInMemory::with_capacity(KeptSize {
            bytes: 100,
            rows: 10,
        });
        assert!(m.json.capacity() >= 100 && m.ends.capacity() >= 10);
        assert!(m.push(b"{}") && m.push(b"[1]"));
        assert_eq!(m.size(), KeptSize { bytes: 5, rows: 2 });
        // Never more than the cap, never more ends than bytes.
        let capped = RowsInMemory::with_capacity(KeptSize {
            bytes: 2 * MEMORY_CAP,
            rows: 10,
        });
        assert_eq!(capped.json.capacity(), MEMORY_CAP);
        let few = RowsInMemory::with_capacity(KeptSize {
            bytes: 10,
            rows: 1000,
        });
        assert_eq!(few.ends.capacity(), 10);
        // A larger journal raises the size at once, a smaller one lowers it by a quarter.
        let k = KeptSize::default().after(KeptSize {
            bytes: 4000,
            rows: 10,
        });
        assert_eq!(
            k,
            KeptSize {
                bytes: 4000,
                rows: 10
            }
        );
        let k = k.after(KeptSize { bytes: 40, rows: 1 });
        assert_eq!(
            k,
            KeptSize {
                bytes: 3000,
                rows: 8
            }
        );
        assert_eq!(k.line_bytes(), 3000 / 8 + PREFIX + 1);
        assert_eq!(KeptSize::default().line_bytes(), 0);
    }

    #[test]
    fn torn_tail_is_told_apart_from_corruption() {
        let mut j = Vec::new();
        encode_line(br#"{"a":1}"#, &mut j);
        encode_line(br#"{"a":2}"#, &mut j);
        encode_line(br#"{"a":3}"#, &mut j);
        assert_eq!(scan(&j), [r#"{"a":1}"#, r#"{"a":2}"#, r#"{"a":3}"#]);
        // Torn: cut inside the last line.
        assert_eq!(
            scan(&j[..j.len() - 3]),
            [r#"{"a":1}"#, r#"{"a":2}"#, "TORN"]
        );
        // Corrupt: flip a byte inside the second line's JSON.
        let mut bad = j.clone();
        let second = bad.iter().position(|&b| b == b'\n').unwrap() + 1 + PREFIX + 5;
        bad[second] ^= 0x01;
        assert_eq!(scan(&bad), [r#"{"a":1}"#, "CORRUPT", r#"{"a":3}"#]);
        assert_eq!(scan(b""), Vec::<String>::new());
    }
}
