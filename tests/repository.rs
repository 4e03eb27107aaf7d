//! Integration tests of the repository layer on the native rusqlite driver.

use std::sync::Arc;

use edgestore::model::{Column, ColumnType, CreateMode, OnDelete, ResourceTagsKey};
use edgestore::repository::{DynamicStore, SCHEMA_TABLE};
use edgestore::sql::{with_reader, with_writer, Database};
use edgestore::{
    Condition, Creator, Deleter, ErrorCode, Model, Query, Reader, RepositoryOptions, ResourceTags,
    Schema, SqlRepository, SqlStorage, SqliteDatabase, SqliteOptions, StorageCommon, Timestamp,
    TxMode, Updater, Value,
};
use serde::{Deserialize, Serialize};

type Tags = SqlStorage<ResourceTags, ResourceTagsKey>;

fn memory() -> Arc<dyn Database> {
    Arc::new(SqliteDatabase::open(":memory:").unwrap())
}

fn tags(db: &Arc<dyn Database>) -> Tags {
    Tags::open(db.clone()).unwrap()
}

fn tag(kind: &str, name: &str, ns: Option<&str>) -> ResourceTags {
    let mut t = ResourceTags::new(kind, name, ns, Timestamp(1_700_000_000_000));
    t.labels.insert("app".into(), name.into());
    t
}

fn key(kind: &str, name: &str, ns: Option<&str>) -> ResourceTagsKey {
    (kind.into(), name.into(), ns.map(Into::into))
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tags>();
    assert_send_sync::<SqlRepository>();
    assert_send_sync::<SqliteDatabase>();
}

