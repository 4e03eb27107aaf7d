//! The engine-independent half of a backend, written once for both engines: the registry of
//! tables the client registered, handle ids, the maps of open handles (spools, readers) and
//! the dispatch of row operations to the store or to its innermost open transaction, nesting
//! included ([`TableOps`]). An engine supplies only what differs by engine: how its store and
//! its transaction levels run an operation ([`TableScope`], [`TxStore`], [`TxLevel`]).

use std::collections::HashMap;

use edgestore::model::{Key, Query, Row};
use edgestore::{ErrorCode, Schema, TxMode};

use super::DynOps;

/// What a closed (or never opened) spool id gets.
pub(crate) const SPOOL_CLOSED: &str = "the spool is closed";

/// What a closed (or never opened) reader id gets.
pub(crate) const READER_CLOSED: &str = "the reader is closed";

/// The tables registered through this backend, in registration order: a table must be
/// registered before use (so a typo is `table-missing` before reaching the engine), and an
/// engine that rebuilds its instance registers them again in this order (a table before the
/// tables whose foreign keys name it).
#[derive(Debug, Default)]
pub(crate) struct Tables {
    schemas: Vec<Schema>,
}

impl Tables {
    /// Record a schema the engine registered; registering a table again replaces its schema.
    pub(crate) fn insert(&mut self, schema: &Schema) {
        match self.schemas.iter_mut().find(|s| s.table == schema.table) {
            Some(known) => *known = schema.clone(),
            None => self.schemas.push(schema.clone()),
        }
    }

    /// `table-missing` unless `table` was registered.
    pub(crate) fn require(&self, table: &str) -> edgestore::Result<()> {
        if self.schemas.iter().any(|s| s.table == table) {
            Ok(())
        } else {
            Err(edgestore::Error::new(
                ErrorCode::TableMissing,
                format!("table {table:?} is not registered"),
            ))
        }
    }

    /// The registered schemas, in registration order.
    pub(crate) fn schemas(&self) -> &[Schema] {
        &self.schemas
    }
}

/// Handle ids of one backend: one sequence for spools and readers, from 1, never reused, so a
/// stale id (closed, or from a rebuilt instance) cannot reach a handle opened later.
#[derive(Debug)]
pub(crate) struct Ids {
    next: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids { next: 1 }
    }
}

impl Ids {
    /// A fresh id.
    pub(crate) fn allocate(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        id
    }
}

/// Open handles of one kind by id; an id that is not open is `closed`, with the message given
/// at construction (what was closed and, where an engine can lose handles, how).
#[derive(Debug)]
pub(crate) struct Handles<T> {
    open: HashMap<u64, T>,
    closed: &'static str,
}

impl<T> Handles<T> {
    /// No handles yet; `closed` is the message of a lookup that misses.
    pub(crate) fn new(closed: &'static str) -> Self {
        Handles {
            open: HashMap::new(),
            closed,
        }
    }

    /// Keep `handle` under `id` (from [`Ids::allocate`]).
    pub(crate) fn insert(&mut self, id: u64, handle: T) {
        self.open.insert(id, handle);
    }

    /// The open handle `id`, or `closed`.
    pub(crate) fn get(&self, id: u64) -> edgestore::Result<&T> {
        self.open
            .get(&id)
            .ok_or_else(|| edgestore::Error::new(ErrorCode::Closed, self.closed))
    }

    /// The open handle `id` for a call that advances it, or `closed`.
    pub(crate) fn get_mut(&mut self, id: u64) -> edgestore::Result<&mut T> {
        self.open
            .get_mut(&id)
            .ok_or_else(|| edgestore::Error::new(ErrorCode::Closed, self.closed))
    }

    /// Close `id`: the handle, for the engine to release; `None` if it was not open.
    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        self.open.remove(&id)
    }

    /// The ids open now (a snapshot, so the caller may use the backend while going through).
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.open.keys().copied().collect()
    }

    /// The open handles.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.open.values()
    }
}

