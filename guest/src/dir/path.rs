//! A directory reached through `std::fs` under a root path. Inside the `wasm32-wasip2`
//! component the root is the preopened directory (e.g. `/data`): WASI itself confines every
//! path to the preopens, and [`check_name`] refuses `..` and absolute names before any call.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::PathBuf;

use super::{check_dir_name, check_name, Capacity, Directory, Entry, ReadFile, WriteFile};

/// A directory capability backed by `std::fs` and a root path.
#[derive(Debug, Clone)]
pub struct PathDir {
    root: PathBuf,
}

impl PathDir {
    /// Use `root` (created if missing) as the directory.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(PathDir { root })
    }

    /// Use the existing directory `root`, never creating it: `NotFound` if it is missing,
    /// `InvalidInput` if it is not a directory (for read-only inspection).
    pub fn open_existing(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(PathDir { root })
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        check_dir_name(name)?;
        Ok(if name.is_empty() {
            self.root.clone()
        } else {
            self.root.join(name)
        })
    }
}

impl Directory for PathDir {
    fn create_new(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        check_name(name)?;
        #[cfg(target_os = "wasi")]
        if self.root.is_absolute() {
            return Ok(Box::new(super::wasi_file::create_new(&self.path(name)?)?));
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path(name)?)?;
        Ok(Box::new(file))
    }

    fn open_read(&self, name: &str) -> io::Result<ReadFile> {
        check_name(name)?;
        Ok(Box::new(File::open(self.path(name)?)?))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        std::fs::rename(self.path(from)?, self.path(to)?)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        std::fs::remove_file(self.path(name)?)
    }

    fn list(&self, name: &str) -> io::Result<Vec<Entry>> {
        let iter = match std::fs::read_dir(self.path(name)?) {
            Ok(it) => it,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in iter {
            let entry = entry?;
            let Ok(file_name) = entry.file_name().into_string() else {
                continue;
            };
            let meta = match entry.metadata() {
                Ok(m) => m,
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
        match std::fs::create_dir(self.path(name)?) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&self, name: &str) -> io::Result<()> {
        match File::open(self.path(name)?).and_then(|f| f.sync_all()) {
            // Some WASI hosts cannot open or sync a directory descriptor; durability of the
            // directory is then the host's (documented in docs/spool-format.md).
            Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(()),
            other => other,
        }
    }

    fn capacity(&self) -> io::Result<Option<Capacity>> {
        #[cfg(all(feature = "native", unix))]
        {
            let st = rustix::fs::statvfs(&self.root).map_err(io::Error::from)?;
            Ok(Some(Capacity {
                total: st.f_blocks.saturating_mul(st.f_frsize),
                available: st.f_bavail.saturating_mul(st.f_frsize),
            }))
        }
        // In the component the host supplies capacity through its own interface.
        #[cfg(not(all(feature = "native", unix)))]
        {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn path_dir_stays_under_its_root() {
        let tmp = tempfile::tempdir().unwrap();
        let d = PathDir::open(tmp.path().join("root")).unwrap();
        let mut f = d.create_new("a").unwrap();
        f.write_all(b"hello").unwrap();
        f.sync_all().unwrap();
        assert_eq!(
            d.create_new("a").err().map(|e| e.kind()),
            Some(io::ErrorKind::AlreadyExists)
        );
        d.create_dir("sub").unwrap();
        d.create_dir("sub").unwrap();
        d.rename("a", "sub/b").unwrap();
        d.sync_dir("").unwrap();
        d.sync_dir("sub").unwrap();
        let mut s = String::new();
        d.open_read("sub/b")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello");
        let listed = d.list("sub").unwrap();
        assert_eq!((listed[0].name.as_str(), listed[0].len), ("b", 5));
        assert!(d.list("missing").unwrap().is_empty());
        for bad in ["../escape", "/etc/passwd", "sub/../../x"] {
            assert_eq!(
                d.create_new(bad).err().map(|e| e.kind()),
                Some(io::ErrorKind::InvalidInput)
            );
        }
        assert!(!tmp.path().join("escape").exists());
        d.remove("sub/b").unwrap();
        #[cfg(all(feature = "native", unix))]
        assert!(d.capacity().unwrap().is_some());
    }
}
