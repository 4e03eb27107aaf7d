//! Repository figures: batch inserts against raw rusqlite, point operations, the read cache,
//! and the same operations through the host on both engines.
//!
//! The raw baseline is fair by construction: it runs the DDL the repository itself created
//! (read back from `sqlite_master`), on a file database in WAL mode like the repository's,
//! and inserts the very values the repository would bind (`to_row` + `normalize`), with one
//! prepared statement in one transaction. Preparing those values is not timed; the
//! repository's own mapping is, because it is part of what the repository costs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgestore::model::{normalize, to_row, ResourceTagsKey};
use edgestore::sql::sqlite::DatabaseKey;
use edgestore::sql::Database;
use edgestore::{
    Condition, Creator, Model, Query, Reader, RepositoryOptions, ResourceTags, SqlStorage,
    SqliteDatabase, SqliteOptions, Timestamp, Updater, Value,
};
use tempfile::TempDir;

use super::error::{BenchError, Result};
use super::fixture::{tempdir, Host, Side};
use super::stats::{secs, Indices};

/// The core's typed storage of the reference model.
pub type Tags = SqlStorage<ResourceTags, ResourceTagsKey>;

/// First `sent_at` value; row `i` has `sent_at = SENT_BASE + i` (indexed lookups find one row).
const SENT_BASE: i64 = 1_700_000_000_000;

/// `n` realistic resource tags: pods in 20 namespaces and cluster-scoped nodes, a handful of
/// labels each, distinct `sent_at` values. `offset` shifts names so batches do not collide.
pub fn tags(n: usize, offset: usize) -> Vec<ResourceTags> {
    (offset..offset + n)
        .map(|i| {
            let (kind, ns) = if i % 10 == 0 {
                ("node", None)
            } else {
                ("pod", Some(format!("ns-{:02}", i % 20)))
            };
            let mut t = ResourceTags::new(
                kind,
                &format!("{kind}-{i:07}"),
                ns.as_deref(),
                Timestamp(SENT_BASE),
            );
            t.labels.insert("app".into(), format!("app-{}", i % 100));
            t.labels.insert("team".into(), format!("team-{}", i % 7));
            t.labels
                .insert("tier".into(), ["web", "api", "db"][i % 3].into());
            t.metric_labels.insert(
                "pod_template_hash".into(),
                format!("{:08x}", i * 2654435761),
            );
            t.sent_at = Some(Timestamp(SENT_BASE + i as i64));
            t
        })
        .collect()
}

/// Open the core storage on a SQLite file in `dir`.
pub fn open_native(dir: &Path, read_cache: Option<usize>) -> Result<Tags> {
    open_native_keyed(dir, read_cache, Vec::new())
}

/// Open the core storage on a SQLite file in `dir`, encrypted (SQLCipher) under `keys` when
/// there are any.
pub fn open_native_keyed(
    dir: &Path,
    read_cache: Option<usize>,
    keys: Vec<DatabaseKey>,
) -> Result<Tags> {
    let path = dir.join("bench.sqlite");
    let dsn = path
        .to_str()
        .ok_or_else(|| BenchError::Check("temporary path is not UTF-8".into()))?;
    let mut options = SqliteOptions::new(dsn);
    options.keys = keys;
    let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open_with(options)?);
    Ok(Tags::open_with(db, RepositoryOptions { read_cache })?)
}

/// `create_many` of the same rows: repository against raw rusqlite.
pub struct CreateMany {
    /// The rows.
    pub rows: Vec<ResourceTags>,
    ddl: Vec<String>,
    insert: String,
    values: Vec<Vec<rusqlite::types::Value>>,
}

impl CreateMany {
    /// `n` rows, their bound values and the repository's DDL.
    pub fn new(n: usize) -> Result<Self> {
        let rows = tags(n, 0);
        let schema = ResourceTags::schema();
        // The DDL exactly as the repository created it.
        let scratch = tempdir()?;
        drop(open_native(scratch.path(), None)?);
        let conn = rusqlite::Connection::open(scratch.path().join("bench.sqlite"))?;
        let mut stmt = conn.prepare(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL \
             ORDER BY type = 'table' DESC, name",
        )?;
        let ddl = stmt
            .query_map([&schema.table], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let stored: Vec<_> = schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.generated.is_none())
            .collect();
        let names: Vec<String> = stored
            .iter()
            .map(|(_, c)| format!("\"{}\"", c.name))
            .collect();
        let marks: Vec<String> = (1..=stored.len()).map(|i| format!("?{i}")).collect();
        let insert = format!(
            "INSERT INTO \"{}\" ({}) VALUES ({})",
            schema.table,
            names.join(", "),
            marks.join(", ")
        );
        let mut values = Vec::with_capacity(rows.len());
        for tag in &rows {
            let row = to_row(&schema, tag)?;
            let mut bound = Vec::with_capacity(stored.len());
            for (i, col) in &stored {
                bound.push(sql_value(normalize(col, row[*i].clone())?));
            }
            values.push(bound);
        }
        Ok(CreateMany {
            rows,
            ddl,
            insert,
            values,
        })
    }

