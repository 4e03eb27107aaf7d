//! End-to-end ingest through the built `edgestore serve`: Prometheus remote write and OTLP/HTTP
//! into the disk spool, read back with `edgestore spool cat`.
//!
//! * Senders that are not ours: a real Prometheus (2.42, Debian's) scraping a real node exporter
//!   and itself, remote-writing to `serve` (rows arrive, nothing fails, values equal what
//!   Prometheus' query API returns); the same with `serve` SIGKILLed mid-stream and restarted
//!   (every sample Prometheus holds before its highest sent timestamp is in the spool); the
//!   OpenTelemetry Python SDK's OTLP/HTTP exporter (gauge, counter, histogram, plain and gzip).
//! * Requests built here from the specifications' messages: remote write 2.0 with its
//!   `X-Prometheus-Remote-Write-*-Written` headers and a retry after a partial write (same ids);
//!   a 1.0 round trip on both engines; malformed bodies (400/413, nothing stored, the server
//!   still healthy); a spool at `retention.maxBytes` (429 with `Retry-After` until segments are
//!   acked and purged through the owner); the bearer token (401 without it).
//!
//! Prometheus and Python are installed by `./test.sh` (apt packages `prometheus`,
//! `prometheus-node-exporter`; the venv `target/otel-venv`, or `$EDGESTORE_OTEL_PYTHON`). The
//! tests that need them are skipped with a note when they are missing, and fail under CI.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edgestore::Metric;
use edgestore_host::ingest::mapping::{series_id, STALE_NAN_BITS};
use edgestore_host::ingest::remote_write::proto::{v1, v2};
use prost::Message as _;

mod common;

use common::{
    edgestore, free_port, run, signal, spool_rows, start_serve, terminate, text, tool_available,
    Daemon, Serving, ENGINES,
};

/// A fixed sample time for requests built here (2023-11-14T22:13:20Z).
const T0: i64 = 1_700_000_000_000;

const REMOTE_WRITE: &str = "/api/v1/write";
const OTLP: &str = "/v1/metrics";
const PROTO_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

// ---------------------------------------------------------------------------------------------
// HTTP

/// A response: status, headers, body as text.
struct Reply {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {:?}", self.status, self.headers, self.body)
    }
}

/// A fresh client per request (no pooled connection outlives a restarted server); 4xx and 5xx
/// are answers to look at, not errors.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>, what: &str) -> Reply {
    let mut response = response.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
    Reply {
        status,
        headers,
        body,
    }
}

fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut request = agent().post(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    reply(request.send(body), &format!("POST {url}"))
}

fn get(url: &str, query: &[(&str, &str)]) -> Reply {
    let mut request = agent().get(url);
    for (name, value) in query {
        request = request.query(*name, *value);
    }
    reply(request.call(), &format!("GET {url}"))
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("snappy compress")
}

/// POST a remote write body with `content_type` (and snappy) and extra headers.
fn post_remote_write(
    s: &Serving,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut headers = vec![
        ("Content-Type", content_type),
        ("Content-Encoding", "snappy"),
    ];
    headers.extend_from_slice(extra);
    post(&format!("{}{REMOTE_WRITE}", s.url()), &headers, body)
}

/// A remote write 1.0 request, as Prometheus sends it.
fn post_v1(s: &Serving, request: &v1::WriteRequest) -> Reply {
    post_remote_write(
        s,
        "application/x-protobuf",
        &[("X-Prometheus-Remote-Write-Version", "0.1.0")],
        &snappy(&request.encode_to_vec()),
    )
}

/// A remote write 2.0 request.
fn post_v2(s: &Serving, request: &v2::Request) -> Reply {
    post_remote_write(
        s,
        PROTO_V2,
        &[("X-Prometheus-Remote-Write-Version", "2.0.0")],
        &snappy(&request.encode_to_vec()),
    )
}

/// Assert `/healthz` answers 200.
fn assert_healthy(s: &Serving, after: &str) {
    let r = get(&format!("{}/healthz", s.url()), &[]);
    assert_eq!(r.status, 200, "/healthz after {after}: {r:?}");
}

// ---------------------------------------------------------------------------------------------
// Requests and rows

