//! [`WithCapacity`]: any directory, with its capacity answered by someone who knows. Inside the
//! component WASI cannot report file-system capacity, but the host can (`host-info`).
//!
//! It also gives a failed write back its cause: WASI 0.2 writes files through streams, whose
//! errors reach the guest as a bare `EIO` (wasi-libc cannot see the file system's code), so a
//! full disk would read as a generic I/O error to the error class, the breaker, health and the
//! user. A write, sync, create or rename that fails while the capacity source says (almost)
//! nothing is left is reported as what it is, `StorageFull` (`disk-full`).

use std::io;

use super::{Capacity, Directory, Entry, ReadFile, WriteFile};

/// Where the capacity comes from: a plain function, so the directory stays `Send + Sync`.
pub type CapacityFn = fn() -> io::Result<Option<Capacity>>;

/// A directory whose [`Directory::capacity`] comes from a function; everything else is the
/// inner directory's.
#[derive(Debug)]
pub struct WithCapacity<D> {
    inner: D,
    capacity: CapacityFn,
}

impl<D: Directory> WithCapacity<D> {
    /// Answer `inner`'s capacity with `capacity`.
    pub fn new(inner: D, capacity: CapacityFn) -> Self {
        WithCapacity { inner, capacity }
    }
}

/// Below this many available bytes a failed write is taken to be a full disk.
const FULL_BELOW: u64 = 1 << 20;

/// `err`, or `StorageFull` when it gives no cause of its own and `capacity` says the file
/// system is full.
fn explain(err: io::Error, capacity: CapacityFn) -> io::Error {
    if matches!(
        err.kind(),
        io::ErrorKind::StorageFull
            | io::ErrorKind::QuotaExceeded
            | io::ErrorKind::NotFound
            | io::ErrorKind::AlreadyExists
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::InvalidInput
    ) {
        return err;
    }
    match capacity() {
        Ok(Some(c)) if c.available < FULL_BELOW => io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "no space left on the device ({} of {} bytes available): {err}",
                c.available, c.total
            ),
        ),
        _ => err,
    }
}

/// A file whose failed writes and syncs are [`explain`]ed.
struct ExplainedFile {
    inner: Box<dyn WriteFile>,
    capacity: CapacityFn,
}

impl io::Write for ExplainedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| explain(e, self.capacity))
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner
            .write_all(buf)
            .map_err(|e| explain(e, self.capacity))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| explain(e, self.capacity))
    }
}

impl WriteFile for ExplainedFile {
    fn sync_data(&mut self) -> io::Result<()> {
        self.inner
            .sync_data()
            .map_err(|e| explain(e, self.capacity))
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.inner.sync_all().map_err(|e| explain(e, self.capacity))
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner
            .set_len(len)
            .map_err(|e| explain(e, self.capacity))
    }
}

impl<D: Directory> Directory for WithCapacity<D> {
    fn create_new(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        let inner = self
            .inner
            .create_new(name)
            .map_err(|e| explain(e, self.capacity))?;
        Ok(Box::new(ExplainedFile {
            inner,
            capacity: self.capacity,
        }))
    }
    fn open_read(&self, name: &str) -> io::Result<ReadFile> {
        self.inner.open_read(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner
            .rename(from, to)
            .map_err(|e| explain(e, self.capacity))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<Entry>> {
        self.inner.list(dir)
    }
    fn create_dir(&self, name: &str) -> io::Result<()> {
        self.inner
            .create_dir(name)
            .map_err(|e| explain(e, self.capacity))
    }
    fn sync_dir(&self, name: &str) -> io::Result<()> {
        self.inner
            .sync_dir(name)
            .map_err(|e| explain(e, self.capacity))
    }
    fn capacity(&self) -> io::Result<Option<Capacity>> {
        (self.capacity)()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dir::MemDir;

    #[test]
    fn capacity_comes_from_the_function() {
        fn known() -> io::Result<Option<Capacity>> {
            Ok(Some(Capacity {
                total: 100,
                available: 40,
            }))
        }
        let dir = WithCapacity::new(MemDir::new(), known);
        assert_eq!(dir.capacity().unwrap().map(|c| c.available), Some(40));
        dir.create_dir("x").unwrap();
        assert_eq!(dir.list("").unwrap().len(), 1);
    }

    #[test]
    fn a_write_failing_without_a_cause_on_a_full_disk_is_storage_full() {
        use crate::dir::faulty::{FaultyDir, Op, EIO};
        use std::io::Write as _;
        fn full() -> io::Result<Option<Capacity>> {
            Ok(Some(Capacity {
                total: 8 << 20,
                available: 0,
            }))
        }
        fn roomy() -> io::Result<Option<Capacity>> {
            Ok(Some(Capacity {
                total: 8 << 20,
                available: 4 << 20,
            }))
        }
        for (capacity, want) in [
            (full as CapacityFn, io::ErrorKind::StorageFull),
            (
                roomy as CapacityFn,
                io::Error::from_raw_os_error(EIO).kind(),
            ),
        ] {
            let faulty = FaultyDir::new(MemDir::new());
            faulty.fail_after(Op::Write, 0, EIO);
            let dir = WithCapacity::new(faulty, capacity);
            let mut f = dir.create_new("x").unwrap();
            let e = f.write_all(b"row").unwrap_err();
            assert_eq!(e.kind(), want, "{e}");
        }
    }
}
