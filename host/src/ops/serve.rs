//! `edgestore serve`: a long-running ingest into the spool, with rotation by the store's
//! `flush-due` timer and a clean stop. Rows come from Prometheus remote write and OTLP/HTTP
//! ([`crate::ingest`]) on the HTTP listener, and from JSON lines on a reader such as stdin (or
//! generated rows). The listener (loopback by default) also answers `GET /metrics` and
//! `GET /healthz`.
//!
//! With `ship.target` set, a [`Shipper`] runs beside the ingest writer: finished segments go to
//! object storage every `ship.interval`, and `/healthz` adds its lag and failures.
//!
//! On SIGTERM or SIGINT the listener stops taking requests and answers those in flight (their
//! rows are written first), the shipper stops (an upload in flight gets a few seconds, else it
//! is dropped unacknowledged), then every row already read is put and the spool flushed into
//! finished segments before [`run`] returns.
//!
//! The listener is axum on the store's tokio runtime: concurrent ingest requests share one
//! journal sync (group commit), which a server answering one request at a time cannot give.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use edgestore::sample::MetricGenerator;
use edgestore::Metric;
use tokio::sync::mpsc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::client::{AsyncSpool, Store};
use crate::error::{Error, Result};
use crate::metrics::CONTENT_TYPE;
use crate::ops::admin::AdminServer;
use crate::ops::admin::Services;
use crate::ops::backup::{BackupConfig, BackupRunner};
use crate::ops::health::{check, HealthConfig, HealthTarget};
use crate::ops::ingest::http::Ingest;
use crate::ops::ingest::writer::{Writer, WriterOptions};
use crate::ops::ingest::IngestConfig;
use crate::ops::ship::{ShipConfig, Shipper, ShipperOptions};
use crate::ops::tls::TlsConfig;

/// Largest batch handed to one `put`.
const MAX_BATCH: usize = 1000;

/// Where rows come from.
pub enum Source {
    /// JSON lines, one metric per line (e.g. stdin). A bad line is reported on stderr with its
    /// number and skipped: a long-running ingest does not stop for one malformed sample.
    Lines(Box<dyn BufRead + Send>),
    /// `rows_per_second` generated metrics ([`MetricGenerator`]).
    Generate {
        /// Rows per second.
        rows_per_second: f64,
    },
}

/// What `serve` needs besides the store.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The data directory, for the health checks.
    pub data_dir: PathBuf,
    /// The spool's directory relative to it.
    pub spool_dir: String,
    /// Health thresholds.
    pub health: HealthConfig,
    /// Serve the owner's admin socket ([`crate::admin`]) so other processes' mutations are
    /// forwarded here.
    pub admin: bool,
    /// Prometheus remote write and OTLP on the listener.
    pub ingest: IngestConfig,
    /// The spool's byte cap (`retention.maxBytes`): ingest answers 429 at it.
    pub max_spool_bytes: Option<u64>,
    /// HTTPS instead of HTTP on the listener.
    pub tls: Option<TlsConfig>,
    /// Shipping finished segments to object storage; off without `ship.target`.
    pub ship: ShipConfig,
    /// Continuous backup of the databases; off without `backup.targets`.
    pub backup: BackupConfig,
    /// The database keys when the databases are encrypted (the backup opens them with these).
    pub database_keys: Vec<edgestore::sql::sqlite::DatabaseKey>,
}

/// What a finished `serve` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Rows put into the spool from the input (stdin or generated).
    pub rows: u64,
    /// Rows received over HTTP (remote write, OTLP) and written.
    pub ingested_rows: u64,
    /// Input lines skipped as malformed.
    pub bad_lines: u64,
}

/// The HTTP listener: `/metrics`, `/healthz` and the ingest routes on the tokio runtime,
/// stopped gracefully by [`HttpEndpoint::stop`] (requests in flight are answered first).
pub struct HttpEndpoint {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// What the `/metrics` and `/healthz` routes read.
#[derive(Clone)]
struct OpsState {
    store: Store,
    spool: AsyncSpool,
    options: ServeOptions,
    services: Services,
}

impl HttpEndpoint {
    /// Bind `listen` and answer `/metrics` and `/healthz` for `store` (and its `spool`), plus
    /// the `ingest` routes when given.
    pub async fn start(
        listen: SocketAddr,
        store: Store,
        spool: AsyncSpool,
        options: ServeOptions,
        ingest: Option<Ingest>,
    ) -> Result<Self> {
        HttpEndpoint::start_with_services(
            listen,
            store,
            spool,
            options,
            ingest,
            Services::default(),
        )
        .await
    }

