//! Reading SQLite's write-ahead log the way SQLite's own recovery does: the 32-byte header,
//! then frames (a 24-byte header and one page) whose salts match the header's and whose
//! running checksum holds. The first frame that fails either is where the log ends: what
//! follows is left over from an earlier log, or a transaction that never committed.
//!
//! Only whole transactions are taken: frames up to the last *commit frame* (one whose header
//! carries the database size after the commit). See <https://www.sqlite.org/fileformat2.html#walformat>.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Size of the log's header.
pub const HEADER_LEN: u64 = 32;
/// Size of a frame's header.
pub const FRAME_HEADER_LEN: u64 = 24;
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;

/// The log's header fields that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalHeader {
    /// Page size in bytes.
    pub page_size: u32,
    /// The two salts: a new pair every time the log restarts from its first frame.
    pub salt: (u32, u32),
    /// The header's checksum, the seed of the first frame's.
    pub checksum: (u32, u32),
    /// Whether the checksum reads words big-endian.
    big_endian: bool,
}

/// Where reading stopped: after `frames` frames of the log with `salt`, with the running
/// checksum there (the seed of the next frame's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalPosition {
    /// The salts of the log this position is in.
    pub salt: (u32, u32),
    /// Frames consumed.
    pub frames: u64,
    /// The running checksum after them.
    pub checksum: (u32, u32),
}

/// One page as a frame carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Page number (1-based).
    pub page: u32,
    /// The page's bytes.
    pub data: Vec<u8>,
    /// For a commit frame, the database size in pages after the commit; 0 otherwise.
    pub commit_pages: u32,
}

/// Whole transactions read from the log.
#[derive(Debug, Clone, Default)]
pub struct Transactions {
    /// Their frames in log order; the last one is a commit frame.
    pub frames: Vec<Frame>,
    /// Where the next read starts.
    pub end: Option<WalPosition>,
    /// Whether the read reached the log's end (not stopped by its frame bound).
    pub complete: bool,
}

impl Transactions {
    /// Commit frames among them.
    pub fn commits(&self) -> usize {
        self.frames.iter().filter(|f| f.commit_pages > 0).count()
    }
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `seed`.
pub fn checksum(big_endian: bool, data: &[u8], seed: (u32, u32)) -> (u32, u32) {
    let (mut s0, mut s1) = seed;
    for pair in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let b = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        s0 = s0.wrapping_add(word(&pair[0..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..8])).wrapping_add(s0);
    }
    (s0, s1)
}

fn be(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parse and check a log header; `None` when it is not a valid one (an empty or new log).
pub fn parse_header(bytes: &[u8; HEADER_LEN as usize]) -> Option<WalHeader> {
    let magic = be(bytes, 0);
    let big_endian = match magic {
        MAGIC_BE => true,
        MAGIC_LE => false,
        _ => return None,
    };
    let page_size = be(bytes, 8);
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return None;
    }
    let checksum_field = (be(bytes, 24), be(bytes, 28));
    if checksum(big_endian, &bytes[..24], (0, 0)) != checksum_field {
        return None;
    }
    Some(WalHeader {
        page_size,
        salt: (be(bytes, 16), be(bytes, 20)),
        checksum: checksum_field,
        big_endian,
    })
}

