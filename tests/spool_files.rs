//! The spool on a real directory: segments decode with the `brotli` command-line tool and parse
//! as the reference agent's JSON, shippers globbing `*.json.br` never see unfinished files,
//! a corrupted file is quarantined, and concurrent put/flush/read are safe.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use edgestore::sample::MetricGenerator;
use edgestore::spool::{Metric, Spool, SpoolConfig, TimeRange};
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;

fn tool(name: &str) -> String {
    let ok = Command::new(name).arg("--version").output().is_ok();
    assert!(
        ok,
        "the `{name}` command-line tool is required by this test (apt-get install {name}; \
         .ci/run installs it)"
    );
    name.to_string()
}

fn finished(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json.br"))
        .collect();
    names.sort();
    names
}

#[test]
fn segments_decode_with_the_brotli_cli_and_match_the_reference_shape() {
    let brotli = tool("brotli");
    let jq = tool("jq");
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = SpoolConfig::new("k8s-agent");
    cfg.max_records = 100;
    let spool: Spool<Metric> = Spool::open_path(tmp.path(), cfg).unwrap();
    let rows = MetricGenerator::new(42, T0).batch(250);
    spool.put(&rows).unwrap();
    assert_eq!(
        finished(tmp.path()).len(),
        2,
        "the journal of the last 50 is invisible"
    );
    spool.flush().unwrap();
    let names = finished(tmp.path());
    assert_eq!(names.len(), 3);
    let mut decoded = Vec::new();
    for name in &names {
        assert!(name.starts_with("k8s-agent_"), "{name}");
        let path = tmp.path().join(name);
        let out = Command::new(&brotli)
            .args(["-d", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "brotli -d failed on {name}");
        let array: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let script = format!("{brotli} -d < '{}' | {jq} length", path.display());
        let len = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&len.stdout).trim(),
            array.len().to_string(),
            "brotli -d < segment | jq length"
        );
        for obj in &array {
            let keys: Vec<&str> = obj
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            assert_eq!(
                keys,
                [
                    "cloud_account_id",
                    "cluster_name",
                    "created_at",
                    "id",
                    "labels",
                    "metric_name",
                    "node_name",
                    "timestamp",
                    "value"
                ]
            );
            for ms in ["created_at", "timestamp"] {
                let s = obj[ms].as_str().unwrap();
                assert!(
                    s.len() == 13 && s.bytes().all(|b| b.is_ascii_digit()),
                    "{ms}={s}"
                );
            }
            assert!(obj["value"].is_string() && obj["labels"].is_object());
        }
        decoded.extend(array);
    }
    let lens: Vec<usize> = spool
        .segments(TimeRange::all())
        .unwrap()
        .iter()
        .map(|s| s.rows.unwrap() as usize)
        .collect();
    assert_eq!(lens, [100, 100, 50]);
    let want: Vec<Value> = rows
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    assert_eq!(decoded, want);
}

#[test]
fn bit_flip_and_truncation_on_disk_are_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = SpoolConfig::new("agent");
    cfg.max_records = 50;
    let spool: Spool<Metric> = Spool::open_path(tmp.path(), cfg.clone()).unwrap();
    let rows = MetricGenerator::new(3, T0).batch(200);
    spool.put(&rows).unwrap();
    let names = finished(tmp.path());
    assert_eq!(names.len(), 4);
    let flip = tmp.path().join(&names[1]);
    let mut bytes = std::fs::read(&flip).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&flip, bytes).unwrap();
    let cut = tmp.path().join(&names[3]);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    drop(spool);
    let spool: Spool<Metric> = Spool::open_path(tmp.path(), cfg).unwrap();
    let mut r = spool.read_range(TimeRange::all()).unwrap();
    let mut got = Vec::new();
    loop {
        let b = r.next(33).unwrap();
        if b.is_empty() {
            break;
        }
        got.extend(b);
    }
    let mut want = rows[0..50].to_vec();
    want.extend_from_slice(&rows[100..150]);
    assert_eq!(got, want);
    let mut q: Vec<String> = std::fs::read_dir(tmp.path().join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    q.sort();
    assert_eq!(
        q,
        [
            names[1].clone(),
            format!("{}.sum", names[1]),
            names[3].clone(),
            format!("{}.sum", names[3])
        ]
    );
    let u = spool.usage().unwrap();
    assert_eq!(u.quarantined.files, 4);
    let cap = u.capacity.expect("statvfs natively");
    assert!(cap.total >= cap.available && cap.total > 0);
}

#[test]
fn concurrent_put_flush_and_read() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = SpoolConfig::new("conc");
    cfg.max_records = 64;
    cfg.compression_level = 1;
    let spool: Arc<Spool<Value>> = Arc::new(Spool::open_path(tmp.path(), cfg).unwrap());
    let mut handles = Vec::new();
    for t in 0..3u64 {
        let s = Arc::clone(&spool);
        handles.push(std::thread::spawn(move || {
            for b in 0..40u64 {
                let rows: Vec<Value> = (0..25)
                    .map(|i| json!({"id": t * 10_000 + b * 25 + i}))
                    .collect();
                s.put(&rows).unwrap();
                if b % 7 == 0 {
                    s.flush().unwrap();
                }
            }
        }));
    }
    let reader = {
        let s = Arc::clone(&spool);
        std::thread::spawn(move || {
            let mut last = 0;
            for _ in 0..20 {
                let mut r = s.read_range(TimeRange::all()).unwrap();
                let mut n = 0;
                loop {
                    let b = r.next(100).unwrap();
                    if b.is_empty() {
                        break;
                    }
                    n += b.len();
                }
                assert!(
                    r.quarantined().is_empty(),
                    "readers only see finished segments"
                );
                assert!(n >= last, "finished rows never disappear");
                last = n;
            }
        })
    };
    for h in handles {
        h.join().unwrap();
    }
    reader.join().unwrap();
    spool.flush().unwrap();
    let mut r = spool.read_range(TimeRange::all()).unwrap();
    let mut ids = BTreeSet::new();
    let mut total = 0;
    loop {
        let b = r.next(500).unwrap();
        if b.is_empty() {
            break;
        }
        total += b.len();
        ids.extend(b.iter().map(|v| v["id"].as_u64().unwrap()));
    }
    assert_eq!((total, ids.len()), (3000, 3000));
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn spool_is_send_and_sync() {
    assert_send_sync::<Spool<Metric>>();
    assert_send_sync::<Spool<Value>>();
}
