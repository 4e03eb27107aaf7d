//! The misbehaving exports (see the crate's documentation).

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

wit_bindgen::generate!({
    path: "../../wit",
    world: "plugin",
});

use self::edgestore::storage::sqlite::Connection;
use self::edgestore::storage::types::{Error, ErrorClass, ErrorCode, Row, Value};
use self::exports::edgestore::storage::admin as a;
use self::exports::edgestore::storage::repository as r;
use self::exports::edgestore::storage::spool as s;

struct Component;

export!(Component);

fn refused(what: &str) -> Error {
    Error {
        code: ErrorCode::InvalidInput,
        class: ErrorClass::Permanent,
        message: format!("the hostile test component does not implement {what}"),
    }
}

/// Record one row of `table`.
fn insert(conn: &Connection, table: &str) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO hostile_row(tbl, data) VALUES (?1, ?2)",
        &[Value::Text(table.to_owned()), Value::Null],
    )
    .map(|_| ())
}

/// Misbehave as `table` asks; return normally for any other table.
fn misbehave(table: &str, row: &Row) -> Result<(), Error> {
    match table {
        "loop" => {
            let mut n = 0u64;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        "sleep" => {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(())
        }
        // A short wait, well inside any call bound: allowed.
        "nap" => {
            std::thread::sleep(Duration::from_millis(50));
            Ok(())
        }
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Written, so the pages are really committed.
                hoard.push(vec![0xA5; 1 << 20]);
                black_box(&hoard);
            }
        }
        "trap" => panic!("the hostile test component traps on purpose"),
        "recurse" => {
            black_box(recurse(0));
            Ok(())
        }
        "escape" => Err(Error {
            code: ErrorCode::PermissionDenied,
            class: ErrorClass::Permanent,
            message: escape(row),
        }),
        _ => Ok(()),
    }
}

/// Recurse with a frame that cannot be optimised away.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(frame[(depth % 64) as usize])
}

/// Try to reach outside the grant; one line per attempt. `row` is `[text(name of a file beside
/// the data directory), integer(a loopback TCP port the test listens on)]`.
fn escape(row: &Row) -> String {
    let beside = match row.first() {
        Some(Value::Text(t)) => t.clone(),
        _ => "secret.txt".to_owned(),
    };
    let port = match row.get(1) {
        Some(Value::Integer(p)) => *p,
        _ => 9,
    };
    let mut report = Vec::new();
    let mut note = |what: String, escaped: bool, detail: String| {
        let verdict = if escaped { "ESCAPED" } else { "refused" };
        report.push(format!("{what}: {verdict} ({detail})"));
    };
    let reads = [
        "/etc/passwd".to_owned(),
        format!("/data/../{beside}"),
        format!("/{beside}"),
        "/data/link-out/passwd".to_owned(),
        "/data/file-link".to_owned(),
        "../etc/passwd".to_owned(),
        "/proc/self/environ".to_owned(),
    ];
    for path in reads {
        match std::fs::read(&path) {
            Ok(bytes) => note(
                format!("read {path}"),
                true,
                format!("{} bytes", bytes.len()),
            ),
            Err(e) => note(format!("read {path}"), false, e.to_string()),
        }
    }
    for path in [
        "/data/../escaped.txt",
        "/escaped.txt",
        "/data/link-out/escaped.txt",
    ] {
        match std::fs::write(path, b"out") {
            Ok(()) => note(format!("write {path}"), true, "written".into()),
            Err(e) => note(format!("write {path}"), false, e.to_string()),
        }
    }
    match std::fs::read_dir("/") {
        Ok(entries) => {
            let names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            // Listing the preopened `/data` itself is what a guest may see.
            let outside = names.iter().any(|n| n != "data");
            note("list /".into(), outside, names.join(","));
        }
        Err(e) => note("list /".into(), false, e.to_string()),
    }
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    note("environment".into(), !vars.is_empty(), vars.join(","));
    let args: Vec<String> = std::env::args().collect();
    note("arguments".into(), !args.is_empty(), args.join(" "));
    match std::net::TcpStream::connect(("127.0.0.1", port as u16)) {
        Ok(_) => note(
            format!("connect 127.0.0.1:{port}"),
            true,
            "connected".into(),
        ),
        Err(e) => note(format!("connect 127.0.0.1:{port}"), false, e.to_string()),
    }
    for label in [
        "../outside",
        "/etc/passwd",
        "undeclared",
        "file:/etc/passwd",
    ] {
        match Connection::open(label) {
            Ok(_) => note(format!("sqlite open {label}"), true, "opened".into()),
            Err(e) => note(format!("sqlite open {label}"), false, e.message),
        }
    }
    report.join("\n")
}

