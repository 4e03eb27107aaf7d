//! What a backup target holds for one database, and the byte format of an increment.
//!
//! ```text
//! {prefix}/{label}/{generation}/snapshot.db     the database at the generation's start
//! {prefix}/{label}/{generation}/snapshot.json   its manifest, written last (no manifest: an
//!                                               unfinished generation, ignored)
//! {prefix}/{label}/{generation}/{seq}.inc       increment `seq` (1, 2, ...; 10 digits)
//! {prefix}/{label}/{generation}/spool/{segment}  with `backup.spool`: a pending segment and
//!                                               its `.sum` sidecar, as they were in the spool
//! ```
//!
//! A generation is a snapshot and the increments after it: restoring one is copying the
//! snapshot and writing each increment's pages in order. Generation names start with their
//! start time in milliseconds (13 digits), so they sort by time.
//!
//! An increment is whole transactions of the write-ahead log: for each commit its time and
//! the database size after it, then the pages, then a SHA-256 of everything before it, so a
//! torn or tampered increment is refused whole, never applied in part.
//!
//! ```text
//! "EDGEBKI1"  u32 page_size  u64 seq  u32 commits  u32 frames      (little-endian)
//! commits x (u32 frames up to and including this commit, u32 pages after it, i64 at_ms)
//! frames  x (u32 page number, page_size bytes)
//! 32 bytes SHA-256
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::wal::Frame;

const MAGIC: &[u8; 8] = b"EDGEBKI1";
const FIXED: usize = 8 + 4 + 8 + 4 + 4;
const COMMIT_LEN: usize = 4 + 4 + 8;
const DIGEST_LEN: usize = 32;

/// The snapshot's object name in a generation.
pub const SNAPSHOT: &str = "snapshot.db";
/// The snapshot manifest's object name.
pub const MANIFEST: &str = "snapshot.json";
/// The folder of a generation's copied spool segments (`spool/{segment}`, `spool/{segment}.sum`).
pub const SPOOL_DIR: &str = "spool";
/// The increments' suffix.
pub const INCREMENT_SUFFIX: &str = ".inc";

/// One committed transaction in an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Frames of the increment up to and including this commit's last one.
    pub frames_through: u32,
    /// Database size in pages after it.
    pub pages: u32,
    /// When it was committed, at the latest (milliseconds since the epoch, UTC).
    pub at_ms: i64,
}

/// A decoded increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Increment {
    /// Its place in the generation (from 1).
    pub seq: u64,
    /// Page size of its frames.
    pub page_size: u32,
    /// Its transactions, in commit order.
    pub commits: Vec<Commit>,
    /// Their pages, in log order.
    pub frames: Vec<(u32, Vec<u8>)>,
}

/// Why an increment's bytes cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Damaged(pub String);

impl Increment {
    /// The increment of whole transactions `frames` (the last one a commit frame), every
    /// commit stamped by `commit_time(i)` for the i-th commit.
    pub fn from_frames(
        seq: u64,
        page_size: u32,
        frames: Vec<Frame>,
        commit_time: impl Fn(usize) -> i64,
    ) -> Increment {
        let mut commits = Vec::new();
        let mut pages = Vec::with_capacity(frames.len());
        for (i, frame) in frames.into_iter().enumerate() {
            if frame.commit_pages > 0 {
                commits.push(Commit {
                    frames_through: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    pages: frame.commit_pages,
                    at_ms: commit_time(commits.len()),
                });
            }
            pages.push((frame.page, frame.data));
        }
        Increment {
            seq,
            page_size,
            commits,
            frames: pages,
        }
    }

    /// The time of its last commit.
    pub fn last_at_ms(&self) -> Option<i64> {
        self.commits.last().map(|c| c.at_ms)
    }

