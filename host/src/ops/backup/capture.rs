//! Capturing a live database: a consistent snapshot to start a generation, then each new
//! committed transaction from its write-ahead log, in order, none skipped.
//!
//! **Why nothing is skipped.** SQLite overwrites the log from its first frame ("restarts" it)
//! only when every frame has been copied into the database file and no reader is using the
//! log. The capturer always holds a read transaction that started no later than the frames it
//! has copied (two connections take turns, the new one starting before the old one ends), so
//! the log cannot restart past a frame it has not copied; and a checkpoint never copies past
//! a reader's start, so frames it has not copied stay in the log.
//!
//! **Why the log stays bounded.** Holding a reader keeps the log from restarting, so when it
//! grows past [`ROLLOVER_BYTES`] the capturer briefly takes the write lock (`BEGIN
//! IMMEDIATE`: writers wait, typically milliseconds), copies the log to its end, checkpoints it
//! completely and lets go: the next writer starts the log afresh.
//!
//! **Consistent snapshot.** Under the write lock the capturer reads the log to its end and
//! starts a read transaction there; SQLite's online backup run on that connection copies the
//! database exactly as of that point, while writers go on.
//!
//! **Commit times.** Each transaction is stamped with the time it was captured: an upper
//! bound of its commit time, so restoring to a time T never includes a transaction committed
//! after T. `serve` captures every `backup.interval`; `edgestore backup now` at once.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::increment::Increment;
use super::wal::{self, WalPosition};
use super::BackupError;

/// Log size past which the capturer restarts it (see the module doc).
pub const ROLLOVER_BYTES: u64 = 16 << 20;
/// Frames read at most into one increment.
const MAX_FRAMES: usize = 16_384;
/// How long the capturer waits for the write lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// A consistent copy of the database, taken at `position` in the log.
#[derive(Debug)]
pub struct Snapshot {
    /// The copy's bytes.
    pub bytes: Vec<u8>,
    /// Page size.
    pub page_size: u32,
    /// The state's time (when it was taken).
    pub at_ms: i64,
}

/// The live side of one database's backup: its connections and where capturing stands.
pub struct Capturer {
    db_path: PathBuf,
    wal_path: PathBuf,
    /// Two readers taking turns holding the read transaction (see the module doc).
    readers: [Connection; 2],
    /// Which reader holds it now.
    active: usize,
    /// Takes the write lock for snapshots and rollovers.
    gate: Connection,
    wal: Option<File>,
    position: Option<WalPosition>,
    page_size: u32,
}

impl std::fmt::Debug for Capturer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capturer")
            .field("db_path", &self.db_path)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

fn sql<'a>(db: &'a Path, what: &str) -> impl Fn(rusqlite::Error) -> BackupError + 'a {
    let what = what.to_owned();
    move |e| BackupError::Database {
        path: db.to_path_buf(),
        message: format!("{what}: {e}"),
    }
}

