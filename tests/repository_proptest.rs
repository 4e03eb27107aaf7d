//! Model-based test: random sequences of create / update / delete / upsert / insert-or-ignore
//! and transactions (committed or rolled back, possibly nested) give the same results on the
//! SQL repository as on a `BTreeMap`.

use std::collections::BTreeMap;
use std::sync::Arc;

use edgestore::model::{Column, ColumnType};
use edgestore::{
    Creator, Deleter, ErrorCode, Model, Query, Reader, Result, Schema, SqlStorage, SqliteDatabase,
    StorageCommon, Updater,
};
use proptest::prelude::*;
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
    Tx { ops: Vec<Op>, commit: bool },
}

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
    ];
    leaf.prop_recursive(2, 24, 6, |inner| {
        (prop::collection::vec(inner, 0..6), any::<bool>())
            .prop_map(|(ops, commit)| Op::Tx { ops, commit })
    })
}

/// The outcome of one operation, comparable between the store and the oracle.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done(bool),
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
        Op::Tx { ops, commit } => {
            let mut scratch = m.clone();
            for op in ops {
                apply_oracle(&mut scratch, op);
            }
            if *commit {
                *m = scratch;
            }
            Outcome::Done(*commit)
        }
    }
}

/// Apply an op to the store.
fn apply_store(s: &SqlStorage<Item, Key>, op: &Op) -> Outcome {
    match op {
        Op::Create(i) => outcome(s.create(i)),
        Op::Update(i) => outcome(s.update(i).map(|()| true)),
        Op::Upsert(i) => outcome(s.upsert(i).map(|()| true)),
        Op::InsertOrIgnore(i) => outcome(s.insert_or_ignore(i)),
        Op::Delete(k) => outcome(s.delete(k)),
        Op::Tx { ops, commit } => {
            let r = s.tx(|tx| {
                for op in ops {
                    apply_nested(tx, op);
                }
                if *commit {
                    Ok(true)
                } else {
                    Err(edgestore::Error::invalid_input("roll back"))
                }
            });
            match r {
                Ok(b) => Outcome::Done(b),
                Err(e) if e.code() == ErrorCode::InvalidInput => Outcome::Done(false),
                Err(e) => Outcome::Code(e.code()),
            }
        }
    }
}

type TxView<'t> = SqlStorage<Item, Key, edgestore::repository::Transaction<'t>>;

/// Inside a transaction: nested transactions are savepoints; errors of single ops are ignored
/// (as in the oracle, a failed op changes nothing).
fn apply_nested(tx: &TxView<'_>, op: &Op) {
    match op {
        Op::Tx { ops, commit } => {
            let _ = tx.tx(|inner| {
                for op in ops {
                    apply_nested(inner, op);
                }
                if *commit {
                    Ok(())
                } else {
                    Err(edgestore::Error::invalid_input("roll back"))
                }
            });
        }
        Op::Create(i) => drop(tx.create(i)),
        Op::Update(i) => drop(tx.update(i)),
        Op::Upsert(i) => drop(tx.upsert(i)),
        Op::InsertOrIgnore(i) => drop(tx.insert_or_ignore(i)),
        Op::Delete(k) => drop(tx.delete(k)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn repository_matches_btreemap(ops in prop::collection::vec(op(), 1..30)) {
        let db = Arc::new(SqliteDatabase::open(":memory:").unwrap());
        let store = SqlStorage::<Item, Key>::open(db).unwrap();
        let mut oracle = Oracle::new();
        for op in &ops {
            let expected = apply_oracle(&mut oracle, op);
            let got = apply_store(&store, op);
            prop_assert_eq!(got, expected, "op {:?}", op);
        }
        let all = store.find_all(&Query::all()).unwrap();
        let want: Vec<Item> = oracle.values().cloned().collect();
        prop_assert_eq!(all, want);
        prop_assert_eq!(store.count().unwrap(), oracle.len() as u64);
        for (k, v) in &oracle {
            prop_assert_eq!(&store.get(k).unwrap(), v);
        }
    }
}
