//! Throwaway perf harness: create_many of 100k ResourceTags through `SqlStorage` against raw
//! rusqlite prepared inserts of the same rows into the same table in one transaction; get p50.
//!
//! `cargo run --release -p edgestore --example repo_perf [rounds=5]`

use std::sync::Arc;

use edgestore::sql::sqlite::rusqlite;
use std::time::{Duration, Instant};

use edgestore::model::ResourceTagsKey;
use edgestore::repository::{Creator, Reader, SqlStorage};
use edgestore::sql::sqlite::SqliteDatabase;
use edgestore::{ResourceTags, Timestamp};

fn rows(n: usize) -> Vec<ResourceTags> {
    (0..n)
        .map(|i| {
            let mut t = ResourceTags::new("pod", &format!("pod-{i}"), Some("prod"), Timestamp(1));
            t.labels.insert("app".into(), format!("app-{}", i % 100));
            t
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(5);
    let what = std::env::args().nth(2).unwrap_or_default();
    let n: usize = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if what == "gen" {
        let data = rows(n);
        let dir = tempfile::tempdir()?;
        let db = Arc::new(SqliteDatabase::open(
            dir.path().join("a.sqlite").to_str().unwrap(),
        )?);
        let _s: SqlStorage<ResourceTags, ResourceTagsKey> = SqlStorage::open(db)?;
        println!("{}", data.len());
        return Ok(());
    }
    let (mut ours, mut raw, mut raw_pre, mut gets) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let data = rows(n);
        // ours
        if what.is_empty() || what == "ours" {
            let dir = tempfile::tempdir()?;
            let db = Arc::new(SqliteDatabase::open(
                dir.path().join("a.sqlite").to_str().unwrap(),
            )?);
            let s: SqlStorage<ResourceTags, ResourceTagsKey> = SqlStorage::open(db)?;
            let t = Instant::now();
            assert_eq!(s.create_many(&data)?, n as u64);
            ours.push(n as f64 / t.elapsed().as_secs_f64());
            let mut lat = Vec::new();
            for r in data
                .iter()
                .step_by(10)
                .take(if what.is_empty() { 5000 } else { 0 })
            {
                let k = r.key();
                let t = Instant::now();
                let _ = s.get(&k)?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
            if !lat.is_empty() {
                gets.push(median(lat));
            }
        }
        if what.is_empty() || what == "raw" {
            // raw, hand-written from the structs (what a rusqlite user writes)
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("b.sqlite");
            {
                let db = Arc::new(SqliteDatabase::open(path.to_str().unwrap())?);
                let _s: SqlStorage<ResourceTags, ResourceTagsKey> = SqlStorage::open(db)?;
            }
            let mut c = rusqlite::Connection::open(&path)?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            let t = Instant::now();
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare(SQL)?;
                for r in &data {
                    st.execute(rusqlite::params![
                        r.id.hyphenated().to_string(),
                        r.kind,
                        r.name,
                        r.namespace,
                        serde_json::to_string(&r.metric_labels)?,
                        serde_json::to_string(&r.labels)?,
                        serde_json::to_string(&r.annotations)?,
                        r.record_created.0,
                        r.record_updated.0,
                        r.sent_at.map(|t| t.0),
                    ])?;
                }
            }
            tx.commit()?;
            raw.push(n as f64 / t.elapsed().as_secs_f64());
            if what == "raw" {
                raw_pre.push(0.0);
                continue;
            }
            // raw with values already bound-ready (strings precomputed, untimed)
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("c.sqlite");
            {
                let db = Arc::new(SqliteDatabase::open(path.to_str().unwrap())?);
                let _s: SqlStorage<ResourceTags, ResourceTagsKey> = SqlStorage::open(db)?;
            }
            let pre: Vec<_> = data
                .iter()
                .map(|r| {
                    (
                        r.id.hyphenated().to_string(),
                        serde_json::to_string(&r.metric_labels).unwrap(),
                        serde_json::to_string(&r.labels).unwrap(),
                        serde_json::to_string(&r.annotations).unwrap(),
                    )
                })
                .collect();
            let mut c = rusqlite::Connection::open(&path)?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            let t = Instant::now();
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare(SQL)?;
                for (r, p) in data.iter().zip(&pre) {
                    st.execute(rusqlite::params![
                        p.0,
                        r.kind,
                        r.name,
                        r.namespace,
                        p.1,
                        p.2,
                        p.3,
                        r.record_created.0,
                        r.record_updated.0,
                        r.sent_at.map(|t| t.0),
                    ])?;
                }
            }
            tx.commit()?;
            raw_pre.push(n as f64 / t.elapsed().as_secs_f64());
        }
    }
    let _ = Duration::ZERO;
    if what.is_empty() {
        use edgestore::model::Model;
        let data = rows(n);
        let schema = ResourceTags::schema();
        let t = Instant::now();
        let r: Vec<_> = data
            .iter()
            .map(|m| edgestore::model::to_row(&schema, m).unwrap())
            .collect();
        println!(
            "to_row alone         {:.2} us/row",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let t = Instant::now();
        for row in &r {
            for (c, v) in schema.columns.iter().zip(row) {
                let _ = edgestore::model::normalize(c, v.clone()).unwrap();
            }
        }
        println!(
            "normalize alone      {:.2} us/row",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
    if !ours.is_empty() {
        println!(
            "ours create_many     median {:>9.0} rows/s  {:?}",
            median(ours.clone()),
            ours.iter().map(|x| *x as u64).collect::<Vec<_>>()
        );
        if !gets.is_empty() {
            println!("ours get p50         median {:>9.2} us", median(gets));
        }
    }
    if !raw.is_empty() {
        println!(
            "raw from structs     median {:>9.0} rows/s",
            median(raw.clone())
        );
        println!(
            "raw precomputed      median {:>9.0} rows/s",
            median(raw_pre.clone())
        );
        if !ours.is_empty() {
            println!(
                "ratio ours/raw       {:.2}  ours/raw_pre {:.2}",
                median(ours.clone()) / median(raw),
                median(ours) / median(raw_pre)
            );
        }
    }
    Ok(())
}

const SQL: &str = "INSERT INTO \"resource_tags\" (\"id\", \"type\", \"name\", \"namespace\", \"metric_labels\", \"labels\", \"annotations\", \"record_created\", \"record_updated\", \"sent_at\") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (\"type\", \"name\", ifnull(\"namespace\", '')) DO NOTHING";
