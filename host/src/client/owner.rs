//! Ownership of a data directory: the OS lock a writing store holds for its whole life, and
//! the probe every other process uses to find out who owns a directory before it reads it.
//!
//! The lock file is [`edgestore::owner::LOCK_FILE`]; its content is an [`OwnerRecord`]. The
//! lock is `flock` (std's `File::try_lock`): it belongs to the open file description, so it
//! dies with the process (a SIGKILLed owner leaves no stale lock), and a second store in the
//! *same* process, opening the file again, is refused just like another process.
//!
//! Taking the lock (`DirLock::acquire`):
//! 1. open (create) the file and `try_lock` it; someone else holding it means the directory is
//!    owned: [`Error::Owned`] names the holder from its record;
//! 2. check that the locked file is still the one at the path (a previous owner unlinks it
//!    on exit; locking an unlinked file would own nothing) and retry otherwise;
//! 3. a record left by the standalone component (WASI has no locks, so it cannot be checked)
//!    is refused with the file to remove; so is, for a moment, an empty file someone else
//!    just created (a standalone owner about to write its record); any other leftover record
//!    is stale and replaced.
//!
//! Releasing (drop): the file is removed while still locked, then closed.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cap_std::fs::{Dir, MetadataExt as _, OpenOptions};
use edgestore::owner::{LockKind, OwnerRecord, LOCK_FILE};

use crate::error::{Error, Result};

/// The hint of an [`Error::Owned`] message; defined with the error so `error` depends on
/// nothing above it, and re-exported here for the callers that print it beside a probe.
pub use crate::error::owned_hint;

/// How long taking the lock keeps trying while it is held: an inspecting process probes it for
/// a moment ([`probe`]), and an owner starting then must not mistake that for an owner.
const ACQUIRE_PATIENCE: Duration = Duration::from_millis(1_500);
const ACQUIRE_STEP: Duration = Duration::from_millis(25);

/// What an inspecting process found in a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Nobody owns it (no lock file, or one whose lock nobody holds: a stale record).
    Free,
    /// A live owner (its record, when readable).
    Owned(Option<OwnerRecord>),
}

impl Ownership {
    /// The owner's record when owned.
    pub fn owner(&self) -> Option<&OwnerRecord> {
        match self {
            Ownership::Owned(r) => r.as_ref(),
            Ownership::Free => None,
        }
    }

    /// True when some process owns the directory.
    pub fn is_owned(&self) -> bool {
        matches!(self, Ownership::Owned(_))
    }
}

/// The lock of an owning store: held until dropped.
#[derive(Debug)]
pub struct DirLock {
    dir: Dir,
    file: std::fs::File,
    record: OwnerRecord,
    path: PathBuf,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Store(edgestore::Error::io(
        format!("{what} {}", path.display()),
        e,
    ))
}

fn read_record(file: &mut std::fs::File) -> Option<OwnerRecord> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64 * 1024).read_to_end(&mut bytes).ok()?;
    OwnerRecord::parse(&bytes).ok().flatten()
}

/// How long an empty lock file counts as just created by an owner about to write its record.
const FRESH_EMPTY: Duration = Duration::from_secs(2);

fn recently_created(file: &std::fs::File) -> bool {
    file.metadata()
        .ok()
        .filter(|m| m.len() == 0)
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < FRESH_EMPTY)
}

