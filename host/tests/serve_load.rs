//! Load through `serve`: 64 HTTP clients at once, each on its own keep-alive connection,
//! sending a mix of remote write 1.0 (60%), OTLP/JSON (20%), `/healthz` (10%) and `/metrics`
//! (10%) to one `edgestore serve` process, on both engines. Every sample a 2xx answered is
//! stored exactly once (a 429 stored nothing and is retried after its `Retry-After`); p50/p99
//! per kind of request are printed.
//!
//! `EDGESTORE_LOAD_OPS` sets the requests per client (150 in the test run; the full run is
//! `EDGESTORE_LOAD_OPS=10000 cargo test --release -p edgestore-host --test serve_load -- --nocapture`).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use edgestore_host::ingest::remote_write::proto::v1;

mod common;

use common::{spool_rows, start_serve, terminate, Serving, ENGINES};

const CLIENTS: usize = 64;
/// Series per remote write request, points per OTLP request.
const PER_REQUEST: usize = 4;
const T0: i64 = 1_700_000_000_000;

/// The kinds of request, in the order the report prints them.
const KINDS: [&str; 4] = ["remote-write", "otlp-json", "healthz", "metrics"];

fn ops_per_client() -> usize {
    std::env::var("EDGESTORE_LOAD_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

/// The key a stored row must carry exactly once: metric name, client, request, point.
fn key(name: &str, client: usize, seq: usize, k: usize) -> String {
    format!("{name}/{client}/{seq}/{k}")
}

fn remote_write(client: usize, seq: usize) -> Vec<u8> {
    let timeseries: Vec<v1::TimeSeries> = (0..PER_REQUEST)
        .map(|k| v1::TimeSeries {
            labels: [
                ("__name__", "load_rw".to_owned()),
                ("client", client.to_string()),
                ("k", k.to_string()),
                ("seq", seq.to_string()),
            ]
            .into_iter()
            .map(|(name, value)| v1::Label {
                name: name.to_owned(),
                value,
            })
            .collect(),
            samples: vec![v1::Sample {
                value: seq as f64,
                timestamp: T0 + seq as i64,
            }],
            ..Default::default()
        })
        .collect();
    common::remote_write_v1(timeseries)
}

fn otlp_json(client: usize, seq: usize) -> Vec<u8> {
    let points: Vec<serde_json::Value> = (0..PER_REQUEST)
        .map(|k| {
            serde_json::json!({
                "asDouble": seq as f64 + 0.5,
                "timeUnixNano": ((T0 + seq as i64) * 1_000_000).to_string(),
                "attributes": [
                    {"key": "client", "value": {"stringValue": client.to_string()}},
                    {"key": "seq", "value": {"stringValue": seq.to_string()}},
                    {"key": "k", "value": {"stringValue": k.to_string()}},
                ],
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "resourceMetrics": [{
            "resource": {"attributes": []},
            "scopeMetrics": [{"metrics": [{"name": "load_otlp", "gauge": {"dataPoints": points}}]}],
        }]
    }))
    .unwrap()
}

/// One client's run: its latencies by kind, the keys acknowledged, and the 429s it retried.
struct ClientRun {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    acknowledged: Vec<String>,
    retried: u64,
}

fn client(base: String, client: usize, ops: usize) -> ClientRun {
    // One agent per client: its connection is kept alive across requests.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let mut run = ClientRun {
        latencies: BTreeMap::new(),
        acknowledged: Vec::new(),
        retried: 0,
    };
    for seq in 0..ops {
        let kind = match seq % 10 {
            0..=5 => "remote-write",
            6 | 7 => "otlp-json",
            8 => "healthz",
            _ => "metrics",
        };
        loop {
            let started = Instant::now();
            let response = match kind {
                "remote-write" => agent
                    .post(format!("{base}/api/v1/write"))
                    .header("Content-Type", "application/x-protobuf")
                    .header("Content-Encoding", "snappy")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .send(&remote_write(client, seq)[..]),
                "otlp-json" => agent
                    .post(format!("{base}/v1/metrics"))
                    .header("Content-Type", "application/json")
                    .send(&otlp_json(client, seq)[..]),
                "healthz" => agent.get(format!("{base}/healthz")).call(),
                _ => agent.get(format!("{base}/metrics")).call(),
            };
            let mut response =
                response.unwrap_or_else(|e| panic!("client {client} {kind} #{seq}: {e}"));
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body = response.body_mut().read_to_string().unwrap_or_default();
            let took = started.elapsed();
            if status == 429 {
                // Back-pressure: nothing was stored; wait as told (at most a second) and retry.
                run.retried += 1;
                std::thread::sleep(Duration::from_secs(retry_after.unwrap_or(1).min(1)));
                continue;
            }
            assert!(
                (200..300).contains(&status),
                "client {client} {kind} #{seq}: {status} {body}"
            );
            run.latencies.entry(kind).or_default().push(took);
            let name = match kind {
                "remote-write" => "load_rw",
                "otlp-json" => "load_otlp",
                _ => break,
            };
            run.acknowledged
                .extend((0..PER_REQUEST).map(|k| key(name, client, seq, k)));
            break;
        }
    }
    run
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[test]
fn sixty_four_http_clients_lose_and_duplicate_nothing() {
    let ops = ops_per_client();
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut serve: Serving = start_serve(&data, engine, &[]);
        let base = serve.url();
        let started = Instant::now();
        let runs: Vec<ClientRun> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    let base = base.clone();
                    scope.spawn(move || client(base, c, ops))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a client panicked"))
                .collect()
        });
        let elapsed = started.elapsed();
        let status = terminate(&mut serve.child);
        assert!(status.success(), "{engine}: serve exited with {status}");

        let mut latencies: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        let mut acknowledged = HashSet::new();
        let mut retried = 0;
        for run in runs {
            for (kind, mut l) in run.latencies {
                latencies.entry(kind).or_default().append(&mut l);
            }
            for k in run.acknowledged {
                assert!(acknowledged.insert(k), "{engine}: a key sent twice");
            }
            retried += run.retried;
        }
        let requests: usize = latencies.values().map(Vec::len).sum();
        eprintln!(
            "{engine}: {CLIENTS} clients x {ops} requests = {requests} in {elapsed:.1?} \
             ({:.0} requests/s, {} samples acknowledged, {retried} answers 429 retried)",
            requests as f64 / elapsed.as_secs_f64(),
            acknowledged.len()
        );
        for kind in KINDS {
            let Some(l) = latencies.get_mut(kind) else {
                continue;
            };
            l.sort();
            eprintln!(
                "  {kind:<13} {:>7} requests  p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}",
                l.len(),
                percentile(l, 0.50),
                percentile(l, 0.99),
                l.last().copied().unwrap_or_default()
            );
        }
        assert_eq!(requests, CLIENTS * ops, "{engine}: every request answered");

        // Every acknowledged sample stored once, nothing else stored.
        let rows = spool_rows(&data);
        let mut stored = HashSet::new();
        for row in &rows {
            let label = |name: &str| row.labels.get(name).cloned().unwrap_or_default();
            let k = format!(
                "{}/{}/{}/{}",
                row.metric_name,
                label("client"),
                label("seq"),
                label("k")
            );
            assert!(stored.insert(k.clone()), "{engine}: {k} stored twice");
        }
        assert_eq!(
            rows.len(),
            acknowledged.len(),
            "{engine}: rows stored vs samples acknowledged"
        );
        assert!(
            stored == acknowledged,
            "{engine}: {} acknowledged samples missing",
            acknowledged.difference(&stored).count()
        );
    }
}
