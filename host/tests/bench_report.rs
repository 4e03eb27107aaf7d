//! `edgestore bench --quick --json --out <tmp>` runs end to end and writes a well-formed
//! report. Structure only: speed is never judged here (these machines are shared and noisy;
//! the figures' PASS/MISS is the report's business).

use std::process::Command;

/// Every figure the quick report must contain.
const FIGURES: &[&str] = &[
    "startup.cold_compile",
    "startup.warm_open",
    "spool.ingest.native.l1.metrics_per_s",
    "spool.ingest.native.l1.mb_per_s",
    "spool.raw_brotli.l1.mb_per_s",
    "spool.ingest.native.l1.vs_raw",
    "spool.raw_brotli_c.l1.mb_per_s",
    "spool.ingest.native.l1.vs_raw_c",
    "spool.ingest.component.l1.metrics_per_s",
    "spool.ingest.component.l1.vs_native",
    "spool.ingest.component.l1.vs_host_native",
    "spool.ingest.standalone.l1.vs_native",
    "spool.ingest.native.l6.metrics_per_s",
    "spool.ingest.native.l6.mb_per_s",
    "spool.raw_brotli.l6.mb_per_s",
    "spool.ingest.native.l6.vs_raw",
    "spool.raw_brotli_c.l6.mb_per_s",
    "spool.ingest.native.l6.vs_raw_c",
    "spool.ingest.native_2_workers.l6.metrics_per_s",
    "spool.ingest.native_2_workers.l6.vs_raw",
    "spool.ingest.native.l6.encryption_on_vs_off",
    "spool.ingest.host_native.l6.audit_on_vs_off",
    "spool.ingest.component.l6.metrics_per_s",
    "spool.ingest.component.l6.vs_native",
    "spool.ingest.component.l6.vs_host_native",
    "spool.ingest.standalone.l6.vs_native",
    "spool.savings.l6",
    "spool.savings.l6.vs_brotli_cli",
    "spool.ingest.native.l11.metrics_per_s",
    "spool.ingest.native.l11.mb_per_s",
    "spool.raw_brotli.l11.mb_per_s",
    "spool.ingest.native.l11.vs_raw",
    "spool.raw_brotli_c.l11.mb_per_s",
    "spool.ingest.native.l11.vs_raw_c",
    "spool.ingest.component.l11.metrics_per_s",
    "spool.ingest.component.l11.vs_native",
    "spool.ingest.component.l11.vs_host_native",
    "spool.ingest.standalone.l11.vs_native",
    "repo.create_many.native.rows_per_s",
    "repo.create_many.raw_rusqlite.rows_per_s",
    "repo.create_many.native.vs_raw",
    "repo.create_many.native.sqlcipher_vs_plain",
    "repo.create_many.component.rows_per_s",
    "repo.create_many.component.vs_native",
    "repo.get.native.p50",
    "repo.get.native.p99",
    "repo.get.raw_rusqlite.p50",
    "repo.get.native.vs_raw",
    "repo.get_many.native.per_key.p50",
    "repo.get.cache_on.p50",
    "repo.get.cache_off.vs_on",
    "repo.get.hot.cache_off.p50",
    "repo.get.hot.cache_on.p50",
    "repo.get.hot.cache_off.vs_on",
    "repo.find_indexed.native.p50",
    "repo.create.native.p50",
    "repo.update.native.p50",
    "repo.get.host_native.p50",
    "repo.get.component.p50",
    "repo.get_many.host_native.per_key.p50",
    "repo.get_many.component.per_key.p50",
    "boundary.empty_call.native.p50",
    "boundary.empty_call.component.p50",
    "boundary.empty_call.component.vs_native",
    "boundary.round_trip_1kb.native.p50",
    "boundary.round_trip_1kb.component.p50",
    "boundary.round_trip_1kb.component.vs_native",
    "boundary.round_trip_1mb.native.p50",
    "boundary.round_trip_1mb.component.p50",
    "boundary.round_trip_1mb.component.vs_native",
    "memory.ingest_100k.peak_rss",
    "memory.read_100k.peak_rss",
    "ingest.remote_write.native.l6.samples_per_s",
    "ingest.spool_put.native.l6.rows_per_s",
    "ingest.remote_write.native.l6.vs_put",
    "ingest.remote_write.component.l6.samples_per_s",
    "ingest.spool_put.component.l6.rows_per_s",
    "ingest.remote_write.component.l6.vs_put",
    "ingest.remote_write.decode.samples_per_s",
    "ingest.remote_write.native.8_senders.p50",
    "ingest.remote_write.native.8_senders.p99",
    "ingest.flood_429.16_senders.rss_growth",
    "ingest.flood_429.16_senders.refused",
    "ship.s3.mb_per_s",
    "ship.s3.aws_cli.mb_per_s",
    "ship.s3.vs_aws_cli",
    "ship.s3.cpu_ms_per_mb",
    "ship.s3.cpu_ms_per_mb.during_ingest",
    "backup.restore_10mb.s",
    "backup.restore_10mb.aws_cli_copy.s",
    "backup.restore_10mb.vs_aws_cli",
    "backup.create_many.native.with_backup.rows_per_s",
    "backup.create_many.native.vs_without",
];

