//! Commit hooks: a transaction committed through one of the host's connections is seen by the
//! committing thread right after its commit, so the continuous backup
//! ([`crate::backup`]) can read it then and stamp it with that moment: a point-in-time restore
//! knows when each transaction committed, not only when a round found it.
//!
//! Installed on every connection the host opens for writing a database file (the native
//! engine's writer, the plugin world's connections), whether or not a backup runs: SQLite calls
//! the commit hook (which notes, per thread, which database is committing) and, once the
//! commit is done, the write-ahead-log hook, which tells that database's registered
//! [`CommitObserver`], if any. A failed commit reaches the rollback hook instead, which forgets
//! the note. This sits below the engines and the services: they meet here without depending
//! on each other.
//!
//! A write-ahead-log hook replaces SQLite's automatic checkpoint, so this one does what that
//! did: a passive checkpoint once the log holds [`AUTOCHECKPOINT_PAGES`] pages.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use rusqlite::Connection;

/// Told about each commit to a database, on the committing thread, right after it.
pub trait CommitObserver: Send + Sync {
    /// A transaction was just committed (keep it short: the committing call waits).
    fn on_commit(&self);
}

/// SQLite's default `wal_autocheckpoint`.
pub const AUTOCHECKPOINT_PAGES: c_int = 1000;

thread_local! {
    /// The database whose commit this thread is in.
    static COMMITTING: RefCell<Option<Arc<PathBuf>>> = const { RefCell::new(None) };
}

/// The observers, by canonical database path.
static CAPTURES: LazyLock<Mutex<HashMap<PathBuf, Weak<dyn CommitObserver>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// How many observers are registered: a commit with none to tell takes no lock.
static REGISTERED: AtomicUsize = AtomicUsize::new(0);

fn captures() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Weak<dyn CommitObserver>>> {
    CAPTURES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The path commits are known by: canonical when the file exists.
pub fn key(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// Tell `observer` about commits to `path` (until it is dropped or unregistered).
pub fn register(path: &Path, observer: &Arc<dyn CommitObserver>) {
    let mut all = captures();
    all.insert(key(path), Arc::downgrade(observer));
    REGISTERED.store(all.len(), Ordering::Release);
}

/// Stop telling anyone about commits to `path`.
pub fn unregister(path: &Path) {
    let mut all = captures();
    all.remove(&key(path));
    REGISTERED.store(all.len(), Ordering::Release);
}

/// Install the hooks on `conn`, a connection writing the database file at `path`.
pub fn install(conn: &Connection, path: &Path) {
    let path = Arc::new(key(path));
    conn.commit_hook(Some(move || {
        COMMITTING.with(|c| *c.borrow_mut() = Some(path.clone()));
        // Go on with the commit.
        false
    }));
    conn.rollback_hook(Some(|| {
        COMMITTING.with(|c| *c.borrow_mut() = None);
    }));
    conn.wal_hook(Some(after_commit));
}

fn after_commit(wal: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    let committing = COMMITTING.with(|c| c.borrow_mut().take());
    if let Some(path) = committing.filter(|_| REGISTERED.load(Ordering::Acquire) > 0) {
        let capture = captures().get(path.as_path()).and_then(Weak::upgrade);
        if let Some(capture) = capture {
            capture.on_commit();
        }
    }
    if pages >= AUTOCHECKPOINT_PAGES {
        // As SQLite's own automatic checkpoint: passive, its outcome not the commit's.
        let _ = wal.checkpoint();
    }
    Ok(())
}
