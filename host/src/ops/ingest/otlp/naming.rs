//! OTLP names to Prometheus names, as the OpenTelemetry Collector's Prometheus exporter writes
//! them by default (its `add_metric_suffixes: true`, the OTel-to-Prometheus compatibility
//! specification, Prometheus' own OTLP translation): the agent scrapes that exporter, so a
//! series ingested here is named as the agent would have named it.
//!
//! * Metric names: split at every character outside `[a-zA-Z0-9:]` (so `.`, `-`, runs of `_`
//!   all become one `_`), the unit appended as a word (`s` -> `seconds`, `By` -> `bytes`,
//!   `By/s` -> `bytes_per_second`; annotations like `{request}` and the unit `1` add nothing),
//!   then `total` last for monotonic sums and `ratio` for gauges of unit `1`; a leading digit
//!   gets a `_`.
//! * Label names: every character outside `[a-zA-Z0-9_]` becomes `_`; a leading digit gets
//!   `key_`, a single leading `_` gets `key`.

/// What the name is for: suffixes depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A gauge (`ratio` for unit `1`).
    Gauge,
    /// A monotonic sum (`total`).
    Counter,
    /// A non-monotonic sum, a histogram or a summary (unit only).
    Other,
}

/// UCUM units and the words Prometheus spells them with.
const UNITS: &[(&str, &str)] = &[
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("TiBy", "tebibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("TBy", "terabytes"),
    ("m", "meters"),
    ("V", "volts"),
    ("A", "amperes"),
    ("J", "joules"),
    ("W", "watts"),
    ("g", "grams"),
    ("Cel", "celsius"),
    ("Hz", "hertz"),
    ("1", ""),
    ("%", "percent"),
];

/// The units after a `/`, singular (`By/s` -> `bytes_per_second`).
const PER_UNITS: &[(&str, &str)] = &[
    ("s", "second"),
    ("m", "minute"),
    ("h", "hour"),
    ("d", "day"),
    ("w", "week"),
    ("mo", "month"),
    ("y", "year"),
];

fn lookup<'a>(table: &[(&str, &'a str)], unit: &'a str) -> &'a str {
    table
        .iter()
        .find(|(ucum, _)| *ucum == unit)
        .map_or(unit, |(_, word)| word)
}

fn metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// A unit word made of metric-name characters, runs of `_` collapsed, no leading `_`.
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if metric_char(c) { c } else { '_' };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    out
}

/// The main and the "per" unit words of `unit` (`By/s` -> `bytes`, `per_second`).
fn unit_words(unit: &str) -> (String, String) {
    let (main, per) = match unit.split_once('/') {
        Some((main, per)) => (main, Some(per)),
        None => (unit, None),
    };
    let usable = |u: &str| !u.is_empty() && !u.contains(['{', '}']);
    let main = main.trim();
    let main = if usable(main) {
        clean_unit(lookup(UNITS, main))
    } else {
        String::new()
    };
    let per = per
        .map(str::trim)
        .filter(|p| usable(p))
        .map_or_else(String::new, |p| {
            clean_unit(&format!("per_{}", lookup(PER_UNITS, p)))
        });
    (main, per)
}

/// The Prometheus name of an OTLP metric, or `None` when nothing of it is usable (a name of
/// only invalid characters): such a metric cannot be stored under any name.
pub fn metric_name(name: &str, unit: &str, kind: Kind) -> Option<String> {
    let mut tokens: Vec<&str> = name
        .split(|c| !metric_char(c))
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        return None;
    }
    let (main, per) = unit_words(unit);
    let mut main = main.as_str();
    if tokens.contains(&main) {
        main = "";
    }
    let mut per = per.as_str();
    if per == "per_" {
        per = "";
    } else {
        per = per.strip_suffix('_').unwrap_or(per);
        if tokens.contains(&per) {
            per = "";
        }
    }
    if !per.is_empty() {
        main = main.strip_suffix('_').unwrap_or(main);
    }
    for word in [main, per] {
        if !word.is_empty() {
            tokens.push(word);
        }
    }
    let last = match kind {
        Kind::Counter => Some("total"),
        Kind::Gauge if unit == "1" => Some("ratio"),
        _ => None,
    };
    if let Some(last) = last {
        tokens.retain(|t| *t != last);
        tokens.push(last);
    }
    let joined = tokens.join("_");
    Some(if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    })
}

