//! How reports look on a terminal and as JSON: one place, so the `edgestore` CLI (either engine)
//! and the standalone component's command entry point print byte-identical output.
//!
//! Contract: every listing or report has a human text form (aligned columns, one trailing
//! newline) and a `--json` form (one JSON document, pretty-printed, one trailing newline).
//! Rows themselves (`spool cat`, `db get`, `db find`) are always JSON lines, one row per line.

use serde::Serialize;

use crate::dir::Capacity;
use crate::spool::{Counts, PurgeReport, SegmentInfo, SegmentState, Usage, VerifyReport};

/// The JSON shape of one listed segment.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentView<'a> {
    /// File name.
    pub name: &'a str,
    /// `pending` or `uploaded`.
    pub state: &'static str,
    /// First row's time, UTC ms.
    pub start_ms: i64,
    /// Finish time, UTC ms.
    pub stop_ms: i64,
    /// Rows (null when the sidecar is missing).
    pub rows: Option<u64>,
    /// Size on disk.
    pub bytes: u64,
}

impl<'a> From<&'a SegmentInfo> for SegmentView<'a> {
    fn from(s: &'a SegmentInfo) -> Self {
        SegmentView {
            name: &s.name,
            state: state_name(s.state),
            start_ms: s.start_ms,
            stop_ms: s.stop_ms,
            rows: s.rows,
            bytes: s.bytes,
        }
    }
}

/// `pending` or `uploaded`.
pub fn state_name(state: SegmentState) -> &'static str {
    match state {
        SegmentState::Pending => "pending",
        SegmentState::Uploaded => "uploaded",
    }
}

/// `spool list`.
pub fn segments(list: &[SegmentInfo], json: bool) -> String {
    if json {
        let views: Vec<SegmentView<'_>> = list.iter().map(SegmentView::from).collect();
        return to_json(&views);
    }
    let mut out = format!(
        "{:<9} {:>14} {:>14} {:>10} {:>12}  {}\n",
        "STATE", "START_MS", "STOP_MS", "ROWS", "BYTES", "NAME"
    );
    for s in list {
        let rows = s.rows.map_or_else(|| "-".to_string(), |r| r.to_string());
        out.push_str(&format!(
            "{:<9} {:>14} {:>14} {:>10} {:>12}  {}\n",
            state_name(s.state),
            s.start_ms,
            s.stop_ms,
            rows,
            s.bytes,
            s.name
        ));
    }
    let rows: u64 = list.iter().filter_map(|s| s.rows).sum();
    let bytes: u64 = list.iter().map(|s| s.bytes).sum();
    out.push_str(&format!(
        "{} segments, {rows} rows, {bytes} bytes\n",
        list.len()
    ));
    out
}

#[derive(Serialize)]
struct CountsView {
    files: u64,
    bytes: u64,
}

impl From<Counts> for CountsView {
    fn from(c: Counts) -> Self {
        CountsView {
            files: c.files,
            bytes: c.bytes,
        }
    }
}

#[derive(Serialize)]
struct CapacityView {
    total: u64,
    available: u64,
    used_percent: f64,
}

impl From<Capacity> for CapacityView {
    fn from(c: Capacity) -> Self {
        CapacityView {
            total: c.total,
            available: c.available,
            used_percent: used_percent(c),
        }
    }
}

/// Share of the file system in use, 0–100 (0 when the size is unknown or zero).
pub fn used_percent(c: Capacity) -> f64 {
    if c.total == 0 {
        return 0.0;
    }
    100.0 * (c.total.saturating_sub(c.available)) as f64 / c.total as f64
}

#[derive(Serialize)]
struct UsageView {
    pending: CountsView,
    uploaded: CountsView,
    quarantined: CountsView,
    journals: CountsView,
    total_bytes: u64,
    capacity: Option<CapacityView>,
}

/// `spool usage`.
pub fn usage(u: &Usage, json: bool) -> String {
    if json {
        return to_json(&usage_view(u));
    }
    let mut out = format!("{:<12} {:>8} {:>14}\n", "STATE", "FILES", "BYTES");
    for (name, c) in [
        ("pending", u.pending),
        ("uploaded", u.uploaded),
        ("quarantined", u.quarantined),
        ("journals", u.journals),
    ] {
        out.push_str(&format!("{name:<12} {:>8} {:>14}\n", c.files, c.bytes));
    }
    out.push_str(&format!("total bytes: {}\n", u.total_bytes()));
    if let Some(c) = u.capacity {
        out.push_str(&format!(
            "file system: {} of {} bytes available ({:.1}% used)\n",
            c.available,
            c.total,
            used_percent(c)
        ));
    }
    out
}

