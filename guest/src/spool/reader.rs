//! Streaming reads: Brotli decoded as it is read, the top-level JSON array split into its
//! elements by a small scanner (depth, strings, escapes), each element parsed on its own.
//! Memory is bounded by `max` rows plus one element plus the decoder's window, whatever the
//! size of the segment or of the spool.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader};
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::name::{join, new_sidecar_name, sidecar_name, SegmentName};
use super::place::{locate, quarantine};
use super::segment::{read_sidecar, verify_file};
use super::Shared;
use crate::dir::ReadFile;
use crate::error::{Error, ErrorCode, Result};

/// An element larger than this is treated as corruption rather than buffered without bound.
pub const MAX_ELEMENT_BYTES: usize = 16 << 20;

fn corrupt(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    First,
    Next,
    Done,
}

/// Splits a top-level JSON array into the bytes of its elements, one at a time.
pub(crate) struct ArrayScanner<B> {
    input: B,
    state: State,
}

impl<B: BufRead> ArrayScanner<B> {
    pub(crate) fn new(input: B) -> Self {
        ArrayScanner {
            input,
            state: State::Start,
        }
    }

    fn skip_ws(&mut self) -> io::Result<Option<u8>> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => {
                    let b = buf[i];
                    self.input.consume(i);
                    return Ok(Some(b));
                }
                None => {
                    let n = buf.len();
                    self.input.consume(n);
                }
            }
        }
    }

    /// Put the next element's bytes in `out` (cleared first); `false` at the end of the array.
    pub(crate) fn next_element(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        out.clear();
        loop {
            let b = self.skip_ws()?;
            match (self.state, b) {
                (State::Done, _) => return Ok(false),
                (_, None) => return Err(corrupt("segment ends inside its JSON array")),
                (State::Start, Some(b'[')) => {
                    self.input.consume(1);
                    self.state = State::First;
                }
                (State::Start, Some(_)) => return Err(corrupt("segment is not a JSON array")),
                (State::First | State::Next, Some(b']')) => {
                    self.input.consume(1);
                    self.state = State::Done;
                    if self.skip_ws()?.is_some() {
                        return Err(corrupt("data after the JSON array"));
                    }
                    return Ok(false);
                }
                (State::Next, Some(b',')) => {
                    self.input.consume(1);
                    if matches!(self.skip_ws()?, None | Some(b']')) {
                        return Err(corrupt("missing element after ','"));
                    }
                    self.read_value(out)?;
                    return Ok(true);
                }
                (State::Next, Some(_)) => return Err(corrupt("expected ',' or ']'")),
                (State::First, Some(_)) => {
                    self.read_value(out)?;
                    self.state = State::Next;
                    return Ok(true);
                }
            }
        }
    }

    /// Copy one value (object, array, string or scalar) into `out`.
    fn read_value(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut depth = 0usize;
        let mut in_str = false;
        let mut esc = false;
        let mut scalar = false;
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                if scalar && depth == 0 {
                    return Ok(());
                }
                return Err(corrupt("segment ends inside an element"));
            }
            let mut end = None;
            for (i, &b) in buf.iter().enumerate() {
                if out.is_empty() && i == 0 {
                    scalar = !matches!(b, b'{' | b'[' | b'"');
                }
                if in_str {
                    if esc {
                        esc = false;
                    } else if b == b'\\' {
                        esc = true;
                    } else if b == b'"' {
                        in_str = false;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    continue;
                }
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    b',' | b']' | b'}' if scalar => {
                        end = Some(i);
                        break;
                    }
                    b if scalar && b.is_ascii_whitespace() => {
                        end = Some(i);
                        break;
                    }
                    b'}' | b']' => return Err(corrupt("unbalanced brackets")),
                    _ => {}
                }
            }
            let n = end.unwrap_or(buf.len());
            out.extend_from_slice(&buf[..n]);
            self.input.consume(n);
            if out.len() > MAX_ELEMENT_BYTES {
                return Err(corrupt("element larger than MAX_ELEMENT_BYTES"));
            }
            if end.is_some() {
                if out.is_empty() {
                    return Err(corrupt("empty element"));
                }
                return Ok(());
            }
        }
    }
}