fn open(db: &Path) -> Result<Connection, BackupError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags).map_err(sql(db, "open"))?;
    conn.busy_timeout(LOCK_WAIT)
        .map_err(sql(db, "busy timeout"))?;
    Ok(conn)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Capturer {
    /// Connections to the database at `db_path` (which must exist and be in WAL mode), and a
    /// snapshot: the start of a generation.
    pub fn start(db_path: &Path) -> Result<(Capturer, Snapshot), BackupError> {
        if !db_path.is_file() {
            return Err(BackupError::Database {
                path: db_path.to_path_buf(),
                message: "no database file there".into(),
            });
        }
        let gate = open(db_path)?;
        let mode: String = gate
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(sql(db_path, "journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            gate.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
                .map_err(sql(db_path, "switch to WAL"))?;
        }
        let mut wal_path = db_path.as_os_str().to_owned();
        wal_path.push("-wal");
        let mut capturer = Capturer {
            db_path: db_path.to_path_buf(),
            wal_path: PathBuf::from(wal_path),
            readers: [open(db_path)?, open(db_path)?],
            active: 0,
            gate,
            wal: None,
            position: None,
            page_size: 0,
        };
        let snapshot = capturer.snapshot()?;
        Ok((capturer, snapshot))
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    fn err<'a>(&'a self, what: &str) -> impl Fn(rusqlite::Error) -> BackupError + 'a {
        sql(&self.db_path, what)
    }

    fn io(&self, what: &str) -> impl Fn(std::io::Error) -> BackupError + '_ {
        let what = format!("{what} {}", self.wal_path.display());
        move |e| BackupError::Io {
            what: what.clone(),
            source: e,
        }
    }

    /// The log's header, opening the log if it exists now; `None` when there is no valid log.
    fn header(&mut self) -> Result<Option<wal::WalHeader>, BackupError> {
        if self.wal.is_none() {
            match File::open(&self.wal_path) {
                Ok(f) => self.wal = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.io("open")(e)),
            }
        }
        let Some(file) = self.wal.as_mut() else {
            return Ok(None);
        };
        let header = wal::read_header(file);
        header.map_err(self.io("read"))
    }

    /// Committed transactions after the position, and whether they reach the log's end; the
    /// position moves past them.
    fn read_new(&mut self) -> Result<(Vec<wal::Frame>, bool), BackupError> {
        let Some(header) = self.header()? else {
            return Ok((Vec::new(), true));
        };
        if self.page_size != 0 && header.page_size != self.page_size {
            return Err(BackupError::NeedSnapshot(format!(
                "the page size changed from {} to {}",
                self.page_size, header.page_size
            )));
        }
        let Some(file) = self.wal.as_mut() else {
            return Ok((Vec::new(), true));
        };
        let read = wal::read_transactions(file, &header, self.position, MAX_FRAMES)
            .map_err(self.io("read"))?;
        if let Some(end) = read.end {
            self.position = Some(end);
        }
        self.page_size = header.page_size;
        Ok((read.frames, read.complete))
    }

    /// Every committed transaction after the position, to the log's end (under the write lock
    /// the end does not move).
    fn read_to_end(&mut self) -> Result<Vec<wal::Frame>, BackupError> {
        let mut frames = Vec::new();
        loop {
            let (more, complete) = self.read_new()?;
            frames.extend(more);
            if complete {
                return Ok(frames);
            }
        }
    }

    /// Start a read transaction on the other reader, then end the current one's.
    fn turn_readers(&mut self) -> Result<(), BackupError> {
        let next = 1 - self.active;
        self.readers[next]
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")
            .map_err(self.err("start a read transaction"))?;
        let current = &self.readers[self.active];
        if !current.is_autocommit() {
            current
                .execute_batch("COMMIT")
                .map_err(self.err("end a read transaction"))?;
        }
        self.active = next;
        Ok(())
    }

    /// Take the write lock: writers wait until [`Capturer::unlock`].
    fn lock(&self) -> Result<(), BackupError> {
        self.gate
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err("take the write lock"))
    }

    fn unlock(&self) {
        let _ = self.gate.execute_batch("ROLLBACK");
    }

    /// A consistent copy of the database now; capturing continues after it.
    pub fn snapshot(&mut self) -> Result<Snapshot, BackupError> {
        self.lock()?;
        let locked = (|| {
            // The log to its end: the snapshot holds all of it; capturing continues after.
            self.position = None;
            self.page_size = 0;
            self.wal = None;
            self.read_to_end()?;
            self.turn_readers()
        })();
        let at_ms = now_ms();
        self.unlock();
        locked?;
        let scratch = tempfile::NamedTempFile::new().map_err(|e| BackupError::Io {
            what: "create a scratch file for the snapshot".into(),
            source: e,
        })?;
        {
            let mut copy = Connection::open(scratch.path()).map_err(self.err("open the copy"))?;
            let source = &self.readers[self.active];
            let backup = rusqlite::backup::Backup::new(source, &mut copy)
                .map_err(self.err("start the online backup"))?;
            backup
                .step(-1)
                .map_err(self.err("copy the database"))
                .and_then(|state| match state {
                    rusqlite::backup::StepResult::Done => Ok(()),
                    other => Err(BackupError::Database {
                        path: self.db_path.clone(),
                        message: format!("the online backup stopped: {other:?}"),
                    }),
                })?;
        }
        let bytes = std::fs::read(scratch.path()).map_err(|e| BackupError::Io {
            what: "read the snapshot copy".into(),
            source: e,
        })?;
        let page_size = match self.page_size {
            0 => self.readers[self.active]
                .query_row("PRAGMA page_size", [], |r| r.get::<_, u32>(0))
                .map_err(self.err("page size"))?,
            n => n,
        };
        self.page_size = page_size;
        Ok(Snapshot {
            bytes,
            page_size,
            at_ms,
        })
    }

    /// The transactions committed since the last capture, as increment `seq` (`None`: none);
    /// a very busy log comes in several increments (call again until `None`). When the log has
    /// grown past [`ROLLOVER_BYTES`] it is restarted afterwards.
    pub fn capture(&mut self, seq: u64) -> Result<Option<Increment>, BackupError> {
        let (mut frames, complete) = self.read_new()?;
        if frames.is_empty() {
            return Ok(None);
        }
        if !complete {
            // The reader may move only past what has been copied (see the module doc).
            let at_ms = now_ms();
            return Ok(Some(Increment::from_frames(
                seq,
                self.page_size,
                frames,
                |_| at_ms,
            )));
        }
        self.turn_readers()?;
        let wal_bytes = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
        if wal_bytes > ROLLOVER_BYTES {
            frames.extend(self.rollover()?);
        }
        let at_ms = now_ms();
        Ok(Some(Increment::from_frames(
            seq,
            self.page_size,
            frames,
            |_| at_ms,
        )))
    }

    /// Copy the log to its end under the write lock, checkpoint it completely and let the next
    /// writer start it afresh. Returns the frames read under the lock.
    fn rollover(&mut self) -> Result<Vec<wal::Frame>, BackupError> {
        self.lock()?;
        let result = (|| {
            let frames = self.read_to_end()?;
            self.turn_readers()?;
            // The reader that just ended checkpoints (it is free); the one now holding began at
            // the log's end, so the checkpoint may copy all of it.
            let spare = &self.readers[1 - self.active];
            let (log, done): (i64, i64) = spare
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(1)?, r.get(2)?))
                })
                .map_err(self.err("checkpoint"))?;
            if log >= 0 && log == done {
                // All copied: restart the read so it no longer holds the log (SQLite then reads
                // the database file only), letting the next writer start the log afresh.
                let holding = &self.readers[self.active];
                holding
                    .execute_batch("COMMIT; BEGIN; SELECT count(*) FROM sqlite_master;")
                    .map_err(self.err("restart the read transaction"))?;
            }
            Ok(frames)
        })();
        self.unlock();
        result
    }

    /// The committed state the capturer's read transaction sees: call right after a capture
    /// under [`Capturer::capture_exact`], where it is exactly the captured state.
    pub fn reader(&self) -> &Connection {
        &self.readers[self.active]
    }

    /// Capture with writers held off, so the read transaction afterwards sees exactly the
    /// captured state (for verifying). `None` when nothing was new.
    pub fn capture_exact(&mut self, seq: u64) -> Result<Option<Increment>, BackupError> {
        self.lock()?;
        let result = (|| {
            let frames = self.read_to_end()?;
            self.turn_readers()?;
            Ok(frames)
        })();
        self.unlock();
        let frames = result?;
        if frames.is_empty() {
            return Ok(None);
        }
        let at_ms = now_ms();
        Ok(Some(Increment::from_frames(
            seq,
            self.page_size,
            frames,
            |_| at_ms,
        )))
    }
}