#[derive(Serialize)]
struct VerifyView<'a> {
    checked: u64,
    ok: u64,
    quarantined: &'a [String],
    left_in_place: &'a [String],
}

/// `spool verify`. Bad segments an inspecting spool found are shown as left for the owner
/// (they were not moved).
pub fn verify(r: &VerifyReport, json: bool) -> String {
    let ok = r.checked.saturating_sub(r.bad());
    if json {
        return to_json(&VerifyView {
            checked: r.checked,
            ok,
            quarantined: &r.quarantined,
            left_in_place: &r.left_in_place,
        });
    }
    let mut out = format!(
        "{} segments checked, {ok} ok, {} quarantined",
        r.checked,
        r.quarantined.len()
    );
    if !r.left_in_place.is_empty() {
        out.push_str(&format!(
            ", {} bad, left for the owner to quarantine",
            r.left_in_place.len()
        ));
    }
    out.push('\n');
    for name in &r.quarantined {
        out.push_str(&format!("quarantined: {name}\n"));
    }
    for name in &r.left_in_place {
        out.push_str(&format!("bad, left for the owner to quarantine: {name}\n"));
    }
    out
}

#[derive(Serialize)]
struct PurgeView<'a> {
    expired: &'a [String],
    dropped_uploaded: &'a [String],
    dropped_pending: &'a [String],
    bytes_freed: u64,
}

/// `spool purge`.
pub fn purge(r: &PurgeReport, json: bool) -> String {
    if json {
        return to_json(&PurgeView {
            expired: &r.expired,
            dropped_uploaded: &r.dropped_uploaded,
            dropped_pending: &r.dropped_pending,
            bytes_freed: r.bytes_freed,
        });
    }
    let mut out = format!(
        "purged {} segments ({} expired, {} uploaded and {} pending dropped for space), {} bytes freed\n",
        r.expired.len() + r.dropped_uploaded.len() + r.dropped_pending.len(),
        r.expired.len(),
        r.dropped_uploaded.len(),
        r.dropped_pending.len(),
        r.bytes_freed
    );
    for name in r
        .expired
        .iter()
        .chain(&r.dropped_uploaded)
        .chain(&r.dropped_pending)
    {
        out.push_str(&format!("removed: {name}\n"));
    }
    out
}

/// `db models` of the standalone component: the models recorded in the database's schema
/// table (it has no built-in model registry).
pub fn recorded_models(list: &[crate::inspect::ModelInfo], json: bool) -> String {
    if json {
        return to_json(list);
    }
    let mut out = format!("{:<32} {:>8} {:>12}\n", "TABLE", "VERSION", "ROWS");
    for m in list {
        out.push_str(&format!(
            "{:<32} {:>8} {:>12}\n",
            m.table, m.version, m.rows
        ));
    }
    out
}

#[derive(Serialize)]
struct HealthView<'a> {
    status: &'static str,
    healthy: bool,
    reasons: &'a [String],
}

/// `edgestore health` and `serve`'s `/healthz`: `healthy`, or `unhealthy` and one reason per
/// line.
pub fn health(healthy: bool, reasons: &[String], json: bool) -> String {
    let status = if healthy { "healthy" } else { "unhealthy" };
    if json {
        return to_json(&HealthView {
            status,
            healthy,
            reasons,
        });
    }
    let mut out = format!("{status}\n");
    for r in reasons {
        out.push_str(&format!("reason: {r}\n"));
    }
    out
}

/// Whether a benchmark figure met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BenchStatus {
    /// The median met the target.
    Pass,
    /// The median missed the target.
    Miss,
    /// Measured for context; it has no target.
    Info,
    /// Not measured here (a tool it compares against is missing); `note` says why.
    Skip,
}

/// One figure of `edgestore bench`: a median (or a ratio of medians measured side by side).
#[derive(Debug, Clone, Serialize)]
pub struct BenchFigure {
    /// Stable dotted name, e.g. `spool.ingest.native.l6.vs_raw`.
    pub figure: String,
    /// The measured median; `None` only when `status` is `Skip`.
    pub value: Option<f64>,
    /// Unit of `value` (`x` for ratios).
    pub unit: String,
    /// The target as text (`>= 0.9`), empty when there is none.
    pub target: String,
    /// PASS, MISS, INFO or SKIP.
    pub status: BenchStatus,
    /// Sizes, baseline values, or why the figure was skipped.
    pub note: String,
}

