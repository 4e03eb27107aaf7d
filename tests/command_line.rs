//! One command line, every build: the inspection and maintenance commands run through the
//! `edgestore` CLI on each engine (`--engine native`, `--engine component`) and through the
//! standalone component's command (under jco on Node.js, a host that is not ours) on the same
//! data directory, and print byte-identical stdout. Errors fail in every build with the same
//! last line on stderr (`edgestore: error: ...`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgestore::layout::{DEFAULT_DATABASE_FILE, DEFAULT_IDENTIFIER, DEFAULT_SPOOL_PATH};
use edgestore::spool::SegmentInfo;
use edgestore::{present, Metric, ResourceTags, Spool, SpoolConfig, TimeRange, Timestamp};

use common::cli::edgestore_cli;
use common::standalone::node;

/// Where a command runs.
#[derive(Debug, Clone, Copy)]
enum Runner {
    /// `edgestore --engine native`.
    Native,
    /// `edgestore --engine component` (the plugin component in our host).
    Component,
    /// The standalone component's command under jco.
    Standalone,
}

const RUNNERS: [Runner; 3] = [Runner::Native, Runner::Component, Runner::Standalone];

/// One command's outcome.
#[derive(Debug)]
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The last line on stderr (the error line of a failed command).
    fn last_error_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }
}

