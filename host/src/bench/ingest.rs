//! Ingest over HTTP: Prometheus remote write 1.0 through `serve`'s real route against `spool
//! put` of the same rows on the same engine; the latency of a 2xx under concurrent senders
//! with group commit; and the memory of a flood refused at the spool's byte cap.
//!
//! The server is what `edgestore serve` runs, assembled from its public pieces: the group
//! commit [`Writer`], the [`Ingest`] routes and the axum [`HttpEndpoint`], on loopback, on the
//! host's runtime. The senders are hyper's HTTP/1 client on a runtime (so a thread) of their
//! own, one keep-alive connection each. Request bodies are built untimed from
//! [`MetricGenerator`] rows: each row's labels plus `__name__` make a series (rows with the
//! same label set share one, samples oldest first), encoded as a `prometheus.WriteRequest` and
//! snappy-compressed as Prometheus sends it. The baseline puts exactly the rows the server
//! decodes those bodies into (decoded once, untimed, with the server's own decoder and
//! mapping), in the same 2,000-row batches, into a spool with the same configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use edgestore::sample::MetricGenerator;
use edgestore::{Metric, SpoolConfig};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use prost::Message;
use tempfile::TempDir;

use super::error::{BenchError, Result};
use super::fixture::{tempdir, Host, Side};
use super::memory;
use super::spool::BATCH;
use crate::client::{AsyncSpool, Store};
use crate::health::HealthConfig;
use crate::ingest::http::{Ingest, REMOTE_WRITE_PATH};
use crate::ingest::remote_write::{self, proto::v1, Version};
use crate::ingest::writer::{Writer, WriterOptions};
use crate::ingest::{IngestConfig, SyncSetting};
use crate::serve::{HttpEndpoint, ServeOptions};

/// Samples in one remote write request: Prometheus' default `max_samples_per_send`.
pub const SAMPLES_PER_REQUEST: usize = 2_000;

/// Brotli quality of the ingest figures: the spool's default.
pub const LEVEL: u32 = 6;

/// Concurrent senders of the latency figure.
pub const SENDERS: usize = 8;

/// Senders of the flood at the byte cap: `ingest.maxInFlight`'s default, so every one of them
/// holds a turn and none waits for one.
pub const FLOOD_SENDERS: usize = 16;

/// The spool's byte cap in the flood: small, so a few puts reach it.
pub const FLOOD_CAP_BYTES: u64 = 1 << 20;

/// Requests one flood sender sends at most (the flood is bounded in count as well as time).
const FLOOD_MAX_REQUESTS_PER_SENDER: u64 = 50_000;

/// How often the flood samples `VmRSS`.
const RSS_EVERY: Duration = Duration::from_millis(1);

/// The generator's seed (the spool figures' seed) and first timestamp.
const SEED: u64 = 2024;
const START_MS: i64 = 1_700_000_000_000;

/// One request: its body, and the rows the server decodes it into.
struct RequestBody {
    body: Bytes,
    rows: Vec<Metric>,
}

/// Remote write request bodies of generated rows, and the spool configuration both sides use.
pub struct RemoteWrite {
    /// Brotli quality of the spool.
    pub level: u32,
    /// Samples (= rows) in all requests.
    pub samples: usize,
    requests: Vec<RequestBody>,
}

impl RemoteWrite {
    /// `samples` generated rows (seed 2024) as requests of [`SAMPLES_PER_REQUEST`] samples.
    pub fn new(samples: usize, level: u32) -> Result<Self> {
        let mut generator = MetricGenerator::new(SEED, START_MS);
        let config = IngestConfig::default();
        let (limits, mapping) = (config.limits(), config.mapping());
        let mut requests = Vec::new();
        let mut left = samples;
        while left > 0 {
            let n = left.min(SAMPLES_PER_REQUEST);
            let body = encode(&generator.batch(n))?;
            let decoded = remote_write::decode(Version::V1, &body, &limits, &mapping, now_ms())
                .map_err(|e| BenchError::Check(format!("our own request is refused: {e}")))?;
            if decoded.rows.len() != n {
                return Err(BenchError::Check(format!(
                    "a request of {n} samples decodes into {} rows",
                    decoded.rows.len()
                )));
            }
            requests.push(RequestBody {
                body,
                rows: decoded.rows,
            });
            left -= n;
        }
        Ok(RemoteWrite {
            level,
            samples,
            requests,
        })
    }