    /// The repository: a fresh file database, `create_many` of every row.
    pub fn native(&self) -> Result<Duration> {
        self.native_keyed(Vec::new())
    }

    /// [`CreateMany::native`] on an encrypted database (SQLCipher, a raw 256-bit key).
    pub fn native_encrypted(&self) -> Result<Duration> {
        if !edgestore::sql::sqlite::cipher::available() {
            return Err(BenchError::Check(
                "this build has no SQLCipher (built without the `sqlcipher` feature)".into(),
            ));
        }
        self.native_keyed(vec![DatabaseKey::from_bytes([0x5a; 32])])
    }

    fn native_keyed(&self, keys: Vec<DatabaseKey>) -> Result<Duration> {
        let dir = tempdir()?;
        let tags = open_native_keyed(dir.path(), None, keys)?;
        let t = Instant::now();
        let n = tags.create_many(&self.rows)?;
        let elapsed = t.elapsed();
        check_count(n, self.rows.len())?;
        Ok(elapsed)
    }

    /// Raw rusqlite: the same table and values, one prepared statement, one transaction.
    pub fn raw(&self) -> Result<Duration> {
        let dir = tempdir()?;
        let mut conn = rusqlite::Connection::open(dir.path().join("raw.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        for sql in &self.ddl {
            conn.execute(sql, [])?;
        }
        let t = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(&self.insert)?;
            for v in &self.values {
                stmt.execute(rusqlite::params_from_iter(v.iter()))?;
            }
        }
        tx.commit()?;
        Ok(t.elapsed())
    }

    /// Through the host on `side`: a fresh store, `create_many` of every row.
    pub fn host(&self, host: &Host, side: Side) -> Result<Duration> {
        let dir = tempdir()?;
        let table = HostTable::open(host, side, dir.path())?;
        let elapsed = self.host_into(host, &table);
        let closed = table.close(host);
        let elapsed = elapsed?;
        closed?;
        Ok(elapsed)
    }

    /// The timed part of [`CreateMany::host`]: `create_many` of every row into `table`, which
    /// must be empty. Split out so the backup figures time the same call with a backup
    /// running on the store's data directory.
    pub fn host_into(&self, host: &Host, table: &HostTable) -> Result<Duration> {
        host.rt.block_on(async {
            let t = Instant::now();
            let n = table.tags.create_many(&self.rows).await?;
            let elapsed = t.elapsed();
            check_count(n, self.rows.len())?;
            Ok(elapsed)
        })
    }
}

/// A store behind the host client with the reference model's table created: what
/// [`CreateMany::host_into`] fills.
pub struct HostTable {
    store: crate::Store,
    tags: crate::AsyncStorage<ResourceTags, ResourceTagsKey>,
}

impl HostTable {
    /// Open a store on `side` in `data_dir` and create the table (untimed).
    pub fn open(host: &Host, side: Side, data_dir: &Path) -> Result<HostTable> {
        let store = host.open(side, data_dir)?;
        let tags = host
            .rt
            .block_on(store.storage::<ResourceTags, ResourceTagsKey>());
        match tags {
            Ok(tags) => Ok(HostTable { store, tags }),
            Err(e) => {
                let _ = host.rt.block_on(store.close());
                Err(e.into())
            }
        }
    }

    /// Close the store.
    pub fn close(self, host: &Host) -> Result<()> {
        Ok(host.rt.block_on(self.store.close())?)
    }
}

fn check_count(n: u64, want: usize) -> Result<()> {
    if n as usize != want {
        return Err(BenchError::Check(format!(
            "created {n} rows, expected {want}"
        )));
    }
    Ok(())
}

fn sql_value(v: Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::Integer(i) => V::Integer(i),
        Value::Real(r) => V::Real(r),
        Value::Text(s) => V::Text(s),
        Value::Blob(b) => V::Blob(b),
    }
}

/// A populated native database for point operations (per-call latencies in seconds).
pub struct Points {
    /// The rows stored.
    pub rows: Vec<ResourceTags>,
    _dir: TempDir,
    plain: Tags,
    cached: Tags,
    /// A bare rusqlite connection on the same file, set up as the repository's readers are
    /// (`mmap_size`, `query_only`): the floor a `get` cannot go below.
    raw: rusqlite::Connection,
    /// The repository's own `get` statement, for `raw`.
    get_sql: String,
    next_new: usize,
}

