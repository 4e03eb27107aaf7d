//! The `admin` export and the instance's bookkeeping: the operation counters every export
//! updates, and weak references to the stores and spools opened, for health and diagnostics.
//! The checks themselves are the core's (`crate::admin`).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use super::exports::edgestore::storage::admin as a;
use super::Component;
use crate::admin::{connection_status, Counters, HealthReport};
use crate::repository::Store;
use crate::spool::{Document, Spool};

static COUNTERS: Counters = Counters::new();

thread_local! {
    static STORES: RefCell<Vec<Weak<Store>>> = const { RefCell::new(Vec::new()) };
    static SPOOLS: RefCell<Vec<Weak<Spool<Document>>>> = const { RefCell::new(Vec::new()) };
}

/// The instance's counters.
pub fn counters() -> &'static Counters {
    &COUNTERS
}

/// Remember a store for health and diagnostics (until it is dropped).
pub fn register_store(store: &Rc<Store>) {
    STORES.with(|s| {
        let mut s = s.borrow_mut();
        s.retain(|w| w.strong_count() > 0);
        s.push(Rc::downgrade(store));
    });
}

/// Remember a spool for health and diagnostics (until it is dropped).
pub fn register_spool(spool: &Rc<Spool<Document>>) {
    SPOOLS.with(|s| {
        let mut s = s.borrow_mut();
        s.retain(|w| w.strong_count() > 0);
        s.push(Rc::downgrade(spool));
    });
}

fn stores() -> Vec<Rc<Store>> {
    STORES.with(|s| s.borrow().iter().filter_map(Weak::upgrade).collect())
}

fn spools() -> Vec<Rc<Spool<Document>>> {
    SPOOLS.with(|s| s.borrow().iter().filter_map(Weak::upgrade).collect())
}

impl a::Guest for Component {
    fn ping() {}

    fn health() -> a::HealthReport {
        let mut report = HealthReport::default();
        for (i, store) in stores().iter().enumerate() {
            report.check_database(&format!("store {i}"), &**store.database());
        }
        for spool in spools() {
            let what = format!("spool {}", spool.config().identifier);
            report.check_spool(&what, spool.usage());
        }
        a::HealthReport {
            healthy: report.healthy,
            reasons: report.reasons,
        }
    }

    fn diagnostics() -> a::DiagnosticsReport {
        let stores = stores();
        let connection_status = match stores.first() {
            None => "no store open".to_owned(),
            Some(store) => connection_status(&**store.database()),
        };
        // Counting is best effort: a store with an open transaction answers busy.
        let record_count = stores
            .iter()
            .flat_map(|s| s.tables().into_iter().map(move |t| s.count(&t)))
            .filter_map(Result::ok)
            .sum();
        let spool_bytes = spools()
            .iter()
            .filter_map(|s| s.usage().ok())
            .map(|u| u.total_bytes())
            .sum();
        a::DiagnosticsReport {
            backend: "host-sqlite".to_owned(),
            connection_status,
            spool_bytes,
            record_count,
            last_operation_ms: COUNTERS.last_operation_ms(),
        }
    }

    fn counters() -> Vec<a::OperationCounter> {
        COUNTERS
            .snapshot()
            .into_iter()
            .map(|c| a::OperationCounter {
                operation: c.operation,
                calls: c.calls,
                errors: c.errors,
            })
            .collect()
    }
}
