//! Model-based test: random sequences of create / update / delete / upsert / insert-or-ignore,
//! reads, transactions (committed, rolled back by an error, or abandoned by a panic; nested ones
//! are savepoints) and reopening the database file give the same results on the SQL repository
//! as on a `BTreeMap`. Every outcome is compared, inside transactions too (a transaction reads
//! its own writes).
//!
//! `PROPTEST_CASES` sets the number of sequences (default 1024); a long run:
//! `PROPTEST_CASES=1000000 cargo test --release --test repository_proptest`.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Once};

use edgestore::model::{Column, ColumnType};
use edgestore::repository::DynamicStore;
use edgestore::{
    Creator, Deleter, ErrorCode, Model, Query, Reader, Result, Schema, SqlStorage, SqliteDatabase,
    StorageCommon, Updater,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    group: String,
    id: i64,
    name: String,
    note: Option<String>,
}

impl Model for Item {
    fn schema() -> Schema {
        Schema::new("item")
            .column(Column::new("group", ColumnType::Text))
            .column(Column::new("id", ColumnType::Integer))
            .column(Column::new("name", ColumnType::Text))
            .column(Column::new("note", ColumnType::Text).nullable())
            .key(&["group", "id"])
    }
}

type Key = (String, i64);
type Oracle = BTreeMap<Key, Item>;

#[derive(Debug, Clone)]
enum Op {
    Create(Item),
    Update(Item),
    Upsert(Item),
    InsertOrIgnore(Item),
    Delete(Key),
    Get(Key),
    Count,
    Tx {
        ops: Vec<Op>,
        end: End,
    },
    /// Close the database and open the file again (top level only; inside a transaction it
    /// does nothing).
    Reopen,
}

/// How a transaction ends.
#[derive(Debug, Clone, Copy)]
enum End {
    Commit,
    /// The closure returns an error: rolled back, the error returned.
    Fail,
    /// The closure panics: rolled back by the guard while unwinding.
    Panic,
}

/// The panic message of an abandoned transaction (kept out of the test's output).
const ABANDON: &str = "abandon the transaction";

fn item() -> impl Strategy<Value = Item> {
    (
        prop::sample::select(vec!["a", "b"]),
        0i64..6,
        "[a-z']{0,6}",
        prop::option::of("[ -~]{0,8}"),
    )
        .prop_map(|(g, id, name, note)| Item {
            group: g.into(),
            id,
            name,
            note,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        item().prop_map(Op::Create),
        item().prop_map(Op::Update),
        item().prop_map(Op::Upsert),
        item().prop_map(Op::InsertOrIgnore),
        item().prop_map(|i| Op::Delete((i.group, i.id))),
        item().prop_map(|i| Op::Get((i.group, i.id))),
        Just(Op::Count),
        Just(Op::Reopen),
    ];
    let end = prop_oneof![3 => Just(End::Commit), 1 => Just(End::Fail), 1 => Just(End::Panic)];
    leaf.prop_recursive(2, 24, 6, move |inner| {
        (prop::collection::vec(inner, 0..6), end.clone()).prop_map(|(ops, end)| Op::Tx { ops, end })
    })
}

/// The outcome of one operation, comparable between the store and the oracle.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done(bool),
    Found(Option<Item>),
    Count(u64),
    Code(ErrorCode),
}

fn outcome(r: Result<bool>) -> Outcome {
    match r {
        Ok(b) => Outcome::Done(b),
        Err(e) => Outcome::Code(e.code()),
    }
}

fn key_of(i: &Item) -> Key {
    (i.group.clone(), i.id)
}