    /// [`HttpEndpoint::start`], with `/healthz` and `/metrics` also reporting on the shipper
    /// and the backup in `services`.
    pub async fn start_with_services(
        listen: SocketAddr,
        store: Store,
        spool: AsyncSpool,
        options: ServeOptions,
        ingest: Option<Ingest>,
        services: Services,
    ) -> Result<Self> {
        // A bad certificate fails here, before anything listens.
        let acceptor = options.tls.as_ref().map(TlsConfig::acceptor).transpose()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Config(format!("listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::runtime(format!("the address of {listen}: {e}")))?;
        let ops = Router::new()
            .route("/metrics", get(metrics_route))
            .route("/healthz", get(healthz_route))
            .with_state(OpsState {
                store,
                spool,
                options,
                services,
            });
        let mut router = match ingest {
            Some(ingest) => ops.merge(ingest.routes()),
            None => ops,
        };
        router = router.fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, PLAIN)],
                "not found: try /metrics, /healthz, POST /api/v1/write or POST /v1/metrics\n",
            )
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let task = match acceptor {
            Some(acceptor) => {
                tokio::spawn(crate::ops::tls::serve(listener, acceptor, router, stopped))
            }
            None => tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .await
            }),
        };
        Ok(HttpEndpoint {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting connections and wait until every request in flight is answered (an
    /// ingest request's rows are then written, or refused).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("edgestore serve: the HTTP listener failed: {e}"),
                Err(e) => eprintln!("edgestore serve: the HTTP listener stopped abnormally: {e}"),
            }
        }
    }
}

impl Drop for HttpEndpoint {
    fn drop(&mut self) {
        // Not stopped through `stop`: end the listener without waiting.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

const PLAIN: &str = "text/plain; charset=utf-8";

async fn metrics_route(State(ops): State<OpsState>) -> Response {
    if let Ok(u) = ops.spool.usage().await {
        ops.store.metrics().set_disk_usage(&u);
    }
    if let Some(shipper) = &ops.services.shipper {
        shipper.refresh_lag().await;
    }
    if let Some(backup) = &ops.services.backup {
        backup.refresh_metrics();
    }
    ops.store.breaker_state();
    match ops.store.metrics().gather_text() {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, PLAIN)],
            format!("{e}\n"),
        )
            .into_response(),
    }
}

async fn healthz_route(State(ops): State<OpsState>) -> Response {
    let target = HealthTarget {
        data_dir: &ops.options.data_dir,
        spool_dir: Some(&ops.options.spool_dir),
        spool: Some(&ops.spool),
    };
    let mut report = check(&ops.store, &target, &ops.options.health).await;
    if let Some(shipper) = &ops.services.shipper {
        let reasons = shipper.health(ops.options.health.max_ship_lag).await;
        report.reasons.extend(reasons);
    }
    if let Some(backup) = &ops.services.backup {
        report
            .reasons
            .extend(backup.health(ops.options.health.max_backup_age));
    }
    let status = if report.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, PLAIN)],
        report.render(false),
    )
        .into_response()
}

/// Read JSON lines on a plain thread (stdin blocks), parsing each into a metric.
fn spawn_reader(
    mut input: Box<dyn BufRead + Send>,
    tx: mpsc::Sender<Metric>,
) -> mpsc::Receiver<u64> {
    let (bad_tx, bad_rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        let mut bad = 0u64;
        let mut number = 0u64;
        let mut line = String::new();
        loop {
            line.clear();
            number += 1;
            match input.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("edgestore serve: input line {number}: cannot read: {e}");
                    break;
                }
            }
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            match serde_json::from_str::<Metric>(trimmed) {
                Ok(m) => {
                    if tx.blocking_send(m).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    bad += 1;
                    eprintln!("edgestore serve: input line {number}: not a metric, skipped: {e}");
                }
            }
        }
        let _ = bad_tx.blocking_send(bad);
    });
    bad_rx
}

/// Generate `rows_per_second` metrics, in ticks of 100 ms.
fn spawn_generator(rows_per_second: f64, tx: mpsc::Sender<Metric>) {
    tokio::spawn(async move {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(0))
            .unwrap_or(0);
        let mut generator = MetricGenerator::new(now as u64, now);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut owed = 0.0f64;
        loop {
            tick.tick().await;
            owed += rows_per_second / 10.0;
            while owed >= 1.0 {
                owed -= 1.0;
                if tx.send(generator.next_metric()).await.is_err() {
                    return;
                }
            }
        }
    });
}

/// A future that resolves on SIGTERM or SIGINT (with the signal's name); the handlers are
/// installed when it is first polled.
pub async fn stop_signal() -> Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| Error::runtime(format!("install the SIGTERM handler: {e}")))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| Error::runtime(format!("install the SIGINT handler: {e}")))?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| Error::runtime(format!("install the Ctrl-C handler: {e}")))?;
        Ok("Ctrl-C")
    }
}