    /// Requests in the workload.
    pub fn requests(&self) -> usize {
        self.requests.len()
    }

    /// Compressed body bytes of all requests.
    pub fn body_bytes(&self) -> u64 {
        self.requests.iter().map(|r| r.body.len() as u64).sum()
    }

    /// The spool configuration of both sides: the defaults at this workload's level.
    pub fn config(&self) -> SpoolConfig {
        let mut config = SpoolConfig::new("bench");
        config.compression_level = self.level;
        config.max_records = BATCH as u64;
        config
    }

    /// Post every request, one at a time on one connection, to `POST /api/v1/write` of a
    /// fresh server on `side` (`ingest.sync: interval`, so neither side syncs per batch and
    /// the difference to [`RemoteWrite::put`] is HTTP and decoding), then flush the spool.
    /// Times the requests and the flush; starting the server is not timed.
    pub fn http(&self, host: &Host, side: Side) -> Result<Duration> {
        let server = Server::start(host, side, None, self.config(), SyncSetting::Interval, None)?;
        let client = client_runtime()?;
        let addr = server.addr;
        let t = Instant::now();
        let sent = client.block_on(async {
            let mut sender = Sender::new(addr);
            for r in &self.requests {
                let status = sender.post(r.body.clone()).await?;
                expect_2xx(status)?;
            }
            Ok::<_, BenchError>(())
        });
        let flushed = sent.and_then(|()| Ok(host.rt.block_on(server.spool.flush())?));
        let elapsed = t.elapsed();
        drop(client);
        let stopped = server.stop(host);
        flushed?;
        stopped?;
        Ok(elapsed)
    }

    /// What the server's decoder alone costs: [`remote_write::decode`] of every body (snappy,
    /// protobuf, one row per sample) with ingest's default limits and mapping, on this thread.
    pub fn decode(&self) -> Result<Duration> {
        let config = IngestConfig::default();
        let (limits, mapping) = (config.limits(), config.mapping());
        let received = now_ms();
        let t = Instant::now();
        for r in &self.requests {
            let decoded =
                remote_write::decode(Version::V1, &r.body, &limits, &mapping, received)
                    .map_err(|e| BenchError::Check(format!("our own request is refused: {e}")))?;
            std::hint::black_box(decoded);
        }
        Ok(t.elapsed())
    }

    /// The baseline: `put` of the very rows the server decodes, in the same batches, into a
    /// fresh spool on `side` through the host client, then `flush`.
    pub fn put(&self, host: &Host, side: Side) -> Result<Duration> {
        let dir = tempdir()?;
        let batches: Vec<Vec<Metric>> = self.requests.iter().map(|r| r.rows.clone()).collect();
        let store = host.open(side, dir.path())?;
        host.rt.block_on(async {
            let spool = store.spool("metrics", self.config()).await?;
            let t = Instant::now();
            for batch in batches {
                spool.put(batch).await?;
            }
            spool.flush().await?;
            let elapsed = t.elapsed();
            store.close().await?;
            Ok(elapsed)
        })
    }

