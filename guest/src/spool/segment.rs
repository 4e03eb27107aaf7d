//! Finishing a journal into a segment, and the checksum sidecar that lets readers verify it.
//!
//! Finishing is the one protocol every path uses (rotation, `flush`, recovery on open):
//!
//! 1. stream the journal's verified rows (or the same rows kept in memory by the process that
//!    wrote them: [`RowsInMemory`]) through Brotli into `.<segment>.tmp`, hashing the
//!    compressed bytes as they are written (memory: one line plus Brotli's window);
//! 2. `fsync` the temporary;
//! 3. write the sidecar `<segment>.sum` (checksum, bytes, rows, source journal), `fsync` it,
//!    `fsync` the directory: from here recovery can tell this journal was finished;
//! 4. rename the temporary to `<segment>`, `fsync` the directory: the segment is published;
//! 5. remove the journal (or move it to `quarantine/` if it had corrupt lines).
//!
//! A crash before 4 leaves the journal (re-finished on open, the temporary and orphan sidecar
//! removed as derived data); after 4 the sidecar names the journal, so recovery removes the
//! journal instead of finishing it twice. No step ever removes the only copy of a row.

use std::io::{self, BufReader, Read, Write};

use serde::{Deserialize, Serialize};

use super::cipher::{Cipher, Sealing};
use super::compress::{CompressingWriter, Compressor};
use super::journal::{JournalScanner, Line, RowsInMemory};
use super::name::{join, sidecar_name, tmp_name, JournalName, SegmentName, QUARANTINE_DIR};
use super::Shared;
use crate::dir::{Directory, WriteFile};
use crate::error::{Error, Result};

/// Format version of the sidecar.
pub const SIDECAR_FORMAT: u32 = 1;

/// The checksum sidecar of a finished segment (`<segment>.sum`, one JSON object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    /// Format version, currently 1.
    pub format: u32,
    /// CRC-32 (IEEE) of the segment's bytes.
    pub crc32: u32,
    /// Length of the segment in bytes.
    pub bytes: u64,
    /// Rows in the segment's JSON array.
    pub rows: u64,
    /// The journal the segment was made from, so recovery never finishes it twice.
    pub journal: String,
    /// The age recipients an encrypted segment was encrypted to (public keys: which identity
    /// opens it, told without trying). Empty for a plain segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