/// The repository's one connection, shared by the store and its transactions.
pub struct StoreRes {
    conn: Rc<Connection>,
}

/// A transaction: `BEGIN IMMEDIATE` on the shared connection; dropped unfinished, rolled back.
pub struct TxRes {
    conn: Rc<Connection>,
    done: Cell<bool>,
}

impl r::Guest for Component {
    type Store = StoreRes;
    type Transaction = TxRes;
}

fn count(conn: &Connection, table: &str) -> Result<u64, Error> {
    let rows = conn.query(
        "SELECT count(*) FROM hostile_row WHERE tbl = ?1",
        &[Value::Text(table.to_owned())],
    )?;
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(n)) => Ok(*n as u64),
        _ => Err(refused("a count that is not an integer")),
    }
}

impl r::GuestStore for StoreRes {
    fn open(label: String) -> Result<r::Store, Error> {
        let conn = Connection::open(&label)?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS hostile_row(tbl TEXT NOT NULL, data BLOB)",
            &[],
        )?;
        Ok(r::Store::new(StoreRes {
            conn: Rc::new(conn),
        }))
    }

    fn register(&self, _schema: r::Schema) -> Result<r::Migration, Error> {
        Ok(r::Migration {
            version: 1,
            created: false,
            added_columns: Vec::new(),
        })
    }

    fn create(&self, table: String, row: Row) -> Result<bool, Error> {
        misbehave(&table, &row)?;
        insert(&self.conn, &table)?;
        Ok(true)
    }

    fn create_many(&self, table: String, rows: Vec<Row>) -> Result<u64, Error> {
        if let Some(row) = rows.first() {
            misbehave(&table, row)?;
        }
        self.conn.execute("BEGIN IMMEDIATE", &[])?;
        for _ in &rows {
            if let Err(e) = insert(&self.conn, &table) {
                let _ = self.conn.execute("ROLLBACK", &[]);
                return Err(e);
            }
        }
        self.conn.execute("COMMIT", &[])?;
        Ok(rows.len() as u64)
    }

    fn upsert(&self, table: String, row: Row) -> Result<(), Error> {
        self.create(table, row).map(|_| ())
    }

    fn insert_or_ignore(&self, table: String, row: Row) -> Result<bool, Error> {
        self.create(table, row)
    }

    fn get(&self, _table: String, _key: Row) -> Result<Row, Error> {
        Err(refused("get"))
    }

    fn get_many(&self, _table: String, _keys: Vec<Row>) -> Result<Vec<Option<Row>>, Error> {
        Err(refused("get-many"))
    }

    fn find(&self, _table: String, _query: r::Query) -> Result<Vec<Row>, Error> {
        Err(refused("find"))
    }

    fn update(&self, _table: String, _row: Row) -> Result<(), Error> {
        Err(refused("update"))
    }

    fn delete(&self, _table: String, _key: Row) -> Result<bool, Error> {
        Err(refused("delete"))
    }

    fn delete_all(&self, _table: String) -> Result<u64, Error> {
        Err(refused("delete-all"))
    }

    fn count(&self, table: String) -> Result<u64, Error> {
        count(&self.conn, &table)
    }

    fn begin(&self, _mode: r::TxMode) -> Result<r::Transaction, Error> {
        self.conn.execute("BEGIN IMMEDIATE", &[])?;
        Ok(r::Transaction::new(TxRes {
            conn: self.conn.clone(),
            done: Cell::new(false),
        }))
    }
}

impl TxRes {
    /// Write first, then misbehave: whatever the host does with the instance, the write must
    /// not survive.
    fn write(&self, table: &str, row: &Row) -> Result<(), Error> {
        insert(&self.conn, table)?;
        misbehave(table, row)
    }

    fn end(&self, sql: &str) -> Result<(), Error> {
        if self.done.replace(true) {
            return Err(refused("a second commit or rollback"));
        }
        self.conn.execute(sql, &[]).map(|_| ())
    }
}

impl Drop for TxRes {
    fn drop(&mut self) {
        if !self.done.get() {
            let _ = self.conn.execute("ROLLBACK", &[]);
        }
    }
}

impl r::GuestTransaction for TxRes {
    fn create(&self, table: String, row: Row) -> Result<bool, Error> {
        self.write(&table, &row).map(|()| true)
    }

    fn create_many(&self, table: String, rows: Vec<Row>) -> Result<u64, Error> {
        for row in &rows {
            self.write(&table, row)?;
        }
        Ok(rows.len() as u64)
    }