/// The Prometheus label name of an attribute key (empty for an empty key: no label).
pub fn label_name(key: &str) -> String {
    let name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{name}")
    } else if name.starts_with('_') && !name.starts_with("__") {
        format!("key{name}")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str, unit: &str, kind: Kind) -> String {
        metric_name(n, unit, kind).unwrap_or_else(|| "<none>".into())
    }

    #[test]
    fn names_are_split_at_invalid_characters() {
        assert_eq!(
            name("http.server.duration", "", Kind::Other),
            "http_server_duration"
        );
        assert_eq!(name("a-b/c d__e", "", Kind::Other), "a_b_c_d_e");
        assert_eq!(
            name("_leading.and.trailing_", "", Kind::Other),
            "leading_and_trailing"
        );
        assert_eq!(name("ns:sub.metric", "", Kind::Other), "ns:sub_metric");
        assert_eq!(name("2xx.responses", "", Kind::Other), "_2xx_responses");
        assert_eq!(name("température", "", Kind::Other), "temp_rature");
        assert_eq!(metric_name("温度", "", Kind::Gauge), None);
        assert_eq!(metric_name("...", "", Kind::Gauge), None);
    }

    #[test]
    fn units_and_types_add_suffixes() {
        assert_eq!(
            name("http.server.duration", "s", Kind::Other),
            "http_server_duration_seconds"
        );
        assert_eq!(
            name("http.server.duration", "ms", Kind::Other),
            "http_server_duration_milliseconds"
        );
        assert_eq!(
            name("process.memory", "By", Kind::Gauge),
            "process_memory_bytes"
        );
        assert_eq!(
            name("network.io", "By/s", Kind::Gauge),
            "network_io_bytes_per_second"
        );
        assert_eq!(
            name("requests", "{request}", Kind::Counter),
            "requests_total"
        );
        assert_eq!(name("requests", "1", Kind::Counter), "requests_total");
        assert_eq!(
            name("requests.total.count", "", Kind::Counter),
            "requests_count_total"
        );
        assert_eq!(
            name("cpu.utilization", "1", Kind::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(name("cpu.ratio.used", "1", Kind::Gauge), "cpu_used_ratio");
        assert_eq!(name("queue.size", "1", Kind::Other), "queue_size");
        assert_eq!(name("disk.usage", "%", Kind::Gauge), "disk_usage_percent");
        assert_eq!(name("latency.seconds", "s", Kind::Other), "latency_seconds");
        assert_eq!(name("jobs", "jobs/min", Kind::Gauge), "jobs_per_min");
        assert_eq!(
            name("events", "{event}/s", Kind::Counter),
            "events_per_second_total"
        );
        assert_eq!(name("size", "custom unit", Kind::Gauge), "size_custom_unit");
        assert_eq!(name("up", "", Kind::Gauge), "up");
    }

    #[test]
    fn label_names_follow_prometheus() {
        assert_eq!(label_name("http.method"), "http_method");
        assert_eq!(label_name("service.instance.id"), "service_instance_id");
        assert_eq!(label_name("already_fine"), "already_fine");
        assert_eq!(label_name("1st"), "key_1st");
        assert_eq!(label_name("_private"), "key_private");
        assert_eq!(label_name("__reserved"), "__reserved");
        assert_eq!(label_name("a-b c/ü"), "a_b_c__");
        assert_eq!(label_name(""), "");
    }
}
