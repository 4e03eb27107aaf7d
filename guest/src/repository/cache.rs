//! [`ReadCache`]: an optional get-by-key cache with write-through invalidation.
//!
//! Only committed rows read outside transactions are cached; every write invalidates its key,
//! and a transaction invalidates everything it touched again when it ends (commit or rollback),
//! because a concurrent reader may have cached the pre-transaction row meanwhile. A generation
//! counter stops a read that started before an invalidation from caching what it saw.
//! The cache is per repository: writes by other processes or other stores on the same file are
//! not seen, which is why it is off by default.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::model::{Key, Row};

/// Cached rows by key.
pub struct ReadCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    rows: HashMap<String, Row>,
}

fn cache_key(key: &Key) -> String {
    serde_json::to_string(key).unwrap_or_default()
}

impl ReadCache {
    /// A cache of at most `capacity` rows.
    pub fn new(capacity: usize) -> Self {
        ReadCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current generation, read before a database read.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// A cached row.
    pub fn get(&self, key: &Key) -> Option<Row> {
        self.lock().rows.get(&cache_key(key)).cloned()
    }

    /// Cache a row read at `generation`, unless something was invalidated since.
    pub fn insert(&self, generation: u64, key: &Key, row: Row) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.rows.len() >= self.capacity {
            // Evict an arbitrary entry: cheap, and good enough for a small hot set.
            if let Some(k) = inner.rows.keys().next().cloned() {
                inner.rows.remove(&k);
            }
        }
        inner.rows.insert(cache_key(key), row);
    }

    /// Forget one key.
    pub fn invalidate(&self, key: &Key) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.rows.remove(&cache_key(key));
    }

    /// Forget everything.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.rows.clear();
    }

    /// Number of cached rows.
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;

    #[test]
    fn stale_reads_are_not_cached() {
        let c = ReadCache::new(2);
        let k = vec![Value::Integer(1)];
        let g = c.generation();
        c.invalidate(&k);
        c.insert(g, &k, vec![Value::Integer(9)]);
        assert!(c.get(&k).is_none());
        let g = c.generation();
        c.insert(g, &k, vec![Value::Integer(9)]);
        assert_eq!(c.get(&k), Some(vec![Value::Integer(9)]));
        for i in 2..5 {
            let g = c.generation();
            c.insert(g, &vec![Value::Integer(i)], vec![]);
        }
        assert!(c.len() <= 2);
        c.clear();
        assert!(c.is_empty());
    }
}