    fn upsert(&self, table: String, row: Row) -> Result<(), Error> {
        self.write(&table, &row)
    }

    fn insert_or_ignore(&self, table: String, row: Row) -> Result<bool, Error> {
        self.write(&table, &row).map(|()| true)
    }

    fn get(&self, _table: String, _key: Row) -> Result<Row, Error> {
        Err(refused("get"))
    }

    fn get_many(&self, _table: String, _keys: Vec<Row>) -> Result<Vec<Option<Row>>, Error> {
        Err(refused("get-many"))
    }

    fn find(&self, _table: String, _query: r::Query) -> Result<Vec<Row>, Error> {
        Err(refused("find"))
    }

    fn update(&self, _table: String, _row: Row) -> Result<(), Error> {
        Err(refused("update"))
    }

    fn delete(&self, _table: String, _key: Row) -> Result<bool, Error> {
        Err(refused("delete"))
    }

    fn delete_all(&self, _table: String) -> Result<u64, Error> {
        Err(refused("delete-all"))
    }

    fn count(&self, table: String) -> Result<u64, Error> {
        count(&self.conn, &table)
    }

    fn savepoint(&self) -> Result<r::Transaction, Error> {
        Err(refused("savepoints"))
    }

    fn commit(&self) -> Result<(), Error> {
        self.end("COMMIT")
    }

    fn rollback(&self) -> Result<(), Error> {
        self.end("ROLLBACK")
    }
}

/// Never constructed: `open` and `inspect` refuse.
pub struct SpoolRes;

/// Never constructed: no spool hands one out.
pub struct ReaderRes;

impl s::Guest for Component {
    type Spool = SpoolRes;
    type Reader = ReaderRes;
}

impl s::GuestSpool for SpoolRes {
    fn open(_config: s::Config) -> Result<s::Spool, Error> {
        Err(refused("spools"))
    }
    fn inspect(_config: s::Config) -> Result<s::Spool, Error> {
        Err(refused("spools"))
    }
    fn put(&self, _rows: Vec<s::Metric>) -> Result<(), Error> {
        Err(refused("spools"))
    }
    fn put_documents(&self, _docs: Vec<String>) -> Result<(), Error> {
        Err(refused("spools"))
    }
    fn put_lines(&self, _lines: Vec<u8>) -> Result<(), Error> {
        Err(refused("spools"))
    }
    fn flush(&self) -> Result<(), Error> {
        Err(refused("spools"))
    }
    fn flush_due(&self, _now_ms: i64) -> Result<u32, Error> {
        Err(refused("spools"))
    }
    fn sync(&self) -> Result<(), Error> {
        Err(refused("spools"))
    }
    fn pending(&self) -> u64 {
        0
    }
    fn segments(&self, _range: s::TimeRange) -> Result<Vec<s::SegmentInfo>, Error> {
        Err(refused("spools"))
    }
    fn read_segment(&self, _name: String) -> Result<s::Reader, Error> {
        Err(refused("spools"))
    }
    fn read_range(&self, _range: s::TimeRange) -> Result<s::Reader, Error> {
        Err(refused("spools"))
    }
    fn mark_uploaded(&self, _names: Vec<String>) -> Result<u32, Error> {
        Err(refused("spools"))
    }
    fn purge(&self) -> Result<s::PurgeReport, Error> {
        Err(refused("spools"))
    }
    fn usage(&self) -> Result<s::Usage, Error> {
        Err(refused("spools"))
    }
    fn verify(&self) -> Result<s::VerifyReport, Error> {
        Err(refused("spools"))
    }
    fn journal_rows(&self) -> Result<u64, Error> {
        Err(refused("spools"))
    }
    fn erase(&self, _label: String, _value: String) -> Result<s::EraseReport, Error> {
        Err(refused("spools"))
    }
}

impl s::GuestReader for ReaderRes {
    fn next_metrics(&self, _max: u32) -> Result<Vec<s::Metric>, Error> {
        Err(refused("readers"))
    }
    fn next_documents(&self, _max: u32) -> Result<Vec<String>, Error> {
        Err(refused("readers"))
    }
}

impl a::Guest for Component {
    fn ping() {}
    fn health() -> a::HealthReport {
        a::HealthReport {
            healthy: true,
            reasons: Vec::new(),
        }
    }
    fn diagnostics() -> a::DiagnosticsReport {
        a::DiagnosticsReport {
            backend: "hostile".into(),
            connection_status: "ok".into(),
            spool_bytes: 0,
            record_count: 0,
            last_operation_ms: None,
        }
    }
    fn counters() -> Vec<a::OperationCounter> {
        Vec::new()
    }
}
