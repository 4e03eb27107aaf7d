//! The dynamic operations, written once over the private [`Exec`] seam that both
//! [`super::SqlRepository`] (pooled connections) and [`super::Transaction`] (the pinned writer)
//! implement. Rows and keys are normalized here, for WIT callers and the typed layer alike.

use std::borrow::Cow;
use std::sync::Arc;

use super::cache::ReadCache;
use crate::error::{Error, Result};
use crate::model::{
    is_normal, key_text, normalize, normalize_json, CreateMode, JsonText, Key, Query, Row, Schema,
    Value,
};
use crate::sql::dml::{self, Statements};
use crate::sql::{Connection, Database};

/// What every handle on one table shares.
pub(crate) struct Core {
    pub(crate) db: Arc<dyn Database>,
    pub(crate) schema: Schema,
    pub(crate) sql: Statements,
    pub(crate) cache: Option<ReadCache>,
}

impl Core {
    pub(crate) fn invalidate(&self, key: Option<&Key>) {
        if let Some(cache) = &self.cache {
            match key {
                Some(k) => cache.invalidate(k),
                None => cache.clear(),
            }
        }
    }
}

/// Where operations run.
pub(crate) trait Exec {
    fn core(&self) -> &Core;
    /// Run a read.
    fn read<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R>;
    /// Run several reads on one snapshot (one read transaction).
    fn read_snapshot<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R>;
    /// Run a write.
    fn write<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R>;
    /// Run a write atomically (a transaction, or a savepoint inside one).
    fn atomic<R>(&self, f: impl FnOnce(&dyn Connection) -> Result<R>) -> Result<R>;
    /// A write touched `key` (`None`: every row). Invalidates the cache, and remembers the key
    /// for the end of the transaction when there is one.
    fn touched(&self, key: Option<&Key>);
    /// True when get may use the read cache (outside transactions).
    fn may_cache(&self) -> bool;
}

fn check_width(schema: &Schema, row: &Row) -> Result<()> {
    if row.len() != schema.columns.len() {
        return Err(Error::invalid_input(format!(
            "{} rows have {} columns, got {}",
            schema.table,
            schema.columns.len(),
            row.len()
        )));
    }
    Ok(())
}

fn prepare_row(schema: &Schema, row: &Row) -> Result<Row> {
    check_width(schema, row)?;
    schema
        .columns
        .iter()
        .zip(row)
        .map(|(c, v)| normalize(c, v.clone()))
        .collect()
}

/// Normalize a key by the key columns' types; borrowed when every value already is normal (a
/// get's key usually is: no copy of its strings).
pub(crate) fn prepare_key<'k>(schema: &Schema, key: &'k Key) -> Result<Cow<'k, Key>> {
    if key.len() != schema.key.len() {
        return Err(Error::invalid_input(format!(
            "{} key has {} columns, got {}",
            schema.table,
            schema.key.len(),
            key.len()
        )));
    }
    let mut normal = true;
    for (k, v) in schema.key.iter().zip(key) {
        normal &= is_normal(schema.column_named(k)?, v);
    }
    if normal {
        return Ok(Cow::Borrowed(key));
    }
    schema
        .key
        .iter()
        .zip(key)
        .map(|(k, v)| normalize(schema.column_named(k)?, v.clone()))
        .collect::<Result<Key>>()
        .map(Cow::Owned)
}

fn key_of(schema: &Schema, row: &Row) -> Key {
    schema
        .key_positions()
        .into_iter()
        .map(|i| row[i].clone())
        .collect()
}

fn pick(row: &Row, positions: &[usize]) -> Vec<Value> {
    positions.iter().map(|&i| row[i].clone()).collect()
}

fn insert_sql(core: &Core, mode: CreateMode) -> &str {
    match mode {
        CreateMode::Insert => &core.sql.insert,
        CreateMode::InsertOrIgnore => &core.sql.insert_or_ignore,
    }
}

pub(crate) fn create<E: Exec>(e: &E, row: &Row, mode: CreateMode) -> Result<bool> {
    let core = e.core();
    let row = prepare_row(&core.schema, row)?;
    let params = pick(&row, &core.sql.writable);
    let n = e.write(|c| c.execute(insert_sql(core, mode), &params))?;
    Ok(n > 0)
}