    /// `senders` connections posting `per_sender` requests each, all at once, to a fresh
    /// server on `side` with `ingest.sync: request` (a 2xx means synced; requests waiting
    /// together share one put and one sync). Every answer must be a 2xx.
    pub fn concurrent(
        &self,
        host: &Host,
        side: Side,
        senders: usize,
        per_sender: usize,
    ) -> Result<Concurrent> {
        let server = Server::start(host, side, None, self.config(), SyncSetting::Request, None)?;
        let client = client_runtime()?;
        let addr = server.addr;
        let bodies: Arc<Vec<Bytes>> =
            Arc::new(self.requests.iter().map(|r| r.body.clone()).collect());
        let t = Instant::now();
        let latencies = client.block_on(async {
            let tasks: Vec<_> = (0..senders)
                .map(|k| {
                    let bodies = bodies.clone();
                    tokio::spawn(async move {
                        let mut sender = Sender::new(addr);
                        let mut latencies = Vec::with_capacity(per_sender);
                        for i in 0..per_sender {
                            let body = bodies[(k + i * senders) % bodies.len()].clone();
                            let t = Instant::now();
                            let status = sender.post(body).await?;
                            expect_2xx(status)?;
                            latencies.push(t.elapsed().as_secs_f64());
                        }
                        Ok::<_, BenchError>(latencies)
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(senders * per_sender);
            for task in tasks {
                let got = task
                    .await
                    .map_err(|e| BenchError::Check(format!("a sender task failed: {e}")))?;
                all.extend(got?);
            }
            Ok::<_, BenchError>(all)
        });
        let elapsed = t.elapsed();
        drop(client);
        let stopped = server.stop(host);
        let latencies = latencies?;
        stopped?;
        Ok(Concurrent {
            samples: (latencies.len() * SAMPLES_PER_REQUEST) as u64,
            latencies,
            elapsed,
        })
    }
}

/// A remote write load in the background (the ship figures measure shipping under it): a
/// fresh native server as [`RemoteWrite::http`] starts one, and one sender posting the
/// workload's requests back to back on a thread of its own until [`Load::stop`].
pub struct Load {
    server: Server,
    stop: Arc<AtomicBool>,
    sender: std::thread::JoinHandle<Result<u64>>,
    started: Instant,
}

impl RemoteWrite {
    /// Start the load; see [`Load`].
    pub fn load(&self, host: &Host) -> Result<Load> {
        let server = Server::start(
            host,
            Side::Native,
            None,
            self.config(),
            SyncSetting::Interval,
            None,
        )?;
        let addr = server.addr;
        let bodies: Vec<Bytes> = self.requests.iter().map(|r| r.body.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sender = std::thread::spawn(move || {
            client_runtime()?.block_on(async move {
                let mut sender = Sender::new(addr);
                let mut sent = 0u64;
                for body in bodies.iter().cycle() {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    expect_2xx(sender.post(body.clone()).await?)?;
                    sent += 1;
                }
                Ok(sent)
            })
        });
        Ok(Load {
            server,
            stop,
            sender,
            started: Instant::now(),
        })
    }
}

impl Load {
    /// Stop the sender, then the server; the samples it wrote (every answer was a 2xx) and
    /// for how long.
    pub fn stop(self, host: &Host) -> Result<(u64, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self
            .sender
            .join()
            .map_err(|_| BenchError::Check("the load's sender panicked".into()));
        let elapsed = self.started.elapsed();
        let stopped = self.server.stop(host);
        let requests = sent??;
        stopped?;
        Ok((requests * SAMPLES_PER_REQUEST as u64, elapsed))
    }
}

/// What concurrent senders measured.
#[derive(Debug, Clone)]
pub struct Concurrent {
    /// Seconds from sending a request to its 2xx having been read, one per request.
    pub latencies: Vec<f64>,
    /// Samples written.
    pub samples: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// Rows as one `prometheus.WriteRequest`, snappy-compressed: one series per label set
/// (`__name__` plus the row's labels, sorted by name), its samples oldest first.
pub(crate) fn encode(rows: &[Metric]) -> Result<Bytes> {
    let mut series: std::collections::BTreeMap<Vec<(String, String)>, Vec<v1::Sample>> =
        std::collections::BTreeMap::new();
    for row in rows {
        let mut labels: Vec<(String, String)> = Vec::with_capacity(row.labels.len() + 1);
        labels.push(("__name__".to_owned(), row.metric_name.clone()));
        labels.extend(row.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels.sort();
        let value = row
            .value
            .parse::<f64>()
            .map_err(|e| BenchError::Check(format!("generated value {:?}: {e}", row.value)))?;
        let timestamp = row.timestamp.parse::<i64>().map_err(|e| {
            BenchError::Check(format!("generated timestamp {:?}: {e}", row.timestamp))
        })?;
        series
            .entry(labels)
            .or_default()
            .push(v1::Sample { value, timestamp });
    }
    let request = v1::WriteRequest {
        timeseries: series
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by_key(|s| s.timestamp);
                v1::TimeSeries {
                    labels: labels
                        .into_iter()
                        .map(|(name, value)| v1::Label { name, value })
                        .collect(),
                    samples,
                    exemplars: Vec::new(),
                    histograms: Vec::new(),
                }
            })
            .collect(),
        metadata: Vec::new(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .map_err(|e| BenchError::Check(format!("snappy compress: {e}")))?;
    Ok(Bytes::from(body))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn expect_2xx(status: StatusCode) -> Result<()> {
    if status.is_success() {
        Ok(())
    } else {
        Err(BenchError::Check(format!(
            "the server answered {status} where a 2xx was due"
        )))
    }
}

/// `serve`'s listener with the ingest routes on loopback, its store and spool.
struct Server {
    store: Store,
    spool: AsyncSpool,
    endpoint: HttpEndpoint,
    addr: SocketAddr,
    /// The data directory when the server made it (deleted on drop).
    _dir: Option<TempDir>,
}

impl Server {
    /// A fresh store on `side` (the host's bench configuration) in `data_dir` (default: a
    /// new temporary directory), its spool `metrics` with `config`, and the listener on
    /// `127.0.0.1:0` with ingest's defaults but `sync`, and `cap` as the spool's byte cap.
    /// The disk-use limit is off (100 %): a full shared disk must not turn a throughput
    /// figure into 429s.
    fn start(
        host: &Host,
        side: Side,
        data_dir: Option<&Path>,
        mut config: SpoolConfig,
        sync: SyncSetting,
        cap: Option<u64>,
    ) -> Result<Server> {
        let (made, dir) = match data_dir {
            Some(given) => (None, given.to_path_buf()),
            None => {
                let made = tempdir()?;
                let dir = made.path().to_path_buf();
                (Some(made), dir)
            }
        };
        config.max_bytes = cap;
        let store = host.open(side, &dir)?;
        let ingest = IngestConfig {
            sync,
            ..IngestConfig::default()
        };
        let health = HealthConfig {
            max_disk_used_percent: 100.0,
            ..HealthConfig::default()
        };
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let started = host.rt.block_on(async {
            let spool = store.spool("metrics", config).await?;
            let writer = Writer::start(
                store.clone(),
                spool.clone(),
                WriterOptions {
                    sync: ingest.sync_mode(),
                    max_spool_bytes: cap,
                    max_disk_used_percent: health.max_disk_used_percent,
                },
            );
            let routes = Ingest::new(&ingest, writer, store.metrics().clone())?;
            let options = ServeOptions {
                listen,
                data_dir: dir.clone(),
                spool_dir: "metrics".into(),
                health,
                admin: false,
                ingest: ingest.clone(),
                max_spool_bytes: cap,
                tls: None,
                ship: crate::ops::ship::ShipConfig::default(),
                backup: crate::ops::backup::BackupConfig::default(),
                database_keys: Vec::new(),
            };
            let endpoint =
                HttpEndpoint::start(listen, store.clone(), spool.clone(), options, Some(routes))
                    .await?;
            Ok::<_, crate::Error>((spool, endpoint))
        });
        let (spool, endpoint) = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = host.rt.block_on(store.close());
                return Err(e.into());
            }
        };
        let addr = endpoint.addr();
        Ok(Server {
            store,
            spool,
            endpoint,
            addr,
            _dir: made,
        })
    }

    /// Stop the listener (requests in flight are answered first), then close the store.
    fn stop(self, host: &Host) -> Result<()> {
        host.rt.block_on(async {
            self.endpoint.stop().await;
            self.store.close().await?;
            Ok(())
        })
    }
}

/// The senders' runtime: one thread of their own, apart from the server's.
fn client_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("start the senders' runtime", e))
}

/// One sender: a keep-alive HTTP/1 connection, opened on first use and again after the
/// server closed it.
struct Sender {
    addr: SocketAddr,
    connection: Option<SendRequest<Full<Bytes>>>,
}

impl Sender {
    fn new(addr: SocketAddr) -> Self {
        Sender {
            addr,
            connection: None,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| BenchError::io(format!("connect to {}", self.addr), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| BenchError::io("set TCP_NODELAY", e))?;
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::http("HTTP/1 handshake", e))?;
        // Drives the connection until either side closes it.
        tokio::spawn(connection);
        Ok(send)
    }

    /// Post one remote write 1.0 body (as Prometheus does: snappy, protobuf, version 0.1.0)
    /// and read the whole answer; its status.
    async fn post(&mut self, body: Bytes) -> Result<StatusCode> {
        let reusable = match self.connection.take() {
            Some(mut send) => send.ready().await.is_ok().then_some(send),
            None => None,
        };
        let mut send = match reusable {
            Some(send) => send,
            None => self.connect().await?,
        };
        let request = Request::post(REMOTE_WRITE_PATH)
            .header(header::HOST, self.addr.to_string())
            .header(header::CONTENT_TYPE, remote_write::CONTENT_TYPE)
            .header(header::CONTENT_ENCODING, remote_write::CONTENT_ENCODING)
            .header(remote_write::VERSION_HEADER, "0.1.0")
            .header(header::USER_AGENT, "edgestore-bench")
            .body(Full::new(body))
            .map_err(|e| BenchError::Check(format!("build the request: {e}")))?;
        let response = send
            .send_request(request)
            .await
            .map_err(|e| BenchError::http("send the request", e))?;
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError::http("read the answer", e))?;
        self.connection = Some(send);
        Ok(status)
    }
}

/// What the flood at the byte cap measured (in a child process, see [`flood_rss`]).
#[derive(Debug, Clone)]
pub struct Flood {
    /// Peak resident set during the flood minus the resident set just before it (the larger
    /// of the sampled `VmRSS` peak's and `VmHWM`'s growth), bytes.
    pub growth_bytes: u64,
    /// Resident set just before the flood, bytes.
    pub before_bytes: u64,
    /// Requests answered 429.
    pub refused: u64,
    /// Requests answered anything else (must be none).
    pub other: u64,
    /// Requests that failed on the connection (the sender reconnects).
    pub failed: u64,
    /// The first such failure, if any.
    pub first_failure: Option<String>,
    /// Length of the flood.
    pub elapsed: Duration,
}

/// Run [`FLOOD_SENDERS`] senders flooding a server whose spool is at its byte cap for
/// `duration`, in a child process (so earlier measurements' heap cannot hide growth); `dir`
/// holds the data directory.
pub fn flood_rss(duration: Duration, dir: &Path) -> Result<Flood> {
    let spec = format!(
        "{}:{}:{}",
        memory::FLOOD,
        duration.as_millis(),
        dir.display()
    );
    let stdout = memory::run_child(&spec)?;
    let field = |name: &str| -> Option<u64> {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.parse().ok())
    };
    match (
        field("growth_kb="),
        field("before_kb="),
        field("refused="),
        field("other="),
        field("failed="),
        field("elapsed_us="),
    ) {
        (Some(growth), Some(before), Some(refused), Some(other), Some(failed), Some(us)) => {
            let first_failure = stdout
                .split_once("first_failure=")
                .map(|(_, f)| f.trim())
                .filter(|f| *f != "-")
                .map(str::to_owned);
            Ok(Flood {
                growth_bytes: growth * 1024,
                before_bytes: before * 1024,
                refused,
                other,
                failed,
                first_failure,
                elapsed: Duration::from_micros(us),
            })
        }
        _ => Err(BenchError::Check(format!(
            "the flood child printed no measurement: {stdout}"
        ))),
    }
}

/// The flood child's work: a native server whose spool is filled to [`FLOOD_CAP_BYTES`], then
/// [`FLOOD_SENDERS`] senders posting 2,000-sample requests as fast as they are answered (no
/// back-off: they ignore `Retry-After`) for `millis`, while a thread samples `VmRSS`.
pub(super) fn flood_child(millis: u64, dir: &Path) -> Result<()> {
    let host = Host::new()?;
    let work = RemoteWrite::new(SAMPLES_PER_REQUEST * 4, LEVEL)?;
    let server = Server::start(
        &host,
        Side::Native,
        Some(dir),
        work.config(),
        SyncSetting::Request,
        Some(FLOOD_CAP_BYTES),
    )?;
    let outcome = flood(&host, &server, &work, Duration::from_millis(millis));
    let stopped = server.stop(&host);
    let line = outcome?;
    stopped?;
    println!("{line}");
    Ok(())
}

fn flood(host: &Host, server: &Server, work: &RemoteWrite, duration: Duration) -> Result<String> {
    // Fill the spool to its cap with the workload's own rows.
    host.rt.block_on(async {
        for r in work.requests.iter().cycle().take(1_000) {
            if server.spool.usage().await?.total_bytes() >= FLOOD_CAP_BYTES {
                return Ok(());
            }
            server.spool.put(r.rows.clone()).await?;
        }
        Err(BenchError::Check(format!(
            "1,000 puts did not fill the spool to {FLOOD_CAP_BYTES} bytes"
        )))
    })?;
    let client = client_runtime()?;
    // One request first, alone: the writer reads the spool's usage on the first request and
    // lets requests that arrive while that read is under way through on its initial zero, so
    // a burst of senders at start-up would be admitted. A running server at its cap is past
    // that: this request must be refused already.
    let first = client.block_on(Sender::new(server.addr).post(work.requests[0].body.clone()))?;
    if first != StatusCode::TOO_MANY_REQUESTS {
        return Err(BenchError::Check(format!(
            "a request to a spool at its byte cap was answered {first}, not 429"
        )));
    }
    // What the fill freed is given back to the allocator now, not during the flood.
    std::thread::sleep(Duration::from_millis(50));
    let before = memory::vmrss_kb()?;
    let hwm_before = memory::vmhwm_kb()?;
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(kb) = memory::vmrss_kb() {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(RSS_EVERY);
            }
        })
    };
    let addr = server.addr;
    let bodies: Arc<Vec<Bytes>> = Arc::new(work.requests.iter().map(|r| r.body.clone()).collect());
    let t = Instant::now();
    let deadline = t + duration;
    let counts = client.block_on(async {
        let tasks: Vec<_> = (0..FLOOD_SENDERS)
            .map(|k| {
                let bodies = bodies.clone();
                tokio::spawn(async move {
                    let mut sender = Sender::new(addr);
                    let mut tally = Tally::default();
                    let mut i = k;
                    while Instant::now() < deadline && tally.sent() < FLOOD_MAX_REQUESTS_PER_SENDER
                    {
                        match sender.post(bodies[i % bodies.len()].clone()).await {
                            Ok(StatusCode::TOO_MANY_REQUESTS) => tally.refused += 1,
                            Ok(status) => {
                                tally.other += 1;
                                tally.first_other.get_or_insert(status);
                            }
                            Err(e) => {
                                tally.failed += 1;
                                tally.first_failure.get_or_insert_with(|| with_causes(&e));
                            }
                        }
                        i += 1;
                    }
                    tally
                })
            })
            .collect();
        let mut total = Tally::default();
        for task in tasks {
            let tally = task
                .await
                .map_err(|e| BenchError::Check(format!("a flood sender failed: {e}")))?;
            total.add(tally);
        }
        Ok::<_, BenchError>(total)
    });
    let elapsed = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let after = memory::vmrss_kb()?;
    let hwm_after = memory::vmhwm_kb()?;
    drop(client);
    let tally = counts?;
    if let Some(status) = tally.first_other {
        return Err(BenchError::Check(format!(
            "{} requests to a spool at its byte cap were answered otherwise than 429, the first \
             {status}",
            tally.other
        )));
    }
    let sampled = peak.load(Ordering::Relaxed).max(after);
    let growth = sampled
        .saturating_sub(before)
        .max(hwm_after.saturating_sub(hwm_before));
    // The failure's text goes last: it has spaces.
    Ok(format!(
        "growth_kb={growth} before_kb={before} refused={} other={} failed={} elapsed_us={} \
         first_failure={}",
        tally.refused,
        tally.other,
        tally.failed,
        elapsed.as_micros(),
        tally.first_failure.as_deref().unwrap_or("-")
    ))
}