fn label_map(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: labels
            .iter()
            .map(|(name, value)| v1::Label {
                name: (*name).to_owned(),
                value: (*value).to_owned(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| v1::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

/// The id a sample of the series `labels` (`__name__` included) at `ts_ms` gets.
fn id_of(labels: &BTreeMap<String, String>, ts_ms: i64) -> String {
    series_id(labels, ts_ms).to_string()
}

/// The label set of a row, `__name__` included (what its id is computed from).
fn row_labels(row: &Metric) -> BTreeMap<String, String> {
    let mut labels = row.labels.clone();
    labels.insert("__name__".to_owned(), row.metric_name.clone());
    labels
}

/// Rows by id; rows sharing an id (a retried request) must be the same sample.
fn by_id(rows: &[Metric]) -> HashMap<&str, &Metric> {
    let mut out: HashMap<&str, &Metric> = HashMap::new();
    for row in rows {
        if let Some(first) = out.insert(&row.id, row) {
            assert_eq!(
                (
                    &first.metric_name,
                    &first.labels,
                    &first.timestamp,
                    &first.value
                ),
                (&row.metric_name, &row.labels, &row.timestamp, &row.value),
                "two rows share the id {} but not the sample",
                row.id
            );
        }
    }
    out
}

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// Milliseconds as Prometheus' API takes a time: seconds with three decimals.
fn api_time(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Stop `serve` with SIGTERM (it flushes everything into finished segments) and check it
/// exited 0.
fn stop(s: &mut Serving) {
    let status = terminate(&mut s.child);
    assert!(
        status.success(),
        "serve exited with {status}:\n{}",
        s.stderr()
    );
}

/// A YAML config file in `dir`.
fn config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("edgestore.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `serve` with `--config FILE`.
fn start_serve_with(data: &Path, engine: &str, config: &Path) -> Serving {
    let mut cmd = edgestore(data, engine);
    cmd.arg("--config").arg(config);
    Serving::start(cmd, &[])
}

/// Wait for `check` to give a value, polling every `every`; fail with `what` at `timeout`.
fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus

/// Whether Prometheus and the node exporter can run (see [`tool_available`]).
fn prometheus_available() -> bool {
    let install = "install the Debian packages prometheus and prometheus-node-exporter \
                   (./test.sh --install-only does)";
    tool_available("prometheus", install) && tool_available("prometheus-node-exporter", install)
}

/// A node exporter and a Prometheus scraping it and itself every second, remote-writing to
/// `write_url`; both killed when dropped.
struct PromStack {
    // Dropped first: Prometheus, then what it scrapes.
    prometheus: Daemon,
    node_exporter: Daemon,
    /// `http://127.0.0.1:PORT` of Prometheus.
    url: String,
    _dir: tempfile::TempDir,
}

impl PromStack {
    fn start(write_url: &str) -> PromStack {
        let dir = tempfile::tempdir().unwrap();
        let node_port = free_port();
        let node_exporter = Daemon::spawn("prometheus-node-exporter", {
            let mut cmd = Command::new("prometheus-node-exporter");
            cmd.arg(format!("--web.listen-address=127.0.0.1:{node_port}"));
            cmd
        });
        let prom_port = free_port();
        // Retries on 429 (`retry_on_http_429`, experimental in 2.42 but accepted by its strict
        // config parser) and short batching, so a test sees samples within a second; metric
        // metadata (requests without samples) every second instead of every minute.
        let yaml = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n\
             \x20 - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{node_port}']}}]\n\
             \x20 - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:{prom_port}']}}]\n\
             remote_write:\n\
             \x20 - url: {write_url}\n\
             \x20   queue_config:\n\
             \x20     retry_on_http_429: true\n\
             \x20     batch_send_deadline: 500ms\n\
             \x20     min_backoff: 50ms\n\
             \x20     max_backoff: 1s\n\
             \x20   metadata_config:\n\
             \x20     send_interval: 1s\n"
        );
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, yaml).unwrap();
        let prometheus = Daemon::spawn("prometheus", {
            let mut cmd = Command::new("prometheus");
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
            cmd
        });
        let mut stack = PromStack {
            prometheus,
            node_exporter,
            url: format!("http://127.0.0.1:{prom_port}"),
            _dir: dir,
        };
        let url = stack.url.clone();
        wait_for(
            "Prometheus to be ready",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                stack.prometheus.assert_running();
                stack.node_exporter.assert_running();
                let ready = agent().get(format!("{url}/-/ready")).call();
                ready.ok().filter(|r| r.status() == 200).map(|_| ())
            },
        );
        stack
    }

    /// Prometheus' own metrics, read from its /metrics (current, unlike its scrape of itself).
    fn own_metrics(&mut self) -> prometheus_parse::Scrape {
        self.prometheus.assert_running();
        let r = get(&format!("{}/metrics", self.url), &[]);
        assert_eq!(r.status, 200, "{r:?}");
        prometheus_parse::Scrape::parse(r.body.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }

    /// The value of one of Prometheus' remote storage metrics (the one queue's), from
    /// [`PromStack::own_metrics`]; `None` before the queue exports it (the queue's series
    /// appear with its first send).
    fn remote(&mut self, name: &str) -> Option<f64> {
        let scrape = self.own_metrics();
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .and_then(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
    }

    /// The highest sample timestamp sent, in milliseconds.
    fn highest_sent_ms(&mut self) -> i64 {
        let name = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds";
        let s = self.remote(name).unwrap_or(0.0);
        (s * 1000.0).round() as i64
    }

    /// Wait until Prometheus has sent samples newer than `ms`.
    fn wait_sent_past(&mut self, ms: i64, timeout: Duration) {
        wait_for(
            "Prometheus to remote-write newer samples",
            timeout,
            Duration::from_millis(250),
            || (self.highest_sent_ms() > ms).then_some(()),
        );
    }

    /// The `data.result` of a query through the HTTP API, at `time` (Prometheus' format) or
    /// now.
    fn query(&mut self, query: &str, time: Option<&str>) -> Vec<serde_json::Value> {
        self.prometheus.assert_running();
        let mut params = vec![("query", query)];
        if let Some(t) = time {
            params.push(("time", t));
        }
        let r = get(&format!("{}/api/v1/query", self.url), &params);
        assert_eq!(r.status, 200, "query {query}: {r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["status"], "success", "query {query}: {}", r.body);
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Every raw sample Prometheus holds in `(at - window, at]`: `(labels incl. __name__,
    /// timestamp ms, value as Prometheus formats it)`.
    fn raw_samples(
        &mut self,
        at_ms: i64,
        window_ms: i64,
    ) -> Vec<(BTreeMap<String, String>, i64, String)> {
        let query = format!("{{__name__=~\".+\"}}[{window_ms}ms]");
        let mut out = Vec::new();
        for series in self.query(&query, Some(&api_time(at_ms))) {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(series["metric"].clone()).unwrap();
            for point in series["values"].as_array().unwrap() {
                let ts = (point[0].as_f64().unwrap() * 1000.0).round() as i64;
                let value = point[1].as_str().unwrap().to_owned();
                out.push((labels.clone(), ts, value));
            }
        }
        out
    }
}

/// Whether a row's value is the sample value Prometheus' API printed. Both write the shortest
/// decimal that reads back as the same `f64`; Prometheus switches to exponent form below 1e-6
/// and from 1e21 on (`3e-07`, its `jsonutil.MarshalValue`), where the row never does
/// (`0.0000003`, the agent's format): there the numbers are compared.
fn same_value(row: &str, prometheus: &str) -> bool {
    if row == prometheus {
        return true;
    }
    let exponent_range = prometheus.contains('e');
    let parse = |s: &str| match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    };
    exponent_range
        && parse(row).is_some()
        && parse(row).map(f64::to_bits) == parse(prometheus).map(f64::to_bits)
}

/// A PromQL selector matching exactly the series of `row`.
fn selector(row: &Metric) -> String {
    let matchers: Vec<String> = row
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
        .collect();
    format!("{}{{{}}}", row.metric_name, matchers.join(","))
}

/// A real Prometheus (no code of ours in the sender) scrapes a node exporter and itself and
/// remote-writes to `serve` on the native engine: node and `up` rows arrive, Prometheus
/// counts no failed sample, and the values in the spool are the ones its query API returns
/// for the same series at the same timestamps.
#[test]
fn a_real_prometheus_remote_writes_into_the_spool() {
    if !prometheus_available() {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut serve = start_serve(&data, "native", &[]);
    let mut prom = PromStack::start(&format!("{}{REMOTE_WRITE}", serve.url()));
    let begin = now_ms();
    // At least ten scrapes of each target sent.
    prom.wait_sent_past(begin + 10_000, Duration::from_secs(120));
    // Prometheus' own count of failed samples, through its query API (its scrape of itself).
    let failed = wait_for(
        "Prometheus to scrape its remote storage metrics",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let result = prom.query("sum(prometheus_remote_storage_samples_failed_total)", None);
            result
                .first()
                .map(|r| r["value"][1].as_str().unwrap().to_owned())
        },
    );
    assert_eq!(failed, "0", "Prometheus counted failed samples");
    let retried = prom.remote("prometheus_remote_storage_samples_retried_total");
    assert_eq!(retried, Some(0.0), "no sample needed a retry");
    // Metadata-only requests (no series) are accepted too.
    wait_for(
        "Prometheus to send metric metadata",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let sent = prom.remote("prometheus_remote_storage_metadata_total");
            sent.filter(|&n| n > 0.0)
        },
    );
    let failed = prom.remote("prometheus_remote_storage_metadata_failed_total");
    assert_eq!(failed, Some(0.0), "Prometheus failed to send metadata");
    stop(&mut serve);

    let rows = spool_rows(&data);
    let named = |name: &'static str| rows.iter().filter(move |r| r.metric_name == name);
    assert!(
        named("node_cpu_seconds_total").count() > 0,
        "no node_cpu_seconds_total among {} rows",
        rows.len()
    );
    let up: BTreeSet<(&str, &str)> = named("up")
        .map(|r| (r.labels["job"].as_str(), r.value.as_str()))
        .collect();
    // Both targets were up (a scrape that timed out on a loaded machine may add a 0).
    assert!(
        up.contains(&("node", "1")) && up.contains(&("prometheus", "1")),
        "{up:?}"
    );
    let cpu = named("node_cpu_seconds_total")
        .filter(|r| r.labels.get("mode").map(String::as_str) == Some("idle"))
        .max_by_key(|r| r.timestamp.parse::<i64>().unwrap())
        .expect("an idle CPU row");
    assert_eq!(
        cpu.node_name, cpu.labels["instance"],
        "node_name falls back to instance"
    );

    // One sample, by an instant query at its exact time: same value, same string.
    let ts: i64 = cpu.timestamp.parse().unwrap();
    let result = prom.query(&selector(cpu), Some(&api_time(ts)));
    assert_eq!(result.len(), 1, "{result:?}");
    assert_eq!(
        result[0]["value"][1].as_str(),
        Some(cpu.value.as_str()),
        "{cpu:?}"
    );

    // Every row: Prometheus holds a sample with the row's id (series and time) and value.
    let times: Vec<i64> = rows.iter().map(|r| r.timestamp.parse().unwrap()).collect();
    let (first, last) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
    let held: HashMap<String, String> = prom
        .raw_samples(last, last - first + 1)
        .into_iter()
        .map(|(labels, ts, value)| (id_of(&labels, ts), value))
        .collect();
    for row in &rows {
        assert_eq!(
            row.id,
            id_of(&row_labels(row), row.timestamp.parse().unwrap()),
            "the id is the series' and the time's"
        );
        let theirs = held.get(&row.id);
        assert!(
            theirs.is_some_and(|v| same_value(&row.value, v)),
            "Prometheus has {theirs:?} for {row:?}"
        );
    }
    eprintln!(
        "{} rows from Prometheus, all equal to its own samples ({:.1?})",
        rows.len(),
        started.elapsed()
    );
}

/// `serve` is SIGKILLed while Prometheus writes to it and restarted on the same port and data
/// directory: once Prometheus has caught up, every raw sample it holds before its highest
/// sent timestamp is in the spool (none lost), and samples written twice (a request retried
/// after the kill) are the same row twice.
#[test]
fn a_sigkilled_serve_loses_no_sample_prometheus_was_told_was_written() {
    if !prometheus_available() {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut first = Serving::start_at(edgestore(&data, "native"), &listen, &[]);
    let mut prom = PromStack::start(&format!("http://{listen}{REMOTE_WRITE}"));
    prom.wait_sent_past(now_ms() + 4_000, Duration::from_secs(120));

    signal(&first.child, libc::SIGKILL);
    first.child.wait().unwrap();
    let killed_at = now_ms();
    // Prometheus fails to send for a while (connection refused) and queues.
    std::thread::sleep(Duration::from_secs(3));
    let mut second = wait_for(
        "the port to be free again",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            std::net::TcpListener::bind(&listen).ok()?;
            Some(Serving::start_at(edgestore(&data, "native"), &listen, &[]))
        },
    );
    let restarted_at = now_ms();
    // Caught up: nothing pending, and sending samples newer than the restart.
    wait_for(
        "Prometheus to catch up after the restart",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || {
            let pending = prom.remote("prometheus_remote_storage_samples_pending");
            let sent = prom.highest_sent_ms();
            (pending == Some(0.0) && sent > restarted_at + 3_000).then_some(())
        },
    );
    let highest = prom.highest_sent_ms();
    let retried = prom
        .remote("prometheus_remote_storage_samples_retried_total")
        .unwrap_or(0.0);
    assert!(retried > 0.0, "the kill should have made Prometheus retry");
    let failed = prom.remote("prometheus_remote_storage_samples_failed_total");
    assert_eq!(failed, Some(0.0), "Prometheus gave up on samples");
    stop(&mut second);

    let rows = spool_rows(&data);
    let stored = by_id(&rows);
    // Samples up to a few seconds before the highest sent timestamp, from 10 s before the
    // kill: the window holds the kill, the downtime and the catch-up.
    let at = highest - 3_000;
    let window = at - (killed_at - 10_000);
    let samples = prom.raw_samples(at, window);
    assert!(samples.len() > 1000, "only {} samples", samples.len());
    let mut lost = Vec::new();
    for (labels, ts, value) in &samples {
        match stored.get(id_of(labels, *ts).as_str()) {
            Some(row) => assert!(
                same_value(&row.value, value),
                "{labels:?} at {ts}: {} stored, {value} in Prometheus",
                row.value
            ),
            None => lost.push((labels, ts)),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} samples lost, e.g. {:?}",
        lost.len(),
        samples.len(),
        &lost[..lost.len().min(5)]
    );
    eprintln!(
        "{} samples from {} ms before the kill to {} ms after the restart all stored \
         ({} rows, {} duplicates; {} samples retried by Prometheus) ({:.1?})",
        samples.len(),
        10_000,
        at - restarted_at,
        rows.len(),
        rows.len() - stored.len(),
        retried,
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Remote write 2.0

/// A 2.0 float sample.
fn sample2(value: f64, timestamp: i64) -> v2::Sample {
    v2::Sample { value, timestamp }
}

/// A 2.0 symbol table under construction.
struct Symbols(Vec<String>);

impl Symbols {
    fn new() -> Self {
        Symbols(vec![String::new()])
    }

    fn of(&mut self, s: &str) -> u32 {
        let at = self.0.iter().position(|x| x == s).unwrap_or_else(|| {
            self.0.push(s.to_owned());
            self.0.len() - 1
        });
        u32::try_from(at).unwrap()
    }

    fn refs(&mut self, labels: &[(&str, &str)]) -> Vec<u32> {
        labels
            .iter()
            .flat_map(|(k, v)| [self.of(k), self.of(v)])
            .collect()
    }
}

/// Remote write 2.0 requests built from the spec's messages: 204 with the written counts in
/// the `X-Prometheus-Remote-Write-*-Written` headers (floats including a staleness marker,
/// native histograms, exemplars); a request retried after a partial write stores the same ids
/// again; an unknown `proto=` or major version is 415 and stores nothing.
#[test]
fn remote_write_2_0_counts_what_it_wrote_and_retries_keep_their_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut serve = start_serve(&data, "native", &[]);

    let counter = [
        ("__name__", "e2e_v2_requests_total"),
        ("instance", "host-1"),
        ("job", "v2"),
    ];
    let histogram = [("__name__", "e2e_v2_latency_seconds"), ("job", "v2")];
    let gauge = [
        ("__name__", "e2e_v2_temperature"),
        ("job", "v2"),
        ("node", "worker-7"),
    ];
    let stale = f64::from_bits(STALE_NAN_BITS);
    let build = |with_rest: bool| {
        let mut sym = Symbols::new();
        let mut timeseries = vec![v2::TimeSeries {
            labels_refs: sym.refs(&counter),
            samples: vec![
                sample2(1.0, T0),
                sample2(2.5, T0 + 1000),
                sample2(stale, T0 + 2000),
            ],
            exemplars: vec![v2::Exemplar {
                labels_refs: sym.refs(&[("trace_id", "4bf92f3577b34da6")]),
                value: 2.5,
                timestamp: T0 + 1000,
            }],
            metadata: Some(v2::Metadata {
                r#type: v2::metadata::MetricType::Counter as i32,
                help_ref: sym.of("Requests served."),
                unit_ref: 0,
            }),
            ..Default::default()
        }];
        if with_rest {
            timeseries.push(v2::TimeSeries {
                labels_refs: sym.refs(&histogram),
                histograms: vec![v2::Histogram {
                    count: Some(v2::histogram::Count::CountInt(3)),
                    sum: 1.5,
                    schema: 0,
                    zero_threshold: 1e-128,
                    zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(0)),
                    positive_spans: vec![v2::BucketSpan {
                        offset: 0,
                        length: 2,
                    }],
                    positive_deltas: vec![1, 1],
                    timestamp: T0,
                    ..Default::default()
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Histogram as i32,
                    help_ref: 0,
                    unit_ref: sym.of("seconds"),
                }),
                ..Default::default()
            });
            timeseries.push(v2::TimeSeries {
                labels_refs: sym.refs(&gauge),
                samples: vec![sample2(21.25, T0), sample2(-3e-5, T0 + 1000)],
                ..Default::default()
            });
        }
        v2::Request {
            symbols: sym.0,
            timeseries,
        }
    };
    let written = |r: &Reply| {
        [
            "X-Prometheus-Remote-Write-Samples-Written",
            "X-Prometheus-Remote-Write-Histograms-Written",
            "X-Prometheus-Remote-Write-Exemplars-Written",
        ]
        .map(|h| r.header(h).map(str::to_owned))
    };
    let some = |a: &str, b: &str, c: &str| [a, b, c].map(|s| Some(s.to_owned()));

    // The part a sender got through before its request failed, then the whole request again.
    let partial = post_v2(&serve, &build(false));
    assert_eq!(partial.status, 204, "{partial:?}");
    assert_eq!(written(&partial), some("3", "0", "1"), "{partial:?}");
    let full = post_v2(&serve, &build(true));
    assert_eq!(full.status, 204, "{full:?}");
    assert_eq!(written(&full), some("5", "1", "1"), "{full:?}");

    // Versions we do not speak: 415, nothing stored.
    let body = snappy(&build(true).encode_to_vec());
    for (content_type, version) in [
        (
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            "2.0.0",
        ),
        (
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "3.0.0",
        ),
    ] {
        let r = post_remote_write(
            &serve,
            content_type,
            &[("X-Prometheus-Remote-Write-Version", version)],
            &body,
        );
        assert_eq!(r.status, 415, "{content_type} {version}: {r:?}");
        assert_eq!(written(&r), [None, None, None], "a refusal writes nothing");
    }
    stop(&mut serve);

    let rows = spool_rows(&data);
    let expected = [
        (&counter[..], T0, "1", "host-1"),
        (&counter[..], T0 + 1000, "2.5", "host-1"),
        (&gauge[..], T0, "21.25", "worker-7"),
        (&gauge[..], T0 + 1000, "-0.00003", "worker-7"),
    ];
    let stored = by_id(&rows);
    assert_eq!(
        rows.len(),
        6,
        "the counter's two samples twice, the gauge's once: {rows:#?}"
    );
    assert_eq!(stored.len(), expected.len(), "{rows:#?}");
    for (labels, ts, value, node) in expected {
        let labels = label_map(labels);
        let row = stored
            .get(id_of(&labels, ts).as_str())
            .unwrap_or_else(|| panic!("no row for {labels:?} at {ts}: {rows:#?}"));
        assert_eq!(row_labels(row), labels);
        assert_eq!(row.timestamp, ts.to_string());
        assert_eq!(row.value, value);
        assert_eq!(row.node_name, node);
    }
    let counter_rows = rows
        .iter()
        .filter(|r| r.metric_name == "e2e_v2_requests_total")
        .count();
    assert_eq!(
        counter_rows, 4,
        "the retried part is stored again under the same ids"
    );
}

// ---------------------------------------------------------------------------------------------
// OTLP

/// The Python interpreter of the OpenTelemetry venv: `$EDGESTORE_OTEL_PYTHON`, or the one
/// `./test.sh` makes at `target/otel-venv` in the workspace.
fn otel_python() -> PathBuf {
    match std::env::var_os("EDGESTORE_OTEL_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/otel-venv/bin/python"),
    }
}