/// Read the header of the log at `file`; `None` for an empty, short or invalid one.
pub fn read_header(file: &mut File) -> io::Result<Option<WalHeader>> {
    let mut bytes = [0u8; HEADER_LEN as usize];
    file.seek(SeekFrom::Start(0))?;
    match file.read_exact(&mut bytes) {
        Ok(()) => Ok(parse_header(&bytes)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Read whole transactions from `from` (or from the log's first frame when `from` is `None`
/// or belongs to an earlier log, i.e. its salts differ) to the last valid commit frame.
/// Reading stops at the first commit frame at or past `max_frames` frames (the rest is read
/// next time); a transaction is never split.
pub fn read_transactions(
    file: &mut File,
    header: &WalHeader,
    from: Option<WalPosition>,
    max_frames: usize,
) -> io::Result<Transactions> {
    let start = match from {
        Some(p) if p.salt == header.salt => p,
        _ => WalPosition {
            salt: header.salt,
            frames: 0,
            checksum: header.checksum,
        },
    };
    let page = u64::from(header.page_size);
    let frame_len = FRAME_HEADER_LEN + page;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(HEADER_LEN + start.frames * frame_len))?;
    let mut reader = io::BufReader::with_capacity(1 << 20, &mut *file);
    let mut pending: Vec<Frame> = Vec::new();
    let mut out = Transactions {
        frames: Vec::new(),
        end: Some(start),
        complete: false,
    };
    let mut at = start;
    let mut buf = vec![0u8; frame_len as usize];
    while HEADER_LEN + (at.frames + 1) * frame_len <= len && out.frames.len() < max_frames {
        reader.read_exact(&mut buf)?;
        let salt = (be(&buf, 8), be(&buf, 12));
        if salt != header.salt {
            break;
        }
        let sum = checksum(header.big_endian, &buf[..8], at.checksum);
        let sum = checksum(header.big_endian, &buf[FRAME_HEADER_LEN as usize..], sum);
        if sum != (be(&buf, 16), be(&buf, 20)) {
            break;
        }
        at = WalPosition {
            salt,
            frames: at.frames + 1,
            checksum: sum,
        };
        let commit_pages = be(&buf, 4);
        pending.push(Frame {
            page: be(&buf, 0),
            data: buf[FRAME_HEADER_LEN as usize..].to_vec(),
            commit_pages,
        });
        if commit_pages > 0 {
            out.frames.append(&mut pending);
            out.end = Some(at);
        }
    }
    out.complete = out.frames.len() < max_frames;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_path(dir: &std::path::Path) -> std::path::PathBuf {
        dir.join("db.sqlite-wal")
    }

    fn open(dir: &std::path::Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        c
    }

    #[test]
    fn reads_committed_transactions_and_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path());
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        let mut wal = File::open(wal_path(dir.path())).unwrap();
        let header = read_header(&mut wal).unwrap().unwrap();
        assert_eq!(header.page_size, 4096);
        let first = read_transactions(&mut wal, &header, None, usize::MAX).unwrap();
        assert!(first.commits() >= 1, "{first:?}");
        assert!(first.frames.last().unwrap().commit_pages > 0);
        // Nothing new: nothing read, the position stays.
        let again = read_transactions(&mut wal, &header, first.end, usize::MAX).unwrap();
        assert!(again.frames.is_empty());
        assert_eq!(again.end, first.end);
        c.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let second = read_transactions(&mut wal, &header, first.end, usize::MAX).unwrap();
        assert_eq!(second.commits(), 1);
        assert!(second.end.unwrap().frames > first.end.unwrap().frames);
    }

    #[test]
    fn a_damaged_frame_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path());
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);")
            .unwrap();
        let mut wal = File::open(wal_path(dir.path())).unwrap();
        let header = read_header(&mut wal).unwrap().unwrap();
        let all = read_transactions(&mut wal, &header, None, usize::MAX).unwrap();
        let n = all.end.unwrap().frames;
        assert!(n >= 3);
        // Flip a byte in the last frame's page: the last transaction is no longer read.
        let mut bytes = std::fs::read(wal_path(dir.path())).unwrap();
        let frame_len = 24 + 4096;
        let at = 32 + (n as usize - 1) * frame_len + 24 + 100;
        bytes[at] ^= 0xff;
        let damaged = dir.path().join("damaged-wal");
        std::fs::write(&damaged, &bytes).unwrap();
        let mut file = File::open(&damaged).unwrap();
        let some = read_transactions(&mut file, &header, None, usize::MAX).unwrap();
        assert!(some.end.unwrap().frames < n);
        assert!(some.frames.last().is_none_or(|f| f.commit_pages > 0));
    }

    #[test]
    fn an_invalid_header_is_no_log() {
        let mut bytes = [0u8; 32];
        assert!(parse_header(&bytes).is_none());
        bytes[..4].copy_from_slice(&MAGIC_LE.to_be_bytes());
        bytes[8..12].copy_from_slice(&4096u32.to_be_bytes());
        assert!(parse_header(&bytes).is_none(), "the checksum must hold");
        let sum = checksum(false, &bytes[..24], (0, 0));
        bytes[24..28].copy_from_slice(&sum.0.to_be_bytes());
        bytes[28..32].copy_from_slice(&sum.1.to_be_bytes());
        assert!(parse_header(&bytes).is_some());
    }
}