    /// Its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let page = self.page_size as usize;
        let mut out = Vec::with_capacity(
            FIXED + self.commits.len() * COMMIT_LEN + self.frames.len() * (4 + page) + DIGEST_LEN,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.page_size.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&(self.commits.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.frames.len() as u32).to_le_bytes());
        for c in &self.commits {
            out.extend_from_slice(&c.frames_through.to_le_bytes());
            out.extend_from_slice(&c.pages.to_le_bytes());
            out.extend_from_slice(&c.at_ms.to_le_bytes());
        }
        for (number, data) in &self.frames {
            out.extend_from_slice(&number.to_le_bytes());
            out.extend_from_slice(data);
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    /// Decode and check `bytes` (digest first: nothing of a damaged increment is used).
    pub fn decode(bytes: &[u8]) -> Result<Increment, Damaged> {
        let damaged = |why: &str| Damaged(why.to_owned());
        if bytes.len() < FIXED + DIGEST_LEN {
            return Err(damaged("shorter than an increment's header"));
        }
        let (body, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
        if Sha256::digest(body).as_slice() != digest {
            return Err(damaged(
                "its SHA-256 does not match its content (truncated or altered)",
            ));
        }
        if &body[..8] != MAGIC {
            return Err(damaged("not an edgestore backup increment"));
        }
        let u32_at =
            |at: usize| u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let page_size = u32_at(8);
        let seq = u64_at(12);
        let commit_count = u32_at(20) as usize;
        let frame_count = u32_at(24) as usize;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(damaged("bad page size"));
        }
        let page = page_size as usize;
        let expected = commit_count
            .checked_mul(COMMIT_LEN)
            .and_then(|c| frame_count.checked_mul(4 + page).map(|f| (c, f)))
            .and_then(|(c, f)| c.checked_add(f))
            .and_then(|n| n.checked_add(FIXED));
        if expected != Some(body.len()) {
            return Err(damaged("its length does not match its counts"));
        }
        let mut at = FIXED;
        let mut commits = Vec::with_capacity(commit_count);
        for _ in 0..commit_count {
            commits.push(Commit {
                frames_through: u32_at(at),
                pages: u32_at(at + 4),
                at_ms: u64_at(at + 8) as i64,
            });
            at += COMMIT_LEN;
        }
        let mut frames = Vec::with_capacity(frame_count);
        for _ in 0..frame_count {
            let number = u32_at(at);
            frames.push((number, body[at + 4..at + 4 + page].to_vec()));
            at += 4 + page;
        }
        let ordered = commits
            .windows(2)
            .all(|w| w[0].frames_through < w[1].frames_through && w[0].at_ms <= w[1].at_ms);
        let last_is_commit = commits
            .last()
            .is_some_and(|c| c.frames_through as usize == frame_count);
        if !ordered || !last_is_commit || frames.iter().any(|(n, _)| *n == 0) {
            return Err(damaged("its commits or pages are out of order"));
        }
        Ok(Increment {
            seq,
            page_size,
            commits,
            frames,
        })
    }
}

/// A generation's snapshot manifest (`snapshot.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Format version (1).
    pub format: u32,
    /// The database's label.
    pub label: String,
    /// The database file's name in the data directory.
    pub file: String,
    /// The generation's name.
    pub generation: String,
    /// The time of the state the snapshot holds (ms since the epoch, UTC).
    pub at_ms: i64,
    /// Page size.
    pub page_size: u32,
    /// Size of `snapshot.db` in bytes.
    pub bytes: u64,
    /// SHA-256 of `snapshot.db`, hex.
    pub sha256: String,
    /// Spool segments pending (finished, not yet shipped) at that time, per spool path.
    #[serde(default)]
    pub pending_segments: Vec<String>,
}

/// The key of increment `seq`.
pub fn increment_name(seq: u64) -> String {
    format!("{seq:010}{INCREMENT_SUFFIX}")
}

/// The sequence number of an increment's object name.
pub fn increment_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(INCREMENT_SUFFIX)?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// A new generation's name: its start time and 8 random hex digits.
pub fn generation_name(at_ms: i64) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{at_ms:013}-{}", &random[..8])
}

/// The start time in a generation's name.
pub fn generation_time(name: &str) -> Option<i64> {
    let (ms, rest) = name.split_once('-')?;
    (ms.len() == 13 && rest.len() == 8 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| ms.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Increment {
        let frames = vec![
            Frame {
                page: 2,
                data: vec![7; 512],
                commit_pages: 0,
            },
            Frame {
                page: 1,
                data: vec![1; 512],
                commit_pages: 3,
            },
            Frame {
                page: 3,
                data: vec![9; 512],
                commit_pages: 3,
            },
        ];
        Increment::from_frames(4, 512, frames, |i| 1_000 + i as i64)
    }

    #[test]
    fn round_trips_and_keeps_commit_boundaries() {
        let inc = sample();
        assert_eq!(
            inc.commits,
            vec![
                Commit {
                    frames_through: 2,
                    pages: 3,
                    at_ms: 1_000
                },
                Commit {
                    frames_through: 3,
                    pages: 3,
                    at_ms: 1_001
                }
            ]
        );
        assert_eq!(Increment::decode(&inc.encode()).unwrap(), inc);
    }

    #[test]
    fn any_damage_is_refused_whole() {
        let bytes = sample().encode();
        for at in [0, 9, 30, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(Increment::decode(&bad).is_err(), "byte {at}");
        }
        assert!(Increment::decode(&bytes[..bytes.len() - 10]).is_err());
        assert!(Increment::decode(&[]).is_err());
    }

    #[test]
    fn names_sort_and_parse() {
        assert_eq!(increment_name(12), "0000000012.inc");
        assert_eq!(increment_seq("0000000012.inc"), Some(12));
        assert_eq!(increment_seq("12.inc"), None);
        let g = generation_name(1_700_000_000_000);
        assert_eq!(generation_time(&g), Some(1_700_000_000_000));
        assert!(generation_name(999) < generation_name(1_000));
        assert_eq!(generation_time("snapshot.db"), None);
    }
}