impl DirLock {
    /// Take ownership of the data directory `dir` (at `data_dir`, for messages) for
    /// `command`. Fails with [`Error::Owned`] when another store, in this process or another,
    /// owns it.
    pub fn acquire(dir: &Dir, data_dir: &Path, command: &str) -> Result<DirLock> {
        let path = data_dir.join(LOCK_FILE);
        let started = std::time::Instant::now();
        loop {
            let mut options = OpenOptions::new();
            options.read(true).write(true).create_new(true);
            let (mut file, created) = match dir.open_with(LOCK_FILE, &options) {
                Ok(f) => (f.into_std(), true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    options.create_new(false);
                    match dir.open_with(LOCK_FILE, &options) {
                        Ok(f) => (f.into_std(), false),
                        // Removed meanwhile by a releasing owner: start over.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_error("open the lock file", &path, e)),
                    }
                }
                Err(e) => return Err(io_error("create the lock file", &path, e)),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    if started.elapsed() < ACQUIRE_PATIENCE {
                        std::thread::sleep(ACQUIRE_STEP);
                        continue;
                    }
                    return Err(Error::Owned {
                        data_dir: data_dir.to_path_buf(),
                        owner: read_record(&mut file),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(io_error("lock", &path, e));
                }
            }
            // Locked: is it still the file at the path? (A previous owner removes it on exit.)
            let same = match (file.metadata(), dir.symlink_metadata(LOCK_FILE)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if !same {
                continue;
            }
            match read_record(&mut file) {
                Some(old) if old.lock == LockKind::File => {
                    return Err(Error::Owned {
                        data_dir: data_dir.to_path_buf(),
                        owner: Some(old),
                    });
                }
                // Someone else's file with no record yet: a standalone owner between creating
                // it and writing its record (it holds no OS lock to tell us). Give it a moment;
                // a file that stays empty is a dead owner's.
                None if !created && recently_created(&file) => {
                    if started.elapsed() < ACQUIRE_PATIENCE {
                        drop(file);
                        std::thread::sleep(ACQUIRE_STEP);
                        continue;
                    }
                    return Err(Error::Owned {
                        data_dir: data_dir.to_path_buf(),
                        owner: None,
                    });
                }
                _ => {}
            }
            let mut lock = DirLock {
                dir: dir.try_clone().map_err(|e| io_error("open", data_dir, e))?,
                file,
                record: OwnerRecord {
                    pid: Some(std::process::id()),
                    command: command.to_owned(),
                    since_ms: now_ms(),
                    admin: None,
                    lock: LockKind::Os,
                },
                path,
            };
            lock.write_record()?;
            return Ok(lock);
        }
    }

    fn write_record(&mut self) -> Result<()> {
        let bytes = self.record.to_bytes();
        let res = self
            .file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(&bytes))
            .and_then(|()| self.file.flush());
        res.map_err(|e| io_error("write the owner record to", &self.path, e))
    }

    /// Record where the owner's admin endpoint listens (so other processes forward to it).
    pub fn set_admin(&mut self, admin: Option<String>) -> Result<()> {
        self.record.admin = admin;
        self.write_record()
    }

    /// What the lock file says.
    pub fn record(&self) -> &OwnerRecord {
        &self.record
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Removed while still locked, so nobody can lock this file and think they own the
        // directory; closing the file then releases the lock.
        let _ = self.dir.remove_file(LOCK_FILE);
    }
}

/// Who owns the data directory `data_dir`, without taking anything: reads the record and tests
/// the lock for a moment (a shared lock, released at once).
pub fn probe(data_dir: &Path) -> Result<Ownership> {
    let path = data_dir.join(LOCK_FILE);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ownership::Free),
        Err(e) => return Err(io_error("open the lock file", &path, e)),
    };
    let record = read_record(&mut file);
    if let Some(r) = &record {
        if r.lock == LockKind::File {
            // A standalone component's lock: its existence is the lock.
            return Ok(Ownership::Owned(record));
        }
    }
    match file.try_lock_shared() {
        Ok(()) => Ok(Ownership::Free),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Ownership::Owned(record)),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error("test the lock", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    fn open(p: &Path) -> Dir {
        Dir::open_ambient_dir(p, ambient_authority()).unwrap()
    }

    #[test]
    fn one_owner_even_within_one_process() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = open(tmp.path());
        assert_eq!(probe(tmp.path()).unwrap(), Ownership::Free);
        let lock = DirLock::acquire(&dir, tmp.path(), "edgestore serve").unwrap();
        let found = probe(tmp.path()).unwrap();
        assert_eq!(found.owner(), Some(lock.record()));
        assert_eq!(lock.record().pid, Some(std::process::id()));
        // A second store in this process is refused, naming the first.
        let started = std::time::Instant::now();
        let second = DirLock::acquire(&dir, tmp.path(), "edgestore spool put").unwrap_err();
        assert!(started.elapsed() >= ACQUIRE_PATIENCE);
        match &second {
            Error::Owned { owner, .. } => assert_eq!(owner.as_ref(), Some(lock.record())),
            other => panic!("{other}"),
        }
        assert!(second.to_string().contains("edgestore serve (pid"));
        drop(lock);
        // Released: the file is gone and the directory is free again.
        assert!(!tmp.path().join(LOCK_FILE).exists());
        assert_eq!(probe(tmp.path()).unwrap(), Ownership::Free);
        DirLock::acquire(&dir, tmp.path(), "again").unwrap();
    }

    #[test]
    fn stale_records_are_replaced_and_standalone_ones_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = open(tmp.path());
        let stale = OwnerRecord {
            pid: Some(1),
            command: "edgestore serve".into(),
            since_ms: 0,
            admin: None,
            lock: LockKind::Os,
        };
        std::fs::write(tmp.path().join(LOCK_FILE), stale.to_bytes()).unwrap();
        // Nobody holds the lock: the record is stale.
        assert_eq!(probe(tmp.path()).unwrap(), Ownership::Free);
        let mut lock = DirLock::acquire(&dir, tmp.path(), "new").unwrap();
        lock.set_admin(Some("/x.sock".into())).unwrap();
        let on_disk = std::fs::read(tmp.path().join(LOCK_FILE)).unwrap();
        assert_eq!(
            OwnerRecord::parse(&on_disk).unwrap().as_ref(),
            Some(lock.record())
        );
        drop(lock);

        let standalone = OwnerRecord {
            pid: None,
            command: "edgestore-standalone spool flush".into(),
            since_ms: 0,
            admin: None,
            lock: LockKind::File,
        };
        std::fs::write(tmp.path().join(LOCK_FILE), standalone.to_bytes()).unwrap();
        assert!(probe(tmp.path()).unwrap().is_owned());
        let e = DirLock::acquire(&dir, tmp.path(), "serve").unwrap_err();
        assert!(e.to_string().contains("remove its lock file"), "{e}");
        // Refusing left the standalone's file in place.
        assert!(tmp.path().join(LOCK_FILE).exists());

        // An empty file just created by someone else is a holder about to write its record;
        // one that stayed empty is a dead one's.
        std::fs::write(tmp.path().join(LOCK_FILE), b"").unwrap();
        match DirLock::acquire(&dir, tmp.path(), "serve") {
            Err(Error::Owned { owner: None, .. }) => {}
            other => panic!("a fresh empty lock file was taken over: {other:?}"),
        }
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(tmp.path().join(LOCK_FILE))
            .unwrap()
            .set_modified(old)
            .unwrap();
        DirLock::acquire(&dir, tmp.path(), "serve").unwrap();
    }
}
