//! An in-memory directory that models what survives a power cut.
//!
//! Each file has *live* bytes (what reads see) and *durable* bytes (what the last
//! `sync_data`/`sync_all` made safe). Each directory has live entries and durable entries (what
//! the last `sync_dir` of that directory made safe). [`MemDir::crash`] throws away everything
//! that was not made durable, which is exactly the contract the spool must survive: an unsynced
//! create, rename or remove may be forgotten, unsynced bytes vanish.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Cursor, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{check_dir_name, check_name, Capacity, Directory, Entry, ReadFile, WriteFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

#[derive(Debug, Default)]
struct FileData {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<u64, FileData>,
    next_ino: u64,
    live: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
    /// Bumped by `crash`: handles opened before a crash belong to a dead process.
    generation: u64,
    capacity: Option<u64>,
}

/// An in-memory [`Directory`] with a power-cut model. Clones share the same contents.
#[derive(Debug, Clone, Default)]
pub struct MemDir {
    state: Arc<Mutex<State>>,
}

fn parent(name: &str) -> &str {
    name.rfind('/').map_or("", |i| &name[..i])
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

impl MemDir {
    /// An empty directory.
    pub fn new() -> Self {
        MemDir::default()
    }

    /// Report a file system of `total` bytes through [`Directory::capacity`].
    pub fn with_capacity(self, total: u64) -> Self {
        self.lock().capacity = Some(total);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Simulate a power cut: forget unsynced bytes and unsynced directory changes, and cut off
    /// every handle opened before.
    pub fn crash(&self) {
        let mut st = self.lock();
        st.live = st.durable.clone();
        st.generation += 1;
        let reachable: Vec<u64> = st
            .live
            .values()
            .filter_map(|n| match n {
                Node::File(ino) => Some(*ino),
                Node::Dir => None,
            })
            .collect();
        st.files.retain(|ino, _| reachable.contains(ino));
        for f in st.files.values_mut() {
            f.live = f.durable.clone();
        }
    }

    /// A power cut in the middle of writes that reach the disk in `block`-sized pieces (512-byte
    /// sectors, 4 KiB pages): like [`MemDir::crash`], except that of every file's unsynced
    /// appended bytes the first `blocks` whole blocks made it (a torn write). Unsynced
    /// directory changes are forgotten as in a plain crash.
    pub fn crash_torn(&self, block: usize, blocks: usize) {
        let mut st = self.lock();
        let kept: Vec<(u64, Vec<u8>)> = st
            .files
            .iter()
            .map(|(ino, f)| {
                let mut bytes = f.durable.clone();
                if block > 0 && f.live.starts_with(&f.durable) {
                    let tail = &f.live[f.durable.len()..];
                    let n = (tail.len() / block).min(blocks) * block;
                    bytes.extend_from_slice(&tail[..n]);
                }
                (*ino, bytes)
            })
            .collect();
        for (ino, bytes) in kept {
            if let Some(f) = st.files.get_mut(&ino) {
                f.durable = bytes;
            }
        }
        drop(st);
        self.crash();
    }

    /// The live bytes of a file, if it exists.
    pub fn read_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let st = self.lock();
        match st.live.get(name)? {
            Node::File(ino) => st.files.get(ino).map(|f| f.live.clone()),
            Node::Dir => None,
        }
    }

    /// Replace (or create) a file with `bytes`, durably: for tests that corrupt or plant files.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) {
        let mut st = self.lock();
        let ino = match st.live.get(name) {
            Some(Node::File(ino)) => *ino,
            _ => {
                st.next_ino += 1;
                let ino = st.next_ino;
                st.live.insert(name.to_string(), Node::File(ino));
                st.durable.insert(name.to_string(), Node::File(ino));
                ino
            }
        };
        let f = st.files.entry(ino).or_default();
        f.live = bytes.to_vec();
        f.durable = bytes.to_vec();
    }

    /// Every live file and directory name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().live.keys().cloned().collect()
    }
}

struct MemFile {
    dir: MemDir,
    ino: u64,
    generation: u64,
}

impl MemFile {
    fn with<T>(&self, f: impl FnOnce(&mut FileData) -> T) -> io::Result<T> {
        let mut st = self.dir.lock();
        if st.generation != self.generation {
            return Err(io::Error::other("handle from before a simulated crash"));
        }
        st.files
            .get_mut(&self.ino)
            .map(f)
            .ok_or_else(|| io::Error::other("file vanished"))
    }
}