pub(crate) fn create_many<E: Exec>(e: &E, rows: Vec<Row>, json: JsonText) -> Result<u64> {
    let core = e.core();
    let sets = rows
        .into_iter()
        .map(|r| prepare_writable(&core.schema, &core.sql.writable, r, json))
        .collect::<Result<Vec<_>>>()?;
    if sets.is_empty() {
        return Ok(0);
    }
    e.atomic(|c| c.execute_many(insert_sql(core, core.schema.create_mode), &sets))
}

/// [`prepare_row`] then [`pick`] of the `writable` positions (ascending), moving values instead
/// of cloning them: `create_many` rows are many, and they are the caller's to give away.
fn prepare_writable(
    schema: &Schema,
    writable: &[usize],
    mut row: Row,
    json: JsonText,
) -> Result<Row> {
    check_width(schema, &row)?;
    // In place: normalize every value, then shift the writable ones to the front.
    let mut keep = writable.iter().copied().peekable();
    let mut kept = 0;
    for (i, c) in schema.columns.iter().enumerate() {
        let v = normalize_json(c, std::mem::take(&mut row[i]), json)?;
        if keep.next_if_eq(&i).is_some() {
            row[kept] = v;
            kept += 1;
        }
    }
    row.truncate(kept);
    Ok(row)
}

pub(crate) fn upsert<E: Exec>(e: &E, row: &Row) -> Result<()> {
    let core = e.core();
    let row = prepare_row(&core.schema, row)?;
    let params = pick(&row, &core.sql.writable);
    e.write(|c| c.execute(&core.sql.upsert, &params))?;
    e.touched(Some(&key_of(&core.schema, &row)));
    Ok(())
}

pub(crate) fn update<E: Exec>(e: &E, row: &Row) -> Result<()> {
    let core = e.core();
    let row = prepare_row(&core.schema, row)?;
    let key = key_of(&core.schema, &row);
    let changed = match &core.sql.update {
        Some(sql) => {
            let mut params = pick(&row, &core.sql.mutable);
            params.extend(key.iter().cloned());
            e.write(|c| c.execute(sql, &params))? > 0
        }
        // Nothing to update: only the key's existence matters.
        None => !e.read(|c| c.query(&core.sql.exists, &key))?.is_empty(),
    };
    e.touched(Some(&key));
    if changed {
        Ok(())
    } else {
        Err(not_found(&core.schema, &key))
    }
}

pub(crate) fn delete<E: Exec>(e: &E, key: &Key) -> Result<bool> {
    let core = e.core();
    let key = prepare_key(&core.schema, key)?;
    let n = e.write(|c| c.execute(&core.sql.delete, &key))?;
    e.touched(Some(&key));
    Ok(n > 0)
}

pub(crate) fn get<E: Exec>(e: &E, key: &Key) -> Result<Row> {
    let core = e.core();
    let key = prepare_key(&core.schema, key)?;
    let cache = core.cache.as_ref().filter(|_| e.may_cache());
    if let Some(row) = cache.and_then(|c| c.get(&key)) {
        return Ok(row);
    }
    let generation = cache.map(ReadCache::generation);
    let mut rows = e.read(|c| c.query(&core.sql.get, &key))?;
    let row = rows.pop().ok_or_else(|| not_found(&core.schema, &key))?;
    if let (Some(cache), Some(g)) = (cache, generation) {
        cache.insert(g, &key, row.clone());
    }
    Ok(row)
}

/// [`get`] of many keys: cached rows from the cache, the others from one snapshot.
pub(crate) fn get_many<E: Exec>(e: &E, keys: &[Key]) -> Result<Vec<Option<Row>>> {
    let core = e.core();
    let keys = keys
        .iter()
        .map(|k| prepare_key(&core.schema, k))
        .collect::<Result<Vec<_>>>()?;
    let cache = core.cache.as_ref().filter(|_| e.may_cache());
    let mut out: Vec<Option<Row>> = match cache {
        Some(c) => keys.iter().map(|k| c.get(k)).collect(),
        None => vec![None; keys.len()],
    };
    let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
    if missing.is_empty() {
        return Ok(out);
    }
    let generation = cache.map(ReadCache::generation);
    let read = e.read_snapshot(|c| {
        missing
            .iter()
            .map(|&i| Ok(c.query(&core.sql.get, &keys[i])?.pop()))
            .collect::<Result<Vec<_>>>()
    })?;
    for (i, row) in missing.into_iter().zip(read) {
        if let (Some(cache), Some(g), Some(row)) = (cache, generation, &row) {
            cache.insert(g, &keys[i], row.clone());
        }
        out[i] = row;
    }
    Ok(out)
}