impl Points {
    /// A file database holding `n` rows, opened twice: without and with the read cache.
    pub fn new(n: usize) -> Result<Self> {
        let dir = tempdir()?;
        let rows = tags(n, 0);
        let plain = open_native(dir.path(), None)?;
        plain.create_many(&rows)?;
        let cached = open_native(dir.path(), Some(n.max(1)))?;
        let raw = rusqlite::Connection::open(dir.path().join("bench.sqlite"))?;
        raw.query_row(
            &format!(
                "PRAGMA mmap_size = {}",
                edgestore::sql::sqlite::DEFAULT_MMAP_SIZE
            ),
            [],
            |_| Ok(()),
        )?;
        raw.execute_batch("PRAGMA query_only = ON")?;
        let get_sql = edgestore::sql::dml::Statements::new(&ResourceTags::schema()).get;
        Ok(Points {
            rows,
            _dir: dir,
            plain,
            cached,
            raw,
            get_sql,
            next_new: n,
        })
    }

    /// `count` gets of random stored keys on the bare connection: the repository's statement
    /// (prepared once, cached), its key bound, every column read into an owned value. Each
    /// timed.
    pub fn get_raw(&self, count: usize, seed: u64) -> Result<Vec<f64>> {
        let keys = random_keys(&self.rows, self.rows.len(), count, seed);
        let mut out = Vec::with_capacity(count);
        for (kind, name, ns) in &keys {
            let t = Instant::now();
            let mut stmt = self.raw.prepare_cached(&self.get_sql)?;
            let width = stmt.column_count();
            let row: Vec<rusqlite::types::Value> = stmt
                .query_row(rusqlite::params![kind, name, ns], |r| {
                    (0..width).map(|i| r.get(i)).collect()
                })?;
            out.push(secs(t.elapsed()));
            std::hint::black_box(row);
        }
        Ok(out)
    }

    /// `count` random stored keys read by `get_many` in batches of `batch`; one sample per
    /// batch: its time divided by its keys.
    pub fn get_many(&self, count: usize, batch: usize, seed: u64) -> Result<Vec<f64>> {
        let keys = random_keys(&self.rows, self.rows.len(), count, seed);
        let mut out = Vec::with_capacity(count / batch.max(1) + 1);
        for chunk in keys.chunks(batch.max(1)) {
            let t = Instant::now();
            let got = self.plain.get_many(chunk)?;
            out.push(secs(t.elapsed()) / chunk.len() as f64);
            check_all_found(&got)?;
            std::hint::black_box(got);
        }
        Ok(out)
    }

    /// `count` gets of random stored keys, each timed; `cache` picks the cached storage.
    pub fn get(&self, count: usize, cache: bool, seed: u64) -> Result<Vec<f64>> {
        self.get_among(self.rows.len(), count, cache, seed)
    }

    /// `count` gets of random keys among the first `hot` rows (a working set an agent reads
    /// again and again), each timed; the set is read once untimed first, so a cache holds it.
    pub fn get_hot(&self, hot: usize, count: usize, cache: bool, seed: u64) -> Result<Vec<f64>> {
        let tags = if cache { &self.cached } else { &self.plain };
        for row in self.rows.iter().take(hot) {
            std::hint::black_box(tags.get(&row.key())?);
        }
        self.get_among(hot, count, cache, seed)
    }

    fn get_among(&self, among: usize, count: usize, cache: bool, seed: u64) -> Result<Vec<f64>> {
        let tags = if cache { &self.cached } else { &self.plain };
        let keys = random_keys(&self.rows, among, count, seed);
        let mut out = Vec::with_capacity(count);
        for k in &keys {
            let t = Instant::now();
            let got = tags.get(k)?;
            out.push(secs(t.elapsed()));
            std::hint::black_box(got);
        }
        Ok(out)
    }

    /// `count` single-row creates of new rows, each its own transaction, each timed.
    pub fn create(&mut self, count: usize) -> Result<Vec<f64>> {
        let fresh = tags(count, self.next_new);
        self.next_new += count;
        let mut out = Vec::with_capacity(count);
        for tag in &fresh {
            let t = Instant::now();
            self.plain.create(tag)?;
            out.push(secs(t.elapsed()));
        }
        Ok(out)
    }

    /// `count` finds by the indexed `sent_at` column (one row each), each timed.
    pub fn find_indexed(&self, count: usize, seed: u64) -> Result<Vec<f64>> {
        let mut idx = Indices::new(seed);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let q = Query::all().filter(Condition::eq(
                "sent_at",
                SENT_BASE + idx.below(self.rows.len()) as i64,
            ));
            let t = Instant::now();
            let found = self.plain.find_all(&q)?;
            out.push(secs(t.elapsed()));
            if found.len() != 1 {
                return Err(BenchError::Check(format!(
                    "indexed find returned {} rows",
                    found.len()
                )));
            }
        }
        Ok(out)
    }

    /// `count` updates of random stored rows (a label changes), each timed.
    pub fn update(&self, count: usize, seed: u64) -> Result<Vec<f64>> {
        let mut idx = Indices::new(seed);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let mut tag = self.rows[idx.below(self.rows.len())].clone();
            tag.labels.insert("revision".into(), i.to_string());
            let t = Instant::now();
            self.plain.update(&tag)?;
            out.push(secs(t.elapsed()));
        }
        Ok(out)
    }
}

