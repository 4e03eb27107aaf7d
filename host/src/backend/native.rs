//! The native engine: the core itself (rusqlite bundled, `cap-std` directories) behind the same
//! [`Backend`] seam as the component, so the client switches engines with one setting. It uses
//! the very core types the component's glue uses (the multi-table `Store`, `OpenTransaction`,
//! `Spool`), so both engines share one implementation of every rule.
//!
//! The grants hold here too: the database is the label's file inside the data directory
//! ([`Grants::database_path`], as for the component's `sqlite` import), and a spool's path is
//! checked by the core's rule the guest applies too ([`check_spool_path`]: relative, not empty,
//! no `..`), then opened through the data directory's capability (no symlink out).

use std::sync::Arc;

use edgestore::dir::CapDir;
use edgestore::layout::check_spool_path;
use edgestore::model::{Key, Query, Row};
use edgestore::repository::{OpenTransaction, Store as CoreStore};
use edgestore::spool::{
    document_metric, documents, Document, EraseFilter, EraseReport, FinishWorker, PurgeReport,
    RangeReader, SegmentInfo, SegmentReader, Usage, VerifyReport,
};
use edgestore::sql::Database;
use edgestore::{
    ErrorCode, Metric, Schema, Spool, SpoolConfig, SqliteDatabase, SqliteOptions, SystemClock,
    TimeRange, TxMode, WriterHook,
};

use crate::backend::state::{
    Handles, Ids, TableOps, TableScope, Tables, TxLevel, TxStore, READER_CLOSED, SPOOL_CLOSED,
};
use crate::backend::{Backend, DynOps, DynSpool, ReadFrom};
use crate::error::{Error, Result};
use crate::grants::{DbTarget, Grants, LabelAccess, DEFAULT_LABEL};

enum NativeReader {
    Segment(SegmentReader<Document>),
    Range(RangeReader<Document>),
}

impl NativeReader {
    fn next(&mut self, max: usize) -> edgestore::Result<Vec<Document>> {
        match self {
            NativeReader::Segment(r) => r.next(max),
            NativeReader::Range(r) => r.next(max),
        }
    }
}

/// A spool and, when `storage.finishWorker` is on and the machine has more than one core, the
/// worker that compresses its rotated journals on a second thread (the `put` caller's thread
/// goes on serialising and appending).
struct NativeSpool {
    // Declared first, so it stops (joins) before the spool is dropped.
    _worker: Option<FinishWorker>,
    spool: Arc<Spool<Document>>,
}

impl NativeSpool {
    fn new(spool: Spool<Document>, finish_worker: bool) -> Self {
        let spool = Arc::new(spool);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Without a second core the worker would only take turns with `put`; a worker that
        // cannot start leaves inline finishing, which is always correct.
        let worker = (finish_worker && cores > 1)
            .then(|| FinishWorker::spawn(spool.clone()).ok())
            .flatten();
        NativeSpool {
            _worker: worker,
            spool,
        }
    }
}

/// The native backend.
pub(crate) struct NativeBackend {
    grants: Arc<Grants>,
    /// Writer plus readers for the database's pool.
    max_connections: u32,
    /// Start a [`FinishWorker`] per spool.
    finish_worker: bool,
    store: Option<CoreStore>,
    /// The store's database, for its connection count.
    sqlite: Option<Arc<SqliteDatabase>>,
    tables: Tables,
    /// Spools of JSON documents, as in the component's glue: metrics are stored as their
    /// canonical JSON and documents verbatim, so both engines write identical segments.
    spools: Handles<NativeSpool>,
    readers: Handles<NativeReader>,
    ids: Ids,
}

impl NativeBackend {
    pub(crate) fn new(grants: Arc<Grants>, max_connections: u32, finish_worker: bool) -> Self {
        NativeBackend {
            grants,
            max_connections,
            finish_worker,
            store: None,
            sqlite: None,
            tables: Tables::default(),
            spools: Handles::new(SPOOL_CLOSED),
            readers: Handles::new(READER_CLOSED),
            ids: Ids::default(),
        }
    }