#[test]
fn create_get_update_delete_count() {
    let db = memory();
    let s = tags(&db);
    let mut t = tag("pod", "web", Some("prod"));
    assert!(s.create(&t).unwrap());
    let got = s.get(&t.key()).unwrap();
    assert_eq!(got.id, t.id);
    assert_eq!(got.labels, t.labels);

    t.annotations.insert("note".into(), "x".into());
    t.record_updated = Timestamp(1_700_000_000_500);
    s.update(&t).unwrap();
    let got = s.get(&t.key()).unwrap();
    assert_eq!(got.annotations, t.annotations);
    assert_eq!(got.record_updated, Timestamp(1_700_000_000_500));

    assert_eq!(s.count().unwrap(), 1);
    assert!(s.delete(&t.key()).unwrap());
    assert!(!s.delete(&t.key()).unwrap(), "delete is idempotent");
    let err = s.get(&t.key()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert_eq!(s.update(&t).unwrap_err().code(), ErrorCode::NotFound);

    assert_eq!(
        s.create_many(&[
            tag("a", "1", None),
            tag("a", "2", None),
            tag("b", "1", Some("n"))
        ])
        .unwrap(),
        3
    );
    assert_eq!(s.count().unwrap(), 3);
    assert_eq!(s.delete_all().unwrap(), 3);
    assert_eq!(s.count().unwrap(), 0);
}

#[test]
fn composite_key_with_null_namespace_is_unique() {
    let db = memory();
    let s = tags(&db);
    let first = tag("node", "n1", None);
    assert!(s.create(&first).unwrap());
    // Same type + name, cluster-scoped again: create is insert-or-ignore on the key.
    let second = tag("node", "n1", None);
    assert!(!s.create(&second).unwrap());
    assert!(!s.insert_or_ignore(&second).unwrap());
    assert_eq!(s.count().unwrap(), 1);
    assert_eq!(s.get(&key("node", "n1", None)).unwrap().id, first.id);
    // Namespaced resources with the same type + name are different keys.
    assert!(s.create(&tag("node", "n1", Some("a"))).unwrap());
    assert!(s.create(&tag("node", "n1", Some("b"))).unwrap());
    assert_eq!(s.count().unwrap(), 3);
    // create_many counts only inserted rows.
    assert_eq!(
        s.create_many(&[tag("node", "n1", None), tag("node", "n2", None)])
            .unwrap(),
        1
    );
    // A different key reusing an existing unique id is a duplicate.
    let mut clash = tag("pod", "other", None);
    clash.id = first.id;
    assert_eq!(
        s.create(&clash).unwrap_err().code(),
        ErrorCode::DuplicateKey
    );
}

#[test]
fn upsert_updates_mutable_columns_only() {
    let db = memory();
    let s = tags(&db);
    let original = tag("pod", "web", Some("prod"));
    s.upsert(&original).unwrap();
    let mut next = tag("pod", "web", Some("prod"));
    next.labels.insert("tier".into(), "front".into());
    next.record_created = Timestamp(1);
    next.record_updated = Timestamp(2_000_000_000_000);
    s.upsert(&next).unwrap();
    let got = s.get(&original.key()).unwrap();
    assert_eq!(got.labels, next.labels);
    assert_eq!(got.record_updated, next.record_updated);
    assert_eq!(got.id, original.id, "id is immutable");
    assert_eq!(
        got.record_created, original.record_created,
        "record_created is immutable"
    );
    assert_eq!(s.count().unwrap(), 1);
}

#[test]
fn json_generated_column_and_nulls() {
    let db = memory();
    let s = tags(&db);
    let mut t = tag("pod", "web", None);
    t.labels.insert("ünïcode".into(), "välue".into());
    t.metric_labels.insert("k".into(), "v".into());
    s.create(&t).unwrap();
    let got = s.get(&t.key()).unwrap();
    assert_eq!(got.labels, t.labels);
    assert_eq!(got.metric_labels, t.metric_labels);
    assert_eq!(got.namespace, None);
    assert_eq!(got.sent_at, None);
    let expected = "web".len() + serde_json::to_string(&t.labels).unwrap().len() + "{}".len();
    assert_eq!(got.size, i64::try_from(expected).unwrap());

    let mut namespaced = tag("pod", "web", Some("prod"));
    namespaced.sent_at = Some(Timestamp(5));
    s.create(&namespaced).unwrap();
    let got = s.get(&namespaced.key()).unwrap();
    let expected =
        "web".len() + "prod".len() + serde_json::to_string(&namespaced.labels).unwrap().len() + 2;
    assert_eq!(got.size, i64::try_from(expected).unwrap());
    assert_eq!(got.sent_at, Some(Timestamp(5)));
    let unsent = s
        .find_all(&Query::all().filter(Condition::is_null("sent_at")))
        .unwrap();
    assert_eq!(unsent.len(), 1);
    assert_eq!(unsent[0].id, t.id);
    let sent = s
        .find_all(&Query::all().filter(Condition::is_not_null("namespace")))
        .unwrap();
    assert_eq!(sent[0].id, namespaced.id);
}

#[test]
fn find_with_conditions_order_limit_offset() {
    let db = memory();
    let s = tags(&db);
    for i in 0..10 {
        let mut t = tag(
            if i % 2 == 0 { "pod" } else { "node" },
            &format!("n{i}"),
            None,
        );
        t.record_updated = Timestamp(1000 + i);
        s.create(&t).unwrap();
    }
    let q = |q: Query| {
        s.find_all(&q)
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q(Query::all().filter(Condition::eq("type", "pod"))).len(),
        5
    );
    assert_eq!(
        q(Query::all().filter(Condition::ne("type", "pod"))).len(),
        5
    );
    assert_eq!(
        q(Query::all()
            .filter(Condition::lt("record_updated", 1003))
            .order_by("name")),
        ["n0", "n1", "n2"]
    );
    assert_eq!(
        q(Query::all()
            .filter(Condition::le("record_updated", 1001))
            .order_by("name")),
        ["n0", "n1"]
    );
    assert_eq!(
        q(Query::all().filter(Condition::gt("record_updated", 1008))),
        ["n9"]
    );
    assert_eq!(
        q(Query::all()
            .filter(Condition::ge("record_updated", 1008))
            .order_by("name")),
        ["n8", "n9"]
    );
    assert_eq!(
        q(Query::all().filter(Condition::is_in("name", ["n3", "n5", "zz"]))),
        ["n3", "n5"]
    );
    assert!(q(Query::all().filter(Condition::is_in("name", Vec::<String>::new()))).is_empty());
    assert_eq!(
        q(Query::all().filter(Condition::like("name", "N1%"))),
        ["n1"]
    );
    assert_eq!(
        q(Query::all()
            .filter(Condition::eq("type", "pod"))
            .order_by_desc("record_updated")
            .limit(2)
            .offset(1)),
        ["n6", "n4"]
    );
    // RFC3339 in a condition on a timestamp column compares as milliseconds.
    let iso = Timestamp(1005).to_rfc3339();
    assert_eq!(
        q(Query::all().filter(Condition::gt("record_updated", iso.as_str()))).len(),
        4
    );
    let first = s
        .find_first(&Query::all().order_by_desc("name"))
        .unwrap()
        .unwrap();
    assert_eq!(first.name, "n9");
    assert!(s
        .find_first(&Query::all().filter(Condition::eq("name", "none")))
        .unwrap()
        .is_none());
    let err = s
        .find_all(&Query::all().filter(Condition::eq("no_such", 1)))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Parent {
    id: i64,
    name: String,
}

impl Model for Parent {
    fn schema() -> Schema {
        Schema::new("parent")
            .column(Column::new("id", ColumnType::Integer))
            .column(Column::new("name", ColumnType::Text).unique())
            .key(&["id"])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Child {
    id: i64,
    parent_id: i64,
    at: Timestamp,
    flag: bool,
    data: Option<Vec<u8>>,
    score: Option<f64>,
}

impl Model for Child {
    fn schema() -> Schema {
        Schema::new("child")
            .column(Column::new("id", ColumnType::Integer))
            .column(Column::new("parent_id", ColumnType::Integer).indexed())
            .column(Column::new("at", ColumnType::Timestamp))
            .column(Column::new("flag", ColumnType::Bool))
            .column(Column::new("data", ColumnType::Blob).nullable())
            .column(Column::new("score", ColumnType::Real).nullable())
            .key(&["id"])
            .foreign_key(&["parent_id"], "parent", &["id"], OnDelete::Restrict)
    }
}

#[test]
fn foreign_key_and_duplicate_errors() {
    let db = memory();
    let parents = SqlStorage::<Parent, i64>::open(db.clone()).unwrap();
    let children = SqlStorage::<Child, i64>::open(db.clone()).unwrap();
    parents
        .create(&Parent {
            id: 1,
            name: "p".into(),
        })
        .unwrap();
    let dup = parents
        .create(&Parent {
            id: 1,
            name: "q".into(),
        })
        .unwrap_err();
    assert_eq!(dup.code(), ErrorCode::DuplicateKey);
    let dup_unique = parents
        .create(&Parent {
            id: 2,
            name: "p".into(),
        })
        .unwrap_err();
    assert_eq!(dup_unique.code(), ErrorCode::DuplicateKey);
    let child = Child {
        id: 1,
        parent_id: 1,
        at: Timestamp(7),
        flag: true,
        data: Some(vec![0, 255]),
        score: Some(0.5),
    };
    children.create(&child).unwrap();
    assert_eq!(children.get(&1).unwrap(), child);
    let orphan = Child {
        id: 2,
        parent_id: 99,
        ..child.clone()
    };
    let err = children.create(&orphan).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ForeignKey, "{err:?}");
    assert_eq!(err.class(), edgestore::ErrorClass::Consistency);
    assert_eq!(
        parents.delete(&1).unwrap_err().code(),
        ErrorCode::ForeignKey
    );
}

#[test]
fn dropped_table_is_table_missing() {
    let db = memory();
    let s = tags(&db);
    with_writer(&*db, |c| c.execute("DROP TABLE resource_tags", &[])).unwrap();
    assert_eq!(
        s.get(&key("a", "b", None)).unwrap_err().code(),
        ErrorCode::TableMissing
    );
    assert_eq!(
        s.create(&tag("a", "b", None)).unwrap_err().code(),
        ErrorCode::TableMissing
    );
}

#[test]
fn transactions_commit_roll_back_and_nest() {
    let db = memory();
    let s = tags(&db);
    s.tx(|tx| {
        tx.create(&tag("pod", "a", None))?;
        tx.create(&tag("pod", "b", None))?;
        assert_eq!(tx.count()?, 2, "reads inside see the transaction's writes");
        Ok(())
    })
    .unwrap();
    assert_eq!(s.count().unwrap(), 2);

    let err = s
        .tx(|tx| {
            tx.create(&tag("pod", "c", None))?;
            tx.delete(&key("pod", "a", None))?;
            Err::<(), _>(edgestore::Error::invalid_input("changed my mind"))
        })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert_eq!(s.count().unwrap(), 2, "rollback discards");
    assert!(s.get(&key("pod", "a", None)).is_ok());

    // A failed nested savepoint keeps the outer work.
    s.tx_with(TxMode::Deferred, |tx| {
        tx.create(&tag("pod", "outer", None))?;
        let inner = tx.tx(|inner| {
            inner.create(&tag("pod", "inner", None))?;
            inner.get(&key("pod", "missing", None)).map(|_| ())
        });
        assert_eq!(inner.unwrap_err().code(), ErrorCode::NotFound);
        tx.tx(|inner| inner.create(&tag("pod", "inner-ok", None)))?;
        Ok(())
    })
    .unwrap();
    assert!(s.get(&key("pod", "outer", None)).is_ok());
    assert!(s.get(&key("pod", "inner-ok", None)).is_ok());
    assert_eq!(
        s.get(&key("pod", "inner", None)).unwrap_err().code(),
        ErrorCode::NotFound
    );

    // A panic rolls back too, and the store stays usable.
    let s2 = s.clone();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = s2.tx(|tx| {
            tx.create(&tag("pod", "panic", None))?;
            panic!("boom");
            #[allow(unreachable_code)]
            Ok(())
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(
        s.get(&key("pod", "panic", None)).unwrap_err().code(),
        ErrorCode::NotFound
    );
    s.tx_with(TxMode::Exclusive, |tx| {
        tx.create(&tag("pod", "after", None))
    })
    .unwrap();
    assert_eq!(s.count().unwrap(), 5);
}

#[test]
fn timestamps_round_trip_as_utc_ms() {
    let db = memory();
    let repo = SqlRepository::open(db.clone(), ResourceTags::schema()).unwrap();
    let s = tags(&db);
    let mut t = tag("pod", "ts", None);
    t.record_created = Timestamp::parse_rfc3339("2024-05-01T12:00:00.123987+00:00").unwrap();
    s.create(&t).unwrap();
    let raw = with_reader(&*db, |c| {
        c.query(
            "SELECT record_created, typeof(record_created) FROM resource_tags",
            &[],
        )
    })
    .unwrap();
    assert_eq!(
        raw[0],
        vec![
            Value::Integer(1_714_564_800_123),
            Value::Text("integer".into())
        ]
    );
    // The dynamic layer accepts RFC3339 text for timestamp columns and stores ms.
    let mut row = edgestore::model::to_row(repo.schema(), &tag("pod", "iso", None)).unwrap();
    let pos = repo.schema().position("record_updated").unwrap();
    row[pos] = Value::Text("2024-05-01T14:00:00.5+02:00".into());
    repo.create(&row).unwrap();
    let back = s.get(&key("pod", "iso", None)).unwrap();
    assert_eq!(back.record_updated.as_millis(), 1_714_564_800_500);
    let json = serde_json::to_value(&back).unwrap();
    assert_eq!(
        json["record_updated"],
        serde_json::json!(1_714_564_800_500_i64)
    );
}

#[test]
fn sql_injection_strings_are_data() {
    let db = memory();
    let s = tags(&db);
    let nasty = [
        "x'; DROP TABLE resource_tags; --",
        "\" OR 1=1 --",
        "'); DELETE FROM resource_tags; --",
        "%_\\",
    ];
    for (i, n) in nasty.iter().enumerate() {
        let mut t = tag("pod", n, Some(n));
        t.labels.insert((*n).into(), (*n).into());
        t.id = uuid::Uuid::from_u128(i as u128 + 1);
        s.create(&t).unwrap();
        let got = s.get(&key("pod", n, Some(n))).unwrap();
        assert_eq!(got.name, *n);
        assert_eq!(got.labels.get(*n).map(String::as_str), Some(*n));
    }
    assert_eq!(s.count().unwrap(), nasty.len() as u64);
    let found = s
        .find_all(&Query::all().filter(Condition::eq("name", nasty[1])))
        .unwrap();
    assert_eq!(found.len(), 1);
    // Names are validated, never spliced.
    let bad = Schema::new("t; DROP TABLE x")
        .column(Column::new("a", ColumnType::Text))
        .key(&["a"]);
    assert_eq!(
        SqlRepository::open(db.clone(), bad).err().unwrap().code(),
        ErrorCode::InvalidInput
    );
}

fn v1() -> Schema {
    Schema::new("gadget")
        .column(Column::new("id", ColumnType::Integer))
        .column(Column::new("name", ColumnType::Text))
        .key(&["id"])
}

#[test]
fn migrations_are_additive_and_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sqlite");
    let dsn = path.to_str().unwrap();
    {
        let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(dsn).unwrap());
        let r = SqlRepository::open(db, v1()).unwrap();
        assert!(r.migration().created);
        assert_eq!(r.migration().version, 1);
        r.create(&vec![Value::Integer(1), Value::Text("a".into())])
            .unwrap();
    }
    let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(dsn).unwrap());
    let again = SqlRepository::open(db.clone(), v1()).unwrap();
    assert_eq!(
        (again.migration().version, again.migration().created),
        (1, false)
    );
    let v2 = v1()
        .column(Column::new("colour", ColumnType::Text).nullable().indexed())
        .column(Column::new("tags", ColumnType::Json).nullable())
        .column(
            Column::new("len", ColumnType::Integer)
                .generated(edgestore::model::Expr::byte_length_or_zero("name")),
        )
        .index("gadget_name", &["name"], false);
    let r2 = SqlRepository::open(db.clone(), v2.clone()).unwrap();
    assert_eq!(r2.migration().version, 2);
    assert_eq!(r2.migration().added_columns, ["colour", "tags", "len"]);
    let row = r2.get(&vec![Value::Integer(1)]).unwrap();
    assert_eq!(
        row,
        vec![
            Value::Integer(1),
            Value::Text("a".into()),
            Value::Null,
            Value::Null,
            Value::Integer(1)
        ]
    );
    let indexes = with_reader(&*db, |c| {
        c.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'gadget' ORDER BY name", &[])
    })
    .unwrap();
    assert_eq!(indexes.len(), 3, "{indexes:?}");
    let versions = with_reader(&*db, |c| {
        c.query(
            &format!("SELECT version FROM {SCHEMA_TABLE} WHERE table_name = 'gadget'"),
            &[],
        )
    })
    .unwrap();
    assert_eq!(versions, vec![vec![Value::Integer(2)]]);

    let not_null = v2.clone().column(Column::new("weight", ColumnType::Real));
    let err = SqlRepository::open(db.clone(), not_null).err().unwrap();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.message().contains("gadget.weight"), "{err}");
    let retyped = Schema {
        columns: v2
            .columns
            .iter()
            .cloned()
            .map(|mut c| {
                if c.name == "colour" {
                    c.ty = ColumnType::Integer;
                }
                c
            })
            .collect(),
        ..v2.clone()
    };
    let err = SqlRepository::open(db.clone(), retyped).err().unwrap();
    assert!(err.message().contains("gadget.colour"), "{err}");
    let err = SqlRepository::open(db.clone(), v1()).err().unwrap();
    assert!(err.message().contains("removed"), "{err}");
    // Refused migrations changed nothing.
    assert_eq!(SqlRepository::open(db, v2).unwrap().migration().version, 2);
}

#[test]
fn read_cache_is_invalidated_by_writes_and_rollbacks() {
    let db = memory();
    let s = Tags::open_with(
        db.clone(),
        RepositoryOptions {
            read_cache: Some(16),
        },
    )
    .unwrap();
    let mut t = tag("pod", "cached", None);
    s.create(&t).unwrap();
    assert_eq!(s.get(&t.key()).unwrap().labels, t.labels);
    assert_eq!(s.dynamic().cached_rows(), 1);
    t.labels.insert("v".into(), "2".into());
    s.update(&t).unwrap();
    assert_eq!(
        s.get(&t.key()).unwrap().labels,
        t.labels,
        "update invalidates"
    );
    t.labels.insert("v".into(), "3".into());
    let _ = s.tx(|tx| {
        tx.update(&t)?;
        Err::<(), _>(edgestore::Error::internal("roll back"))
    });
    assert_eq!(
        s.get(&t.key()).unwrap().labels.get("v").unwrap(),
        "2",
        "rolled back tx leaves no trace"
    );
    s.tx(|tx| tx.upsert(&t)).unwrap();
    assert_eq!(
        s.get(&t.key()).unwrap().labels.get("v").unwrap(),
        "3",
        "committed tx invalidates"
    );
    s.delete(&t.key()).unwrap();
    assert_eq!(
        s.get(&t.key()).unwrap_err().code(),
        ErrorCode::NotFound,
        "delete invalidates"
    );
}

#[test]
fn shared_cache_memory_dsn_is_visible_across_connections() {
    let dsn = "file:edgestore_shared_test?mode=memory&cache=shared";
    let a: Arc<dyn Database> = Arc::new(SqliteDatabase::open(dsn).unwrap());
    let b: Arc<dyn Database> = Arc::new(SqliteDatabase::open(dsn).unwrap());
    let sa = tags(&a);
    let sb = tags(&b);
    sa.create(&tag("pod", "shared", None)).unwrap();
    assert_eq!(sb.get(&key("pod", "shared", None)).unwrap().name, "shared");
    assert_eq!(sb.count().unwrap(), 1);
    // A private :memory: database is not shared.
    let private = tags(&memory());
    assert_eq!(private.count().unwrap(), 0);
}

/// `get_many` answers in the ids' order with `None` for missing rows, from a pooled reader
/// (which it leaves outside any transaction: later reads see later commits), inside a
/// transaction (seeing its uncommitted rows), and through the read cache.
#[test]
fn get_many_answers_in_order_and_leaves_no_transaction_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SqliteOptions::new(dir.path().join("many.sqlite").to_str().unwrap());
    // The writer and one reader: every read reuses the same reader connection.
    opts.max_connections = 2;
    let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open_with(opts).unwrap());
    let s = tags(&db);
    let (a, b) = (tag("pod", "a", Some("ns")), tag("node", "b", None));
    s.create_many(&[a.clone(), b.clone()]).unwrap();
    assert!(s.get_many(&[]).unwrap().is_empty());
    let got = s
        .get_many(&[b.key(), key("pod", "gone", None), a.key(), b.key()])
        .unwrap();
    let ids: Vec<_> = got.iter().map(|t| t.as_ref().map(|t| t.id)).collect();
    assert_eq!(ids, [Some(b.id), None, Some(a.id), Some(b.id)]);

    let mut a2 = a.clone();
    a2.labels.insert("v".into(), "2".into());
    s.update(&a2).unwrap();
    let again = s.get_many(&[a.key()]).unwrap();
    assert_eq!(again[0].as_ref().unwrap().labels, a2.labels);
    assert_eq!(s.get(&a.key()).unwrap().labels, a2.labels);

    let c = tag("pod", "c", Some("ns"));
    s.tx(|tx| {
        tx.create(&c)?;
        let seen = tx.get_many(&[c.key(), a.key()])?;
        assert!(seen.iter().all(Option::is_some));
        Ok(())
    })
    .unwrap();

    let cached = Tags::open_with(
        db.clone(),
        RepositoryOptions {
            read_cache: Some(16),
        },
    )
    .unwrap();
    cached.get(&a.key()).unwrap();
    let mixed = cached.get_many(&[a.key(), c.key()]).unwrap();
    assert_eq!(mixed[1].as_ref().unwrap().id, c.id);
    assert_eq!(cached.dynamic().cached_rows(), 2);
    cached.delete(&c.key()).unwrap();
    assert!(cached.get_many(&[c.key()]).unwrap()[0].is_none());

    // A bad key fails the batch before any read.
    let r = s.dynamic();
    let err = r.get_many(&[vec![Value::Text("pod".into())]]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}

