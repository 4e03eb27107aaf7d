//! The command line of the inspection and maintenance commands, defined once for every build
//! that offers them: the `edgestore` CLI (which adds its host-only commands and flags around
//! these types) and the standalone component's command. One definition keeps their arguments,
//! defaults and help identical; what the commands print is [`crate::present`]'s.
//!
//! Besides the clap types, the few rules both builds apply to arguments and results live here:
//! segment arguments ([`segment_name`]), the key syntax `db models` shows ([`model_view`]), what
//! `spool flush` and `spool usage` report ([`newly_finished`], [`spool_usage`]), when
//! `spool verify` fails ([`verify_failure`]) and how an error is printed ([`ERROR_PREFIX`]).
//!
//! Compiled with feature `cli`.

use std::path::{Component, Path, PathBuf};

use clap::{Args, Subcommand};

use crate::error::{Error, Result};
use crate::inspect::Filter;
use crate::layout::{DEFAULT_IDENTIFIER, DEFAULT_SPOOL_PATH};
use crate::model::{Model as _, ResourceTags, Schema, Timestamp};
use crate::present::ModelView;
use crate::spool::{SegmentInfo, TimeRange, Usage, VerifyReport, UPLOADED_DIR};

/// What every error line on stderr starts with, in every build.
pub const ERROR_PREFIX: &str = "edgestore: error: ";

/// Options of every command's output.
#[derive(Debug, Clone, Args)]
pub struct Output {
    /// Print listings and reports as one JSON document instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Which spool a command works on.
#[derive(Debug, Clone, Args)]
pub struct SpoolArgs {
    /// Spool directory, relative to the data directory. Default: the configuration's
    /// `storage.path` where there is one (the edgestore CLI), otherwise metrics.
    // An `Option`, not a clap default: the edgestore CLI layers a given flag over its config.
    #[arg(long, value_name = "DIR")]
    pub path: Option<String>,
    /// Identifier of the segments this command writes (the first component of their names).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_IDENTIFIER)]
    pub identifier: String,
}

impl SpoolArgs {
    /// `--path`, or the default spool directory when none was given and nothing configures
    /// one.
    pub fn path_or_default(&self) -> &str {
        self.path.as_deref().unwrap_or(DEFAULT_SPOOL_PATH)
    }
}

/// A time range of segments.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// Only segments ending at or after T (RFC3339, or UTC milliseconds).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only segments starting before T (RFC3339, or UTC milliseconds).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub until: Option<i64>,
}

impl RangeArgs {
    /// The range; unbounded on a side not given.
    pub fn range(&self) -> TimeRange {
        TimeRange {
            from_ms: self.since,
            to_ms: self.until,
        }
    }
}

/// No further flags: a build without host-only purge options.
#[derive(Debug, Clone, Default, Args)]
pub struct NoFlags {}