impl Write for MemFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.with(|f| f.live.extend_from_slice(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WriteFile for MemFile {
    fn sync_data(&mut self) -> io::Result<()> {
        self.with(|f| f.durable = f.live.clone())
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.with(|f| f.live.resize(len, 0))
    }
}

impl Directory for MemDir {
    fn create_new(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        check_name(name)?;
        let mut st = self.lock();
        let p = parent(name);
        if !p.is_empty() && st.live.get(p) != Some(&Node::Dir) {
            return Err(not_found(p));
        }
        if st.live.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                name.to_string(),
            ));
        }
        st.next_ino += 1;
        let ino = st.next_ino;
        st.files.insert(ino, FileData::default());
        st.live.insert(name.to_string(), Node::File(ino));
        let generation = st.generation;
        Ok(Box::new(MemFile {
            dir: self.clone(),
            ino,
            generation,
        }))
    }

    fn open_read(&self, name: &str) -> io::Result<ReadFile> {
        check_name(name)?;
        let bytes = self.read_bytes(name).ok_or_else(|| not_found(name))?;
        Ok(Box::new(Cursor::new(bytes)))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        let mut st = self.lock();
        let p = parent(to);
        if !p.is_empty() && st.live.get(p) != Some(&Node::Dir) {
            return Err(not_found(p));
        }
        match st.live.get(from) {
            Some(Node::File(_)) => {}
            Some(Node::Dir) => return Err(io::Error::other("renaming directories is unsupported")),
            None => return Err(not_found(from)),
        }
        if st.live.get(to) == Some(&Node::Dir) {
            return Err(io::Error::other(format!("{to} is a directory")));
        }
        if let Some(node) = st.live.remove(from) {
            st.live.insert(to.to_string(), node);
        }
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        let mut st = self.lock();
        match st.live.get(name) {
            Some(Node::File(_)) => {
                st.live.remove(name);
                Ok(())
            }
            Some(Node::Dir) => Err(io::Error::other(format!("{name} is a directory"))),
            None => Err(not_found(name)),
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<Entry>> {
        check_dir_name(dir)?;
        let st = self.lock();
        Ok(st
            .live
            .iter()
            .filter(|(n, _)| parent(n) == dir)
            .map(|(n, node)| Entry {
                name: n.rsplit('/').next().unwrap_or(n).to_string(),
                len: match node {
                    Node::File(ino) => st.files.get(ino).map_or(0, |f| f.live.len() as u64),
                    Node::Dir => 0,
                },
                is_dir: *node == Node::Dir,
            })
            .collect())
    }

    fn create_dir(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        let mut st = self.lock();
        match st.live.get(name) {
            Some(Node::Dir) => Ok(()),
            Some(Node::File(_)) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                name.to_string(),
            )),
            None => {
                st.live.insert(name.to_string(), Node::Dir);
                Ok(())
            }
        }
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        check_dir_name(dir)?;
        let mut st = self.lock();
        let State { live, durable, .. } = &mut *st;
        durable.retain(|n, _| parent(n) != dir);
        for (n, node) in live.iter() {
            if parent(n) == dir {
                durable.insert(n.clone(), *node);
            }
        }
        Ok(())
    }

    fn capacity(&self) -> io::Result<Option<Capacity>> {
        let st = self.lock();
        Ok(st.capacity.map(|total| {
            let used: u64 = st.files.values().map(|f| f.live.len() as u64).sum();
            Capacity {
                total,
                available: total.saturating_sub(used),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read(d: &MemDir, name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        d.open_read(name).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn crash_forgets_unsynced_bytes_and_entries() {
        let d = MemDir::new();
        let mut f = d.create_new("a").unwrap();
        f.write_all(b"one").unwrap();
        f.sync_data().unwrap();
        d.sync_dir("").unwrap();
        f.write_all(b"two").unwrap();
        let mut g = d.create_new("b").unwrap();
        g.write_all(b"x").unwrap();
        g.sync_all().unwrap();
        assert_eq!(read(&d, "a"), b"onetwo");
        d.crash();
        assert_eq!(read(&d, "a"), b"one");
        assert!(d.open_read("b").is_err(), "unsynced create is forgotten");
        assert!(f.write_all(b"late").is_err(), "old handles are dead");
    }

    #[test]
    fn rename_is_durable_only_after_sync_dir() {
        let d = MemDir::new();
        d.create_dir("up").unwrap();
        let mut f = d.create_new("a").unwrap();
        f.write_all(b"1").unwrap();
        f.sync_all().unwrap();
        d.sync_dir("").unwrap();
        d.rename("a", "b").unwrap();
        d.crash();
        assert_eq!(read(&d, "a"), b"1");
        d.rename("a", "b").unwrap();
        d.sync_dir("").unwrap();
        d.crash();
        assert_eq!(read(&d, "b"), b"1");
        assert!(d.open_read("a").is_err());
    }
}
