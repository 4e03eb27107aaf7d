//! `edgestore serve`: a long-running ingest into the spool (JSON lines from a reader such as
//! stdin, or generated rows), with `GET /metrics` and `GET /healthz` on a loopback HTTP port,
//! rotation by the store's `flush-due` timer, and a clean stop: on SIGTERM or SIGINT every row
//! already read is put and flushed into finished segments before [`run`] returns.
//!
//! The HTTP side is `tiny_http` on one plain thread: two GET routes do not justify an async
//! server stack. Its handlers reach the store through the tokio runtime's handle, exactly like
//! any other client.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use edgestore::sample::MetricGenerator;
use edgestore::Metric;
use tokio::sync::mpsc;

use crate::client::{AsyncSpool, Store};
use crate::error::{Error, Result};
use crate::ops::admin::AdminServer;
use crate::ops::health::{check, HealthConfig, HealthTarget};
use crate::ops::metrics::CONTENT_TYPE;

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
}

/// What a finished `serve` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Rows put into the spool.
    pub rows: u64,
    /// Input lines skipped as malformed.
    pub bad_lines: u64,
}

/// The HTTP endpoint: a `tiny_http` server on its own thread, stopped when dropped.
pub struct HttpEndpoint {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl HttpEndpoint {
    /// Bind `listen` and answer `/metrics` and `/healthz` for `store` (and its `spool`).
    pub fn start(
        listen: SocketAddr,
        store: Store,
        spool: AsyncSpool,
        options: ServeOptions,
    ) -> Result<Self> {
        let server = tiny_http::Server::http(listen)
            .map_err(|e| Error::Config(format!("listen on {listen}: {e}")))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::Config(format!("{listen} is not an IP address")))?;
        let server = Arc::new(server);
        let runtime = tokio::runtime::Handle::current();
        let srv = server.clone();
        let thread = std::thread::Builder::new()
            .name("edgestore-http".into())
            .spawn(move || {
                for request in srv.incoming_requests() {
                    let response = runtime.block_on(respond(&request, &store, &spool, &options));
                    // A client that went away is not the server's problem.
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| Error::runtime(format!("start the HTTP thread: {e}")))?;
        Ok(HttpEndpoint {
            server,
            thread: Some(thread),
            addr,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpEndpoint {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

type Response = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn text(status: u16, content_type: &str, body: String) -> Response {
    let mut r = tiny_http::Response::from_string(body).with_status_code(status);
    if let Some(h) = header("Content-Type", content_type) {
        r.add_header(h);
    }
    r
}

async fn respond(
    request: &tiny_http::Request,
    store: &Store,
    spool: &AsyncSpool,
    options: &ServeOptions,
) -> Response {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if *request.method() != tiny_http::Method::Get {
        return text(405, PLAIN, "only GET\n".into());
    }
    let path = request.url().split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            if let Ok(u) = spool.usage().await {
                store.metrics().set_disk_usage(&u);
            }
            store.breaker_state();
            match store.metrics().gather_text() {
                Ok(body) => text(200, CONTENT_TYPE, body),
                Err(e) => text(500, PLAIN, format!("{e}\n")),
            }
        }
        "/healthz" => {
            let target = HealthTarget {
                data_dir: &options.data_dir,
                spool_dir: Some(&options.spool_dir),
                spool: Some(spool),
            };
            let report = check(store, &target, &options.health).await;
            let status = if report.healthy() { 200 } else { 503 };
            text(status, PLAIN, report.render(false))
        }
        _ => text(404, PLAIN, "not found: try /metrics or /healthz\n".into()),
    }
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

/// A future that resolves on SIGTERM or SIGINT.
async fn stop_signal() -> Result<&'static str> {
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
    let http = HttpEndpoint::start(
        options.listen,
        store.clone(),
        spool.clone(),
        options.clone(),
    )?;
    // Mutations from other processes come in through the admin socket; without one (turned
    // off, or the data directory's path too long for a socket) they are refused, naming us.
    let admin = if options.admin {
        match AdminServer::start(&options.data_dir, store.clone(), spool.clone()) {
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
    // No more forwarded mutations; everything already received goes in before the final flush.
    if admin.is_some() {
        drop(admin);
        let _ = store.set_admin_endpoint(None);
    }
    while let Ok(m) = rx.try_recv() {
        batch.push(m);
    }
    if !batch.is_empty() {
        summary.rows += batch.len() as u64;
        spool.put(batch).await?;
    }
    spool.flush().await?;
    drop(http);
    if let Some(bad) = bad_rx.as_mut() {
        if let Ok(n) = bad.try_recv() {
            summary.bad_lines = n;
        }
    }
    Ok(summary)
}
