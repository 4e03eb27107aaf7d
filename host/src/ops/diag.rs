//! `edgestore diag`: what one store reports about itself (engine, backend, connections,
//! breaker, record counts, disk usage, last activity). Only the host prints it; the spool
//! usage inside it is the core's shared form ([`edgestore::present`]).

use edgestore::present;
use edgestore::spool::Usage;
use serde::Serialize;

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
    disk_usage: Option<serde_json::Value>,
    record_counts: std::collections::BTreeMap<&'a str, serde_json::Value>,
    last_operation_ms: Option<i64>,
    last_segment_ms: Option<i64>,
}

/// `edgestore diag`, text or JSON.
pub fn render(d: &Diagnostics, json: bool) -> String {
    if json {
        return present::to_json(&DiagnosticsView {
            engine: &d.engine,
            backend: &d.backend,
            connection_status: &d.connection_status,
            open_connections: d.open_connections,
            circuit: &d.circuit,
            disk_usage: d.usage.as_ref().map(present::usage_value),
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
        Some(u) => out.push_str(&present::usage(u, false)),
        None => out.push_str("disk usage: unavailable\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_in_both_forms() {
        let d = Diagnostics {
            engine: "native".into(),
            record_counts: vec![("t".into(), Ok(3)), ("u".into(), Err("busy".into()))],
            usage: Some(Usage::default()),
            ..Diagnostics::default()
        };
        let v: serde_json::Value = serde_json::from_str(&render(&d, true)).unwrap();
        assert_eq!(v["record_counts"]["t"], 3);
        assert_eq!(v["record_counts"]["u"]["error"], "busy");
        assert_eq!(v["disk_usage"]["total_bytes"], 0);
        let text = render(&d, false);
        assert!(text.contains("records t: 3\n"), "{text}");
    }
}