/// Run `f` on `conn` inside a read transaction (`BEGIN` .. `COMMIT`), so its statements share
/// one snapshot and one acquisition of the read lock. The transaction ends whatever `f`
/// returns: a connection never goes back to its pool inside one.
pub(crate) fn in_read_transaction<R>(
    conn: &dyn Connection,
    f: impl FnOnce(&dyn Connection) -> Result<R>,
) -> Result<R> {
    conn.execute("BEGIN DEFERRED", &[])?;
    let result = f(conn);
    // A read-only transaction has nothing to commit: COMMIT and ROLLBACK both just end it.
    let ended = conn.execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" }, &[]);
    let value = result?;
    ended?;
    Ok(value)
}

pub(crate) fn find_all<E: Exec>(e: &E, query: &Query) -> Result<Vec<Row>> {
    let core = e.core();
    let (sql, params) = dml::select(&core.schema, query)?;
    e.read(|c| c.query(&sql, &params))
}

pub(crate) fn find_first<E: Exec>(e: &E, query: &Query) -> Result<Option<Row>> {
    let mut q = query.clone();
    q.limit = Some(1);
    Ok(find_all(e, &q)?.into_iter().next())
}

pub(crate) fn count<E: Exec>(e: &E) -> Result<u64> {
    let core = e.core();
    let rows = e.read(|c| c.query(&core.sql.count, &[]))?;
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
        _ => Err(Error::internal("count(*) returned no integer")),
    }
}

pub(crate) fn delete_all<E: Exec>(e: &E) -> Result<u64> {
    let core = e.core();
    let n = e.write(|c| c.execute(&core.sql.delete_all, &[]))?;
    e.touched(None);
    Ok(n)
}

/// `resource_tags key type/name/namespace = pod/api-0/payments not found`: the key's columns
/// name the order of its values.
fn not_found(schema: &Schema, key: &Key) -> Error {
    Error::not_found(format!(
        "{} key {} = {} not found",
        schema.table,
        schema.key.join("/"),
        key_text(key)
    ))
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::sync::Arc;

    use crate::model::{ResourceTags, ResourceTagsKey, Timestamp};
    use crate::sql::Database;
    use crate::{ErrorCode, Reader, SqlStorage, SqliteDatabase, Updater};

    #[test]
    fn not_found_names_the_key_readably() {
        let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(":memory:").unwrap());
        let tags = SqlStorage::<ResourceTags, ResourceTagsKey>::open(db).unwrap();
        let missing =
            ResourceTags::new("pod", "api-0", Some("payments"), Timestamp::from_millis(0));
        for err in [
            tags.get(&missing.key()).unwrap_err(),
            tags.update(&missing).unwrap_err(),
        ] {
            assert_eq!(err.code(), ErrorCode::NotFound);
            assert_eq!(
                err.message(),
                "resource_tags key type/name/namespace = pod/api-0/payments not found"
            );
        }
        let node = ResourceTags::new("node", "worker-1", None, Timestamp::from_millis(0));
        let err = tags.get(&node.key()).unwrap_err();
        assert_eq!(
            err.message(),
            "resource_tags key type/name/namespace = node/worker-1/ not found"
        );
    }

    /// The read transaction ends whether the reads succeed or fail, and a failure is the
    /// caller's: the connection is ready for a new transaction either way.
    #[test]
    fn a_read_transaction_ends_on_success_and_on_error() {
        use crate::sql::{with_reader, Connection};
        use crate::Error;

        let db = SqliteDatabase::open(":memory:").unwrap();
        with_reader(&db, |c| {
            let n = super::in_read_transaction(c, |c: &dyn Connection| {
                Ok(c.query("SELECT 1", &[])?.len())
            })?;
            assert_eq!(n, 1);
            let err = super::in_read_transaction(c, |c: &dyn Connection| {
                c.query("SELECT 1", &[])?;
                Err::<(), _>(Error::internal("a read failed"))
            })
            .unwrap_err();
            assert_eq!(err.message(), "a read failed");
            // Fails with "cannot start a transaction within a transaction" if one is open.
            c.execute("BEGIN", &[])?;
            c.execute("COMMIT", &[])
        })
        .unwrap();
    }
}
