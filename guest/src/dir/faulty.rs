//! Fault injection over any [`Directory`], in the manner of redb's failing storage backends.
//!
//! Arm a rule ("let 3 writes succeed, fail the 4th with ENOSPC") and optionally a latch ("and
//! fail every operation after that"), then drive the spool through it. Counters tell a test
//! how many operations of each kind ran, so a test can first count and then fail each one in
//! turn.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Capacity, Directory, Entry, ReadFile, WriteFile};

/// The kinds of operation a rule can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Directory::create_new`].
    Create,
    /// A `write` on a file handle.
    Write,
    /// `sync_data`/`sync_all` on a file handle.
    Sync,
    /// [`Directory::open_read`].
    Read,
    /// [`Directory::rename`].
    Rename,
    /// [`Directory::remove`].
    Remove,
    /// [`Directory::sync_dir`].
    SyncDir,
    /// [`Directory::create_dir`].
    CreateDir,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    op: Op,
    /// Operations of this kind still allowed to succeed.
    remaining: u64,
    errno: i32,
    /// A failing write first writes half its buffer (a short write before the error).
    torn: bool,
    latch: bool,
}

#[derive(Debug, Default)]
struct Plan {
    counts: HashMap<Op, u64>,
    rule: Option<Rule>,
    latched: Option<i32>,
}

/// A [`Directory`] that fails chosen operations. Clones share the plan.
#[derive(Debug, Clone)]
pub struct FaultyDir<D> {
    inner: D,
    plan: Arc<Mutex<Plan>>,
}

/// `ENOSPC`: no space left on device.
pub const ENOSPC: i32 = 28;
/// `EIO`: input/output error (what a failed fsync reports).
pub const EIO: i32 = 5;

enum Verdict {
    Ok,
    Fail { errno: i32, torn: bool },
}

impl<D: Directory> FaultyDir<D> {
    /// Wrap `inner` with no fault armed.
    pub fn new(inner: D) -> Self {
        FaultyDir {
            inner,
            plan: Arc::new(Mutex::new(Plan::default())),
        }
    }

    /// The wrapped directory.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        lock(&self.plan)
    }

    /// Let `ok` operations of kind `op` succeed, then fail the next one with OS error `errno`
    /// (e.g. [`ENOSPC`], [`EIO`]).
    pub fn fail_after(&self, op: Op, ok: u64, errno: i32) {
        self.arm(op, ok, errno, false, false);
    }

    /// Like [`FaultyDir::fail_after`], and every operation of any kind after it fails too.
    pub fn fail_after_latched(&self, op: Op, ok: u64, errno: i32) {
        self.arm(op, ok, errno, false, true);
    }

    /// Fail the write after `ok` writes with `errno`, having written half of its buffer first.
    pub fn tear_write_after(&self, ok: u64, errno: i32) {
        self.arm(Op::Write, ok, errno, true, false);
    }

    fn arm(&self, op: Op, ok: u64, errno: i32, torn: bool, latch: bool) {
        let mut p = self.plan();
        p.rule = Some(Rule {
            op,
            remaining: ok,
            errno,
            torn,
            latch,
        });
        p.latched = None;
    }

    /// Remove any rule and release the latch.
    pub fn disarm(&self) {
        let mut p = self.plan();
        p.rule = None;
        p.latched = None;
    }

    /// True if a rule is armed and has not fired yet.
    pub fn armed(&self) -> bool {
        self.plan().rule.is_some()
    }

    /// How many operations of kind `op` were attempted so far.
    pub fn count(&self, op: Op) -> u64 {
        self.plan().counts.get(&op).copied().unwrap_or(0)
    }

    fn check(&self, op: Op) -> io::Result<()> {
        match check(&self.plan, op) {
            Verdict::Ok => Ok(()),
            Verdict::Fail { errno, .. } => Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

fn lock(plan: &Mutex<Plan>) -> MutexGuard<'_, Plan> {
    plan.lock().unwrap_or_else(|p| p.into_inner())
}

fn check(plan: &Mutex<Plan>, op: Op) -> Verdict {
    let mut p = lock(plan);
    *p.counts.entry(op).or_insert(0) += 1;
    if let Some(errno) = p.latched {
        return Verdict::Fail { errno, torn: false };
    }
    let Some(rule) = p.rule.as_mut() else {
        return Verdict::Ok;
    };
    if rule.op != op {
        return Verdict::Ok;
    }
    if rule.remaining > 0 {
        rule.remaining -= 1;
        return Verdict::Ok;
    }
    let rule = *rule;
    p.rule = None;
    if rule.latch {
        p.latched = Some(rule.errno);
    }
    Verdict::Fail {
        errno: rule.errno,
        torn: rule.torn,
    }
}

struct FaultyFile {
    inner: Box<dyn WriteFile>,
    plan: Arc<Mutex<Plan>>,
}

impl Write for FaultyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match check(&self.plan, Op::Write) {
            Verdict::Ok => self.inner.write(buf),
            Verdict::Fail { errno, torn } => {
                if torn && buf.len() > 1 {
                    self.inner.write_all(&buf[..buf.len() / 2])?;
                }
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl WriteFile for FaultyFile {
    fn sync_data(&mut self) -> io::Result<()> {
        match check(&self.plan, Op::Sync) {
            Verdict::Ok => self.inner.sync_data(),
            Verdict::Fail { errno, .. } => Err(io::Error::from_raw_os_error(errno)),
        }
    }
    fn sync_all(&mut self) -> io::Result<()> {
        match check(&self.plan, Op::Sync) {
            Verdict::Ok => self.inner.sync_all(),
            Verdict::Fail { errno, .. } => Err(io::Error::from_raw_os_error(errno)),
        }
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl<D: Directory> Directory for FaultyDir<D> {
    fn create_new(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        self.check(Op::Create)?;
        Ok(Box::new(FaultyFile {
            inner: self.inner.create_new(name)?,
            plan: self.plan.clone(),
        }))
    }
    fn open_read(&self, name: &str) -> io::Result<ReadFile> {
        self.check(Op::Read)?;
        self.inner.open_read(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.check(Op::Rename)?;
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.check(Op::Remove)?;
        self.inner.remove(name)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<Entry>> {
        self.inner.list(dir)
    }
    fn create_dir(&self, name: &str) -> io::Result<()> {
        self.check(Op::CreateDir)?;
        self.inner.create_dir(name)
    }
    fn sync_dir(&self, name: &str) -> io::Result<()> {
        self.check(Op::SyncDir)?;
        self.inner.sync_dir(name)
    }
    fn capacity(&self) -> io::Result<Option<Capacity>> {
        self.inner.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dir::MemDir;

    #[test]
    fn fails_the_nth_and_latches() {
        let d = FaultyDir::new(MemDir::new());
        d.fail_after_latched(Op::Write, 1, ENOSPC);
        let mut f = d.create_new("a").unwrap();
        f.write_all(b"ok").unwrap();
        let e = f.write_all(b"no").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(ENOSPC));
        assert!(d.rename("a", "b").is_err(), "latched");
        d.disarm();
        d.rename("a", "b").unwrap();
        assert_eq!(d.count(Op::Write), 2);
    }
}