/// An error and its causes, `: `-separated (hyper's own message hides the I/O error).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// What flood senders were answered.
#[derive(Debug, Default)]
struct Tally {
    refused: u64,
    other: u64,
    failed: u64,
    first_other: Option<StatusCode>,
    first_failure: Option<String>,
}

impl Tally {
    fn sent(&self) -> u64 {
        self.refused + self.other + self.failed
    }

    fn add(&mut self, other: Tally) {
        self.refused += other.refused;
        self.other += other.other;
        self.failed += other.failed;
        self.first_other = self.first_other.or(other.first_other);
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a generated row says about its sample, in the terms remote write carries.
    fn key(m: &Metric) -> (String, Vec<(String, String)>, i64, u64) {
        let labels = m
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let value: f64 = m.value.parse().unwrap_or(f64::NAN);
        (
            m.metric_name.clone(),
            labels,
            m.timestamp.parse().unwrap_or_default(),
            value.to_bits(),
        )
    }

    #[test]
    fn requests_carry_the_generated_rows_and_decode_into_one_row_per_sample() {
        let w = RemoteWrite::new(4_500, LEVEL).unwrap();
        assert_eq!(w.requests(), 3);
        let sizes: Vec<usize> = w.requests.iter().map(|r| r.rows.len()).collect();
        assert_eq!(sizes, [2_000, 2_000, 500]);

        let mut generated: Vec<_> = MetricGenerator::new(SEED, START_MS)
            .batch(4_500)
            .iter()
            .map(key)
            .collect();
        let mut decoded: Vec<_> = w.requests.iter().flat_map(|r| &r.rows).map(key).collect();
        generated.sort();
        decoded.sort();
        assert_eq!(decoded, generated);
        // The node comes from the `node` label, as the generator's own `node_name`.
        let row = &w.requests[0].rows[0];
        assert_eq!(row.labels.get("node"), Some(&row.node_name));
        assert!(w.body_bytes() > 0);
    }
}
