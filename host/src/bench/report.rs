//! The `edgestore bench` report: its figures and how it prints. Only the host measures and
//! prints it, so it lives here rather than in the core's shared `edgestore::present`; its JSON
//! form is the shared one ([`edgestore::present::to_json`]).

use serde::Serialize;

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

impl BenchReport {
    /// The table (figure, value, target, status, note), or the JSON document.
    pub fn render(&self, json: bool) -> String {
        if json {
            edgestore::present::to_json(self)
        } else {
            self.to_string()
        }
    }
}

/// The text form: a header line, then one aligned line per figure.
impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "edgestore bench ({}), {}, {}, load {}",
            self.mode, self.date, self.machine, self.load
        )?;
        let width = self
            .figures
            .iter()
            .map(|f| f.figure.len())
            .max()
            .unwrap_or(6)
            .max(6);
        writeln!(
            f,
            "{:<width$} {:>14} {:<8} {:<12} {:<6} NOTE",
            "FIGURE", "VALUE", "UNIT", "TARGET", "STATUS"
        )?;
        for fig in &self.figures {
            let value = fig.value.map_or_else(|| "-".to_string(), number);
            let status = match fig.status {
                BenchStatus::Pass => "PASS",
                BenchStatus::Miss => "MISS",
                BenchStatus::Info => "INFO",
                BenchStatus::Skip => "SKIP",
            };
            let target = if fig.target.is_empty() {
                "-"
            } else {
                &fig.target
            };
            writeln!(
                f,
                "{:<width$} {:>14} {:<8} {:<12} {:<6} {}",
                fig.figure, value, fig.unit, target, status, fig.note
            )?;
        }
        Ok(())
    }
}

/// Three significant digits at least, no exponent: 0.0123, 1.23, 123, 123456.
fn number(v: f64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> BenchReport {
        BenchReport {
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
        }
    }

    #[test]
    fn bench_table_has_one_line_per_figure_and_json_keeps_fields() {
        let r = report();
        let text = r.render(false);
        assert_eq!(text.lines().count(), 4);
        assert!(text.contains("0.9123"), "{text}");
        assert!(text
            .lines()
            .nth(3)
            .is_some_and(|l| l.contains("SKIP") && l.contains(" - ")));
        let v: serde_json::Value = serde_json::from_str(&r.render(true)).unwrap();
        assert_eq!(v["figures"][0]["status"], "PASS");
        assert_eq!(v["figures"][1]["value"], serde_json::Value::Null);
    }

    #[test]
    fn the_table_is_what_the_core_used_to_print() {
        // Pinned byte for byte: the move to the host must not change the output.
        let text = report().render(false);
        let expected = concat!(
            "edgestore bench (quick), 2026-01-01T00:00:00Z, cpu x 2, load 0.5 -> 0.7\n",
            "FIGURE           VALUE UNIT     TARGET       STATUS NOTE\n",
            "a.ratio         0.9123 x        >= 0.9       PASS   \n",
            "b.cli                - x        <= 1         SKIP   no brotli\n",
        );
        assert_eq!(text, expected);
    }
}
