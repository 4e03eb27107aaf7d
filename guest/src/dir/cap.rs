//! The native directory: a `cap_std::fs::Dir` opened once; every name resolves beneath it, and
//! cap-std refuses symlinks or `..` that would escape (on top of our own name check).

use std::io;
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

use super::{check_dir_name, check_name, Capacity, Directory, Entry, ReadFile, WriteFile};

/// A directory capability backed by `cap_std::fs::Dir`.
#[derive(Debug)]
pub struct CapDir {
    dir: Dir,
}

impl CapDir {
    /// Open (and create, if missing) the directory at `path`. This is the one place the spool
    /// uses ambient authority; everything after goes through the handle.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)?;
        Ok(CapDir {
            dir: Dir::open_ambient_dir(path, ambient_authority())?,
        })
    }

    /// Wrap an already opened directory.
    pub fn from_dir(dir: Dir) -> Self {
        CapDir { dir }
    }

    fn dir_handle(&self, name: &str) -> io::Result<Dir> {
        check_dir_name(name)?;
        if name.is_empty() {
            self.dir.try_clone()
        } else {
            self.dir.open_dir(name)
        }
    }
}

impl Directory for CapDir {
    fn create_new(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        check_name(name)?;
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        // The std file behind the handle: one `WriteFile` impl serves every directory.
        Ok(Box::new(self.dir.open_with(name, &opts)?.into_std()))
    }

    fn open_read(&self, name: &str) -> io::Result<ReadFile> {
        check_name(name)?;
        Ok(Box::new(self.dir.open(name)?))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        self.dir.rename(from, &self.dir, to)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        self.dir.remove_file(name)
    }

    fn list(&self, name: &str) -> io::Result<Vec<Entry>> {
        let dir = match self.dir_handle(name) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in dir.entries()? {
            let entry = entry?;
            let Ok(file_name) = entry.file_name().into_string() else {
                continue; // not UTF-8: never one of ours
            };
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Removed between readdir and stat (a concurrent purge): not there any more.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.push(Entry {
                name: file_name,
                len: if meta.is_dir() { 0 } else { meta.len() },
                is_dir: meta.is_dir(),
            });
        }
        Ok(out)
    }

    fn create_dir(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        match self.dir.create_dir(name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&self, name: &str) -> io::Result<()> {
        // cap-std holds directories as `O_PATH` descriptors, which cannot be fsynced; open the
        // directory read-only (still resolved beneath the handle) and fsync that.
        check_dir_name(name)?;
        let target = if name.is_empty() { "." } else { name };
        let mut opts = OpenOptions::new();
        opts.read(true);
        self.dir.open_with(target, &opts)?.sync_all()
    }

    fn capacity(&self) -> io::Result<Option<Capacity>> {
        #[cfg(unix)]
        {
            let st = rustix::fs::fstatvfs(&self.dir).map_err(io::Error::from)?;
            Ok(Some(Capacity {
                total: st.f_blocks.saturating_mul(st.f_frsize),
                available: st.f_bavail.saturating_mul(st.f_frsize),
            }))
        }
        #[cfg(not(unix))]
        {
            Ok(None)
        }
    }
}