/// Serve until SIGTERM or SIGINT. `on_listening` hears the bound address first (the CLI prints
/// it, so callers of `--listen 127.0.0.1:0` find the port). On the signal, every row already
/// received is put and the spool flushed; a failing put or flush is returned as the error.
pub async fn run(
    store: Store,
    spool: AsyncSpool,
    source: Source,
    options: ServeOptions,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<ServeSummary> {
    // Install the handlers before announcing the address: a signal sent right after the
    // announcement must not kill the process.
    let stop = stop_signal();
    tokio::pin!(stop);
    let writer = Writer::start(
        store.clone(),
        spool.clone(),
        WriterOptions {
            sync: options.ingest.sync_mode(),
            max_spool_bytes: options.max_spool_bytes,
            max_disk_used_percent: options.health.max_disk_used_percent,
        },
    );
    let ingest = Ingest::new(&options.ingest, writer, store.metrics().clone())?;
    // A target that cannot be set up (no credentials, no such directory) fails here, before
    // anything listens; no request is sent until a segment is pending.
    let shipper = if options.ship.enabled() {
        let ship_options = ShipperOptions {
            config: options.ship.clone(),
            data_dir: options.data_dir.clone(),
            spool_dir: options.spool_dir.clone(),
            breaker: store.breaker_config(),
            report: true,
        };
        let shipper = Shipper::open(spool.clone(), store.metrics().clone(), ship_options)
            .map_err(|e| Error::Config(e.to_string()))?;
        Some(shipper)
    } else {
        None
    };
    let backup = if options.backup.enabled() {
        let spool_dir = options.data_dir.join(&options.spool_dir);
        let runner = BackupRunner::open(
            &options.backup,
            &options.data_dir,
            Some(spool_dir),
            options.database_keys.clone(),
            store.metrics().clone(),
            true,
        )
        .map_err(|e| Error::Config(e.to_string()))?;
        Some(runner)
    } else {
        None
    };
    let services = Services {
        shipper: shipper.clone(),
        backup: backup.clone(),
    };
    if !options.listen.ip().is_loopback() {
        if !ingest.requires_token() {
            eprintln!(
                "edgestore serve: warning: listening on {} (not loopback) without ingest.bearerTokenFile: anyone who reaches this port can write rows",
                options.listen
            );
        }
        if options.tls.is_none() {
            eprintln!(
                "edgestore serve: warning: listening on {} (not loopback) without serve.tls: rows and tokens cross the network in clear text",
                options.listen
            );
        }
    }
    let http = HttpEndpoint::start_with_services(
        options.listen,
        store.clone(),
        spool.clone(),
        options.clone(),
        Some(ingest.clone()),
        services.clone(),
    )
    .await?;
    // Mutations from other processes come in through the admin socket; without one (turned
    // off, or the data directory's path too long for a socket) they are refused, naming us.
    let admin = if options.admin {
        match AdminServer::start_with_services(
            &options.data_dir,
            store.clone(),
            spool.clone(),
            services,
        ) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!(
                    "edgestore serve: no admin socket ({e}); mutating commands from other processes are refused while this runs"
                );
                None
            }
        }
    } else {
        None
    };
    on_listening(http.addr());
    let (backup_stop, backup_stopped) = tokio::sync::oneshot::channel::<()>();
    let backup_task = backup.map(|runner| {
        tokio::spawn(async move {
            runner
                .run(async {
                    let _ = backup_stopped.await;
                })
                .await;
        })
    });
    let (ship_stop, ship_stopped) = tokio::sync::oneshot::channel::<()>();
    let ship_task = shipper.map(|shipper| {
        tokio::spawn(async move {
            shipper
                .run(async {
                    let _ = ship_stopped.await;
                })
                .await;
        })
    });

    let (tx, mut rx) = mpsc::channel::<Metric>(MAX_BATCH * 4);
    let mut bad_rx = match source {
        Source::Lines(input) => Some(spawn_reader(input, tx)),
        Source::Generate { rows_per_second } => {
            spawn_generator(rows_per_second, tx);
            None
        }
    };
    let mut summary = ServeSummary::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut input_open = true;
    loop {
        tokio::select! {
            signal = &mut stop => {
                signal?;
                break;
            }
            got = rx.recv_many(&mut batch, MAX_BATCH), if input_open => {
                if got == 0 {
                    // The input ended: keep serving until told to stop.
                    input_open = false;
                    continue;
                }
                summary.rows += batch.len() as u64;
                spool.put(std::mem::take(&mut batch)).await?;
            }
        }
    }
    // The shipper stops starting uploads now; it gets its grace while the listener drains.
    let _ = ship_stop.send(());
    // No more requests: those in flight are answered (their rows written) before the flush.
    http.stop().await;
    summary.ingested_rows = ingest.rows_written();
    drop(ingest);
    // No more forwarded mutations; everything already received goes in before the final flush.
    if admin.is_some() {
        drop(admin);
        let _ = store.set_admin_endpoint(None);
    }
    if let Some(task) = ship_task {
        if let Err(e) = task.await {
            eprintln!("edgestore serve: the shipper stopped abnormally: {e}");
        }
    }
    while let Ok(m) = rx.try_recv() {
        batch.push(m);
    }
    if !batch.is_empty() {
        summary.rows += batch.len() as u64;
        spool.put(batch).await?;
    }
    spool.flush().await?;
    // The backup's last round sees every transaction of this run.
    let _ = backup_stop.send(());
    if let Some(task) = backup_task {
        if let Err(e) = task.await {
            eprintln!("edgestore serve: the backup stopped abnormally: {e}");
        }
    }
    if let Some(bad) = bad_rx.as_mut() {
        if let Ok(n) = bad.try_recv() {
            summary.bad_lines = n;
        }
    }
    Ok(summary)
}
