//! Shared helpers of the host tests: stores on either engine over a temporary data directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgestore::model::ResourceTagsKey;
use edgestore::{ResourceTags, Timestamp};
use edgestore_host::{ComponentSource, Engine, Store, StoreConfig};

pub mod cli;
pub mod hostile;
pub mod standalone;
pub mod wasm_build;

/// The default database of the data directory `data` with three resource_tags rows (pod
/// web-0 with labels, pod web-1, node worker-1 sent at ...500), as the CLI would have written
/// them; the typed storage over it and the rows, in that order.
pub fn write_resource_tags(
    data: &Path,
) -> (
    edgestore::SqlStorage<ResourceTags, ResourceTagsKey>,
    Vec<ResourceTags>,
) {
    use edgestore::{Creator as _, Model as _};
    let file = data.join(edgestore::layout::DEFAULT_DATABASE_FILE);
    let db: std::sync::Arc<dyn edgestore::sql::Database> = std::sync::Arc::new(
        edgestore::SqliteDatabase::open(file.to_str().expect("utf-8 path")).expect("open"),
    );
    edgestore::Store::new(db.clone())
        .register(ResourceTags::schema())
        .expect("register");
    let tags: edgestore::SqlStorage<ResourceTags, ResourceTagsKey> =
        edgestore::SqlStorage::open(db).expect("storage");
    let now = Timestamp(1_700_000_000_000);
    let mut web = ResourceTags::new("pod", "web-0", Some("prod"), now);
    web.labels.insert("app".into(), "web".into());
    web.metric_labels.insert("team".into(), "edge".into());
    let other = ResourceTags::new("pod", "web-1", Some("prod"), now);
    let mut node = ResourceTags::new("node", "worker-1", None, now);
    node.sent_at = Some(Timestamp(1_700_000_000_500));
    let rows = vec![web, other, node];
    for row in &rows {
        tags.create(row).expect("create");
    }
    (tags, rows)
}

/// The component under test: `EDGESTORE_COMPONENT` if set, else the one `host/build.rs` built.
pub fn component() -> Option<ComponentSource> {
    if let Some(path) = std::env::var_os("EDGESTORE_COMPONENT") {
        return Some(ComponentSource::File(PathBuf::from(path)));
    }
    Some(ComponentSource::Bytes(
        edgestore_host::artifacts::plugin_component(),
    ))
}

/// The compiled-component cache shared by every test of this build.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("edgestore-cwasm-cache")
}

/// The engine called `name` ("native", "component" = the plugin, "standalone"), `None` if this
/// build has no plugin component.
pub fn engine(name: &str) -> Option<Engine> {
    match name {
        "native" => Some(Engine::Native),
        // Built on demand; fails with what to install when the toolchain is missing.
        "standalone" => Some(Engine::Component(ComponentSource::File(
            standalone::standalone_component(),
        ))),
        _ => match component() {
            Some(c) => Some(Engine::Component(c)),
            None => {
                assert!(
                    std::env::var_os("EDGESTORE_REQUIRE_COMPONENT").is_none(),
                    "the component is required but was not built"
                );
                eprintln!("no component in this build: component case skipped");
                None
            }
        },
    }
}

/// A config on `dir` with test-friendly settings (artifact cache, no timer).
pub fn config(engine: Engine, dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(engine, dir);
    c.cache_dir = Some(cache_dir());
    c.flush_interval = None;
    c.call_timeout = Duration::from_secs(60);
    c
}

/// A store on `dir`.
pub async fn open(engine: Engine, dir: &Path) -> Store {
    Store::open(config(engine, dir)).await.expect("open store")
}

/// A resource tag with one label.
pub fn tag(kind: &str, name: &str, ns: Option<&str>) -> ResourceTags {
    let mut t = ResourceTags::new(kind, name, ns, Timestamp(1_700_000_000_000));
    t.labels.insert("app".into(), name.into());
    t
}

/// Its key.
pub fn key(kind: &str, name: &str, ns: Option<&str>) -> ResourceTagsKey {
    (kind.into(), name.into(), ns.map(Into::into))
}

/// Every row of `spool`'s finished segments, in time order.
pub async fn read_all(spool: &edgestore_host::AsyncSpool) -> Vec<edgestore::Metric> {
    spool
        .read_range(edgestore::TimeRange::all())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}