type Decoder = BufReader<brotli::Decompressor<ReadFile>>;

/// Streams the rows of one finished segment.
pub struct SegmentReader<R> {
    name: String,
    scanner: ArrayScanner<Decoder>,
    element: Vec<u8>,
    done: bool,
    _records: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> SegmentReader<R> {
    pub(crate) fn new(name: String, file: ReadFile) -> Self {
        let decoder = BufReader::with_capacity(64 << 10, brotli::Decompressor::new(file, 64 << 10));
        SegmentReader {
            name,
            scanner: ArrayScanner::new(decoder),
            element: Vec::new(),
            done: false,
            _records: PhantomData,
        }
    }

    /// The segment's file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Up to `max` more rows; an empty vector at the end. A decoding failure is `Corrupt`;
    /// a failing read of the file is an I/O error.
    pub fn next(&mut self, max: usize) -> Result<Vec<R>> {
        let mut rows = Vec::with_capacity(max.min(1024));
        while rows.len() < max && !self.done {
            // InvalidData/UnexpectedEof (bad Brotli, bad array) become `Corrupt`; a failing
            // disk stays an I/O error, so a healthy segment is never quarantined for it.
            let more = self
                .scanner
                .next_element(&mut self.element)
                .map_err(|e| Error::io(format!("segment {}", self.name), e))?;
            if !more {
                self.done = true;
                break;
            }
            let row = serde_json::from_slice(&self.element).map_err(|e| {
                Error::corrupt(format!("segment {}: row does not decode: {e}", self.name))
            })?;
            rows.push(row);
        }
        Ok(rows)
    }
}

/// The Brotli stream of segment `seg` read from `file`: decrypted when the segment is
/// encrypted (`recipients` from its sidecar name the keys in a `KeyMissing` error).
pub(crate) fn brotli_stream(
    shared: &Shared,
    seg: &SegmentName,
    file: ReadFile,
    recipients: &[String],
) -> Result<ReadFile> {
    if seg.encrypted {
        shared.cipher.open(&seg.file_name(), file, recipients)
    } else {
        Ok(file)
    }
}

/// Open a segment for reading after verifying it against its sidecar; a mismatch quarantines
/// it (leaves it in place on an inspecting spool) and is `Corrupt`. A segment without a
/// sidecar is read as is (decoding checks it). An encrypted segment no configured identity
/// opens is `KeyMissing` and stays where it is.
pub(crate) fn open_verified<R: DeserializeOwned>(
    shared: &Shared,
    seg: &SegmentName,
) -> Result<SegmentReader<R>> {
    let name = seg.file_name();
    let dir = &*shared.dir;
    // A concurrent `mark_uploaded` (the owner's, beside an inspecting spool) may move the
    // segment between locating, verifying and opening it: locate again once before reporting
    // it gone.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sub = locate(shared, &name)?;
        let path = join(sub, &name);
        let sum = join(sub, &sidecar_name(&name));
        let mut recipients = Vec::new();
        let checked = match read_sidecar(dir, &sum) {
            Ok(Some(sc)) => {
                recipients = sc.recipients.clone();
                verify_file(dir, &path, &sc)
            }
            Ok(None) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(false),
            Err(e) => Err(e),
        };
        let ok = match checked {
            Ok(ok) => ok,
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 2 => continue,
            Err(e) => return Err(Error::io(format!("verify {name}"), e)),
        };
        // An erase may be between replacing the segment and replacing its sidecar: the new
        // sidecar waits in the root.
        let ok = ok
            || match read_sidecar(dir, &new_sidecar_name(&name)) {
                Ok(Some(sc)) => {
                    recipients = sc.recipients.clone();
                    verify_file(dir, &path, &sc).unwrap_or(false)
                }
                _ => false,
            };
        if !ok {
            quarantine(shared, sub, &name)?;
            let fate = if shared.read_only {
                "was left in place for the data directory's owner to quarantine (the spool is \
                 open for inspection)"
            } else {
                "was quarantined"
            };
            return Err(Error::corrupt(format!(
                "segment {name} failed checksum verification and {fate}"
            )));
        }
        match dir.open_read(&path) {
            Ok(file) => {
                let file = brotli_stream(shared, seg, file, &recipients)?;
                return Ok(SegmentReader::new(name, file));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 2 => continue,
            Err(e) => return Err(Error::io(format!("open {name}"), e)),
        }
    }
}

/// Streams the rows of every segment in a time range, oldest first. A segment that fails
/// verification or decoding is quarantined and counted, and reading goes on with the next; on
/// an inspecting spool it is left in place, counted in [`RangeReader::left_in_place`].
/// Rows already returned from a segment that later fails to decode stay returned (only
/// segments without a sidecar can fail that way: the others are verified before the first row).
pub struct RangeReader<R> {
    shared: Arc<Shared>,
    queue: VecDeque<SegmentName>,
    current: Option<SegmentReader<R>>,
    quarantined: Vec<String>,
    left_in_place: Vec<String>,
}

impl<R: DeserializeOwned> RangeReader<R> {
    pub(crate) fn new(shared: Arc<Shared>, queue: VecDeque<SegmentName>) -> Self {
        RangeReader {
            shared,
            queue,
            current: None,
            quarantined: Vec::new(),
            left_in_place: Vec::new(),
        }
    }

