//! Explicit transactions and the by-name store, on the rusqlite driver.

use std::sync::Arc;

use super::*;
use crate::model::{Column, ColumnType, Value};
use crate::sql::sqlite::SqliteConnection;
use crate::sql::{RetryPolicy, SingleConnection};
use crate::SqliteDatabase;

fn kv() -> Schema {
    Schema::new("kv")
        .column(Column::new("k", ColumnType::Text))
        .column(Column::new("v", ColumnType::Integer))
        .key(&["k"])
}

fn other() -> Schema {
    Schema::new("other")
        .column(Column::new("id", ColumnType::Integer))
        .key(&["id"])
}

fn store() -> Store {
    let raw = rusqlite::Connection::open_in_memory().unwrap();
    let conn = SqliteConnection::new(raw, RetryPolicy::none()).unwrap();
    let store = Store::new(Arc::new(SingleConnection::new(conn)));
    assert!(store.register(kv()).unwrap().created);
    store.register(other()).unwrap();
    store
}

fn row(k: &str, v: i64) -> Row {
    vec![Value::Text(k.into()), Value::Integer(v)]
}

fn key(k: &str) -> Key {
    vec![Value::Text(k.into())]
}

#[test]
fn dispatches_by_table_name() {
    let s = store();
    assert_eq!(s.tables(), ["kv", "other"]);
    assert!(s.create("kv", &row("a", 1)).unwrap());
    s.create("other", &vec![Value::Integer(7)]).unwrap();
    assert_eq!(s.get("kv", &key("a")).unwrap(), row("a", 1));
    assert_eq!(s.count("other").unwrap(), 1);
    let missing = s.count("nope").unwrap_err();
    assert_eq!(missing.code(), ErrorCode::TableMissing);
}

#[test]
fn commit_keeps_and_rollback_discards() {
    let s = store();
    let tx = s.begin(TxMode::Immediate).unwrap();
    tx.create("kv", &row("a", 1)).unwrap();
    assert_eq!(tx.count("kv").unwrap(), 1);
    tx.commit().unwrap();
    assert_eq!(s.count("kv").unwrap(), 1);

    let tx = s.begin(TxMode::Deferred).unwrap();
    tx.create("kv", &row("b", 2)).unwrap();
    tx.rollback().unwrap();
    assert_eq!(s.count("kv").unwrap(), 1);
    assert_eq!(tx.count("kv").unwrap_err().code(), ErrorCode::Closed);
    assert_eq!(tx.commit().unwrap_err().code(), ErrorCode::Closed);
}

#[test]
fn drop_rolls_back() {
    let s = store();
    {
        let tx = s.begin(TxMode::Immediate).unwrap();
        tx.create("kv", &row("a", 1)).unwrap();
    }
    assert_eq!(s.count("kv").unwrap(), 0);
    // The store is usable again and a new transaction can start.
    let tx = s.begin(TxMode::Exclusive).unwrap();
    tx.create("kv", &row("b", 1)).unwrap();
    tx.commit().unwrap();
    assert_eq!(s.count("kv").unwrap(), 1);
}

#[test]
fn store_is_busy_while_a_transaction_is_open() {
    let s = store();
    let tx = s.begin(TxMode::Immediate).unwrap();
    for err in [
        s.count("kv").unwrap_err(),
        s.create("kv", &row("x", 1)).unwrap_err(),
        s.register(kv()).unwrap_err(),
        s.begin(TxMode::Immediate).map(|_| ()).unwrap_err(),
    ] {
        assert_eq!(err.code(), ErrorCode::Busy);
        assert!(err.is_transient());
    }
    tx.commit().unwrap();
    assert_eq!(s.count("kv").unwrap(), 0);
}