/// The figures of one group, in order.
fn group(prefix: &str) -> Vec<&'static str> {
    FIGURES
        .iter()
        .copied()
        .filter(|f| f.starts_with(prefix))
        .collect()
}

/// Run `edgestore bench --quick --json <extra> --out <tmp>`; its output and the written report.
fn bench(extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    bench_with(extra, &[])
}

/// [`bench`] with more environment variables.
fn bench_with(extra: &[&str], env: &[(&str, &str)]) -> (std::process::Output, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let run = Command::new(env!("CARGO_BIN_EXE_edgestore"))
        .envs(env.iter().copied())
        .args(["bench", "--quick", "--json"])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "edgestore bench failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let written = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    (run, written)
}

#[test]
fn quick_report_has_every_figure_with_finite_values_and_a_status() {
    let (run, written) = bench(&[]);
    let printed: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(written, printed, "--json prints what --out holds");

    assert_eq!(written["mode"], "quick");
    for key in ["date", "machine", "load"] {
        assert!(
            written[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}"
        );
    }
    let figures = written["figures"].as_array().unwrap();
    let names: Vec<&str> = figures
        .iter()
        .map(|f| f["figure"].as_str().unwrap())
        .collect();
    assert_eq!(names, FIGURES, "every figure, in order, nothing else");
    for f in figures {
        let name = &f["figure"];
        let status = f["status"].as_str().unwrap();
        let target = f["target"].as_str().unwrap();
        assert!(f["unit"].as_str().is_some_and(|u| !u.is_empty()), "{name}");
        match status {
            "PASS" | "MISS" => assert!(!target.is_empty(), "{name} judged without a target"),
            "INFO" => assert!(target.is_empty(), "{name} has a target but no verdict"),
            // Only the comparisons with tools that may be missing are skipped: the brotli CLI
            // (not on PATH), the standalone component (not built), moto and the AWS CLI (no
            // venv), and then all ship figures and the backup's restore figures.
            "SKIP" => {
                let name = name.as_str().unwrap_or_default();
                assert!(
                    name == "spool.savings.l6.vs_brotli_cli"
                        || name.starts_with("spool.ingest.standalone.")
                        || name.starts_with("ship.s3.")
                        || name.starts_with("backup.restore_"),
                    "{name} skipped"
                );
                assert!(
                    f["note"].as_str().is_some_and(|n| !n.is_empty()),
                    "{name} skipped without saying why"
                );
            }
            other => panic!("{name}: status {other}"),
        }
        if status == "SKIP" {
            assert!(f["value"].is_null(), "{name}");
        } else {
            let v = f["value"].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{name} = {v}");
        }
    }
}

#[test]
fn only_measures_the_named_groups_and_says_so() {
    let (_, written) = bench(&["--only", "startup"]);
    assert_eq!(written["mode"], "quick (only startup)");
    let names: Vec<&str> = written["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["figure"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["startup.cold_compile", "startup.warm_open"]);
    // An unknown group is refused by the parser, before anything is measured.
    let bad = Command::new(env!("CARGO_BIN_EXE_edgestore"))
        .args(["bench", "--quick", "--only", "everything"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("everything"));
}

#[test]
fn ship_figures_are_skipped_with_how_to_install_when_the_venv_is_missing() {
    let (_, written) = bench_with(
        &["--only", "ship"],
        &[("EDGESTORE_S3_VENV", "/nonexistent/edgestore-s3-venv")],
    );
    assert_eq!(written["mode"], "quick (only ship)");
    let figures = written["figures"].as_array().unwrap();
    let names: Vec<&str> = figures
        .iter()
        .map(|f| f["figure"].as_str().unwrap())
        .collect();
    assert_eq!(names, group("ship."));
    for f in figures {
        assert_eq!(f["status"], "SKIP", "{}", f["figure"]);
        assert!(f["value"].is_null());
        let note = f["note"].as_str().unwrap();
        assert!(note.contains("./test.sh --install-only"), "{note}");
    }
}

#[test]
fn backup_restore_figures_are_skipped_without_the_venv_and_the_overhead_is_still_measured() {
    let (_, written) = bench_with(
        &["--only", "backup"],
        &[("EDGESTORE_S3_VENV", "/nonexistent/edgestore-s3-venv")],
    );
    assert_eq!(written["mode"], "quick (only backup)");
    let figures = written["figures"].as_array().unwrap();
    let names: Vec<&str> = figures
        .iter()
        .map(|f| f["figure"].as_str().unwrap())
        .collect();
    assert_eq!(names, group("backup."));
    for f in figures {
        let name = f["figure"].as_str().unwrap();
        if name.starts_with("backup.restore_") {
            assert_eq!(f["status"], "SKIP", "{name}");
            assert!(f["value"].is_null());
            let note = f["note"].as_str().unwrap();
            assert!(note.contains("./test.sh --install-only"), "{note}");
        } else {
            // A file:// target: no moto needed.
            let v = f["value"].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{name} = {v}");
        }
    }
}