/// Read a sidecar; `Ok(None)` if there is none, `InvalidData` if it does not parse.
pub fn read_sidecar(dir: &dyn Directory, path: &str) -> io::Result<Option<Sidecar>> {
    let mut f = match dir.open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = Vec::new();
    f.by_ref().take(64 << 10).read_to_end(&mut text)?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub(crate) fn write_sidecar(dir: &dyn Directory, path: &str, sidecar: &Sidecar) -> io::Result<()> {
    match dir.remove(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = dir.create_new(path)?;
    let mut text = serde_json::to_vec(sidecar).map_err(io::Error::other)?;
    text.push(b'\n');
    f.write_all(&text)?;
    f.sync_all()
}

/// Stream a file through CRC-32 and compare with its sidecar.
pub fn verify_file(dir: &dyn Directory, path: &str, sidecar: &Sidecar) -> io::Result<bool> {
    let mut f = dir.open_read(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut bytes = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(bytes == sidecar.bytes && hasher.finalize() == sidecar.crc32)
}

/// Hashes and counts what Brotli writes, and latches the first error: the Brotli writer's
/// `into_inner` swallows errors when it finishes the stream, so they are caught here instead.
struct HashingWriter {
    inner: Box<dyn WriteFile>,
    hasher: crc32fast::Hasher,
    bytes: u64,
    error: Option<io::Error>,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(e) = &self.error {
            // The same cause again (not a generic "earlier write failed"): when age's last
            // chunk is what reports it, its class (disk full) still reaches the caller.
            return Err(copy_error(e));
        }
        match self.inner.write(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.bytes += n as u64;
                Ok(n)
            }
            Err(e) => {
                let copy = copy_error(&e);
                self.error = Some(e);
                Err(copy)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An error like `e`: the same OS error code, or the same kind and message.
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// Counts from compressing one journal.
#[derive(Debug, Default, Clone, Copy)]
pub struct Compressed {
    pub rows: u64,
    pub torn: u64,
    pub corrupt: u64,
    pub crc32: u32,
    pub bytes: u64,
    pub json_bytes: u64,
}

/// What a journal is finished from: the journal, how many of its bytes belong to accepted rows
/// (`None`: all), and the same rows kept in memory by the process that wrote them, if it did
/// (then the journal is not read).
pub(crate) type Source<'a> = (&'a JournalName, Option<u64>, Option<&'a RowsInMemory>);

/// Compress the verified rows of `journal` (up to `limit` bytes, or the same rows from memory)
/// into a new file `tmp`.
fn compress(
    dir: &dyn Directory,
    (journal, limit, memory): (&str, Option<u64>, Option<&RowsInMemory>),
    tmp: &str,
    compression: (&Compressor, u32),
    cipher: &Cipher,
) -> io::Result<Compressed> {
    // The journal's length stands in for the JSON's (each line's 9-byte checksum prefix and
    // newline are about 2 % more than the array's commas).
    let size = match limit {
        Some(n) => n,
        None => dir
            .list("")?
            .into_iter()
            .find(|e| e.name == journal)
            .map_or(0, |e| e.len),
    };
    let mut out = SegmentWriter::create(dir, tmp, compression, size, cipher, cipher.encrypts())?;
    if let Some(memory) = memory {
        for json in memory.iter() {
            out.push(json)?;
        }
        return out.finish();
    }
    let src = dir.open_read(journal)?;
    let src = BufReader::with_capacity(64 << 10, src.take(limit.unwrap_or(u64::MAX)));
    let mut scanner = JournalScanner::new(src);
    let (mut torn, mut corrupt) = (0, 0);
    loop {
        match scanner.next_line()? {
            Line::Row(json) => out.push(json)?,
            Line::Corrupt => corrupt += 1,
            Line::Torn => torn += 1,
            Line::End => break,
        }
    }
    let mut c = out.finish()?;
    c.torn = torn;
    c.corrupt = corrupt;
    Ok(c)
}

/// Writes one segment file: rows in, one Brotli stream of a JSON array out (encrypted when
/// the spool has recipients), hashed as it is written. Memory: Brotli's window and buffers.
pub(crate) struct SegmentWriter {
    br: io::BufWriter<CompressingWriter<Sealing<HashingWriter>>>,
    counts: Compressed,
}

impl SegmentWriter {
    /// Start `tmp` (replacing a leftover) for about `size` bytes of JSON at `level`,
    /// encrypted to the spool's recipients when `encrypt`.
    pub(crate) fn create(
        dir: &dyn Directory,
        tmp: &str,
        compression: (&Compressor, u32),
        size: u64,
        cipher: &Cipher,
        encrypt: bool,
    ) -> io::Result<SegmentWriter> {
        let (compressor, level) = compression;
        match dir.remove(tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let out = HashingWriter {
            inner: dir.create_new(tmp)?,
            hasher: crc32fast::Hasher::new(),
            bytes: 0,
            error: None,
        };
        // Encrypted, the hashing writer sees (and the sidecar's CRC covers) the ciphertext:
        // the file exactly, so verification needs no key.
        let out = cipher.seal(out, encrypt)?;
        // Feed Brotli large blocks: at qualities 0-1 every write call becomes its own
        // meta-block, so row-sized writes would cost both speed and ratio. (The blocks are
        // also what crosses to the host when the host compresses.)
        let br = CompressingWriter::new(compressor.start(level, size)?, out);
        let mut br = io::BufWriter::with_capacity(128 << 10, br);
        br.write_all(b"[")?;
        Ok(SegmentWriter {
            br,
            counts: Compressed::default(),
        })
    }

    /// Append one row (its JSON text).
    pub(crate) fn push(&mut self, json: &[u8]) -> io::Result<()> {
        if self.counts.rows > 0 {
            self.br.write_all(b",")?;
        }
        self.br.write_all(json)?;
        self.counts.rows += 1;
        self.counts.json_bytes += json.len() as u64 + 1;
        Ok(())
    }

    /// End the array and the stream, `fsync` the file; the counts and checksum.
    pub(crate) fn finish(mut self) -> io::Result<Compressed> {
        self.br.write_all(b"]")?;
        // No `flush()` of the stream here: that would end a meta-block early and byte-align
        // the stream (bytes for nothing). `into_inner` hands the buffered tail to Brotli, and
        // `finish` ends the stream.
        let br = self.br.into_inner().map_err(|e| e.into_error())?;
        // A write error may have been swallowed on the way (age's last chunk); the hashing
        // writer latched it, and repeats it.
        let finished = br.finish()?.finish();
        let mut out = finished?;
        if let Some(e) = out.error.take() {
            return Err(e);
        }
        out.inner.sync_all()?;
        let mut c = self.counts;
        c.crc32 = out.hasher.finalize();
        c.bytes = out.bytes;
        Ok(c)
    }
}

/// What finishing a journal did.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The segment's file name, or `None` if the journal held no complete row.
    pub segment: Option<String>,
    /// The counts.
    pub counts: Compressed,
}

/// Finish `journal` into a segment (the protocol in the module docs). `last_stop` is the
/// largest stop time handed out so far; the new stop is `max(now, start, last_stop + 1)`, so
/// names never collide even with a clock that stands still, and `last_stop` is updated.
///
/// `published` carries state between attempts: if a rename went through but the directory
/// sync after it failed, it names the segment, and the next attempt only syncs and disposes
/// of the journal instead of writing the rows a second time.
pub(crate) fn finish_journal(
    shared: &Shared,
    source: Source<'_>,
    last_stop: &mut i64,
    published: &mut Option<String>,
) -> Result<Finished> {
    let journal = source.0;
    let dir = &*shared.dir;
    let jname = journal.file_name();
    if let Some(name) = published.clone() {
        dir.sync_dir("")
            .map_err(|e| Error::io(format!("sync directory after publishing {name}"), e))?;
        let sidecar = read_sidecar(dir, &sidecar_name(&name))
            .map_err(|e| Error::io(format!("read sidecar of {name}"), e))?;
        dispose_journal(shared, &jname, false)?;
        *published = None;
        let rows = sidecar.map_or(0, |s| s.rows);
        return Ok(Finished {
            segment: Some(name),
            counts: Compressed {
                rows,
                ..Compressed::default()
            },
        });
    }
    let seg = next_segment_name(shared, journal, *last_stop)?;
    let res = finish_as(shared, source, &seg, published);
    if published.is_some() {
        // Renamed, but the directory sync failed: the name is taken all the same.
        *last_stop = seg.stop_ms;
    }
    res?.inspect(|_| *last_stop = seg.stop_ms)
}

/// The name the segment of `journal` gets: stop `max(now, start, last_stop + 1)`, moved on
/// past any existing file of that name.
pub(crate) fn next_segment_name(
    shared: &Shared,
    journal: &JournalName,
    last_stop: i64,
) -> Result<SegmentName> {
    let now = shared.clock.now_ms();
    let mut seg = SegmentName {
        identifier: journal.identifier.clone(),
        start_ms: journal.start_ms,
        stop_ms: now.max(journal.start_ms).max(last_stop.saturating_add(1)),
        encrypted: shared.cipher.encrypts(),
    };
    let names = shared
        .dir
        .list("")
        .map_err(|e| Error::io("list spool directory", e))?;
    // A plain and an encrypted segment never share a time span either.
    let taken = |seg: &SegmentName| {
        names.iter().any(|e| {
            SegmentName::parse(&e.name).is_some_and(|n| {
                (&n.identifier, n.start_ms, n.stop_ms)
                    == (&seg.identifier, seg.start_ms, seg.stop_ms)
            })
        })
    };
    while taken(&seg) {
        seg.stop_ms += 1;
    }
    Ok(seg)
}

/// Steps 1-5 of the protocol for `journal` under the already chosen name `seg`. Touches only
/// this journal's files, so finishes of different journals may run at the same time.
/// `Ok(None)` means nothing was published under `seg` (the journal held no complete row).
pub(crate) fn finish_as(
    shared: &Shared,
    source: Source<'_>,
    seg: &SegmentName,
    published: &mut Option<String>,
) -> Result<FinishedAs> {
    let (journal, limit, memory) = source;
    let dir = &*shared.dir;
    let jname = journal.file_name();
    let name = seg.file_name();
    let tmp = tmp_name(&name);
    let compression = (&shared.config.compressor, shared.config.compression_level);
    let rows = (jname.as_str(), limit, memory);
    let counts = match compress(dir, rows, &tmp, compression, &shared.cipher) {
        Ok(c) => c,
        Err(e) => {
            let _ = dir.remove(&tmp);
            return Err(Error::own_file_io(
                format!("write segment {name} from {jname}"),
                e,
            ));
        }
    };
    if counts.rows == 0 {
        let _ = dir.remove(&tmp);
        dispose_journal(shared, &jname, counts.corrupt > 0)?;
        return Ok(FinishedAs::Empty(Finished {
            segment: None,
            counts,
        }));
    }
    let sidecar = Sidecar {
        format: SIDECAR_FORMAT,
        crc32: counts.crc32,
        bytes: counts.bytes,
        rows: counts.rows,
        journal: jname.clone(),
        recipients: if seg.encrypted {
            shared.cipher.recipients()
        } else {
            Vec::new()
        },
    };
    let sum = sidecar_name(&name);
    let publish = || -> io::Result<()> {
        write_sidecar(dir, &sum, &sidecar)?;
        dir.sync_dir("")?;
        dir.rename(&tmp, &name)?;
        dir.sync_dir("")
    };
    if let Err(e) = publish() {
        // Not published (or not known to be durable): undo what is derived, keep the journal.
        let renamed = dir
            .list("")
            .is_ok_and(|l| l.iter().any(|en| en.name == name));
        if renamed {
            *published = Some(name.clone());
        } else {
            let _ = dir.remove(&sum);
            let _ = dir.remove(&tmp);
        }
        return Err(Error::io(format!("publish segment {name}"), e));
    }
    // The rows are safe in the segment; failing to drop the journal only costs a retry on open.
    if let Err(e) = dispose_journal(shared, &jname, counts.corrupt > 0) {
        shared.note(|s| s.deferred_errors += 1);
        let _ = e;
    }
    Ok(FinishedAs::Published(Finished {
        segment: Some(name),
        counts,
    }))
}

/// What [`finish_as`] did with its name.
#[derive(Debug, Clone)]
pub(crate) enum FinishedAs {
    /// The segment is published under the name.
    Published(Finished),
    /// No complete row: the journal is gone, the name unused.
    Empty(Finished),
}

impl FinishedAs {
    /// The outcome; `f` runs when the name was used (the caller records it as taken).
    pub(crate) fn inspect(self, f: impl FnOnce(&Finished)) -> Result<Finished> {
        Ok(match self {
            FinishedAs::Published(done) => {
                f(&done);
                done
            }
            FinishedAs::Empty(done) => done,
        })
    }
}

/// Remove a finished journal, or keep it in quarantine when it had corrupt lines (nothing is
/// silently deleted).
fn dispose_journal(shared: &Shared, jname: &str, had_corruption: bool) -> Result<()> {
    let dir = &*shared.dir;
    let res = if had_corruption {
        dir.rename(jname, &join(QUARANTINE_DIR, jname))
            .and_then(|_| dir.sync_dir(QUARANTINE_DIR))
            .and_then(|_| dir.sync_dir(""))
    } else {
        // No directory sync for a plain removal: should a crash undo it, the journal comes
        // back beside the published segment whose sidecar names it, and recovery removes it
        // then (step 5 of the protocol is idempotent). The next directory sync (the next
        // publish) makes the removal durable anyway. One fsync less per segment.
        dir.remove(jname)
    };
    res.map_err(|e| Error::io(format!("dispose journal {jname}"), e))
}