#[test]
fn failed_savepoint_keeps_outer_work() {
    let s = store();
    let tx = s.begin(TxMode::Immediate).unwrap();
    tx.create("kv", &row("outer", 1)).unwrap();
    let sp = tx.savepoint().unwrap();
    assert_eq!(sp.level(), 1);
    // The parent is busy while its savepoint is open.
    assert_eq!(tx.count("kv").unwrap_err().code(), ErrorCode::Busy);
    assert_eq!(tx.commit().unwrap_err().code(), ErrorCode::Busy);
    sp.create("kv", &row("inner", 2)).unwrap();
    let dup = sp.create("kv", &row("outer", 3)).unwrap_err();
    assert_eq!(dup.code(), ErrorCode::DuplicateKey);
    sp.rollback().unwrap();
    assert_eq!(tx.count("kv").unwrap(), 1);
    // A committed savepoint becomes part of its parent.
    let sp = tx.savepoint().unwrap();
    sp.create_many("kv", &[row("p", 1), row("q", 2)]).unwrap();
    sp.commit().unwrap();
    tx.commit().unwrap();
    let keys: Vec<_> = s
        .find("kv", &Query::all().order_by("k"))
        .unwrap()
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(keys, ["outer", "p", "q"].map(|k| Value::Text(k.into())));
}

#[test]
fn dropping_the_parent_ends_its_savepoints() {
    let s = store();
    let tx = s.begin(TxMode::Immediate).unwrap();
    let sp = tx.savepoint().unwrap();
    let inner = sp.savepoint().unwrap();
    inner.create("kv", &row("a", 1)).unwrap();
    drop(tx);
    assert_eq!(inner.count("kv").unwrap_err().code(), ErrorCode::Closed);
    assert_eq!(sp.commit().unwrap_err().code(), ErrorCode::Closed);
    drop(inner);
    drop(sp);
    assert_eq!(s.count("kv").unwrap(), 0);
}

#[test]
fn every_operation_works_inside_a_transaction() {
    let s = store();
    let tx = s.begin(TxMode::Immediate).unwrap();
    assert!(tx.create("kv", &row("a", 1)).unwrap());
    assert_eq!(
        tx.create_many("kv", &[row("b", 2), row("c", 3)]).unwrap(),
        2
    );
    tx.upsert("kv", &row("a", 10)).unwrap();
    assert!(!tx.insert_or_ignore("kv", &row("a", 99)).unwrap());
    tx.update("kv", &row("b", 20)).unwrap();
    assert_eq!(tx.get("kv", &key("a")).unwrap(), row("a", 10));
    let q = Query::all().filter(crate::Condition::gt("v", 5));
    assert_eq!(tx.find("kv", &q).unwrap().len(), 2);
    assert!(tx.delete("kv", &key("c")).unwrap());
    assert_eq!(tx.count("kv").unwrap(), 2);
    tx.commit().unwrap();
    assert_eq!(s.delete_all("kv").unwrap(), 2);
}

#[test]
fn explicit_transactions_work_on_the_pooled_driver() {
    let s = Store::new(Arc::new(SqliteDatabase::open(":memory:").unwrap()));
    s.register(kv()).unwrap();
    let tx = s.begin(TxMode::Immediate).unwrap();
    tx.create("kv", &row("a", 1)).unwrap();
    tx.create("kv", &row("b", 1)).unwrap();
    tx.commit().unwrap();
    assert_eq!(s.count("kv").unwrap(), 2);
}

#[test]
fn store_operations_never_join_a_transaction_of_another_thread() {
    let s = store();
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                let r = row(&format!("s{i}"), i);
                loop {
                    match s.create("kv", &r) {
                        Ok(_) => break,
                        Err(e) if e.code() == ErrorCode::Busy => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        })
    };
    for i in 0..50 {
        let tx = loop {
            match s.begin(TxMode::Immediate) {
                Ok(tx) => break tx,
                Err(e) if e.code() == ErrorCode::Busy => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        tx.create("kv", &row(&format!("t{i}"), i)).unwrap();
        tx.rollback().unwrap();
    }
    writer.join().unwrap();
    // Every store write landed; none was swept away by a rolled-back transaction.
    assert_eq!(s.count("kv").unwrap(), 200);
}
