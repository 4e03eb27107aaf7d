//! The directory capability: the one seam between the spool and the disk.
//!
//! Like redb's `StorageBackend`, the spool never names a path of the host file system: it asks a
//! [`Directory`] to create, read, rename and sync files by *relative name*. That keeps the core
//! portable (a `cap_std::fs::Dir` natively, the preopened directory inside the component) and
//! makes faults testable: [`MemDir`] forgets unsynced bytes on a simulated power cut and
//! [`FaultyDir`] fails the Nth write, sync or rename with the error a test chooses.
//!
//! Every method returns `io::Result`; the spool translates to [`crate::Error`] with context.
//!
//! | implementation | where | file |
//! |---|---|---|
//! | [`CapDir`] | native (`native` feature), capability-based | `cap.rs` |
//! | [`PathDir`] | `std::fs` under a root; the component's preopened dir (new files written through WASI directly) | `path.rs`, `wasi_file.rs` |
//! | [`MemDir`] | tests: live vs durable bytes, `crash()` | `mem.rs` |
//! | [`FaultyDir`] | tests: wraps any directory, injects errors | `faulty.rs` |
//! | [`WithCapacity`] | wraps any directory; capacity from a function (the component's host) | `capacity.rs` |

use std::fmt::Debug;
use std::io::{self, Read, Write};

#[cfg(feature = "native")]
mod cap;
mod capacity;
mod faulty;
mod mem;
mod path;
#[cfg(target_os = "wasi")]
mod wasi_file;

#[cfg(feature = "native")]
pub use cap::CapDir;
pub use capacity::{CapacityFn, WithCapacity};
pub use faulty::{FaultyDir, Op, EIO, ENOSPC};
pub use mem::MemDir;
pub use path::PathDir;

/// A file opened for writing by [`Directory::create_new`].
pub trait WriteFile: Write + Send {
    /// Make the file's data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Make the file's data and metadata durable (`fsync`).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Cut the file to `len` bytes: drops the torn tail a failed append left, so a later
    /// process does not read it back. Shrinking needs no free space.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// A file opened for reading.
/// A plain file is a `WriteFile`: both the cap-std and the path directory hand these out.
impl WriteFile for std::fs::File {
    fn sync_data(&mut self) -> io::Result<()> {
        std::fs::File::sync_data(self)
    }
    fn sync_all(&mut self) -> io::Result<()> {
        std::fs::File::sync_all(self)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }
}

/// A file opened for reading through a [`Directory`].
pub type ReadFile = Box<dyn Read + Send>;

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name (no directory part).
    pub name: String,
    /// Length in bytes (0 for directories).
    pub len: u64,
    /// True for a sub-directory.
    pub is_dir: bool,
}

/// Capacity of the file system holding a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Total bytes of the file system.
    pub total: u64,
    /// Bytes available to an unprivileged writer.
    pub available: u64,
}

/// Access to one directory tree by relative names.
///
/// Names are `/`-separated relative paths of at most a few components (`"x.json.br"`,
/// `"uploaded/x.json.br"`); every implementation rejects absolute names, `..`, `.`, empty
/// components and backslashes with `InvalidInput` (see [`check_name`]), so nothing outside the
/// root can be reached through this trait. `""` names the root itself where a directory is
/// expected ([`Directory::list`], [`Directory::sync_dir`]).
pub trait Directory: Send + Sync + Debug {
    /// Create a new file, failing with `AlreadyExists` if it exists (`O_CREAT|O_EXCL`).
    fn create_new(&self, name: &str) -> io::Result<Box<dyn WriteFile>>;
    /// Open an existing file for reading.
    fn open_read(&self, name: &str) -> io::Result<ReadFile>;
    /// Rename atomically, replacing `to` if it exists. Durable only after [`Directory::sync_dir`].
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Remove a file.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// List a directory (`""` for the root); a missing directory lists as empty.
    fn list(&self, dir: &str) -> io::Result<Vec<Entry>>;
    /// Create a sub-directory; succeed if it already exists.
    fn create_dir(&self, name: &str) -> io::Result<()>;
    /// Make the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, name: &str) -> io::Result<()>;
    /// Total and available bytes where the platform reports them.
    fn capacity(&self) -> io::Result<Option<Capacity>>;
}

/// Validate a relative name: non-empty `/`-separated components, none of them `.` or `..`, no
/// leading `/`, no backslash or NUL. Returns `InvalidInput` otherwise.
pub fn check_name(name: &str) -> io::Result<()> {
    let bad = name.is_empty()
        || name.contains('\\')
        || name.contains('\0')
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid relative name {name:?}"),
        ))
    } else {
        Ok(())
    }
}

/// Like [`check_name`] but also accepts `""` (the root), for the [`Directory`] methods that
/// take a directory. Where a spool may live is another rule,
/// [`crate::layout::check_spool_path`] (never the data directory itself).
pub fn check_dir_name(name: &str) -> io::Result<()> {
    if name.is_empty() {
        Ok(())
    } else {
        check_name(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["a", "a.json.br", "uploaded/a", ".hidden"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            ".",
            "a\\b",
            "a/",
            "x\0",
        ] {
            let err = check_name(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