/// One operation on the model. A transaction works on a copy kept only on commit; a failed
/// operation changes nothing.
fn apply_oracle(m: &mut Oracle, op: &Op) -> Outcome {
    match op {
        Op::Create(i) => {
            use std::collections::btree_map::Entry;
            match m.entry(key_of(i)) {
                Entry::Occupied(_) => Outcome::Code(ErrorCode::DuplicateKey),
                Entry::Vacant(slot) => {
                    slot.insert(i.clone());
                    Outcome::Done(true)
                }
            }
        }
        Op::Update(i) => match m.get_mut(&key_of(i)) {
            Some(slot) => {
                *slot = i.clone();
                Outcome::Done(true)
            }
            None => Outcome::Code(ErrorCode::NotFound),
        },
        Op::Upsert(i) => {
            m.insert(key_of(i), i.clone());
            Outcome::Done(true)
        }
        Op::InsertOrIgnore(i) => {
            let fresh = !m.contains_key(&key_of(i));
            m.entry(key_of(i)).or_insert_with(|| i.clone());
            Outcome::Done(fresh)
        }
        Op::Delete(k) => Outcome::Done(m.remove(k).is_some()),
        Op::Get(k) => Outcome::Found(m.get(k).cloned()),
        Op::Count => Outcome::Count(m.len() as u64),
        Op::Reopen => Outcome::Done(true),
        Op::Tx { ops, end } => {
            let mut scratch = m.clone();
            for op in ops {
                apply_oracle(&mut scratch, op);
            }
            match end {
                End::Commit => {
                    *m = scratch;
                    Outcome::Done(true)
                }
                End::Fail => Outcome::Code(ErrorCode::Internal),
                End::Panic => Outcome::Done(false),
            }
        }
    }
}

/// Apply an op to the store (or a transaction's view of it), comparing every outcome inside
/// a transaction with the model's as it goes; `mirror` is the model at this level.
fn apply_store<E: DynamicStore>(
    s: &SqlStorage<Item, Key, E>,
    op: &Op,
    mirror: &Oracle,
) -> std::result::Result<Outcome, TestCaseError> {
    Ok(match op {
        Op::Create(i) => outcome(s.create(i)),
        Op::Update(i) => outcome(s.update(i).map(|()| true)),
        Op::Upsert(i) => outcome(s.upsert(i).map(|()| true)),
        Op::InsertOrIgnore(i) => outcome(s.insert_or_ignore(i)),
        Op::Delete(k) => outcome(s.delete(k)),
        Op::Get(k) => match s.get(k) {
            Ok(i) => Outcome::Found(Some(i)),
            Err(e) if e.code() == ErrorCode::NotFound => Outcome::Found(None),
            Err(e) => Outcome::Code(e.code()),
        },
        Op::Count => match s.count() {
            Ok(n) => Outcome::Count(n),
            Err(e) => Outcome::Code(e.code()),
        },
        Op::Reopen => Outcome::Done(true),
        Op::Tx { ops, end } => {
            let mut scratch = mirror.clone();
            let mut inside = Ok(());
            let r = catch_unwind(AssertUnwindSafe(|| {
                s.tx(|tx| {
                    inside = ops.iter().try_for_each(|op| {
                        let got = apply_store(tx, op, &scratch)?;
                        let want = apply_oracle(&mut scratch, op);
                        prop_assert_eq!(got, want, "inside a transaction: {:?}", op);
                        Ok(())
                    });
                    match end {
                        End::Commit => Ok(true),
                        End::Fail => Err(edgestore::Error::internal("roll back")),
                        End::Panic => std::panic::panic_any(ABANDON),
                    }
                })
            }));
            inside?;
            match r {
                Ok(r) => outcome(r),
                Err(_) => Outcome::Done(false),
            }
        }
    })
}

/// Silence the abandoned transactions' panics; any other panic is reported as usual.
fn quiet_abandon_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&ABANDON) {
                default(info);
            }
        }));
    });
}

fn open(path: &Path) -> SqlStorage<Item, Key> {
    let db = Arc::new(SqliteDatabase::open(&path.to_string_lossy()).unwrap());
    SqlStorage::<Item, Key>::open(db).unwrap()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1024)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn repository_matches_btreemap(ops in prop::collection::vec(op(), 1..30)) {
        quiet_abandon_panics();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.db");
        let mut store = open(&path);
        let mut oracle = Oracle::new();
        for op in &ops {
            if matches!(op, Op::Reopen) {
                drop(store);
                store = open(&path);
            }
            let got = apply_store(&store, op, &oracle)?;
            let expected = apply_oracle(&mut oracle, op);
            prop_assert_eq!(got, expected, "op {:?}", op);
        }
        let all = store.find_all(&Query::all()).unwrap();
        let want: Vec<Item> = oracle.values().cloned().collect();
        prop_assert_eq!(all, want);
        prop_assert_eq!(store.count().unwrap(), oracle.len() as u64);
        drop(store);
        let store = open(&path);
        prop_assert_eq!(store.find_all(&Query::all()).unwrap().len(), oracle.len());
        for (k, v) in &oracle {
            prop_assert_eq!(&store.get(k).unwrap(), v);
        }
    }
}
