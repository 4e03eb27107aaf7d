//! Least privilege on disk: what the `edgestore` binary creates is its user's alone (files
//! 0600, directories 0700), and a data directory or key file anyone may write is refused.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::{edgestore, run, text};

fn modes(dir: &Path, out: &mut Vec<(String, u32)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = e.metadata().unwrap();
        out.push((
            e.path().display().to_string(),
            meta.permissions().mode() & 0o777,
        ));
        if meta.is_dir() {
            modes(&e.path(), out);
        }
    }
}

#[test]
fn what_the_store_creates_is_its_users_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("nested").join("data");
    let out = run(edgestore(&data, "native").arg("demo"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut all = vec![(
        data.display().to_string(),
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
    )];
    modes(&data, &mut all);
    assert!(all.len() > 5, "{all:?}");
    for (path, mode) in &all {
        assert_eq!(mode & 0o077, 0, "{path} has mode {mode:o}");
    }
}

#[test]
fn a_data_directory_or_key_file_anyone_may_write_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(edgestore(&data, "native").arg("demo"));
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("writable by every user"), "{said}");
    // Nothing was written into it.
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);

    // A bearer token file anyone may write: serve refuses to start.
    let good = tmp.path().join("good");
    let token = tmp.path().join("token");
    std::fs::write(&token, "secret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o666)).unwrap();
    let config = tmp.path().join("edgestore.yaml");
    std::fs::write(
        &config,
        format!("ingest: {{bearerTokenFile: '{}'}}\n", token.display()),
    )
    .unwrap();
    let out = run(edgestore(&good, "native")
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("ingest.bearerTokenFile") && said.contains("writable by every user"),
        "{said}"
    );
}