/// Row operations on a table by name: what an engine's store and each level of its open
/// transactions offer alike.
pub(crate) trait TableScope {
    fn create(&self, table: &str, row: &Row) -> edgestore::Result<bool>;
    fn create_many(&self, table: &str, rows: Vec<Row>) -> edgestore::Result<u64>;
    fn upsert(&self, table: &str, row: &Row) -> edgestore::Result<()>;
    fn insert_or_ignore(&self, table: &str, row: &Row) -> edgestore::Result<bool>;
    fn get(&self, table: &str, key: &Key) -> edgestore::Result<Row>;
    fn get_many(&self, table: &str, keys: &[Key]) -> edgestore::Result<Vec<Option<Row>>>;
    fn find(&self, table: &str, query: &Query) -> edgestore::Result<Vec<Row>>;
    fn update(&self, table: &str, row: &Row) -> edgestore::Result<()>;
    fn delete(&self, table: &str, key: &Key) -> edgestore::Result<bool>;
    fn delete_all(&self, table: &str) -> edgestore::Result<u64>;
    fn count(&self, table: &str) -> edgestore::Result<u64>;
}

/// An engine's store: its own operations, and transactions started on it.
pub(crate) trait TxStore: TableScope {
    /// One open level of a transaction.
    type Tx: TxLevel;
    /// Start a transaction of `mode`.
    fn begin(&self, mode: TxMode) -> edgestore::Result<Self::Tx>;
}

/// One open level of a transaction (the transaction itself or a savepoint in it). Dropping the
/// value releases the level (and rolls it back if it is still open).
pub(crate) trait TxLevel: TableScope + Sized {
    /// Open a savepoint inside this level.
    fn savepoint(&self) -> edgestore::Result<Self>;
    /// End the level, keeping its work.
    fn commit(&self) -> edgestore::Result<()>;
    /// End the level, discarding its work.
    fn rollback(&self) -> edgestore::Result<()>;
}

/// [`DynOps`] on one table of an engine's store, or of its innermost open transaction.
pub(crate) struct TableOps<'a, S: TxStore> {
    store: &'a S,
    table: &'a str,
    /// `None`: the store itself.
    tx: Option<&'a S::Tx>,
}

impl<'a, S: TxStore> TableOps<'a, S> {
    /// The table's operations on the store, outside any transaction.
    pub(crate) fn new(store: &'a S, table: &'a str) -> Self {
        TableOps {
            store,
            table,
            tx: None,
        }
    }

    /// Where an operation runs: the open transaction, else the store.
    fn scope(&self) -> &dyn TableScope {
        match self.tx {
            Some(tx) => tx,
            None => self.store,
        }
    }
}

