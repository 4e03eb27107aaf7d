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
//! **Commit times.** A transaction committed through the host's own connections is read by
//! the committing thread right after its commit ([`crate::commit_hooks`]) and stamped with that
//! moment; anything else (another process writing the file) is stamped when a round finds it.
//! Either is an upper bound of the commit's time, so restoring to a time T never includes a
//! transaction committed after T, and includes every one committed through the host before.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use edgestore::sql::sqlite::cipher::{self, DatabaseKey};
use rusqlite::{Connection, OpenFlags};

use super::increment::Increment;
use super::wal::{self, WalPosition};
use super::BackupError;

/// Log size past which the capturer restarts it (see the module doc).
pub const ROLLOVER_BYTES: u64 = 16 << 20;
/// Frames read at most into one increment.
const MAX_FRAMES: usize = 16_384;
/// Bytes of frames the commit hooks hold between rounds at most; past it, later commits wait
/// for the next round (stamped then).
const MAX_BUFFERED_BYTES: usize = 64 << 20;
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

/// Where reading the log stands, and what the commit hooks read since the last round.
#[derive(Debug)]
struct LogReader {
    wal_path: PathBuf,
    wal: Option<File>,
    position: Option<WalPosition>,
    page_size: u32,
    /// Whole transactions the hooks read, each group with the time right after its read.
    buffered: Vec<(Vec<wal::Frame>, i64)>,
    buffered_bytes: usize,
}

impl LogReader {
    fn io(&self, what: &str) -> impl Fn(std::io::Error) -> BackupError {
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
        let failed = self.io("read");
        let Some(file) = self.wal.as_mut() else {
            return Ok(None);
        };
        wal::read_header(file).map_err(failed)
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
        let failed = self.io("read");
        let Some(file) = self.wal.as_mut() else {
            return Ok((Vec::new(), true));
        };
        let read =
            wal::read_transactions(file, &header, self.position, MAX_FRAMES).map_err(failed)?;
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

    /// The hooks' groups, then `frames` stamped `at_ms`, as increment `seq`.
    fn increment(&mut self, seq: u64, frames: Vec<wal::Frame>, at_ms: i64) -> Option<Increment> {
        let mut groups = std::mem::take(&mut self.buffered);
        self.buffered_bytes = 0;
        if !frames.is_empty() {
            groups.push((frames, at_ms));
        }
        if groups.is_empty() {
            return None;
        }
        let mut times = Vec::new();
        let mut all = Vec::new();
        for (frames, at) in groups {
            times.extend(frames.iter().filter(|f| f.commit_pages > 0).map(|_| at));
            all.extend(frames);
        }
        // Non-decreasing, as a restore expects.
        let mut latest = i64::MIN;
        for t in &mut times {
            latest = latest.max(*t);
            *t = latest;
        }
        Some(Increment::from_frames(seq, self.page_size, all, |i| {
            times.get(i).copied().unwrap_or(at_ms)
        }))
    }
}

/// One database's log reading, shared between its [`Capturer`] and the commit hooks of the
/// connections writing it.
#[derive(Debug)]
pub struct CommitCapture {
    log: Mutex<LogReader>,
}

impl CommitCapture {
    fn lock(&self) -> MutexGuard<'_, LogReader> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl crate::commit_hooks::CommitObserver for CommitCapture {
    /// Called by the committing thread right after a commit: read the new transactions now
    /// and stamp them with this moment. Errors are left for the next round to meet.
    fn on_commit(&self) {
        let mut log = self.lock();
        if log.position.is_none() || log.buffered_bytes > MAX_BUFFERED_BYTES {
            return;
        }
        if let Ok((frames, _)) = log.read_new() {
            if !frames.is_empty() {
                let at = now_ms();
                log.buffered_bytes += frames.iter().map(|f| f.data.len()).sum::<usize>();
                log.buffered.push((frames, at));
            }
        }
    }
}

/// Two read transactions taking turns (see the module doc).
struct Readers {
    conns: [Connection; 2],
    /// Which one holds the read transaction now.
    active: usize,
}

impl Readers {
    /// Start a read transaction on the other reader, then end the current one's.
    fn turn(&mut self, db: &Path) -> Result<(), BackupError> {
        let next = 1 - self.active;
        self.conns[next]
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")
            .map_err(sql(db, "start a read transaction"))?;
        let current = &self.conns[self.active];
        if !current.is_autocommit() {
            current
                .execute_batch("COMMIT")
                .map_err(sql(db, "end a read transaction"))?;
        }
        self.active = next;
        Ok(())
    }

    fn holding(&self) -> &Connection {
        &self.conns[self.active]
    }

