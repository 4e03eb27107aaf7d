//! The command line on a full disk (a real tmpfs the test mounts; skipped with a note where
//! mounting is not allowed): `db put` and `spool put` through both engines until the file
//! system refuses, then the failure is `disk-full`, every row a command reported committed is
//! there exactly once, reading still works, `health` says why, and the same commands succeed
//! once space is freed.

use std::path::Path;
use std::process::Output;

mod common;

use common::{edgestore, run_with_input, text, ENGINES};

/// 100 resource tags with 2 KiB labels, named after `batch`.
fn tags(batch: usize) -> String {
    (0..100)
        .map(|i| {
            format!(
                "{{\"type\":\"pod\",\"name\":\"b{batch}-{i}\",\"namespace\":\"prod\",\
                 \"labels\":{{\"blob\":\"{}\"}}}}\n",
                "x".repeat(2048)
            )
        })
        .collect()
}

/// 200 metrics with 1 KiB labels, numbered from `batch * 200`.
fn metrics(batch: usize) -> String {
    (0..200)
        .map(|i| {
            let n = batch * 200 + i;
            format!(
                "{{\"cloud_account_id\":\"a\",\"cluster_name\":\"c\",\"created_at\":\"1700000000000\",\
                 \"id\":\"m{n}\",\"labels\":{{\"blob\":\"{}\",\"n\":\"{n}\"}},\"metric_name\":\"fill\",\
                 \"node_name\":\"n\",\"timestamp\":\"{}\",\"value\":\"1\"}}\n",
                "y".repeat(1024),
                1_700_000_000_000u64 + n as u64
            )
        })
        .collect()
}

/// Run `put(batch)` until a command fails; the batches that succeeded and the failure.
fn fill(data: &Path, engine: &str, args: &[&str], put: fn(usize) -> String) -> (usize, Output) {
    for batch in 0..2_000 {
        let mut cmd = edgestore(data, engine);
        cmd.args(args);
        let out = run_with_input(&mut cmd, &put(batch));
        if !out.status.success() {
            return (batch, out);
        }
    }
    panic!("{engine}: {args:?} never filled the file system");
}

fn count_tags(data: &Path, engine: &str) -> u64 {
    let out = common::ok(edgestore(data, engine).args(["db", "count", "resource_tags"]));
    out.trim()
        .strip_prefix("resource_tags: ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("db count printed {out:?}"))
}

fn spool_ids(data: &Path) -> Vec<String> {
    common::spool_rows(data).into_iter().map(|r| r.id).collect()
}

#[test]
fn db_put_and_spool_put_on_a_full_disk_fail_typed_lose_nothing_and_resume() {
    for engine in ENGINES {
        let Some(fs) = common::tmpfs::Tmpfs::mount("8m") else {
            return;
        };
        let room = fs.filler("room", 2);
        let spool_room = fs.filler("spool-room", 2);
        let data = fs.path().join("data");

        // The repository.
        let (batches, refused) = fill(&data, engine, &["db", "put", "resource_tags"], tags);
        let stderr = text(&refused.stderr);
        assert!(batches > 0, "{engine}: nothing fit: {stderr}");
        assert!(stderr.contains("disk-full"), "{engine}: {stderr}");
        assert!(
            stderr.contains("the 0 rows before this batch of 100 are committed"),
            "{engine}: {stderr}"
        );
        // Reading still works, and holds exactly what was reported committed.
        assert_eq!(count_tags(&data, engine), batches as u64 * 100, "{engine}");

        // The spool: given 2 MiB, it fills them too.
        std::fs::remove_file(&spool_room).unwrap();
        let (spooled, refused) = fill(&data, engine, &["spool", "put", "--flush"], metrics);
        let stderr = text(&refused.stderr);
        assert!(
            stderr.contains("disk-full"),
            "{engine}: spool put: {stderr}"
        );
        assert!(spooled > 0, "{engine}: nothing fit: {stderr}");
        eprintln!("{engine}: spool put refused: {}", stderr.trim());
        // (The other tests switch the disk-usage check off; here it is the point.)
        let health = common::run(
            edgestore(&data, engine)
                .env("EDGESTORE_HEALTH_MAX_DISK_USED_PERCENT", "95")
                .arg("health"),
        );
        let said = format!("{}{}", text(&health.stdout), text(&health.stderr));
        assert!(
            !health.status.success(),
            "{engine}: healthy on a full disk: {said}"
        );
        assert!(said.contains("% used (limit 95.0%)"), "{engine}: {said}");

        // Room again: the same commands go on, nothing was lost or written twice.
        std::fs::remove_file(&room).unwrap();
        let mut again = edgestore(&data, engine);
        again.args(["db", "put", "resource_tags"]);
        let out = run_with_input(&mut again, &tags(batches));
        assert!(out.status.success(), "{engine}: {}", text(&out.stderr));
        assert_eq!(count_tags(&data, engine), (batches as u64 + 1) * 100);
        // The refusal said whether the refused command's rows are kept (a failed final flush)
        // or not (a refused batch): send them again only in the second case, as a sender
        // would.
        let kept = stderr.contains("do not send them again");
        let mut again = edgestore(&data, engine);
        again.args(["spool", "put", "--flush"]);
        let input = if kept {
            String::new()
        } else {
            metrics(spooled)
        };
        let out = run_with_input(&mut again, &input);
        assert!(out.status.success(), "{engine}: {}", text(&out.stderr));
        let ids = spool_ids(&data);
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{engine}: a row stored twice");
        assert_eq!(ids.len(), (spooled + 1) * 200, "{engine}: rows stored");
        for n in 0..(spooled + 1) * 200 {
            assert!(
                unique.contains(&format!("m{n}")),
                "{engine}: row m{n} is lost"
            );
        }
        eprintln!(
            "{engine}: {batches} db batches and {spooled} spool batches fit before disk-full \
             (the refused spool batch {})",
            if kept { "was kept" } else { "was sent again" }
        );
    }
}
