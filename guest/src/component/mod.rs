//! The component glue (world `plugin` of `wit/edgestore.wit`): WIT types in, core calls, WIT
//! types out. No logic lives here; everything it calls is the core that the native build uses.
//!
//! Compiled only with feature `component` on `target_family = "wasm"`.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
});

use edgestore::storage::types;
use exports::edgestore::storage::{admin, repository, spool};

/// The component: one instance of it serves every export.
struct Component;

export!(Component);

fn unimplemented_yet(what: &str) -> types::Error {
    types::Error {
        code: types::ErrorCode::Internal,
        class: types::ErrorClass::Permanent,
        message: format!("{what}: not implemented yet"),
    }
}

struct Store;
struct Tx;
struct SpoolRes;
struct ReaderRes;

impl repository::Guest for Component {
    type Store = Store;
    type Transaction = Tx;
}

impl repository::GuestStore for Store {
    fn open(_label: String) -> Result<repository::Store, types::Error> {
        Err(unimplemented_yet("store.open"))
    }
    fn register(&self, _schema: repository::Schema) -> Result<repository::Migration, types::Error> {
        Err(unimplemented_yet("register"))
    }
    fn create(&self, _table: String, _row: types::Row) -> Result<bool, types::Error> {
        Err(unimplemented_yet("create"))
    }
    fn create_many(&self, _table: String, _rows: Vec<types::Row>) -> Result<u64, types::Error> {
        Err(unimplemented_yet("create-many"))
    }
    fn upsert(&self, _table: String, _row: types::Row) -> Result<(), types::Error> {
        Err(unimplemented_yet("upsert"))
    }
    fn insert_or_ignore(&self, _table: String, _row: types::Row) -> Result<bool, types::Error> {
        Err(unimplemented_yet("insert-or-ignore"))
    }
    fn get(&self, _table: String, _key: types::Key) -> Result<types::Row, types::Error> {
        Err(unimplemented_yet("get"))
    }
    fn find(
        &self,
        _table: String,
        _query: repository::Query,
    ) -> Result<Vec<types::Row>, types::Error> {
        Err(unimplemented_yet("find"))
    }
    fn update(&self, _table: String, _row: types::Row) -> Result<(), types::Error> {
        Err(unimplemented_yet("update"))
    }
    fn delete(&self, _table: String, _key: types::Key) -> Result<bool, types::Error> {
        Err(unimplemented_yet("delete"))
    }
    fn delete_all(&self, _table: String) -> Result<u64, types::Error> {
        Err(unimplemented_yet("delete-all"))
    }
    fn count(&self, _table: String) -> Result<u64, types::Error> {
        Err(unimplemented_yet("count"))
    }
    fn begin(&self, _mode: repository::TxMode) -> Result<repository::Transaction, types::Error> {
        Err(unimplemented_yet("begin"))
    }
}

impl repository::GuestTransaction for Tx {
    fn create(&self, _table: String, _row: types::Row) -> Result<bool, types::Error> {
        Err(unimplemented_yet("create"))
    }
    fn create_many(&self, _table: String, _rows: Vec<types::Row>) -> Result<u64, types::Error> {
        Err(unimplemented_yet("create-many"))
    }
    fn upsert(&self, _table: String, _row: types::Row) -> Result<(), types::Error> {
        Err(unimplemented_yet("upsert"))
    }
    fn insert_or_ignore(&self, _table: String, _row: types::Row) -> Result<bool, types::Error> {
        Err(unimplemented_yet("insert-or-ignore"))
    }
    fn get(&self, _table: String, _key: types::Key) -> Result<types::Row, types::Error> {
        Err(unimplemented_yet("get"))
    }
    fn find(
        &self,
        _table: String,
        _query: repository::Query,
    ) -> Result<Vec<types::Row>, types::Error> {
        Err(unimplemented_yet("find"))
    }
    fn update(&self, _table: String, _row: types::Row) -> Result<(), types::Error> {
        Err(unimplemented_yet("update"))
    }
    fn delete(&self, _table: String, _key: types::Key) -> Result<bool, types::Error> {
        Err(unimplemented_yet("delete"))
    }
    fn delete_all(&self, _table: String) -> Result<u64, types::Error> {
        Err(unimplemented_yet("delete-all"))
    }
    fn count(&self, _table: String) -> Result<u64, types::Error> {
        Err(unimplemented_yet("count"))
    }
    fn savepoint(&self) -> Result<repository::Transaction, types::Error> {
        Err(unimplemented_yet("savepoint"))
    }
    fn commit(&self) -> Result<(), types::Error> {
        Err(unimplemented_yet("commit"))
    }
    fn rollback(&self) -> Result<(), types::Error> {
        Err(unimplemented_yet("rollback"))
    }
}

impl spool::Guest for Component {
    type Spool = SpoolRes;
    type Reader = ReaderRes;
}

impl spool::GuestSpool for SpoolRes {
    fn open(_config: spool::Config) -> Result<spool::Spool, types::Error> {
        Err(unimplemented_yet("spool.open"))
    }
    fn put(&self, _rows: Vec<spool::Metric>) -> Result<(), types::Error> {
        Err(unimplemented_yet("put"))
    }
    fn put_documents(&self, _docs: Vec<String>) -> Result<(), types::Error> {
        Err(unimplemented_yet("put-documents"))
    }
    fn flush(&self) -> Result<(), types::Error> {
        Err(unimplemented_yet("flush"))
    }
    fn flush_due(&self, _now_ms: i64) -> Result<u32, types::Error> {
        Err(unimplemented_yet("flush-due"))
    }
    fn sync(&self) -> Result<(), types::Error> {
        Err(unimplemented_yet("sync"))
    }
    fn pending(&self) -> u64 {
        0
    }
    fn segments(&self, _range: spool::TimeRange) -> Result<Vec<spool::SegmentInfo>, types::Error> {
        Err(unimplemented_yet("segments"))
    }
    fn read_segment(&self, _name: String) -> Result<spool::Reader, types::Error> {
        Err(unimplemented_yet("read-segment"))
    }
    fn read_range(&self, _range: spool::TimeRange) -> Result<spool::Reader, types::Error> {
        Err(unimplemented_yet("read-range"))
    }
    fn mark_uploaded(&self, _names: Vec<String>) -> Result<u32, types::Error> {
        Err(unimplemented_yet("mark-uploaded"))
    }
    fn purge(&self) -> Result<spool::PurgeReport, types::Error> {
        Err(unimplemented_yet("purge"))
    }
    fn usage(&self) -> Result<spool::Usage, types::Error> {
        Err(unimplemented_yet("usage"))
    }
    fn verify(&self) -> Result<spool::VerifyReport, types::Error> {
        Err(unimplemented_yet("verify"))
    }
}

impl spool::GuestReader for ReaderRes {
    fn next_metrics(&self, _max: u32) -> Result<Vec<spool::Metric>, types::Error> {
        Err(unimplemented_yet("next-metrics"))
    }
    fn next_documents(&self, _max: u32) -> Result<Vec<String>, types::Error> {
        Err(unimplemented_yet("next-documents"))
    }
}

impl admin::Guest for Component {
    fn health() -> admin::HealthReport {
        admin::HealthReport {
            healthy: false,
            reasons: vec!["not implemented yet".into()],
        }
    }
    fn diagnostics() -> admin::DiagnosticsReport {
        admin::DiagnosticsReport {
            backend: "host-sqlite".into(),
            connection_status: String::new(),
            spool_bytes: 0,
            record_count: 0,
            last_operation_ms: None,
        }
    }
    fn counters() -> Vec<admin::OperationCounter> {
        Vec::new()
    }
}
