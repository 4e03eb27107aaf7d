//! The built plugin component (from `host/build.rs`) has exactly the `plugin` world of
//! `wit/edgestore.wit`: it exports `repository`, `spool` and `admin`, and imports nothing but
//! `sqlite`, `host-info`, `compression` (and the `types` they use) besides WASI.

use std::collections::BTreeSet;
use std::path::Path;

use edgestore_host::artifacts::{PLUGIN_COMPONENT, PLUGIN_COMPONENT_PATH};
use wit_parser::decoding::{decode, DecodedWasm};
use wit_parser::{Resolve, WorldId};

const PKG: &str = "edgestore:storage";
const VERSION: &str = "0.3.0";

fn ours(names: &[&str]) -> BTreeSet<String> {
    names
        .iter()
        .map(|n| format!("{PKG}/{n}@{VERSION}"))
        .collect()
}

struct World {
    imports: BTreeSet<String>,
    exports: BTreeSet<String>,
}

fn world(resolve: &Resolve, id: WorldId) -> World {
    let w = &resolve.worlds[id];
    World {
        imports: w
            .imports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect(),
        exports: w
            .exports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect(),
    }
}

fn component() -> World {
    let bytes = std::fs::read(PLUGIN_COMPONENT_PATH).expect("the component built by host/build.rs");
    println!(
        "plugin component: {PLUGIN_COMPONENT_PATH}, {} bytes ({:.2} MiB)",
        bytes.len(),
        bytes.len() as f64 / (1024.0 * 1024.0)
    );
    match decode(&bytes).expect("decodes as a component") {
        DecodedWasm::Component(resolve, id) => world(&resolve, id),
        DecodedWasm::WitPackage(..) => {
            panic!("{PLUGIN_COMPONENT_PATH} is a WIT package, not a component")
        }
    }
}

fn contract() -> World {
    let mut resolve = Resolve::default();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("wit");
    let (pkg, _) = resolve.push_dir(&wit).expect("wit/ parses");
    let id = resolve
        .select_world(&[pkg], Some("plugin"))
        .expect("world plugin");
    world(&resolve, id)
}

#[test]
fn exports_exactly_the_plugin_interfaces() {
    let c = component();
    assert_eq!(c.exports, ours(&["repository", "spool", "admin"]));
    assert_eq!(c.exports, contract().exports);
}

#[test]
fn imports_only_sqlite_host_info_compression_types_and_wasi() {
    let c = component();
    let (wasi, non_wasi): (BTreeSet<_>, BTreeSet<_>) = c
        .imports
        .iter()
        .cloned()
        .partition(|n| n.starts_with("wasi:"));
    assert_eq!(
        non_wasi,
        ours(&["types", "sqlite", "host-info", "compression"])
    );
    // Nothing the contract does not import, apart from WASI (which std brings).
    let contract = contract();
    assert!(
        non_wasi.is_subset(&contract.imports),
        "{non_wasi:?} vs {:?}",
        contract.imports
    );
    assert!(wasi.iter().all(|n| n.starts_with("wasi:")));
    assert!(
        wasi.iter()
            .any(|n| n.starts_with("wasi:filesystem/preopens")),
        "the spool reaches /data through the WASI preopens: {wasi:?}"
    );
}

#[test]
fn the_embedded_bytes_are_a_component() {
    // Component binaries start with the wasm magic and the component layer (0x0d 0x00 0x01 0x00).
    assert_eq!(&PLUGIN_COMPONENT[..8], b"\0asm\x0d\x00\x01\x00");
    assert!(
        PLUGIN_COMPONENT.len() < 16 << 20,
        "{} bytes",
        PLUGIN_COMPONENT.len()
    );
}