/// A populated store behind the host client on one engine, for per-call latencies.
pub struct HostPoints {
    rows: Vec<ResourceTags>,
    _dir: TempDir,
    store: crate::Store,
    tags: crate::AsyncStorage<ResourceTags, ResourceTagsKey>,
}

impl HostPoints {
    /// A store on `side` holding `n` rows.
    pub fn new(host: &Host, side: Side, n: usize) -> Result<Self> {
        let dir = tempdir()?;
        let rows = tags(n, 0);
        let store = host.open(side, dir.path())?;
        let tags = host.rt.block_on(async {
            let tags = store.storage::<ResourceTags, ResourceTagsKey>().await?;
            tags.create_many(&rows).await?;
            Ok::<_, BenchError>(tags)
        })?;
        Ok(HostPoints {
            rows,
            _dir: dir,
            store,
            tags,
        })
    }

    /// `count` gets of random stored keys, each timed.
    pub fn get(&self, host: &Host, count: usize, seed: u64) -> Result<Vec<f64>> {
        let keys = random_keys(&self.rows, self.rows.len(), count, seed);
        host.rt.block_on(async {
            let mut out = Vec::with_capacity(count);
            for k in &keys {
                let t = Instant::now();
                let got = self.tags.get(k).await?;
                out.push(secs(t.elapsed()));
                std::hint::black_box(got);
            }
            Ok(out)
        })
    }

    /// `count` random stored keys read by `get_many` in batches of `batch`; one sample per
    /// batch: its time divided by its keys.
    pub fn get_many(&self, host: &Host, count: usize, batch: usize, seed: u64) -> Result<Vec<f64>> {
        let keys = random_keys(&self.rows, self.rows.len(), count, seed);
        host.rt.block_on(async {
            let mut out = Vec::with_capacity(count / batch.max(1) + 1);
            for chunk in keys.chunks(batch.max(1)) {
                let t = Instant::now();
                let got = self.tags.get_many(chunk).await?;
                out.push(secs(t.elapsed()) / chunk.len() as f64);
                check_all_found(&got)?;
                std::hint::black_box(got);
            }
            Ok(out)
        })
    }

    /// `count` empty calls (`ping`), each timed.
    pub fn ping(&self, host: &Host, count: usize) -> Result<Vec<f64>> {
        host.rt.block_on(async {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                let t = Instant::now();
                self.store.ping().await?;
                out.push(secs(t.elapsed()));
            }
            Ok(out)
        })
    }

    /// `count` round trips of a `bytes`-sized argument: upsert a row whose annotation holds
    /// `bytes` bytes, then get it back (so the payload crosses the boundary both ways).
    pub fn round_trip(&self, host: &Host, bytes: usize, count: usize) -> Result<Vec<f64>> {
        let mut tag = self.rows[0].clone();
        tag.annotations.insert("payload".into(), "x".repeat(bytes));
        let key = tag.key();
        host.rt.block_on(async {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                let t = Instant::now();
                self.tags.upsert(&tag).await?;
                let back = self.tags.get(&key).await?;
                out.push(secs(t.elapsed()));
                if back.annotations.get("payload").map(String::len) != Some(bytes) {
                    return Err(BenchError::Check("round trip lost the payload".into()));
                }
            }
            Ok(out)
        })
    }

    /// Close the store.
    pub fn close(self, host: &Host) -> Result<()> {
        Ok(host.rt.block_on(self.store.close())?)
    }
}

/// `count` keys of rows drawn at random (by `seed`) among the first `among` of `rows`.
fn random_keys(
    rows: &[ResourceTags],
    among: usize,
    count: usize,
    seed: u64,
) -> Vec<ResourceTagsKey> {
    let among = among.clamp(1, rows.len().max(1));
    let mut idx = Indices::new(seed);
    (0..count).map(|_| rows[idx.below(among)].key()).collect()
}

/// Every key of a `get_many` batch was stored, so every answer must be a row.
fn check_all_found(got: &[Option<ResourceTags>]) -> Result<()> {
    match got.iter().filter(|r| r.is_none()).count() {
        0 => Ok(()),
        missing => Err(BenchError::Check(format!(
            "get_many missed {missing} of {} stored keys",
            got.len()
        ))),
    }
}