/// The OpenTelemetry Python SDK's own OTLP/HTTP protobuf exporter (plain and gzip) sends a
/// gauge, a counter and a histogram: the rows are named as documented (`_total`, unit words,
/// `_bucket` with cumulative `le`, `_sum`, `_count`), labelled from the resource and the
/// attributes, with the recorded values.
#[test]
fn the_opentelemetry_sdk_exports_into_the_spool() {
    let python = otel_python();
    let install = "run ./test.sh --install-only (it creates the venv target/otel-venv), or set \
                   EDGESTORE_OTEL_PYTHON to a Python with opentelemetry-sdk and \
                   opentelemetry-exporter-otlp-proto-http";
    if !tool_available(python.to_str().unwrap(), install) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut serve = start_serve(&data, "native", &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otel/export.py");
    let endpoint = format!("{}{OTLP}", serve.url());
    let instances = [("instance-plain", None), ("instance-gzip", Some("gzip"))];
    for (instance, compression) in instances {
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg(&endpoint)
            .arg(instance)
            .args(compression);
        let mut sdk = Daemon::spawn("the OpenTelemetry exporter script", cmd);
        let status = wait_for(
            "the exporter script to finish",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || sdk.child.try_wait().unwrap(),
        );
        assert!(
            status.success(),
            "{instance}: the exporter failed ({status}):\n{}\nserve:\n{}",
            sdk.log(),
            serve.stderr()
        );
    }
    stop(&mut serve);

    let rows = spool_rows(&data);
    for (instance, _) in instances {
        let mine: Vec<&Metric> = rows
            .iter()
            .filter(|r| r.labels.get("instance").map(String::as_str) == Some(instance))
            .collect();
        let find = |name: &str, extra: Option<(&str, &str)>| {
            let found: Vec<&&Metric> = mine
                .iter()
                .filter(|r| r.metric_name == name)
                .filter(|r| {
                    extra.is_none_or(|(k, v)| r.labels.get(k).map(String::as_str) == Some(v))
                })
                .collect();
            assert_eq!(found.len(), 1, "{instance}: {name} {extra:?} in {mine:#?}");
            found[0].value.as_str()
        };
        assert_eq!(find("e2e_temperature_celsius", None), "21.5");
        assert_eq!(find("e2e_requests_total", None), "7");
        for (le, count) in [("1", "1"), ("5", "2"), ("10", "3"), ("+Inf", "4")] {
            assert_eq!(
                find("e2e_latency_seconds_bucket", Some(("le", le))),
                count,
                "le={le}"
            );
        }
        assert_eq!(find("e2e_latency_seconds_sum", None), "40.5");
        assert_eq!(find("e2e_latency_seconds_count", None), "4");
        assert_eq!(mine.len(), 8, "{instance}: {mine:#?}");
        for row in &mine {
            assert_eq!(row.labels["job"], "otel-e2e", "service.name is the job");
            assert_eq!(
                row.labels["deployment"], "test",
                "resource attributes are labels"
            );
            assert_eq!(row.node_name, instance, "node_name falls back to instance");
            assert_eq!(
                row.id,
                id_of(&row_labels(row), row.timestamp.parse().unwrap())
            );
            let point_label = if row.metric_name == "e2e_temperature_celsius" {
                ("room", "lab")
            } else {
                ("route", "/a")
            };
            assert_eq!(
                row.labels.get(point_label.0).map(String::as_str),
                Some(point_label.1),
                "{row:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input

/// A body that is not valid UTF-8 in one label value (prost refuses such a string).
fn invalid_utf8_request() -> Vec<u8> {
    let request = v1::WriteRequest {
        timeseries: vec![series(
            &[("__name__", "bad_utf8"), ("label", "@@@@")],
            &[(1.0, T0)],
        )],
        ..Default::default()
    };
    let mut raw = request.encode_to_vec();
    let at = raw.windows(4).position(|w| w == b"@@@@").unwrap();
    raw[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    raw
}

/// A snappy block whose header declares `declared` bytes followed by `rest`.
fn snappy_header(declared: u64, rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = declared;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(rest);
    out
}

/// Malformed bodies on the native engine: each is refused with the right 4xx and a message,
/// the server stays healthy, and nothing of them reaches the spool.
#[test]
fn malformed_requests_are_refused_and_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut serve = start_serve(&data, "native", &[]);

    let good = v1::WriteRequest {
        timeseries: (0..50)
            .map(|i| {
                let n = i.to_string();
                series(&[("__name__", "good"), ("i", &n)], &[(f64::from(i), T0)])
            })
            .collect(),
        ..Default::default()
    };
    let raw = good.encode_to_vec();
    let compressed = snappy(&raw);
    // The same block with its declared length off: too long, then too short.
    let header_len = snappy_header(raw.len() as u64, &[]).len();
    let longer = snappy_header(raw.len() as u64 + 7, &compressed[header_len..]);
    let shorter = snappy_header(raw.len() as u64 - 7, &compressed[header_len..]);
    let many_labels = {
        let names: Vec<String> = (0..50_000).map(|i| format!("l{i:05}")).collect();
        let mut labels: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        labels.push(("__name__", "too_many_labels"));
        let request = v1::WriteRequest {
            timeseries: vec![series(&labels, &[(1.0, T0)])],
            ..Default::default()
        };
        snappy(&request.encode_to_vec())
    };
    let v2_out_of_range = snappy(
        &v2::Request {
            symbols: vec![String::new(), "__name__".into()],
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 99],
                samples: vec![sample2(1.0, T0)],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
    );
    let v1_type = "application/x-protobuf";
    let cases: Vec<(&str, &str, &str, Vec<u8>, u16)> = vec![
        ("empty body", REMOTE_WRITE, v1_type, Vec::new(), 400),
        (
            "truncated snappy",
            REMOTE_WRITE,
            v1_type,
            compressed[..compressed.len() / 2].to_vec(),
            400,
        ),
        (
            "declared length too long",
            REMOTE_WRITE,
            v1_type,
            longer,
            400,
        ),
        (
            "declared length too short",
            REMOTE_WRITE,
            v1_type,
            shorter,
            400,
        ),
        (
            "garbage protobuf",
            REMOTE_WRITE,
            v1_type,
            snappy(b"\xff\xff\xff\xff this is not a protobuf message"),
            400,
        ),
        (
            "50 000 labels in one series",
            REMOTE_WRITE,
            v1_type,
            many_labels,
            400,
        ),
        (
            "invalid UTF-8 in a label",
            REMOTE_WRITE,
            v1_type,
            snappy(&invalid_utf8_request()),
            400,
        ),
        (
            "100 MiB declared in a tiny body",
            REMOTE_WRITE,
            v1_type,
            snappy_header(100 * 1024 * 1024, b"\x00\x01\x02\x03"),
            413,
        ),
        (
            "2.0 symbol reference out of range",
            REMOTE_WRITE,
            PROTO_V2,
            v2_out_of_range,
            400,
        ),
        (
            "garbage OTLP protobuf",
            OTLP,
            "application/x-protobuf",
            b"\xff\xff\xff\xff this is not a protobuf message".to_vec(),
            400,
        ),
    ];
    for (what, path, content_type, body, status) in &cases {
        let mut headers = vec![("Content-Type", *content_type)];
        if *path == REMOTE_WRITE {
            headers.push(("Content-Encoding", "snappy"));
        }
        let r = post(&format!("{}{path}", serve.url()), &headers, body);
        assert_eq!(r.status, *status, "{what}: {r:?}");
        assert!(
            r.body.trim().len() > 10,
            "{what}: the refusal says why: {r:?}"
        );
        assert_healthy(&serve, what);
    }
    stop(&mut serve);
    let rows = spool_rows(&data);
    assert!(
        rows.is_empty(),
        "refused requests stored {} rows",
        rows.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Back-pressure

/// A 1.0 request of 100 rows: one series `batch` with 100 samples from `T0 + batch * 100 s`.
fn batch_request(batch: i64) -> (v1::WriteRequest, Vec<String>) {
    let name = format!("batch-{batch}");
    let labels = [("__name__", "e2e_backpressure"), ("batch", name.as_str())];
    let samples: Vec<(f64, i64)> = (0..100)
        .map(|i| {
            (
                (batch * 1000 + i) as f64 * 0.37,
                T0 + batch * 100_000 + i * 1000,
            )
        })
        .collect();
    let map = label_map(&labels);
    let ids = samples.iter().map(|&(_, ts)| id_of(&map, ts)).collect();
    (
        v1::WriteRequest {
            timeseries: vec![series(&labels, &samples)],
            ..Default::default()
        },
        ids,
    )
}

/// Post [`batch_request`]s 0, 1, ... (`pause` apart) until one is refused with 429: the ids of
/// the accepted rows, the refused request with its ids, and the refusal. Any other status, or
/// `limit` requests accepted, fails the test.
fn post_until_refused(
    serve: &Serving,
    limit: i64,
    pause: Duration,
) -> (Vec<String>, (v1::WriteRequest, Vec<String>), Reply) {
    let mut accepted = Vec::new();
    for batch in 0..limit {
        let (request, ids) = batch_request(batch);
        let r = post_v1(serve, &request);
        match r.status {
            204 => accepted.extend(ids),
            429 => return (accepted, (request, ids), r),
            _ => panic!("batch {batch}: {r:?}"),
        }
        std::thread::sleep(pause);
    }
    panic!("{limit} requests accepted and none refused")
}

/// A spool at `retention.maxBytes` refuses remote write with 429 and `Retry-After` (Prometheus
/// retries those); once its segments are acked and purged (mutations forwarded to the running
/// `serve` through its admin socket) the same request is accepted, and every row of every
/// accepted request was stored.
#[test]
fn a_full_spool_answers_429_until_segments_are_acked_and_purged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Every request fills one segment (100 rows), so the bytes are segments, not journals.
    let cfg = config(
        tmp.path(),
        "retention: {maxBytes: 16384, maxAge: 0s}\nstorage: {maxRecords: 100}\n",
    );
    let mut serve = start_serve_with(&data, "native", &cfg);
    let spool = |args: &[&str]| {
        let out = run(edgestore(&data, "native")
            .arg("--config")
            .arg(&cfg)
            .arg("spool")
            .args(args));
        assert!(
            out.status.success(),
            "spool {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };

    let (accepted, refused, refusal) = post_until_refused(&serve, 500, Duration::from_millis(50));
    let retry_after: u64 = refusal
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a 429 without Retry-After: {refusal:?}"));
    assert!(retry_after >= 1, "{refusal:?}");
    assert!(refusal.body.contains("maxBytes"), "{refusal:?}");
    assert_healthy(&serve, "a refusal");

    // Still full a moment later (the refusal is the spool's state, not a hiccup).
    std::thread::sleep(Duration::from_millis(1100));
    let again = post_v1(&serve, &refused.0);
    assert_eq!(again.status, 429, "{again:?}");

    // Everything accepted so far is stored; nothing of the refused request is.
    spool(&["flush"]);
    let before = spool_rows(&data);
    let stored: BTreeSet<&str> = before.iter().map(|r| r.id.as_str()).collect();
    for id in &accepted {
        assert!(
            stored.contains(id.as_str()),
            "accepted row {id} is not in the spool"
        );
    }
    assert!(refused.1.iter().all(|id| !stored.contains(id.as_str())));
    assert_eq!(before.len(), accepted.len(), "each accepted row once");

    // Ship (ack) every segment and purge: through the running owner's admin socket.
    let listed: serde_json::Value = serde_json::from_str(&spool(&["list", "--json"])).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(!names.is_empty());
    let mut ack = vec!["ack"];
    ack.extend(&names);
    spool(&ack);
    spool(&["purge"]);

    // The same request, as a sender retries it: accepted once the owner sees the room.
    wait_for(
        "the purged spool to take rows again",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let r = post_v1(&serve, &refused.0);
            match r.status {
                204 => Some(()),
                429 => {
                    assert!(r.header("Retry-After").is_some(), "{r:?}");
                    None
                }
                _ => panic!("{r:?}"),
            }
        },
    );
    stop(&mut serve);
    let after = spool_rows(&data);
    let stored: BTreeSet<&str> = after.iter().map(|r| r.id.as_str()).collect();
    for id in &refused.1 {
        assert!(
            stored.contains(id.as_str()),
            "retried row {id} is not in the spool"
        );
    }
    eprintln!(
        "{} requests accepted before the cap, the next refused with Retry-After: {retry_after}",
        accepted.len() / 100
    );
}

/// A real full disk under `serve` (the data directory on a small tmpfs the test mounts; skipped
/// with a note where mounting is not allowed): remote write is refused with 429 and
/// `Retry-After` (a sender retries), on both engines alike; once space is freed the same
/// running `serve` takes the refused request again, and every accepted row is stored once.
#[test]
fn a_full_file_system_answers_429_and_ingest_resumes_once_space_is_freed() {
    for engine in ENGINES {
        let Some(fs) = common::tmpfs::Tmpfs::mount("6m") else {
            return;
        };
        let room = fs.filler("filler", 1);
        let data = fs.path().join("data");
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path(), "storage: {maxRecords: 100}\n");
        let mut serve = start_serve_with(&data, engine, &cfg);
        let (accepted, refused, refusal) = post_until_refused(&serve, 20_000, Duration::ZERO);
        assert!(
            refusal.header("Retry-After").is_some(),
            "{engine}: a 429 without Retry-After: {refusal:?}"
        );
        assert!(refusal.body.contains("disk-full"), "{engine}: {refusal:?}");

        // Room again: the running `serve` takes the request a sender retries.
        std::fs::remove_file(&room).unwrap();
        wait_for(
            "the freed file system to take rows again",
            Duration::from_secs(30),
            Duration::from_millis(200),
            || match post_v1(&serve, &refused.0) {
                r if r.status == 204 => Some(()),
                r if r.status == 429 => None,
                r => panic!("{engine}: {r:?}"),
            },
        );
        stop(&mut serve);
        let rows = spool_rows(&data);
        let stored: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        for id in accepted.iter().chain(&refused.1) {
            assert!(stored.contains(id.as_str()), "{engine}: row {id} is lost");
        }
        assert_eq!(
            rows.len(),
            accepted.len() + refused.1.len(),
            "{engine}: each accepted row once"
        );
        eprintln!(
            "{engine}: {} requests of 100 rows accepted before the disk was full",
            accepted.len() / 100
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Both engines, bearer token

/// A sample of the round trip: its series, value and time, and the value as a row spells it.
struct Sent {
    labels: Vec<(&'static str, &'static str)>,
    value: f64,
    ts: i64,
    text: &'static str,
}

impl Sent {
    fn new(
        labels: &[(&'static str, &'static str)],
        value: f64,
        ts: i64,
        text: &'static str,
    ) -> Sent {
        Sent {
            labels: labels.to_vec(),
            value,
            ts,
            text,
        }
    }
}

/// One remote write 1.0 round trip on each engine: the rows in the spool are the samples sent
/// (name, labels, node, value text, timestamp, name-based id); the probe Prometheus sends to
/// learn a receiver's version (an empty request) is a 204 that stores nothing.
#[test]
fn remote_write_round_trips_on_both_engines() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut serve = start_serve(&data, engine, &[]);
        let sent_at = now_ms();
        let up = [
            ("__name__", "rt_up"),
            ("instance", "h:9100"),
            ("job", "node"),
        ];
        let mut sent = vec![
            Sent::new(&up, 1.0, T0, "1"),
            Sent::new(&up, 0.0, T0 + 15_000, "0"),
        ];
        for (name, value, text) in [
            ("rt_ratio", 0.1, "0.1"),
            ("rt_big", 1e21, "1000000000000000000000"),
            ("rt_tiny", 1e-7, "0.0000001"),
            ("rt_nan", f64::NAN, "NaN"),
            ("rt_inf", f64::INFINITY, "+Inf"),
            ("rt_neg_inf", f64::NEG_INFINITY, "-Inf"),
        ] {
            let labels = [("__name__", name), ("node", "worker-1")];
            sent.push(Sent::new(&labels, value, T0, text));
        }
        let request = v1::WriteRequest {
            timeseries: sent
                .iter()
                .map(|s| series(&s.labels, &[(s.value, s.ts)]))
                .collect(),
            ..Default::default()
        };
        let r = post_v1(&serve, &request);
        assert_eq!(r.status, 204, "{engine}: {r:?}");
        assert_eq!(
            r.header("X-Prometheus-Remote-Write-Samples-Written"),
            None,
            "1.0 answers carry no 2.0 headers"
        );
        let probe = post_remote_write(&serve, "application/x-protobuf", &[], &[0]);
        assert_eq!(probe.status, 204, "{engine}: {probe:?}");
        stop(&mut serve);

        let rows = spool_rows(&data);
        assert_eq!(rows.len(), sent.len(), "{engine}: {rows:#?}");
        let stored = by_id(&rows);
        for s in &sent {
            let labels = label_map(&s.labels);
            let row = stored
                .get(id_of(&labels, s.ts).as_str())
                .unwrap_or_else(|| panic!("{engine}: no row for {labels:?}"));
            assert_eq!(row_labels(row), labels, "{engine}");
            assert_eq!(row.value, s.text, "{engine}: {labels:?}");
            assert_eq!(row.timestamp, s.ts.to_string(), "{engine}");
            let node = labels.get("node").or(labels.get("instance")).cloned();
            assert_eq!(row.node_name, node.unwrap_or_default(), "{engine}");
            assert_eq!(
                (row.cluster_name.as_str(), row.cloud_account_id.as_str()),
                ("", "")
            );
            let created: i64 = row.created_at.parse().unwrap();
            assert!(
                created >= sent_at && created <= now_ms(),
                "{engine}: {row:?}"
            );
        }
    }
}

/// With `ingest.bearerTokenFile`, requests without the token or with another one are 401
/// (with `WWW-Authenticate: Bearer`) and store nothing; the right token is 204. The health
/// route needs no token.
#[test]
fn a_bearer_token_is_required_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cr3t-t0ken\n").unwrap();
    let cfg = config(
        tmp.path(),
        &format!("ingest: {{bearerTokenFile: {}}}\n", token.display()),
    );
    let mut serve = start_serve_with(&data, "native", &cfg);
    let (request, ids) = batch_request(1);
    let body = snappy(&request.encode_to_vec());
    let url = format!("{}{REMOTE_WRITE}", serve.url());
    let send = |auth: Option<&str>| {
        let mut headers = vec![
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
        ];
        headers.extend(auth.map(|a| ("Authorization", a)));
        post(&url, &headers, &body)
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic czNjcjN0LXQwa2Vu"),
        Some("s3cr3t-t0ken"),
    ] {
        let r = send(auth);
        assert_eq!(r.status, 401, "{auth:?}: {r:?}");
        assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"), "{auth:?}");
    }
    let otlp = post(
        &format!("{}{OTLP}", serve.url()),
        &[("Content-Type", "application/x-protobuf")],
        &[],
    );
    assert_eq!(otlp.status, 401, "OTLP too: {otlp:?}");
    assert_healthy(&serve, "refused tokens");
    let r = send(Some("Bearer s3cr3t-t0ken"));
    assert_eq!(r.status, 204, "{r:?}");
    stop(&mut serve);
    let rows = spool_rows(&data);
    let stored: BTreeSet<String> = rows.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        stored,
        ids.into_iter().collect(),
        "only the authorized request's rows"
    );
    assert_eq!(rows.len(), 100);
}