/// The whole `edgestore bench` report: where and when it ran, then every figure.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `quick` or `full`.
    pub mode: String,
    /// Start time, RFC 3339 UTC.
    pub date: String,
    /// CPU model and core count.
    pub machine: String,
    /// `/proc/loadavg`'s 1-minute load at the start and at the end.
    pub load: String,
    /// Every figure, in measuring order.
    pub figures: Vec<BenchFigure>,
}

/// `edgestore bench`: one table (figure, value, target, status, note) or the JSON document.
pub fn bench(r: &BenchReport, json: bool) -> String {
    if json {
        return to_json(r);
    }
    let mut out = format!(
        "edgestore bench ({}), {}, {}, load {}\n",
        r.mode, r.date, r.machine, r.load
    );
    let width = r
        .figures
        .iter()
        .map(|f| f.figure.len())
        .max()
        .unwrap_or(6)
        .max(6);
    out.push_str(&format!(
        "{:<width$} {:>14} {:<8} {:<12} {:<6} {}\n",
        "FIGURE", "VALUE", "UNIT", "TARGET", "STATUS", "NOTE"
    ));
    for f in &r.figures {
        let value = f.value.map_or_else(|| "-".to_string(), bench_number);
        let status = match f.status {
            BenchStatus::Pass => "PASS",
            BenchStatus::Miss => "MISS",
            BenchStatus::Info => "INFO",
            BenchStatus::Skip => "SKIP",
        };
        let target = if f.target.is_empty() { "-" } else { &f.target };
        out.push_str(&format!(
            "{:<width$} {:>14} {:<8} {:<12} {:<6} {}\n",
            f.figure, value, f.unit, target, status, f.note
        ));
    }
    out
}

/// What `edgestore diag` reports.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    /// `native` or `component`.
    pub engine: String,
    /// Which SQL backend serves the repository.
    pub backend: String,
    /// `ok`, or what the database answered.
    pub connection_status: String,
    /// SQLite connections open.
    pub open_connections: u64,
    /// The circuit breaker: `closed`, `open`, `half-open`.
    pub circuit: String,
    /// The spool's usage (absent when the spool could not be opened).
    pub usage: Option<Usage>,
    /// Rows per model (table), or the error counting it.
    pub record_counts: Vec<(String, std::result::Result<u64, String>)>,
    /// When the last operation ended, UTC ms.
    pub last_operation_ms: Option<i64>,
    /// When the newest finished segment was finished, UTC ms.
    pub last_segment_ms: Option<i64>,
}

#[derive(Serialize)]
struct DiagnosticsView<'a> {
    engine: &'a str,
    backend: &'a str,
    connection_status: &'a str,
    open_connections: u64,
    circuit: &'a str,
    disk_usage: Option<UsageView>,
    record_counts: std::collections::BTreeMap<&'a str, serde_json::Value>,
    last_operation_ms: Option<i64>,
    last_segment_ms: Option<i64>,
}

fn usage_view(u: &Usage) -> UsageView {
    UsageView {
        pending: u.pending.into(),
        uploaded: u.uploaded.into(),
        quarantined: u.quarantined.into(),
        journals: u.journals.into(),
        total_bytes: u.total_bytes(),
        capacity: u.capacity.map(CapacityView::from),
    }
}

/// `edgestore diag`.
pub fn diagnostics(d: &Diagnostics, json: bool) -> String {
    if json {
        return to_json(&DiagnosticsView {
            engine: &d.engine,
            backend: &d.backend,
            connection_status: &d.connection_status,
            open_connections: d.open_connections,
            circuit: &d.circuit,
            disk_usage: d.usage.as_ref().map(usage_view),
            record_counts: d
                .record_counts
                .iter()
                .map(|(m, c)| {
                    let v = match c {
                        Ok(n) => serde_json::Value::from(*n),
                        Err(e) => serde_json::json!({ "error": e }),
                    };
                    (m.as_str(), v)
                })
                .collect(),
            last_operation_ms: d.last_operation_ms,
            last_segment_ms: d.last_segment_ms,
        });
    }
    let ms = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |m| m.to_string());
    let mut out = format!(
        "engine: {}\nbackend: {}\nconnection: {}\nopen connections: {}\ncircuit: {}\n",
        d.engine, d.backend, d.connection_status, d.open_connections, d.circuit
    );
    for (model, count) in &d.record_counts {
        match count {
            Ok(n) => out.push_str(&format!("records {model}: {n}\n")),
            Err(e) => out.push_str(&format!("records {model}: error: {e}\n")),
        }
    }
    out.push_str(&format!(
        "last operation ms: {}\nlast segment ms: {}\n",
        ms(d.last_operation_ms),
        ms(d.last_segment_ms)
    ));
    match &d.usage {
        Some(u) => out.push_str(&usage(u, false)),
        None => out.push_str("disk usage: unavailable\n"),
    }
    out
}