    fn store(&mut self) -> Result<CoreStore> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        let dsn = match self.grants.access(DEFAULT_LABEL) {
            LabelAccess::Granted(DbTarget::File(name)) => {
                self.grants.database_path(name)?.display().to_string()
            }
            LabelAccess::Granted(DbTarget::Memory) => ":memory:".to_owned(),
            LabelAccess::Denied => {
                return Err(Error::Store(edgestore::Error::new(
                    ErrorCode::AccessDenied,
                    format!("database {DEFAULT_LABEL:?} is not granted"),
                )))
            }
            LabelAccess::Unknown => {
                return Err(Error::Store(edgestore::Error::new(
                    ErrorCode::NoSuchDatabase,
                    format!("no database is configured under {DEFAULT_LABEL:?}"),
                )))
            }
        };
        let mut options = SqliteOptions::new(&dsn);
        options.max_connections = self.max_connections;
        // Inspecting: a WAL reader beside the owner, never a write (a private in-memory
        // database belongs to this store alone, so it stays writable).
        options.read_only = self.grants.read_only() && dsn != ":memory:";
        options.keys = self.grants.database_keys().to_vec();
        // Commits are captured as they happen when a backup of this file runs.
        options.on_open_writer = Some(WriterHook(Arc::new(|conn, dsn| {
            crate::commit_hooks::install(conn, std::path::Path::new(dsn));
            Ok(())
        })));
        let sqlite = Arc::new(SqliteDatabase::open_with(options)?);
        let db: Arc<dyn Database> = sqlite.clone();
        let store = CoreStore::new(db);
        self.sqlite = Some(sqlite);
        self.store = Some(store.clone());
        Ok(store)
    }
}

/// The core's multi-table [`CoreStore`] and its [`OpenTransaction`] levels: the same shape as
/// the component's `store` / `transaction` resources, so both engines share the core's
/// transaction semantics (store operations are `busy` while a transaction is open). The core
/// gives both types the same by-name methods without a common trait; this forwards to them.
macro_rules! table_scope {
    ($ty:ty) => {
        impl TableScope for $ty {
            fn create(&self, table: &str, row: &Row) -> edgestore::Result<bool> {
                <$ty>::create(self, table, row)
            }
            fn create_many(&self, table: &str, rows: Vec<Row>) -> edgestore::Result<u64> {
                <$ty>::create_many_owned(self, table, rows)
            }
            fn upsert(&self, table: &str, row: &Row) -> edgestore::Result<()> {
                <$ty>::upsert(self, table, row)
            }
            fn insert_or_ignore(&self, table: &str, row: &Row) -> edgestore::Result<bool> {
                <$ty>::insert_or_ignore(self, table, row)
            }
            fn get(&self, table: &str, key: &Key) -> edgestore::Result<Row> {
                <$ty>::get(self, table, key)
            }
            fn get_many(&self, table: &str, keys: &[Key]) -> edgestore::Result<Vec<Option<Row>>> {
                <$ty>::get_many(self, table, keys)
            }
            fn find(&self, table: &str, query: &Query) -> edgestore::Result<Vec<Row>> {
                <$ty>::find(self, table, query)
            }
            fn update(&self, table: &str, row: &Row) -> edgestore::Result<()> {
                <$ty>::update(self, table, row)
            }
            fn delete(&self, table: &str, key: &Key) -> edgestore::Result<bool> {
                <$ty>::delete(self, table, key)
            }
            fn delete_all(&self, table: &str) -> edgestore::Result<u64> {
                <$ty>::delete_all(self, table)
            }
            fn count(&self, table: &str) -> edgestore::Result<u64> {
                <$ty>::count(self, table)
            }
        }
    };
}
table_scope!(CoreStore);
table_scope!(OpenTransaction);

impl TxStore for CoreStore {
    type Tx = OpenTransaction;
    fn begin(&self, mode: TxMode) -> edgestore::Result<OpenTransaction> {
        CoreStore::begin(self, mode)
    }
}

/// Dropping an [`OpenTransaction`] that is still open rolls it back.
impl TxLevel for OpenTransaction {
    fn savepoint(&self) -> edgestore::Result<OpenTransaction> {
        OpenTransaction::savepoint(self)
    }
    fn commit(&self) -> edgestore::Result<()> {
        OpenTransaction::commit(self)
    }
    fn rollback(&self) -> edgestore::Result<()> {
        OpenTransaction::rollback(self)
    }
}

impl DynSpool for Spool<Document> {
    /// Straight into the journal, as `put` of their documents would write them, without a
    /// document allocated per row.
    fn put(&self, rows: &[Metric]) -> edgestore::Result<()> {
        self.put_serialized(rows)
    }
    fn put_documents(&self, docs: Vec<String>) -> edgestore::Result<()> {
        Spool::put(self, &documents(docs)?)
    }
    fn flush(&self) -> edgestore::Result<()> {
        Spool::flush(self)
    }
    fn flush_due(&self, now_ms: i64) -> edgestore::Result<u64> {
        Spool::flush_due(self, now_ms).map(|n| n as u64)
    }
    fn sync(&self) -> edgestore::Result<()> {
        Spool::sync(self)
    }
    fn pending(&self) -> edgestore::Result<u64> {
        Ok(Spool::pending(self))
    }
    fn segments(&self, range: TimeRange) -> edgestore::Result<Vec<SegmentInfo>> {
        Spool::segments(self, range)
    }
    fn mark_uploaded(&self, names: &[String]) -> edgestore::Result<u64> {
        Spool::mark_uploaded(self, names).map(|n| n as u64)
    }
    fn erase(&self, filter: &EraseFilter) -> edgestore::Result<EraseReport> {
        Spool::erase(self, filter)
    }
    fn purge(&self) -> edgestore::Result<PurgeReport> {
        Spool::purge(self)
    }
    fn usage(&self) -> edgestore::Result<Usage> {
        Spool::usage(self)
    }
    fn verify(&self) -> edgestore::Result<VerifyReport> {
        Spool::verify(self)
    }
    fn journal_rows(&self) -> edgestore::Result<u64> {
        Spool::<Document>::journal_rows(self)
    }
}