/// The spool's inspection and maintenance commands. `P` is what a build adds to `purge`
/// (the edgestore CLI: its retention flags).
#[derive(Debug, Clone, Subcommand)]
pub enum SpoolCommand<P: Args = NoFlags> {
    /// List finished segments (pending and uploaded).
    List {
        /// The spool.
        #[command(flatten)]
        spool: SpoolArgs,
        /// The time range.
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Print rows as JSON lines, exactly as stored: of one segment, or of every finished
    /// segment in the time range (all of them without --since/--until).
    Cat {
        /// The spool.
        #[command(flatten)]
        spool: SpoolArgs,
        /// Segment file name (`agent_<startMs>_<stopMs>.json.br`), or its path inside the
        /// spool directory.
        #[arg(value_name = "SEGMENT", conflicts_with_all = ["since", "until"])]
        segment: Option<String>,
        /// The time range.
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Files and bytes by state.
    Usage {
        /// The spool.
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Check every finished segment's checksum and quarantine the bad ones; beside an owner
    /// that takes no forwarded commands, list them and leave them in place. Fails if any is
    /// bad.
    Verify {
        /// The spool.
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Mark segments uploaded (moves them to `uploaded/`, where retention deletes them).
    Ack {
        /// The spool.
        #[command(flatten)]
        spool: SpoolArgs,
        /// Segment file names, or their paths inside the spool directory.
        #[arg(value_name = "SEGMENT", required = true)]
        segments: Vec<String>,
    },
    /// Delete uploaded segments older than the retention age, then enforce the byte cap.
    Purge {
        /// The spool.
        #[command(flatten)]
        spool: SpoolArgs,
        /// What the build adds.
        #[command(flatten)]
        options: P,
    },
    /// Finish the active segment and every journal a stopped writer left, so every row taken
    /// before is in a finished segment; print the segments this finished.
    Flush {
        /// The spool.
        #[command(flatten)]
        spool: SpoolArgs,
    },
}

impl<P: Args> SpoolCommand<P> {
    /// The spool it works on.
    pub fn spool(&self) -> &SpoolArgs {
        match self {
            SpoolCommand::List { spool, .. }
            | SpoolCommand::Cat { spool, .. }
            | SpoolCommand::Usage { spool }
            | SpoolCommand::Verify { spool }
            | SpoolCommand::Ack { spool, .. }
            | SpoolCommand::Purge { spool, .. }
            | SpoolCommand::Flush { spool } => spool,
        }
    }

    /// Its name on the command line (`list`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            SpoolCommand::List { .. } => "list",
            SpoolCommand::Cat { .. } => "cat",
            SpoolCommand::Usage { .. } => "usage",
            SpoolCommand::Verify { .. } => "verify",
            SpoolCommand::Ack { .. } => "ack",
            SpoolCommand::Purge { .. } => "purge",
            SpoolCommand::Flush { .. } => "flush",
        }
    }

    /// Whether it only reads (runs beside an owner, never takes the data directory).
    pub fn is_inspection(&self) -> bool {
        matches!(
            self,
            SpoolCommand::List { .. } | SpoolCommand::Cat { .. } | SpoolCommand::Usage { .. }
        )
    }
}

/// The repository database's read commands.
#[derive(Debug, Clone, Subcommand)]
pub enum DbCommand {
    /// The models whose tables the database holds: name, table, key syntax (for `db get`)
    /// and columns.
    Models,
    /// Count a table's rows (0 for a built-in model whose table nothing created yet).
    Count {
        /// Table name (see `db models`).
        table: String,
    },
    /// Print rows by key as JSON lines. resource_tags keys: TYPE/NAMESPACE/NAME, or
    /// TYPE/NAME for a cluster-scoped resource (e.g. pod/prod/web-0, node/worker-1); other
    /// tables: one key, one value per key column in key order.
    Get {
        /// Table name (see `db models`).
        table: String,
        /// Keys (resource_tags), or the key's column values (other tables).
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
    /// Print rows matching every --where as JSON lines, in key order.
    Find {
        /// Table name (see `db models`).
        table: String,
        /// `column=value` (repeatable; all must hold). `column=null` matches NULL. Integer and
        /// real columns take numbers, bool columns true/false/1/0, timestamp columns RFC3339 or
        /// UTC milliseconds, JSON columns a JSON document.
        #[arg(long = "where", value_name = "COL=VALUE", value_parser = parse_filter)]
        filters: Vec<Filter>,
        /// At most N rows.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
}

impl DbCommand {
    /// Its name on the command line (`models`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            DbCommand::Models => "models",
            DbCommand::Count { .. } => "count",
            DbCommand::Get { .. } => "get",
            DbCommand::Find { .. } => "find",
        }
    }
}

/// `--since`/`--until`: the core's command-line time ([`Timestamp::parse_arg`]).
fn parse_time(text: &str) -> std::result::Result<i64, String> {
    Timestamp::parse_arg(text)
        .map(|t| t.0)
        .map_err(|e| e.message().to_owned())
}

/// `--where`: `COLUMN=VALUE`, typed later by the column ([`Filter::condition`]).
fn parse_filter(text: &str) -> std::result::Result<Filter, String> {
    Filter::parse(text).map_err(|e| e.message().to_owned())
}

/// A segment argument as the segment's file name: a bare name, or a path to a file directly in
/// `spool_dir` or its `uploaded/`. Relative paths start at the current directory; `.` and `..`
/// are folded lexically (nothing is opened). Anything else is `invalid-input`, naming the
/// spool directory, so a path elsewhere is never mistaken for a segment of this spool.
pub fn segment_name(arg: &str, spool_dir: &Path) -> Result<String> {
    let p = Path::new(arg);
    let mut parts = p.components();
    if let (Some(Component::Normal(name)), None) = (parts.next(), parts.next()) {
        if let Some(name) = name.to_str() {
            return Ok(name.to_owned());
        }
    }
    let (Some(dir), Some(file)) = (p.parent(), p.file_name().and_then(|f| f.to_str())) else {
        return Err(Error::invalid_input(format!(
            "segment {arg:?} is not a segment file name"
        )));
    };
    let dir = lexical(dir);
    let spool_dir = lexical(spool_dir);
    if dir == spool_dir || dir == spool_dir.join(UPLOADED_DIR) {
        Ok(file.to_owned())
    } else {
        Err(Error::invalid_input(format!(
            "segment {arg:?} is outside the spool directory {}",
            spool_dir.display()
        )))
    }
}

/// Absolute, with `.` dropped and `..` folded lexically (for comparison only).
fn lexical(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(d) => d.join(p),
            Err(_) => Path::new("/").join(p),
        }
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The built-in models' schemas by table: the tables every build's `db` commands know without
/// reading the database. One that nothing created yet reads as empty (0 rows, no matches,
/// every key not found) rather than as an unknown table.
pub fn built_in_schema(table: &str) -> Option<Schema> {
    (table == ResourceTags::TABLE).then(ResourceTags::schema)
}

/// The tables of the built-in models ([`built_in_schema`]).
pub const BUILT_IN_TABLES: &[&str] = &[ResourceTags::TABLE];

/// The key syntax of a table on the command line: resource_tags' own
/// ([`ResourceTags::KEY_SYNTAX`]), otherwise one value per key column, in key order.
pub fn key_syntax(schema: &Schema) -> String {
    if schema.table == ResourceTags::TABLE {
        return ResourceTags::KEY_SYNTAX.to_owned();
    }
    schema
        .key
        .iter()
        .map(|k| k.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// How `db models` shows a table: named by its table, with its key syntax and columns.
pub fn model_view(schema: &Schema) -> ModelView {
    ModelView {
        name: schema.table.clone(),
        table: schema.table.clone(),
        key: key_syntax(schema),
        columns: schema.columns.iter().map(|c| c.name.clone()).collect(),
    }
}

/// What `spool flush` reports: the segments in `after` that `before` (the finished segments
/// when the command started) did not have.
pub fn newly_finished(before: &[SegmentInfo], after: Vec<SegmentInfo>) -> Vec<SegmentInfo> {
    after
        .into_iter()
        .filter(|s| !before.iter().any(|b| b.name == s.name))
        .collect()
}

/// What `spool usage` reports: the spool's own files and bytes, without the file system's
/// free space (`edgestore diag` and `health` report that): it is not the data directory's, it
/// changes from one moment to the next, and a WASI component cannot tell it.
pub fn spool_usage(usage: Usage) -> Usage {
    Usage {
        capacity: None,
        ..usage
    }
}

/// `spool ack`: every name must be a finished segment (`known`), or nothing moves.
pub fn check_segments_known(names: &[String], known: &[SegmentInfo]) -> Result<()> {
    match names.iter().find(|n| !known.iter().any(|k| &k.name == *n)) {
        Some(missing) => Err(Error::not_found(format!("no such segment: {missing}"))),
        None => Ok(()),
    }
}

/// Why `spool verify` fails after printing its report: bad segments, quarantined or left in
/// place for the directory's owner. `None` when every segment was sound.
pub fn verify_failure(report: &VerifyReport) -> Option<Error> {
    let (what, names) = if !report.left_in_place.is_empty() {
        (
            "left in place for the owner to quarantine",
            &report.left_in_place,
        )
    } else if !report.quarantined.is_empty() {
        ("quarantined", &report.quarantined)
    } else {
        return None;
    };
    Some(Error::corrupt(format!(
        "{} bad segment(s) {what}: {}",
        names.len(),
        names.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        output: Output,
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, Subcommand)]
    enum Top {
        #[command(subcommand)]
        Spool(SpoolCommand),
        #[command(subcommand)]
        Db(DbCommand),
    }

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("edgestore").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent_and_names_the_defaults() {
        Cli::command().debug_assert();
        let cmd = Cli::command();
        let list = cmd
            .find_subcommand("spool")
            .and_then(|s| s.find_subcommand("list"))
            .unwrap();
        let help = |id: &str| {
            list.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default()
        };
        assert!(
            help("path").contains(DEFAULT_SPOOL_PATH),
            "{}",
            help("path")
        );
    }

    #[test]
    fn spool_arguments_and_defaults() {
        let cli = parse(&["spool", "list", "--since", "1970-01-01T00:00:01Z", "--json"]).unwrap();
        assert!(cli.output.json);
        let Top::Spool(SpoolCommand::List { spool, range }) = cli.command else {
            panic!("not list");
        };
        assert_eq!(spool.path_or_default(), DEFAULT_SPOOL_PATH);
        assert_eq!(spool.identifier, DEFAULT_IDENTIFIER);
        assert_eq!((range.since, range.until), (Some(1000), None));
        assert!(parse(&["spool", "list", "--until", "soon"]).is_err());
        // One segment, or a range: not both.
        assert!(parse(&["spool", "cat", "a_1_2.json.br", "--since", "5"]).is_err());
        assert!(parse(&["spool", "cat", "--since", "5"]).is_ok());
        assert!(parse(&["spool", "ack"]).is_err());
    }

    #[test]
    fn where_is_checked_while_parsing() {
        let cli = parse(&["db", "find", "t", "--where", "a=b=c", "--limit", "2"]).unwrap();
        let Top::Db(DbCommand::Find { filters, limit, .. }) = cli.command else {
            panic!("not find");
        };
        assert_eq!(filters, vec![Filter::parse("a=b=c").unwrap()]);
        assert_eq!(limit, Some(2));
        let e = parse(&["db", "find", "t", "--where", "nothing"]).unwrap_err();
        assert!(e.to_string().contains("expected COLUMN=VALUE"), "{e}");
    }

    #[test]
    fn segment_arguments() {
        let spool = Path::new("/srv/data/metrics");
        assert_eq!(
            segment_name("agent_1_2.json.br", spool).unwrap(),
            "agent_1_2.json.br"
        );
        for ok in [
            "/srv/data/metrics/agent_1_2.json.br",
            "/srv/data/metrics/uploaded/agent_1_2.json.br",
            "/srv/data/./x/../metrics/agent_1_2.json.br",
        ] {
            assert_eq!(
                segment_name(ok, spool).unwrap(),
                "agent_1_2.json.br",
                "{ok}"
            );
        }
        for bad in [
            "/etc/passwd",
            "../../etc/passwd",
            "/srv/data/agent_1_2.json.br",
            "..",
        ] {
            let e = segment_name(bad, spool).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn key_syntax_follows_the_table() {
        assert_eq!(
            key_syntax(&ResourceTags::schema()),
            ResourceTags::KEY_SYNTAX
        );
        let schema = Schema::new("item")
            .column(crate::Column::new("id", crate::ColumnType::Integer))
            .column(crate::Column::new("at", crate::ColumnType::Integer))
            .key(&["id", "at"]);
        let view = model_view(&schema);
        assert_eq!((view.name.as_str(), view.key.as_str()), ("item", "ID AT"));
        assert_eq!(view.columns, ["id", "at"]);
        for table in BUILT_IN_TABLES {
            assert_eq!(
                built_in_schema(table).map(|s| s.table),
                Some((*table).to_owned())
            );
        }
        assert!(built_in_schema("item").is_none());
    }

    #[test]
    fn flush_reports_new_segments_and_verify_fails_on_bad_ones() {
        let seg = |name: &str| SegmentInfo {
            name: name.into(),
            identifier: "agent".into(),
            start_ms: 1,
            stop_ms: 2,
            rows: Some(1),
            bytes: 1,
            state: crate::spool::SegmentState::Pending,
        };
        let new = newly_finished(&[seg("a")], vec![seg("a"), seg("b")]);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].name, "b");
        assert!(check_segments_known(&["a".into()], &[seg("a")]).is_ok());
        let e = check_segments_known(&["a".into(), "z".into()], &[seg("a")]).unwrap_err();
        assert_eq!(e.message(), "no such segment: z");

        let mut report = VerifyReport {
            checked: 2,
            quarantined: Vec::new(),
            left_in_place: Vec::new(),
        };
        assert!(verify_failure(&report).is_none());
        report.quarantined = vec!["b".into()];
        let e = verify_failure(&report).unwrap();
        assert_eq!(e.message(), "1 bad segment(s) quarantined: b");
        report.quarantined.clear();
        report.left_in_place = vec!["a".into(), "b".into()];
        let e = verify_failure(&report).unwrap();
        assert!(e.message().contains("left in place"), "{e}");
    }
}