/// Three significant digits at least, no exponent: 0.0123, 1.23, 123, 123456.
fn bench_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

#[derive(Serialize)]
struct WrittenView<'a> {
    what: &'a str,
    rows: u64,
    durable: &'a str,
}

/// `spool put`, `db put`: how many rows were taken and how durable they are now
/// (`segment`: in finished segments; `journal`: synced, finished on the next open or flush;
/// `committed`: in the database).
pub fn written(what: &str, rows: u64, durable: &str, json: bool) -> String {
    if json {
        return to_json(&WrittenView {
            what,
            rows,
            durable,
        });
    }
    format!("{what}: {rows} rows written ({durable})\n")
}

#[derive(Serialize)]
struct CountView<'a> {
    what: &'a str,
    count: u64,
}

/// A single count (`db count`, `db delete`, `spool ack`).
pub fn count(what: &str, count: u64, json: bool) -> String {
    if json {
        return to_json(&CountView { what, count });
    }
    format!("{what}: {count}\n")
}

/// One listed model (`db models`).
#[derive(Debug, Clone, Serialize)]
pub struct ModelView {
    /// Name used on the command line.
    pub name: String,
    /// Its table.
    pub table: String,
    /// Textual key syntax.
    pub key: String,
    /// Column names in order.
    pub columns: Vec<String>,
}

/// `db models`.
pub fn models(list: &[ModelView], json: bool) -> String {
    if json {
        return to_json(list);
    }
    let mut out = format!(
        "{:<16} {:<16} {:<28}  {}\n",
        "MODEL", "TABLE", "KEY", "COLUMNS"
    );
    for m in list {
        out.push_str(&format!(
            "{:<16} {:<16} {:<28}  {}\n",
            m.name,
            m.table,
            m.key,
            m.columns.join(",")
        ));
    }
    out
}

/// One row as a JSON line (no trailing newline added; callers print with `println!`).
/// Serialisation of our own row types cannot fail; a failure is reported as an internal error.
pub fn json_line<T: Serialize + ?Sized>(row: &T) -> crate::Result<String> {
    serde_json::to_string(row).map_err(|e| crate::Error::internal(format!("encode row: {e}")))
}

