//! [`WithCapacity`]: any directory, with its capacity answered by someone who knows. Inside the
//! component WASI cannot report file-system capacity, but the host can (`host-info`).

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

impl<D: Directory> Directory for WithCapacity<D> {
    fn create_new(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        self.inner.create_new(name)
    }
    fn open_read(&self, name: &str) -> io::Result<ReadFile> {
        self.inner.open_read(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<Entry>> {
        self.inner.list(dir)
    }
    fn create_dir(&self, name: &str) -> io::Result<()> {
        self.inner.create_dir(name)
    }
    fn sync_dir(&self, name: &str) -> io::Result<()> {
        self.inner.sync_dir(name)
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
}