    fn spare(&self) -> &Connection {
        &self.conns[1 - self.active]
    }
}

/// The live side of one database's backup: its connections and where capturing stands.
pub struct Capturer {
    db_path: PathBuf,
    wal_path: PathBuf,
    shared: Arc<CommitCapture>,
    readers: Readers,
    /// Takes the write lock for snapshots and rollovers.
    gate: Connection,
    /// The key the database opened with (encrypted databases): the snapshot copy gets it,
    /// with the database's salt, so pages of the log decrypt in the copy too.
    key: Option<DatabaseKey>,
}

impl std::fmt::Debug for Capturer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capturer")
            .field("db_path", &self.db_path)
            .finish_non_exhaustive()
    }
}

impl Drop for Capturer {
    fn drop(&mut self) {
        crate::commit_hooks::unregister(&self.db_path);
    }
}

fn sql<'a>(db: &'a Path, what: &str) -> impl Fn(rusqlite::Error) -> BackupError + 'a {
    let what = what.to_owned();
    move |e| BackupError::Database {
        path: db.to_path_buf(),
        message: format!("{what}: {e}"),
    }
}

/// A connection to `db`, keyed with the first of `keys` that opens it (an encrypted database):
/// the connection and the index of that key.
fn open(db: &Path, keys: &[DatabaseKey]) -> Result<(Connection, Option<usize>), BackupError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags).map_err(sql(db, "open"))?;
    let used = cipher::apply(&conn, db, keys).map_err(|e| BackupError::Database {
        path: db.to_path_buf(),
        message: e.to_string(),
    })?;
    conn.busy_timeout(LOCK_WAIT)
        .map_err(sql(db, "busy timeout"))?;
    Ok((conn, used))
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Capturer {
    /// Connections to the database at `db_path` (which must exist), switched to WAL mode if
    /// it is not, and a snapshot: the start of a generation. From then on the commit hooks of
    /// the host's connections to it capture each commit as it happens.
    /// `keys`: the database keys of an encrypted database (current first), else empty.
    pub fn start(
        db_path: &Path,
        keys: &[DatabaseKey],
    ) -> Result<(Capturer, Snapshot), BackupError> {
        if !db_path.is_file() {
            return Err(BackupError::Database {
                path: db_path.to_path_buf(),
                message: "no database file there".into(),
            });
        }
        let (gate, used) = open(db_path, keys)?;
        let key = used.and_then(|i| keys.get(i)).cloned();
        let mode: String = gate
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(sql(db_path, "journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            gate.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
                .map_err(sql(db_path, "switch to WAL"))?;
        }
        let mut wal_path = db_path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal_path = PathBuf::from(wal_path);
        let shared = Arc::new(CommitCapture {
            log: Mutex::new(LogReader {
                wal_path: wal_path.clone(),
                wal: None,
                position: None,
                page_size: 0,
                buffered: Vec::new(),
                buffered_bytes: 0,
            }),
        });
        let mut capturer = Capturer {
            db_path: db_path.to_path_buf(),
            wal_path,
            shared,
            readers: Readers {
                conns: [open(db_path, keys)?.0, open(db_path, keys)?.0],
                active: 0,
            },
            gate,
            key,
        };
        let snapshot = capturer.snapshot()?;
        let observer: Arc<dyn crate::commit_hooks::CommitObserver> = capturer.shared.clone();
        crate::commit_hooks::register(db_path, &observer);
        Ok((capturer, snapshot))
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Take the write lock: writers wait until [`Capturer::unlock`]. Never called with the
    /// log's lock held (a committing thread may be waiting for it in its hook).
    fn lock(&self) -> Result<(), BackupError> {
        self.gate
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql(&self.db_path, "take the write lock"))
    }

    fn unlock(&self) {
        let _ = self.gate.execute_batch("ROLLBACK");
    }

    /// A consistent copy of the database now; capturing continues after it (what was
    /// captured but not yet taken by [`Capturer::capture`] is dropped: the copy holds it).
    pub fn snapshot(&mut self) -> Result<Snapshot, BackupError> {
        self.lock()?;
        let locked = {
            let mut log = self.shared.lock();
            // The log to its end: the snapshot holds all of it; capturing continues after.
            log.position = None;
            log.page_size = 0;
            log.wal = None;
            log.buffered.clear();
            log.buffered_bytes = 0;
            log.read_to_end()
                .and_then(|_| self.readers.turn(&self.db_path))
                .map(|()| log.page_size)
        };
        let at_ms = now_ms();
        self.unlock();
        let known_page_size = locked?;
        let scratch = tempfile::NamedTempFile::new().map_err(|e| BackupError::Io {
            what: "create a scratch file for the snapshot".into(),
            source: e,
        })?;
        let db = &self.db_path;
        {
            let mut copy = match &self.key {
                Some(key) => {
                    cipher::keyed_copy_destination(scratch.path(), key, db).map_err(|e| {
                        BackupError::Database {
                            path: db.clone(),
                            message: format!("open the copy: {e}"),
                        }
                    })?
                }
                None => Connection::open(scratch.path()).map_err(sql(db, "open the copy"))?,
            };
            let backup = rusqlite::backup::Backup::new(self.readers.holding(), &mut copy)
                .map_err(sql(db, "start the online backup"))?;
            let state = backup.step(-1).map_err(sql(db, "copy the database"))?;
            if state != rusqlite::backup::StepResult::Done {
                return Err(BackupError::Database {
                    path: db.clone(),
                    message: format!("the online backup stopped: {state:?}"),
                });
            }
        }
        let bytes = std::fs::read(scratch.path()).map_err(|e| BackupError::Io {
            what: "read the snapshot copy".into(),
            source: e,
        })?;
        let page_size = match known_page_size {
            0 => self
                .readers
                .holding()
                // SQLCipher answers for a keyed connection with its own page size, as text.
                .query_row("PRAGMA page_size", [], |r| {
                    Ok(match r.get::<_, rusqlite::types::Value>(0)? {
                        rusqlite::types::Value::Integer(n) => u32::try_from(n).unwrap_or(0),
                        rusqlite::types::Value::Text(t) => t.trim().parse().unwrap_or(0),
                        _ => 0,
                    })
                })
                .map_err(sql(db, "page size"))?,
            n => n,
        };
        if page_size == 0 {
            return Err(BackupError::Database {
                path: db.clone(),
                message: "the database did not tell its page size".into(),
            });
        }
        let mut log = self.shared.lock();
        log.page_size = page_size;
        // Hooks capture from here on (a position, even at the log's start, says so).
        if log.position.is_none() {
            log.position = Some(WalPosition {
                salt: (0, 0),
                frames: 0,
                checksum: (0, 0),
            });
        }
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
        let (complete, empty) = {
            let mut log = self.shared.lock();
            let (frames, complete) = log.read_new()?;
            let empty = frames.is_empty() && log.buffered.is_empty();
            if !empty {
                // Put back as the newest group: taken below with the others.
                let at = now_ms();
                if !frames.is_empty() {
                    log.buffered.push((frames, at));
                }
            }
            if complete && !empty {
                // The reader may move only past what has been copied (see the module doc).
                self.readers.turn(&self.db_path)?;
            }
            (complete, empty)
        };
        if empty {
            return Ok(None);
        }
        let wal_bytes = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
        if complete && wal_bytes > ROLLOVER_BYTES {
            self.rollover()?;
        }
        let at_ms = now_ms();
        Ok(self.shared.lock().increment(seq, Vec::new(), at_ms))
    }

    /// Copy the log to its end under the write lock, checkpoint it completely and let the next
    /// writer start it afresh. What it read joins the hooks' groups.
    fn rollover(&mut self) -> Result<(), BackupError> {
        self.lock()?;
        let result = (|| {
            let mut log = self.shared.lock();
            let frames = log.read_to_end()?;
            if !frames.is_empty() {
                let at = now_ms();
                log.buffered.push((frames, at));
            }
            self.readers.turn(&self.db_path)?;
            // The reader that just ended checkpoints (it is free); the one now holding began at
            // the log's end, so the checkpoint may copy all of it.
            let (pages, done): (i64, i64) = self
                .readers
                .spare()
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(1)?, r.get(2)?))
                })
                .map_err(sql(&self.db_path, "checkpoint"))?;
            if pages >= 0 && pages == done {
                // All copied: restart the read so it no longer holds the log (SQLite then reads
                // the database file only), letting the next writer start the log afresh.
                self.readers
                    .holding()
                    .execute_batch("COMMIT; BEGIN; SELECT count(*) FROM sqlite_master;")
                    .map_err(sql(&self.db_path, "restart the read transaction"))?;
            }
            Ok(())
        })();
        self.unlock();
        result
    }

    /// The committed state the capturer's read transaction sees: right after
    /// [`Capturer::capture_exact`], exactly the captured state.
    pub fn reader(&self) -> &Connection {
        self.readers.holding()
    }

    /// Capture with writers held off, so the read transaction afterwards sees exactly the
    /// captured state (for verifying). `None` when nothing was new.
    pub fn capture_exact(&mut self, seq: u64) -> Result<Option<Increment>, BackupError> {
        self.lock()?;
        let result = (|| {
            let mut log = self.shared.lock();
            let frames = log.read_to_end()?;
            self.readers.turn(&self.db_path)?;
            Ok(log.increment(seq, frames, now_ms()))
        })();
        self.unlock();
        result
    }
}
