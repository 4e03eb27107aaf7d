//! What an instance reports about itself: operation counters, the time of the last operation,
//! health checks and diagnostics. Kept in the core (not the component glue) so the native
//! build can report the same way and so it is tested natively.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::clock::Clock;
use crate::error::Result;
use crate::model::Value;
use crate::spool::Usage;
use crate::sql::{with_reader, Database};

/// Calls and failures of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationCount {
    /// Operation name, e.g. `repository.create`.
    pub operation: String,
    /// Calls since the counters started.
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
}

struct Inner {
    ops: BTreeMap<&'static str, (u64, u64)>,
    last_ms: Option<i64>,
}

/// Counters of calls and errors per operation, and when the last operation ended.
pub struct Counters {
    inner: Mutex<Inner>,
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

impl Counters {
    /// Empty counters (`const`, so an instance can keep them in a `static`).
    pub const fn new() -> Self {
        Counters {
            inner: Mutex::new(Inner {
                ops: BTreeMap::new(),
                last_ms: None,
            }),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Count one call of `operation` that ended at `now_ms`.
    pub fn record(&self, operation: &'static str, ok: bool, now_ms: i64) {
        let mut inner = self.inner();
        let entry = inner.ops.entry(operation).or_default();
        entry.0 += 1;
        if !ok {
            entry.1 += 1;
        }
        inner.last_ms = Some(now_ms);
    }

    /// Run `f` and count it (an `Err` counts as an error).
    pub fn track<T>(
        &self,
        operation: &'static str,
        clock: &dyn Clock,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let result = f();
        self.record(operation, result.is_ok(), clock.now_ms());
        result
    }

    /// Every operation called so far, by name.
    pub fn snapshot(&self) -> Vec<OperationCount> {
        self.inner()
            .ops
            .iter()
            .map(|(op, &(calls, errors))| OperationCount {
                operation: (*op).to_owned(),
                calls,
                errors,
            })
            .collect()
    }

    /// When the last counted operation ended, UTC milliseconds.
    pub fn last_operation_ms(&self) -> Option<i64> {
        self.inner().last_ms
    }
}

/// Whether an instance can do its job, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// True when every check passed.
    pub healthy: bool,
    /// One line per failed check.
    pub reasons: Vec<String>,
}

impl Default for HealthReport {
    fn default() -> Self {
        HealthReport {
            healthy: true,
            reasons: Vec::new(),
        }
    }
}

impl HealthReport {
    /// Record the outcome of one check named `what`.
    pub fn check(&mut self, what: &str, outcome: Result<()>) {
        if let Err(e) = outcome {
            self.healthy = false;
            self.reasons.push(format!("{what}: {e}"));
        }
    }

    /// Check that a database answers `SELECT 1`.
    pub fn check_database(&mut self, what: &str, db: &dyn Database) {
        self.check(what, ping(db));
    }

    /// Check a spool's usage: it must be readable, and the file system must not be full when
    /// its capacity is known.
    pub fn check_spool(&mut self, what: &str, usage: Result<Usage>) {
        let outcome = usage.and_then(|u| match u.capacity {
            Some(c) if c.available == 0 => Err(crate::Error::new(
                crate::ErrorCode::DiskFull,
                format!("no bytes available of {}", c.total),
            )),
            _ => Ok(()),
        });
        self.check(what, outcome);
    }
}

/// Ask the database for `SELECT 1`: reachable and answering.
pub fn ping(db: &dyn Database) -> Result<()> {
    let rows = with_reader(db, |c| c.query("SELECT 1", &[]))?;
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(1)) => Ok(()),
        _ => Err(crate::Error::internal("SELECT 1 did not return 1")),
    }
}

/// The words for a database's state in diagnostics: `ok`, or the error.
pub fn connection_status(db: &dyn Database) -> String {
    match ping(db) {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::dir::Capacity;
    use crate::error::{Error, ErrorCode};

    #[test]
    fn counts_calls_errors_and_last_time() {
        let counters = Counters::new();
        let clock = ManualClock::new(5);
        assert_eq!(counters.last_operation_ms(), None);
        counters.track("a", &clock, || Ok(())).unwrap();
        clock.set_ms(9);
        let failed: Result<()> = counters.track("a", &clock, || Err(Error::internal("x")));
        assert!(failed.is_err());
        counters.track("b", &clock, || Ok(1)).unwrap();
        let snap = counters.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(
            (snap[0].operation.as_str(), snap[0].calls, snap[0].errors),
            ("a", 2, 1)
        );
        assert_eq!(
            (snap[1].operation.as_str(), snap[1].calls, snap[1].errors),
            ("b", 1, 0)
        );
        assert_eq!(counters.last_operation_ms(), Some(9));
    }

    #[test]
    fn health_collects_reasons() {
        let mut report = HealthReport::default();
        report.check("fine", Ok(()));
        assert!(report.healthy);
        report.check("db", Err(Error::new(ErrorCode::Busy, "locked")));
        let full = Usage {
            capacity: Some(Capacity {
                total: 10,
                available: 0,
            }),
            ..Usage::default()
        };
        report.check_spool("spool", Ok(full));
        report.check_spool("spool ok", Ok(Usage::default()));
        assert!(!report.healthy);
        assert_eq!(report.reasons.len(), 2);
        assert!(report.reasons[1].starts_with("spool: disk-full"));
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn pings_a_database() {
        let db = crate::SqliteDatabase::open(":memory:").unwrap();
        ping(&db).unwrap();
        assert_eq!(connection_status(&db), "ok");
        let mut report = HealthReport::default();
        report.check_database("sqlite", &db);
        assert!(report.healthy);
    }
}