/// A pretty JSON document with one trailing newline.
fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Our views hold only strings and numbers: serialisation cannot fail, but never panic.
    let mut s =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_table_has_one_line_per_figure_and_json_keeps_fields() {
        let r = BenchReport {
            mode: "quick".into(),
            date: "2026-01-01T00:00:00Z".into(),
            machine: "cpu x 2".into(),
            load: "0.5 -> 0.7".into(),
            figures: vec![
                BenchFigure {
                    figure: "a.ratio".into(),
                    value: Some(0.91234),
                    unit: "x".into(),
                    target: ">= 0.9".into(),
                    status: BenchStatus::Pass,
                    note: String::new(),
                },
                BenchFigure {
                    figure: "b.cli".into(),
                    value: None,
                    unit: "x".into(),
                    target: "<= 1".into(),
                    status: BenchStatus::Skip,
                    note: "no brotli".into(),
                },
            ],
        };
        let text = bench(&r, false);
        assert_eq!(text.lines().count(), 4);
        assert!(text.contains("0.9123"), "{text}");
        assert!(text
            .lines()
            .nth(3)
            .is_some_and(|l| l.contains("SKIP") && l.contains(" - ")));
        let v: serde_json::Value = serde_json::from_str(&bench(&r, true)).unwrap();
        assert_eq!(v["figures"][0]["status"], "PASS");
        assert_eq!(v["figures"][1]["value"], serde_json::Value::Null);
    }

    fn seg(name: &str, state: SegmentState, rows: Option<u64>) -> SegmentInfo {
        SegmentInfo {
            name: name.into(),
            identifier: "m".into(),
            start_ms: 1,
            stop_ms: 2,
            rows,
            bytes: 10,
            state,
        }
    }

    #[test]
    fn segment_list_json_round_trips_fields() {
        let list = [
            seg("m_1_2.json.br", SegmentState::Pending, Some(3)),
            seg("m_3_4.json.br", SegmentState::Uploaded, None),
        ];
        let v: serde_json::Value = serde_json::from_str(&segments(&list, true)).unwrap();
        assert_eq!(v[0]["name"], "m_1_2.json.br");
        assert_eq!(v[0]["state"], "pending");
        assert_eq!(v[0]["rows"], 3);
        assert_eq!(v[1]["state"], "uploaded");
        assert!(v[1]["rows"].is_null());
        let text = segments(&list, false);
        assert!(text.ends_with("2 segments, 3 rows, 20 bytes\n"), "{text}");
    }

    #[test]
    fn health_and_diagnostics_in_both_forms() {
        let reasons = vec!["disk 95.0% used".to_owned()];
        assert_eq!(health(true, &[], false), "healthy\n");
        assert_eq!(
            health(false, &reasons, false),
            "unhealthy\nreason: disk 95.0% used\n"
        );
        let v: serde_json::Value = serde_json::from_str(&health(false, &reasons, true)).unwrap();
        assert_eq!(v["healthy"], false);
        assert_eq!(v["reasons"][0], "disk 95.0% used");
        let d = Diagnostics {
            engine: "native".into(),
            record_counts: vec![("t".into(), Ok(3)), ("u".into(), Err("busy".into()))],
            usage: Some(Usage::default()),
            ..Diagnostics::default()
        };
        let v: serde_json::Value = serde_json::from_str(&diagnostics(&d, true)).unwrap();
        assert_eq!(v["record_counts"]["t"], 3);
        assert_eq!(v["record_counts"]["u"]["error"], "busy");
        assert_eq!(v["disk_usage"]["total_bytes"], 0);
        let text = diagnostics(&d, false);
        assert!(text.contains("records t: 3\n"), "{text}");
    }

    #[test]
    fn verify_counts_ok_segments() {
        let r = VerifyReport {
            checked: 3,
            quarantined: vec!["bad".into()],
            left_in_place: Vec::new(),
        };
        let v: serde_json::Value = serde_json::from_str(&verify(&r, true)).unwrap();
        assert_eq!(v["ok"], 2);
        assert_eq!(v["left_in_place"], serde_json::json!([]));
        let text = verify(&r, false);
        assert!(text.contains("quarantined: bad"), "{text}");
        assert!(!text.contains("left for the owner"), "{text}");
    }

    #[test]
    fn verify_shows_segments_left_for_the_owner() {
        let r = VerifyReport {
            checked: 4,
            quarantined: Vec::new(),
            left_in_place: vec!["a_1_2.json.br".into()],
        };
        let v: serde_json::Value = serde_json::from_str(&verify(&r, true)).unwrap();
        assert_eq!(v["ok"], 3);
        assert_eq!(v["left_in_place"][0], "a_1_2.json.br");
        let text = verify(&r, false);
        assert!(
            text.starts_with("4 segments checked, 3 ok, 0 quarantined, 1 bad, left for the owner to quarantine\n"),
            "{text}"
        );
        assert!(
            text.contains("bad, left for the owner to quarantine: a_1_2.json.br\n"),
            "{text}"
        );
    }

    #[test]
    fn counts_and_written_have_both_forms() {
        assert_eq!(count("deleted", 2, false), "deleted: 2\n");
        let v: serde_json::Value = serde_json::from_str(&count("deleted", 2, true)).unwrap();
        assert_eq!(v["count"], 2);
        let v: serde_json::Value =
            serde_json::from_str(&written("spool", 5, "segment", true)).unwrap();
        assert_eq!(
            (v["rows"].as_u64(), v["durable"].as_str()),
            (Some(5), Some("segment"))
        );
        let m = ModelView {
            name: "resource_tags".into(),
            table: "resource_tags".into(),
            key: "TYPE/NAMESPACE/NAME".into(),
            columns: vec!["id".into(), "type".into()],
        };
        assert!(models(std::slice::from_ref(&m), false).contains("id,type"));
    }

    #[test]
    fn used_percent_handles_unknown_size() {
        assert_eq!(
            used_percent(Capacity {
                total: 0,
                available: 0
            }),
            0.0
        );
        assert_eq!(
            used_percent(Capacity {
                total: 200,
                available: 50
            }),
            75.0
        );
    }
}
