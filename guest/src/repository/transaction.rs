//! [`Transaction`]: the operations of a repository inside a transaction on the pinned writer,
//! and the guard that rolls back on `Err`, on a failed `COMMIT`, and on panic (it runs during
//! unwinding). Nested transactions are SAVEPOINTs: a failed inner one rolls back to its
//! savepoint and leaves the outer work intact.

use std::cell::RefCell;

use super::ops::{Core, Exec};
use super::TxMode;
use crate::error::Result;
use crate::model::Key;
use crate::sql::Connection;

/// Keys written during a transaction, invalidated again in the cache when it ends.
#[derive(Default)]
pub(crate) struct Touched {
    keys: Vec<Key>,
    all: bool,
}

/// A repository view bound to an open transaction (or savepoint) on the writer connection.
#[derive(Clone, Copy)]
pub struct Transaction<'t> {
    pub(crate) core: &'t Core,
    pub(crate) conn: &'t dyn Connection,
    pub(crate) depth: u32,
    pub(crate) touched: &'t RefCell<Touched>,
}

/// Rolls back unless disarmed.
struct Guard<'c> {
    conn: &'c dyn Connection,
    savepoint: Option<String>,
    armed: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Errors cannot be reported from drop; a transaction left open is rolled back by the
        // pool at the next writer checkout.
        match &self.savepoint {
            Some(sp) => {
                let _ = self.conn.execute(&format!("ROLLBACK TO {sp}"), &[]);
                let _ = self.conn.execute(&format!("RELEASE {sp}"), &[]);
            }
            None => {
                let _ = self.conn.execute("ROLLBACK", &[]);
            }
        }
    }
}

/// Run `f` in a new top-level transaction on `conn` (the writer).
pub(crate) fn run_top<R>(
    core: &Core,
    conn: &dyn Connection,
    mode: TxMode,
    f: impl FnOnce(&Transaction<'_>) -> Result<R>,
) -> Result<R> {
    conn.execute(mode.begin_sql(), &[])?;
    let touched = RefCell::new(Touched::default());
    let mut guard = Guard {
        conn,
        savepoint: None,
        armed: true,
    };
    let tx = Transaction {
        core,
        conn,
        depth: 0,
        touched: &touched,
    };
    let result = f(&tx).and_then(|v| {
        conn.execute("COMMIT", &[])?;
        guard.armed = false;
        Ok(v)
    });
    drop(guard);
    let touched = touched.into_inner();
    if touched.all {
        core.invalidate(None);
    } else {
        touched.keys.iter().for_each(|k| core.invalidate(Some(k)));
    }
    result
}

impl<'t> Transaction<'t> {
    /// Run `f` in a savepoint nested in this transaction.
    pub(crate) fn nested<R>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<R>) -> Result<R> {
        let depth = self.depth + 1;
        let sp = format!("sp_{depth}");
        self.conn.execute(&format!("SAVEPOINT {sp}"), &[])?;
        let mut guard = Guard {
            conn: self.conn,
            savepoint: Some(sp.clone()),
            armed: true,
        };
        let inner = Transaction { depth, ..*self };
        let result = f(&inner).and_then(|v| {
            self.conn.execute(&format!("RELEASE {sp}"), &[])?;
            guard.armed = false;
            Ok(v)
        });
        drop(guard);
        result
    }

    /// The connection, for statements the repository does not offer.
    pub fn connection(&self) -> &'t dyn Connection {
        self.conn
    }

    /// Nesting depth: 0 for the transaction itself, 1+ for savepoints.
    pub fn depth(&self) -> u32 {
        self.depth
    }
}

impl Exec for Transaction<'_> {
    fn core(&self) -> &Core {
        self.core
    }

    fn read<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R> {
        f(self.conn)
    }

    fn read_snapshot<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R> {
        // Already one transaction.
        f(self.conn)
    }

    fn write<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R> {
        f(self.conn)
    }

    fn atomic<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R> {
        self.nested(|tx| f(tx.conn))
    }

    fn touched(&self, key: Option<&Key>) {
        self.core.invalidate(key);
        let mut t = self.touched.borrow_mut();
        match key {
            Some(k) => t.keys.push(k.clone()),
            None => t.all = true,
        }
    }

    fn may_cache(&self) -> bool {
        false
    }
}

super::dynamic_traits!(Transaction<'_>, |this, mode, f| {
    let _ = mode;
    this.nested(f)
});