impl<S: TxStore> DynOps for TableOps<'_, S> {
    fn create(&self, row: &Row) -> edgestore::Result<bool> {
        self.scope().create(self.table, row)
    }
    fn create_many(&self, rows: Vec<Row>) -> edgestore::Result<u64> {
        self.scope().create_many(self.table, rows)
    }
    fn upsert(&self, row: &Row) -> edgestore::Result<()> {
        self.scope().upsert(self.table, row)
    }
    fn insert_or_ignore(&self, row: &Row) -> edgestore::Result<bool> {
        self.scope().insert_or_ignore(self.table, row)
    }
    fn get(&self, key: &Key) -> edgestore::Result<Row> {
        self.scope().get(self.table, key)
    }
    fn get_many(&self, keys: &[Key]) -> edgestore::Result<Vec<Option<Row>>> {
        self.scope().get_many(self.table, keys)
    }
    fn find(&self, query: &Query) -> edgestore::Result<Vec<Row>> {
        self.scope().find(self.table, query)
    }
    fn update(&self, row: &Row) -> edgestore::Result<()> {
        self.scope().update(self.table, row)
    }
    fn delete(&self, key: &Key) -> edgestore::Result<bool> {
        self.scope().delete(self.table, key)
    }
    fn delete_all(&self) -> edgestore::Result<u64> {
        self.scope().delete_all(self.table)
    }
    fn count(&self) -> edgestore::Result<u64> {
        self.scope().count(self.table)
    }
    fn nest(
        &self,
        mode: TxMode,
        f: &mut dyn FnMut(&dyn DynOps) -> edgestore::Result<()>,
    ) -> edgestore::Result<()> {
        let tx = match self.tx {
            None => self.store.begin(mode)?,
            Some(parent) => parent.savepoint()?,
        };
        let result = f(&TableOps {
            store: self.store,
            table: self.table,
            tx: Some(&tx),
        });
        // Ended explicitly, so a failed COMMIT or ROLLBACK is reported; dropping `tx` after
        // that releases the level.
        let ended = match &result {
            Ok(()) => tx.commit(),
            Err(_) => tx.rollback(),
        };
        result.and(ended)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use edgestore::{Column, ColumnType};

    use super::*;

    fn schema(table: &str, columns: &[&str]) -> Schema {
        columns
            .iter()
            .fold(Schema::new(table), |s, c| {
                s.column(Column::new(c, ColumnType::Text))
            })
            .key(&columns[..1])
    }

    fn code_and_message<T>(r: edgestore::Result<T>) -> (ErrorCode, String) {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => (e.code(), e.message().to_owned()),
        }
    }

    #[test]
    fn tables_require_registration_and_keep_order() {
        let mut tables = Tables::default();
        assert_eq!(
            code_and_message(tables.require("a")),
            (
                ErrorCode::TableMissing,
                "table \"a\" is not registered".into()
            )
        );
        tables.insert(&schema("a", &["k"]));
        tables.insert(&schema("b", &["k"]));
        tables.insert(&schema("a", &["k", "v"]));
        assert!(tables.require("a").is_ok() && tables.require("b").is_ok());
        let names: Vec<_> = tables.schemas().iter().map(|s| s.table.as_str()).collect();
        assert_eq!(
            names,
            ["a", "b"],
            "registering again keeps the first position"
        );
        assert_eq!(
            tables.schemas()[0].columns.len(),
            2,
            "and replaces the schema"
        );
    }

    #[test]
    fn handles_close_and_ids_are_never_reused() {
        let mut ids = Ids::default();
        let mut readers = Handles::new(READER_CLOSED);
        let (a, b) = (ids.allocate(), ids.allocate());
        assert_eq!((a, b), (1, 2));
        readers.insert(a, "first");
        readers.insert(b, "second");
        assert_eq!(readers.get(a).ok(), Some(&"first"));
        if let Ok(h) = readers.get_mut(b) {
            *h = "advanced";
        }
        assert_eq!(readers.remove(b), Some("advanced"));
        assert_eq!(readers.remove(b), None, "closing twice is a no-op");
        assert_eq!(
            code_and_message(readers.get(b)),
            (ErrorCode::Closed, "the reader is closed".into())
        );
        assert_eq!(code_and_message(readers.get_mut(b)).0, ErrorCode::Closed);
        let c = ids.allocate();
        assert!(c > b, "a closed id is not handed out again");
        assert!(readers.get(c).is_err());
        assert_eq!(readers.ids(), [a]);
        assert_eq!(readers.values().collect::<Vec<_>>(), [&"first"]);
        let spools: Handles<()> = Handles::new(SPOOL_CLOSED);
        assert_eq!(
            code_and_message(spools.get(1)),
            (ErrorCode::Closed, "the spool is closed".into())
        );
    }

    type Log = Rc<RefCell<Vec<String>>>;

    /// A fake engine's store (`level: None`) or transaction level, logging what reaches it.
    struct Fake {
        log: Log,
        level: Option<usize>,
        /// Fail `commit` of this level.
        fail_commit: Option<usize>,
    }

    impl Fake {
        fn record(&self, what: &str) {
            let entry = match self.level {
                None => format!("store {what}"),
                Some(level) => format!("tx{level} {what}"),
            };
            self.log.borrow_mut().push(entry);
        }

        fn level(&self, level: usize) -> Fake {
            Fake {
                log: self.log.clone(),
                level: Some(level),
                fail_commit: self.fail_commit,
            }
        }
    }

    impl TableScope for Fake {
        fn create(&self, table: &str, _: &Row) -> edgestore::Result<bool> {
            self.record(&format!("create {table}"));
            Ok(true)
        }
        fn create_many(&self, table: &str, rows: Vec<Row>) -> edgestore::Result<u64> {
            self.record(&format!("create_many {table}"));
            Ok(rows.len() as u64)
        }
        fn upsert(&self, table: &str, _: &Row) -> edgestore::Result<()> {
            self.record(&format!("upsert {table}"));
            Ok(())
        }
        fn insert_or_ignore(&self, table: &str, _: &Row) -> edgestore::Result<bool> {
            self.record(&format!("insert_or_ignore {table}"));
            Ok(false)
        }
        fn get(&self, table: &str, key: &Key) -> edgestore::Result<Row> {
            self.record(&format!("get {table}"));
            Ok(key.clone())
        }
        fn get_many(&self, table: &str, keys: &[Key]) -> edgestore::Result<Vec<Option<Row>>> {
            self.record(&format!("get_many {table}"));
            Ok(keys.iter().cloned().map(Some).collect())
        }
        fn find(&self, table: &str, _: &Query) -> edgestore::Result<Vec<Row>> {
            self.record(&format!("find {table}"));
            Ok(Vec::new())
        }
        fn update(&self, table: &str, _: &Row) -> edgestore::Result<()> {
            self.record(&format!("update {table}"));
            Ok(())
        }
        fn delete(&self, table: &str, _: &Key) -> edgestore::Result<bool> {
            self.record(&format!("delete {table}"));
            Ok(true)
        }
        fn delete_all(&self, table: &str) -> edgestore::Result<u64> {
            self.record(&format!("delete_all {table}"));
            Ok(0)
        }
        fn count(&self, table: &str) -> edgestore::Result<u64> {
            self.record(&format!("count {table}"));
            Ok(7)
        }
    }

    impl TxStore for Fake {
        type Tx = Fake;
        fn begin(&self, mode: TxMode) -> edgestore::Result<Fake> {
            self.record(&format!("begin {mode:?}"));
            Ok(self.level(0))
        }
    }

    impl TxLevel for Fake {
        fn savepoint(&self) -> edgestore::Result<Fake> {
            self.record("savepoint");
            Ok(self.level(self.level.map_or(0, |l| l + 1)))
        }
        fn commit(&self) -> edgestore::Result<()> {
            self.record("commit");
            if self.level.is_some() && self.fail_commit == self.level {
                return Err(edgestore::Error::new(ErrorCode::Busy, "commit failed"));
            }
            Ok(())
        }
        fn rollback(&self) -> edgestore::Result<()> {
            self.record("rollback");
            Ok(())
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            if self.level.is_some() {
                self.record("released");
            }
        }
    }

    fn store(fail_commit: Option<usize>) -> Fake {
        Fake {
            log: Log::default(),
            level: None,
            fail_commit,
        }
    }

    fn taken(log: &Log) -> Vec<String> {
        std::mem::take(&mut *log.borrow_mut())
    }

    #[test]
    fn operations_reach_the_store_outside_and_the_innermost_level_inside() {
        let s = store(None);
        let ops = TableOps::new(&s, "t");
        assert_eq!(ops.count().ok(), Some(7));
        assert_eq!(ops.create_many(vec![vec![], vec![]]).ok(), Some(2));
        assert_eq!(taken(&s.log), ["store count t", "store create_many t"]);

        let out = ops.nest(TxMode::Immediate, &mut |tx| {
            tx.upsert(&vec![])?;
            tx.nest(TxMode::Deferred, &mut |sp| sp.delete(&vec![]).map(drop))?;
            tx.get(&vec![]).map(drop)
        });
        assert!(out.is_ok());
        assert_eq!(
            taken(&s.log),
            [
                "store begin Immediate",
                "tx0 upsert t",
                "tx0 savepoint",
                "tx1 delete t",
                "tx1 commit",
                "tx1 released",
                "tx0 get t",
                "tx0 commit",
                "tx0 released",
            ]
        );
    }

    #[test]
    fn a_failed_level_rolls_back_alone_and_its_error_surfaces() {
        let s = store(None);
        let ops = TableOps::new(&s, "t");
        let mut inner_error = None;
        let out = ops.nest(TxMode::Immediate, &mut |tx| {
            let inner = tx.nest(TxMode::Immediate, &mut |sp| {
                sp.update(&vec![])?;
                Err(edgestore::Error::new(ErrorCode::Constraint, "no"))
            });
            inner_error = inner.err().map(|e| e.code());
            tx.count().map(drop)
        });
        assert!(out.is_ok(), "the outer level keeps its work");
        assert_eq!(inner_error, Some(ErrorCode::Constraint));
        assert_eq!(
            taken(&s.log),
            [
                "store begin Immediate",
                "tx0 savepoint",
                "tx1 update t",
                "tx1 rollback",
                "tx1 released",
                "tx0 count t",
                "tx0 commit",
                "tx0 released",
            ]
        );
    }

    #[test]
    fn a_failed_commit_is_reported() {
        let s = store(Some(0));
        let ops = TableOps::new(&s, "t");
        let out = ops.nest(TxMode::Exclusive, &mut |tx| tx.create(&vec![]).map(drop));
        assert_eq!(
            code_and_message(out),
            (ErrorCode::Busy, "commit failed".into())
        );
        assert_eq!(
            taken(&s.log),
            [
                "store begin Exclusive",
                "tx0 create t",
                "tx0 commit",
                "tx0 released"
            ]
        );
    }
}