const THREADS: usize = 8;
const PER_THREAD: usize = 40;

fn write_batch(s: &Tags, thread: usize) {
    for i in 0..PER_THREAD {
        let t = tag("pod", &format!("t{thread}-{i}"), Some("ns"));
        if i % 4 == 0 {
            s.tx(|tx| tx.create(&t)).unwrap();
        } else {
            assert!(s.create(&t).unwrap());
        }
        if i % 5 == 0 {
            s.get(&t.key()).unwrap();
        }
    }
}

#[test]
fn eight_threads_one_shared_store_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = dir.path().join("shared.sqlite");
    let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(dsn.to_str().unwrap()).unwrap());
    let s = Arc::new(tags(&db));
    let handles: Vec<_> = (0..THREADS)
        .map(|n| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || write_batch(&s, n))
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(s.count().unwrap(), (THREADS * PER_THREAD) as u64);
}

#[test]
fn eight_independent_stores_on_one_file_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = dir
        .path()
        .join("independent.sqlite")
        .to_str()
        .unwrap()
        .to_owned();
    let handles: Vec<_> = (0..THREADS)
        .map(|n| {
            let dsn = dsn.clone();
            std::thread::spawn(move || {
                // Each thread opens its own database (writer + readers) and migrates: the
                // stores contend for the file's write lock and must retry on busy.
                let mut opts = SqliteOptions::new(&dsn);
                opts.max_connections = 2;
                let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open_with(opts).unwrap());
                write_batch(&tags(&db), n);
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(&dsn).unwrap());
    assert_eq!(tags(&db).count().unwrap(), (THREADS * PER_THREAD) as u64);
}

#[test]
fn dynamic_layer_uses_rows_and_keys() {
    let db = memory();
    let schema = Schema::new("kv")
        .column(Column::new("k", ColumnType::Text))
        .column(Column::new("v", ColumnType::Json).nullable())
        .column(Column::new("on", ColumnType::Bool))
        .key(&["k"])
        .create_mode(CreateMode::Insert);
    let r = SqlRepository::open(db, schema).unwrap();
    let row = vec![
        Value::Text("a".into()),
        Value::Text("[1,2]".into()),
        Value::Integer(1),
    ];
    assert!(r.create(&row).unwrap());
    assert_eq!(r.create(&row).unwrap_err().code(), ErrorCode::DuplicateKey);
    assert!(!r.insert_or_ignore(&row).unwrap());
    assert_eq!(r.get(&vec![Value::Text("a".into())]).unwrap(), row);
    let bad_json = vec![
        Value::Text("b".into()),
        Value::Text("{".into()),
        Value::Integer(0),
    ];
    assert_eq!(
        r.create(&bad_json).unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    // Batches of dynamic rows are checked too, and a bad row writes none of its batch.
    let good = vec![
        Value::Text("g".into()),
        Value::Text("{}".into()),
        Value::Integer(0),
    ];
    let batch = vec![good, bad_json.clone()];
    assert_eq!(
        r.create_many(&batch).unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        r.create_many_owned(batch).unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    assert_eq!(r.count().unwrap(), 1);
    let not_null = vec![Value::Text("c".into()), Value::Null, Value::Null];
    assert_eq!(
        r.create(&not_null).unwrap_err().code(),
        ErrorCode::Constraint
    );
    assert_eq!(r.get(&vec![]).unwrap_err().code(), ErrorCode::InvalidInput);
    r.transaction(TxMode::Immediate, |tx| {
        tx.upsert(&vec![
            Value::Text("a".into()),
            Value::Null,
            Value::Integer(0),
        ])?;
        assert_eq!(tx.schema().table, "kv");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        r.find_all(&Query::all().filter(Condition::eq("on", false)))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn using_the_store_inside_its_own_transaction_is_an_error_not_a_deadlock() {
    let db = memory();
    let s = tags(&db);
    let err = s
        .tx(|_tx| s.create(&tag("pod", "outer-handle", None)))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert_eq!(s.count().unwrap(), 0);
}

#[test]
fn busy_is_retried_then_surfaces_as_transient() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let dsn = dir.path().join("busy.sqlite").to_str().unwrap().to_owned();
    let quick = edgestore::RetryPolicy {
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_elapsed: Duration::from_millis(100),
        max_attempts: 1000,
    };
    let open = |retry| -> Arc<dyn Database> {
        let mut o = SqliteOptions::new(&dsn);
        o.retry = retry;
        Arc::new(SqliteDatabase::open_with(o).unwrap())
    };
    let holder = open(quick);
    let contender = tags(&open(quick));
    tags(&holder);
    // Hold the write lock for longer than the contender's budget: busy, transient.
    let err = with_writer(&*holder, |c| {
        c.execute("BEGIN IMMEDIATE", &[])?;
        let err = contender.create(&tag("pod", "x", None)).unwrap_err();
        c.execute("COMMIT", &[])?;
        Ok(err)
    })
    .unwrap();
    assert_eq!(err.code(), ErrorCode::Busy);
    assert!(err.is_transient());
    // Release it within the budget of a patient contender: the retry succeeds.
    let patient = tags(&open(edgestore::RetryPolicy::default()));
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        with_writer(&*holder, |c| {
            c.execute("BEGIN IMMEDIATE", &[])?;
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(150));
            c.execute("COMMIT", &[])
        })
        .unwrap();
    });
    locked_rx.recv().unwrap();
    assert!(patient.create(&tag("pod", "y", None)).unwrap());
    h.join().unwrap();
}

#[test]
fn repository_runs_on_a_single_connection_database() {
    use edgestore::sql::sqlite::SqliteConnection;
    use edgestore::sql::SingleConnection;
    let raw = edgestore::sql::sqlite::rusqlite::Connection::open_in_memory().unwrap();
    let conn = SqliteConnection::new(raw, edgestore::RetryPolicy::none()).unwrap();
    let db: Arc<dyn Database> = Arc::new(SingleConnection::new(conn));
    let s = tags(&db);
    s.tx(|tx| tx.create(&tag("pod", "single", None))).unwrap();
    assert_eq!(s.find_all(&Query::all()).unwrap().len(), 1);
}

/// `PRAGMA data_version` on a connection of its own (it changes whenever any other connection
/// commits to the file) and the sizes of the file and its WAL.
struct Watch {
    conn: edgestore::sql::sqlite::rusqlite::Connection,
    path: std::path::PathBuf,
}

impl Watch {
    fn new(path: &std::path::Path) -> Self {
        Watch {
            conn: edgestore::sql::sqlite::rusqlite::Connection::open(path).unwrap(),
            path: path.to_owned(),
        }
    }

    /// (data_version, file size, WAL size)
    fn state(&self) -> (i64, u64, u64) {
        let version = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap();
        let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        (version, len(&self.path), len(std::path::Path::new(&wal)))
    }

    fn stored_version(&self, table: &str) -> i64 {
        self.conn
            .query_row(
                &format!("SELECT version FROM {SCHEMA_TABLE} WHERE table_name = ?1"),
                [table],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn columns(&self, table: &str) -> usize {
        let sql = format!("SELECT count(*) FROM pragma_table_xinfo('{table}')");
        self.conn.query_row(&sql, [], |r| r.get(0)).unwrap()
    }
}

fn read_only(dsn: &str) -> edgestore::Result<SqliteDatabase> {
    let mut options = SqliteOptions::new(dsn);
    options.read_only = true;
    SqliteDatabase::open_with(options)
}

fn gadget(id: i64, name: &str) -> Vec<Value> {
    vec![Value::Integer(id), Value::Text(name.into())]
}

#[test]
fn a_read_only_database_beside_its_owner_reads_and_never_writes() {
    use edgestore::sql::sqlite::READ_ONLY_MESSAGE;
    use edgestore::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("owned.sqlite");
    let dsn = path.to_str().unwrap();
    let owner_db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(dsn).unwrap());
    let owner = Store::new(owner_db.clone());
    assert!(owner.register(v1()).unwrap().created);
    owner.create("gadget", &gadget(1, "a")).unwrap();
    tags(&owner_db).create(&tag("pod", "web", None)).unwrap();

    let ro_db: Arc<dyn Database> = Arc::new(read_only(dsn).unwrap());
    assert!(ro_db.read_only());
    let ro = Store::new(ro_db.clone());
    let watch = Watch::new(&path);
    let before = watch.state();
    // Registering what the owner registered reads only.
    let m = ro.register(v1()).unwrap();
    assert_eq!((m.version, m.created), (1, false));
    let ro_tags = tags(&ro_db);
    assert_eq!(
        watch.state(),
        before,
        "registering on the read-only side wrote"
    );

    // Reads see the owner's commits, also those made after the reader opened.
    assert_eq!(
        ro.get("gadget", &vec![Value::Integer(1)]).unwrap(),
        gadget(1, "a")
    );
    owner.create("gadget", &gadget(2, "b")).unwrap();
    tags(&owner_db).create(&tag("pod", "api", None)).unwrap();
    assert_eq!(ro.count("gadget").unwrap(), 2);
    assert_eq!(
        ro.get("gadget", &vec![Value::Integer(2)]).unwrap(),
        gadget(2, "b")
    );
    assert_eq!(ro_tags.count().unwrap(), 2);
    assert_eq!(
        ro_tags.get(&key("pod", "api", None)).unwrap().name,
        "api".to_owned()
    );
    let before = watch.state();

    // A deferred transaction reads one snapshot; writes in it are refused.
    let tx = ro.begin(TxMode::Deferred).unwrap();
    assert_eq!(tx.count("gadget").unwrap(), 2);
    let err = tx.create("gadget", &gadget(3, "c")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err}");
    tx.rollback().unwrap();
    let n = ro_tags.tx_with(TxMode::Deferred, |tx| tx.count()).unwrap();
    assert_eq!(n, 2);

    // Every write is permission-denied, and says why.
    let refused = |what: &str, r: edgestore::Result<()>| {
        let err = r.expect_err(what);
        assert_eq!(err.code(), ErrorCode::PermissionDenied, "{what}: {err}");
        assert_eq!(err.message(), READ_ONLY_MESSAGE, "{what}: {err}");
    };
    let k1 = vec![Value::Integer(1)];
    refused("create", ro.create("gadget", &gadget(3, "c")).map(drop));
    refused(
        "create_many",
        ro.create_many("gadget", &[gadget(4, "d"), gadget(5, "e")])
            .map(drop),
    );
    refused("upsert", ro.upsert("gadget", &gadget(1, "z")));
    refused(
        "insert_or_ignore",
        ro.insert_or_ignore("gadget", &gadget(6, "f")).map(drop),
    );
    refused("update", ro.update("gadget", &gadget(1, "z")));
    refused("delete", ro.delete("gadget", &k1).map(drop));
    refused("delete_all", ro.delete_all("gadget").map(drop));
    refused("begin immediate", ro.begin(TxMode::Immediate).map(drop));
    refused("begin exclusive", ro.begin(TxMode::Exclusive).map(drop));
    refused(
        "typed create",
        ro_tags.create(&tag("pod", "new", None)).map(drop),
    );
    refused("typed tx", ro_tags.tx(|_| Ok(())));
    refused(
        "raw insert",
        with_writer(&*ro_db, |c| {
            c.execute("INSERT INTO gadget VALUES (7, 'g')", &[])
        })
        .map(drop),
    );
    refused(
        "raw reader insert",
        with_reader(&*ro_db, |c| c.execute("DELETE FROM gadget", &[])).map(drop),
    );

    // A schema change is the owner's to make: refused, naming the table, nothing changed.
    let v2 = v1().column(Column::new("colour", ColumnType::Text).nullable().indexed());
    let err = ro.register(v2).unwrap_err();
    assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err}");
    assert_eq!(
        err.message(),
        "table gadget needs migrating; only the data directory's owner migrates it"
    );
    let missing = Schema::new("later")
        .column(Column::new("id", ColumnType::Integer))
        .key(&["id"]);
    let err = ro.register(missing).unwrap_err();
    assert_eq!(err.code(), ErrorCode::TableMissing, "{err}");
    assert!(
        err.message().contains("table later needs creating"),
        "{err}"
    );
    assert_eq!(ro.tables(), ["gadget"]);

    assert_eq!(watch.state(), before, "the read-only side wrote");
    assert_eq!(watch.stored_version("gadget"), 1);
    assert_eq!(watch.columns("gadget"), 2);
    assert_eq!(owner.count("gadget").unwrap(), 2);
    assert_eq!(owner.get("gadget", &k1).unwrap(), gadget(1, "a"));
}

#[test]
fn registering_an_unchanged_schema_again_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.sqlite");
    let dsn = path.to_str().unwrap();
    let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(dsn).unwrap());
    let store = edgestore::Store::new(db.clone());
    store.register(v1()).unwrap();
    tags(&db);
    let watch = Watch::new(&path);
    let before = watch.state();
    let again = store.register(v1()).unwrap();
    assert_eq!((again.version, again.created), (1, false));
    tags(&db);
    // Another process's view: a second database on the same file.
    let other: Arc<dyn Database> = Arc::new(SqliteDatabase::open(dsn).unwrap());
    assert_eq!(
        edgestore::Store::new(other.clone())
            .register(v1())
            .unwrap()
            .version,
        1
    );
    assert_eq!(watch.state(), before);
    assert_eq!(watch.stored_version("gadget"), 1);
    assert_eq!(watch.stored_version("resource_tags"), 1);
}

#[test]
fn a_read_only_database_needs_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-yet.sqlite");
    let err = read_only(path.to_str().unwrap()).err().unwrap();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    assert_eq!(
        err.message(),
        format!("no database at {} yet", path.display())
    );
    assert!(!path.exists(), "the read-only open created the file");
    assert_eq!(
        read_only(":memory:").err().unwrap().code(),
        ErrorCode::InvalidInput
    );
}
