//! A tour of the repository layer on a file database.
//!
//! ```text
//! cargo run -p edgestore --example repository_tour [-- path/to/db.sqlite]
//! ```
//! The path defaults to `./edgestore-data/edgestore.sqlite`; its directory is created.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use edgestore::model::ResourceTagsKey;
use edgestore::sql::Database;
use edgestore::{
    Clock, Condition, Creator, Deleter, Query, Reader, ResourceTags, SqlStorage, SqliteDatabase,
    StorageCommon, SystemClock, Timestamp, Updater,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).map_or_else(
        || PathBuf::from("./edgestore-data/edgestore.sqlite"),
        PathBuf::from,
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let dsn = path.to_str().ok_or("database path must be UTF-8")?;
    let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(dsn)?);
    let tags = SqlStorage::<ResourceTags, ResourceTagsKey>::open(db)?;
    println!("opened {dsn}: {} resource tags stored", tags.count()?);

    let now = Timestamp::now(&SystemClock);
    let mut web = ResourceTags::new("pod", "web-0", Some("prod"), now);
    web.labels.insert("app".into(), "web".into());
    let node = ResourceTags::new("node", "node-a", None, now);
    let inserted = tags.create_many(&[web.clone(), node.clone()])?;
    println!("create_many: {inserted} inserted (existing keys are ignored)");

    let again = ResourceTags::new("node", "node-a", None, now);
    println!(
        "create of an existing cluster-scoped key inserted: {}",
        tags.create(&again)?
    );

    web.annotations.insert("owner".into(), "team-a".into());
    web.record_updated = Timestamp::from_millis(SystemClock.now_ms());
    tags.upsert(&web)?;
    let stored = tags.get(&web.key())?;
    println!(
        "get {:?}: id {} size {} bytes, annotations {:?}",
        web.key(),
        stored.id,
        stored.size,
        stored.annotations
    );

    let unsent = tags.find_all(
        &Query::all()
            .filter(Condition::is_null("sent_at"))
            .order_by("name")
            .limit(10),
    )?;
    println!(
        "unsent: {:?}",
        unsent.iter().map(|t| &t.name).collect::<Vec<_>>()
    );

    let sent_at = Timestamp::from_millis(SystemClock.now_ms());
    tags.tx(|tx| {
        for mut t in tx.find_all(&Query::all().filter(Condition::is_null("sent_at")))? {
            t.sent_at = Some(sent_at);
            tx.update(&t)?;
        }
        Ok(())
    })?;
    println!("marked everything sent at {sent_at} in one transaction");

    let rolled_back = tags.tx(|tx| {
        tx.delete_all()?;
        Err::<(), _>(edgestore::Error::invalid_input("changed my mind"))
    });
    println!(
        "a failing transaction rolled back ({}); rows: {}",
        rolled_back.is_err(),
        tags.count()?
    );

    println!("delete {:?}: {}", node.key(), tags.delete(&node.key())?);
    println!("delete again (idempotent): {}", tags.delete(&node.key())?);
    println!("{} resource tags stored", tags.count()?);
    Ok(())
}