    /// Segments this reader moved to quarantine so far.
    pub fn quarantined(&self) -> &[String] {
        &self.quarantined
    }

    /// Bad segments this reader skipped but left where they are because the spool is open for
    /// inspection (always empty on an owner's spool).
    pub fn left_in_place(&self) -> &[String] {
        &self.left_in_place
    }

    fn note_bad(&mut self, name: String) {
        if self.shared.read_only {
            self.left_in_place.push(name);
        } else {
            self.quarantined.push(name);
        }
    }

    /// Up to `max` more rows; an empty vector when every segment was read.
    pub fn next(&mut self, max: usize) -> Result<Vec<R>> {
        let mut out = Vec::new();
        while out.len() < max {
            let reader = match self.current.as_mut() {
                Some(r) => r,
                None => {
                    let Some(seg) = self.queue.pop_front() else {
                        break;
                    };
                    match open_verified::<R>(&self.shared, &seg) {
                        Ok(r) => self.current.insert(r),
                        // Purged or moved away meanwhile: nothing to read.
                        Err(e) if e.code() == ErrorCode::NotFound => continue,
                        Err(e) if e.code() == ErrorCode::Corrupt => {
                            self.note_bad(seg.file_name());
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            match reader.next(max - out.len()) {
                Ok(rows) if rows.is_empty() => self.current = None,
                Ok(rows) => out.extend(rows),
                Err(e) if e.code() == ErrorCode::Corrupt => {
                    let name = reader.name().to_string();
                    self.current = None;
                    if let Ok(sub) = locate(&self.shared, &name) {
                        quarantine(&self.shared, sub, &name)?;
                    }
                    self.note_bad(name);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

impl<R> std::fmt::Debug for SegmentReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentReader")
            .field("name", &self.name)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R> std::fmt::Debug for RangeReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeReader")
            .field("queued", &self.queue.len())
            .field("quarantined", &self.quarantined)
            .field("left_in_place", &self.left_in_place)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(json: &str) -> io::Result<Vec<String>> {
        let mut s = ArrayScanner::new(json.as_bytes());
        let mut out = Vec::new();
        let mut el = Vec::new();
        while s.next_element(&mut el)? {
            out.push(String::from_utf8(el.clone()).unwrap());
        }
        Ok(out)
    }

    #[test]
    fn scanner_splits_elements() {
        assert_eq!(elements("[]").unwrap(), Vec::<String>::new());
        assert_eq!(elements(" [ ] ").unwrap(), Vec::<String>::new());
        assert_eq!(
            elements(r#"[{"a":"x]},\"y"},[1,[2]],"s\"]",12, true ,null]"#).unwrap(),
            [
                r#"{"a":"x]},\"y"}"#,
                "[1,[2]]",
                r#""s\"]""#,
                "12",
                "true",
                "null"
            ]
        );
        for bad in [
            "",
            "{}",
            "[1,",
            "[1",
            r#"[{"a":1}"#,
            "[1,]",
            "[1 2]",
            "[]x",
            "[}]",
        ] {
            assert!(elements(bad).is_err(), "{bad}");
        }
    }
}
