//! The audit log through the `edgestore` binary: mutations from the process itself and from
//! other processes (forwarded to a running owner) each leave one chained line, a refused
//! ingest request too; `audit verify` passes on the untouched log and names the line where it
//! was tampered with.

mod common;

use std::io::Write as _;
use std::process::Stdio;

use common::{edgestore, run, text};

fn lines(data: &std::path::Path) -> Vec<serde_json::Value> {
    let dir = data.join(".audit");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn mutations_and_refusals_are_chained_and_tampering_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = run(edgestore(&data, "native").arg("demo"));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A running owner with a bearer token; a put from another process, forwarded.
    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let config = tmp.path().join("edgestore.yaml");
    std::fs::write(
        &config,
        format!("ingest: {{bearerTokenFile: '{}'}}\n", token.display()),
    )
    .unwrap();
    let mut serve_cmd = edgestore(&data, "native");
    serve_cmd.arg("--config").arg(&config);
    let serving = common::Serving::start(serve_cmd, &[]);
    let mut put = edgestore(&data, "native")
        .args(["spool", "put", "--documents"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    put.stdin
        .take()
        .unwrap()
        .write_all(b"{\"a\":1}\n{\"a\":2}\n")
        .unwrap();
    let out = put.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // An ingest request without the token: refused, and audited.
    let refused = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(format!("{}/api/v1/write", serving.url()))
        .output();
    drop(serving);

    let all = lines(&data);
    let ops: Vec<&str> = all.iter().map(|l| l["op"].as_str().unwrap()).collect();
    assert!(
        ops.contains(&"repo.create_many") || ops.contains(&"repo.tx"),
        "{ops:?}"
    );
    let forwarded = all
        .iter()
        .find(|l| l["op"] == "spool.put_documents")
        .unwrap_or_else(|| panic!("no forwarded put in {ops:?}"));
    assert_eq!(forwarded["via"], "admin-socket", "{forwarded}");
    assert_eq!(forwarded["count"], 2);
    if let Ok(r) = refused {
        if text(&r.stdout) == "401" {
            let auth = all
                .iter()
                .find(|l| l["op"] == "ingest.auth")
                .expect("audited refusal");
            assert_eq!(auth["outcome"], "refused");
        }
    }
    for (i, l) in all.iter().enumerate() {
        assert_eq!(l["seq"], (i + 1) as u64);
    }

    let verify = run(edgestore(&data, "native").args(["audit", "verify"]));
    assert!(
        verify.status.success(),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );

    // Alter line 3: verification fails, naming it.
    let file = data.join(".audit").join("audit-0000000001.jsonl");
    let original = std::fs::read_to_string(&file).unwrap();
    let mut edited: Vec<String> = original.lines().map(str::to_owned).collect();
    edited[2] = edited[2].replacen("\"ok\"", "\"error\"", 1);
    std::fs::write(&file, edited.join("\n") + "\n").unwrap();
    let verify = run(edgestore(&data, "native").args(["audit", "verify"]));
    assert!(!verify.status.success());
    let said = text(&verify.stderr);
    assert!(said.contains("line 3 was altered"), "{said}");
}