impl Runner {
    /// Run `args` on the data directory `data`; `{spool}` in an argument is replaced by the
    /// spool directory as this runner's file system names it.
    fn run(self, data: &Path, args: &[&str]) -> Run {
        let spool = match self {
            Runner::Native | Runner::Component => {
                data.join(DEFAULT_SPOOL_PATH).display().to_string()
            }
            Runner::Standalone => format!("/data/{DEFAULT_SPOOL_PATH}"),
        };
        let args: Vec<String> = args.iter().map(|a| a.replace("{spool}", &spool)).collect();
        let mut cmd = match self {
            Runner::Native | Runner::Component => {
                let engine = if matches!(self, Runner::Native) {
                    "native"
                } else {
                    "component"
                };
                let mut cmd = Command::new(edgestore_cli());
                cmd.current_dir(data)
                    .env_clear()
                    .env("EDGESTORE_HOST_CACHE_DIR", cache_dir())
                    .args(["--engine", engine, "--data"])
                    .arg(data)
                    .args(&args);
                cmd
            }
            Runner::Standalone => {
                let mut all = vec!["command"];
                all.extend(args.iter().map(String::as_str));
                node(data, &all)
            }
        };
        let Output {
            status,
            stdout,
            stderr,
        } = cmd
            .output()
            .unwrap_or_else(|e| panic!("{self:?} {args:?}: {e}"));
        Run {
            ok: status.success(),
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// The compiled-component cache the CLI tests share.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache")
}

/// Run `args` in every build; each must succeed, and their stdout is returned once it is
/// the same in all of them.
fn same_everywhere(data: &Path, args: &[&str]) -> String {
    let mut first: Option<String> = None;
    for runner in RUNNERS {
        let r = runner.run(data, args);
        assert!(r.ok, "{runner:?} {args:?} failed: {}", r.stderr);
        match &first {
            None => first = Some(r.stdout),
            Some(want) => assert_eq!(&r.stdout, want, "{runner:?} {args:?}: stdout differs"),
        }
    }
    first.unwrap_or_default()
}

/// Run `args` in every build; each must fail with nothing on stdout and the same error line.
fn fails_the_same_everywhere(data: &Path, args: &[&str]) -> String {
    let mut first: Option<String> = None;
    for runner in RUNNERS {
        let r = runner.run(data, args);
        assert!(!r.ok, "{runner:?} {args:?} succeeded: {}", r.stdout);
        assert_eq!(r.stdout, "", "{runner:?} {args:?}: stdout of a failure");
        let line = r.last_error_line().to_owned();
        assert!(line.starts_with("edgestore: error: "), "{runner:?}: {line}");
        match &first {
            None => first = Some(line),
            Some(want) => assert_eq!(&line, want, "{runner:?} {args:?}: error differs"),
        }
    }
    first.unwrap_or_default()
}

/// A spool in the CLI's layout with two finished segments of metrics; the segments.
fn write_spool(data: &Path) -> Vec<SegmentInfo> {
    let spool: Spool<Metric> = Spool::open_path(
        data.join(DEFAULT_SPOOL_PATH),
        SpoolConfig::new(DEFAULT_IDENTIFIER),
    )
    .unwrap();
    let mut metrics = edgestore::sample::MetricGenerator::new(7, 1_700_000_000_000);
    spool.put(&metrics.batch(40)).unwrap();
    spool.flush().unwrap();
    spool.put(&metrics.batch(30)).unwrap();
    spool.flush().unwrap();
    spool.segments(TimeRange::all()).unwrap()
}

#[test]
fn every_build_prints_the_same_for_one_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let segments = write_spool(data);
    common::write_resource_tags(data);
    assert_eq!(segments.len(), 2);
    let first = segments[0].name.as_str();
    let by_path = format!("{{spool}}/{first}");
    let since_ms = segments[1].start_ms.to_string();
    // Segments stop when they were finished: only the second ends after the first stopped.
    let since = Timestamp(segments[0].stop_ms + 1).to_rfc3339();
    let until = Timestamp(segments[1].start_ms).to_rfc3339();

    let list = same_everywhere(data, &["spool", "list"]);
    assert_eq!(list, present::segments(&segments, false));
    assert_eq!(
        same_everywhere(data, &["spool", "list", "--json"]),
        present::segments(&segments, true)
    );
    same_everywhere(data, &["spool", "list", "--since", &since_ms]);
    let cat = same_everywhere(data, &["spool", "cat", first]);
    assert_eq!(cat.lines().count(), 40);
    assert_eq!(same_everywhere(data, &["spool", "cat", &by_path]), cat);
    let later = same_everywhere(data, &["spool", "cat", "--since", &since]);
    assert_eq!(later.lines().count(), 30);
    assert_eq!(
        same_everywhere(data, &["spool", "cat", "--until", &until]),
        cat
    );
    assert_eq!(
        same_everywhere(data, &["spool", "cat"]),
        format!("{cat}{later}")
    );
    same_everywhere(data, &["spool", "usage"]);
    same_everywhere(data, &["spool", "usage", "--json"]);
    let verify = same_everywhere(data, &["spool", "verify"]);
    assert!(verify.starts_with("2 segments checked, 2 ok"), "{verify}");
    same_everywhere(data, &["spool", "verify", "--json"]);

    let models = same_everywhere(data, &["db", "models"]);
    assert!(models.contains("resource_tags"), "{models}");
    same_everywhere(data, &["db", "models", "--json"]);
    assert_eq!(
        same_everywhere(data, &["db", "count", "resource_tags"]),
        present::count(ResourceTags::TABLE, 3, false)
    );
    same_everywhere(data, &["db", "count", "resource_tags", "--json"]);
    let got = same_everywhere(
        data,
        &[
            "db",
            "get",
            "resource_tags",
            "pod/prod/web-0",
            "node/worker-1",
        ],
    );
    assert_eq!(got.lines().count(), 2);
    let unsent = same_everywhere(
        data,
        &[
            "db",
            "find",
            "resource_tags",
            "--where",
            "namespace=prod",
            "--where",
            "sent_at=null",
        ],
    );
    assert_eq!(unsent.lines().count(), 2);
    let sent = same_everywhere(
        data,
        &[
            "db",
            "find",
            "resource_tags",
            "--where",
            "sent_at=2023-11-14T22:13:20.500Z",
        ],
    );
    assert!(sent.contains("worker-1"), "{sent}");
    same_everywhere(data, &["db", "find", "resource_tags", "--limit", "1"]);

    let missing = fails_the_same_everywhere(data, &["db", "get", "resource_tags", "pod/prod/nope"]);
    assert!(missing.contains("not-found"), "{missing}");
    // A path outside the spool directory is no segment, whatever the build's paths.
    for runner in RUNNERS {
        let r = runner.run(data, &["spool", "cat", "{spool}/../edgestore.sqlite"]);
        assert!(!r.ok && r.stdout.is_empty(), "{runner:?}: {}", r.stdout);
        assert!(
            r.stderr.contains("is outside the spool directory"),
            "{runner:?}: {}",
            r.stderr
        );
    }
}

/// `spool flush` prints the segments it finished (here: the journal a stopped writer left),
/// in every build.
#[test]
fn flush_prints_the_segments_it_finished_in_every_build() {
    for runner in RUNNERS {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        let before = write_spool(data);
        {
            let spool: Spool<Metric> = Spool::open_path(
                data.join(DEFAULT_SPOOL_PATH),
                SpoolConfig::new(DEFAULT_IDENTIFIER),
            )
            .unwrap();
            let mut metrics = edgestore::sample::MetricGenerator::new(9, 1_800_000_000_000);
            spool.put(&metrics.batch(25)).unwrap();
            spool.sync().unwrap();
            // Dropped unfinished: the journal stays for the next owner.
        }
        let r = runner.run(data, &["spool", "flush"]);
        assert!(r.ok, "{runner:?}: {}", r.stderr);
        let after: Spool<Metric> = Spool::inspect_path(
            data.join(DEFAULT_SPOOL_PATH),
            SpoolConfig::new(DEFAULT_IDENTIFIER),
        )
        .unwrap();
        let new: Vec<SegmentInfo> = after
            .segments(TimeRange::all())
            .unwrap()
            .into_iter()
            .filter(|s| !before.iter().any(|b| b.name == s.name))
            .collect();
        assert_eq!(new.len(), 1, "{runner:?}");
        assert_eq!(new[0].rows, Some(25), "{runner:?}");
        assert_eq!(r.stdout, present::segments(&new, false), "{runner:?}");
    }
}

/// A data directory with a spool and no database yet (a spool-only owner has none): the
/// built-in model reads as empty in every build, and an unknown table fails in every build.
#[test]
fn a_directory_without_a_database_reads_as_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    write_spool(data);
    assert_eq!(
        same_everywhere(data, &["db", "models"]),
        present::models(&[], false)
    );
    assert_eq!(
        same_everywhere(data, &["db", "count", "resource_tags"]),
        present::count(ResourceTags::TABLE, 0, false)
    );
    assert_eq!(
        same_everywhere(
            data,
            &["db", "find", "resource_tags", "--where", "namespace=prod"]
        ),
        ""
    );
    fails_the_same_everywhere(data, &["db", "get", "resource_tags", "pod/prod/web-0"]);
    for runner in RUNNERS {
        let r = runner.run(data, &["db", "count", "widgets"]);
        assert!(!r.ok && r.stdout.is_empty(), "{runner:?}: {}", r.stdout);
    }
    assert!(
        !data.join(DEFAULT_DATABASE_FILE).exists(),
        "reading created the database"
    );
}