impl Backend for NativeBackend {
    fn register(&mut self, schema: &Schema) -> Result<()> {
        let store = self.store()?;
        store.register(schema.clone())?;
        self.tables.insert(schema);
        Ok(())
    }

    fn with_table(
        &mut self,
        table: &str,
        f: &mut dyn FnMut(&dyn DynOps) -> edgestore::Result<()>,
    ) -> Result<()> {
        self.tables.require(table)?;
        let store = self.store()?;
        Ok(f(&TableOps::new(&store, table))?)
    }

    fn open_spool(&mut self, path: &str, config: &SpoolConfig) -> Result<u64> {
        // The core's spool-path rule, as the component's glue applies it.
        check_spool_path(path)?;
        // Every component resolved through the data directory's capability: cap-std refuses
        // `..`, absolute paths and symlinks that lead outside.
        let io =
            |e: std::io::Error| edgestore::Error::io(format!("open spool directory {path}"), e);
        let read_only = self.grants.read_only();
        if !read_only {
            self.grants.dir().create_dir_all(path).map_err(io)?;
        }
        let dir = Arc::new(CapDir::from_dir(
            self.grants.dir().open_dir(path).map_err(io)?,
        ));
        let spool = if read_only {
            // Inspecting: no recovery, nothing written.
            Spool::<Document>::inspect(dir, config.clone(), Arc::new(SystemClock))?
        } else {
            Spool::open(dir, config.clone(), Arc::new(SystemClock))?
        };
        let id = self.ids.allocate();
        self.spools
            .insert(id, NativeSpool::new(spool, self.finish_worker));
        Ok(id)
    }

    fn with_spool(
        &mut self,
        id: u64,
        f: &mut dyn FnMut(&dyn DynSpool) -> edgestore::Result<()>,
    ) -> Result<()> {
        Ok(f(&*self.spools.get(id)?.spool)?)
    }

    fn open_reader(&mut self, spool: u64, from: ReadFrom) -> Result<u64> {
        let s = &self.spools.get(spool)?.spool;
        let reader = match from {
            ReadFrom::Segment(name) => NativeReader::Segment(s.read_segment(&name)?),
            ReadFrom::Range(range) => NativeReader::Range(s.read_range(range)?),
        };
        let id = self.ids.allocate();
        self.readers.insert(id, reader);
        Ok(id)
    }

    fn read(&mut self, reader: u64, max: u32) -> Result<Vec<Metric>> {
        let docs = self.readers.get_mut(reader)?.next(max as usize)?;
        Ok(docs
            .iter()
            .map(|d| document_metric(d))
            .collect::<edgestore::Result<Vec<_>>>()?)
    }

    fn read_documents(&mut self, reader: u64, max: u32) -> Result<Vec<String>> {
        let docs = self.readers.get_mut(reader)?.next(max as usize)?;
        Ok(docs
            .into_iter()
            .map(|d| String::from(Box::<str>::from(d)))
            .collect())
    }

    fn close_reader(&mut self, reader: u64) {
        self.readers.remove(reader);
    }

    fn flush_due_all(&mut self, now_ms: i64) -> u64 {
        // A failure here resurfaces on the caller's next put or flush.
        self.spools
            .values()
            .filter_map(|s| s.spool.flush_due(now_ms).ok())
            .map(|n| n as u64)
            .sum()
    }

    fn ping(&mut self) -> Result<()> {
        Ok(())
    }

    fn engine_health(&mut self) -> Result<Vec<String>> {
        let store = self.store()?;
        let mut report = edgestore::admin::HealthReport::default();
        report.check_database("database", &**store.database());
        for spool in self.spools.values().map(|s| &s.spool) {
            let what = format!("spool {}", spool.config().identifier);
            report.check_spool(&what, spool.usage());
        }
        Ok(report.reasons)
    }

    fn open_connections(&self) -> u64 {
        self.sqlite
            .as_ref()
            .map_or(0, |db| db.open_connections() as u64)
    }
}
