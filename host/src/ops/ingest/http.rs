//! The ingest routes of `serve`'s listener: `POST /api/v1/write` (Prometheus remote write)
//! and `POST /v1/metrics` (OTLP/HTTP), and the one rule that turns every outcome into a
//! status a sender acts on correctly:
//!
//! | outcome | status | a sender |
//! |---|---|---|
//! | every row in the journal, synced per `ingest.sync` | 204 (remote write), 200 (OTLP) | moves on |
//! | body does not decode | 400 | drops it (retrying cannot help) |
//! | missing or wrong bearer token | 401 | drops it |
//! | body or declared size over `ingest.maxRequestBytes` | 413 | drops it |
//! | a version or encoding we do not speak | 415 | drops it |
//! | spool at its byte cap, disk over the health limit, breaker open, too many requests waiting, disk full | 429 + `Retry-After` | retries later |
//! | a transient storage error | 503 + `Retry-After` | retries |
//! | any other storage error | 500 | retries |
//!
//! Pressure is checked before the body is read, so refused floods cost no memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use edgestore::ErrorClass;
use tokio::sync::Semaphore;

use super::mapping::RowMapping;
use super::writer::{Pressure, WriteFailure, Writer};
use super::{otlp, remote_write, DecodeLimits, Decoded, IngestConfig, Rejection};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// The path Prometheus remote write posts to.
pub const REMOTE_WRITE_PATH: &str = "/api/v1/write";

/// The path OTLP/HTTP metrics exporters post to.
pub const OTLP_METRICS_PATH: &str = "/v1/metrics";

/// Rows in one chunk of a remote write request handed to the writer.
const ROWS_PER_CHUNK: usize = 500;

/// Chunks of one request built ahead of the writer at most (bounds a request's rows in memory).
const CHUNKS_IN_FLIGHT: usize = 2;

/// How long a request waits for a turn among `ingest.maxInFlight` before it is told to come
/// back later.
const TURN_WAIT: Duration = Duration::from_secs(5);

/// What the ingest routes share.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Writer,
    limits: DecodeLimits,
    mapping: RowMapping,
    token: Option<String>,
    turns: Semaphore,
    metrics: Metrics,
    /// Rows written and answered 2xx since the start.
    written: AtomicU64,
}

impl Ingest {
    /// The routes for `config`, writing through `writer`. Reads the bearer token file now: a
    /// missing or empty one is a configuration error at start, not a 401 for every sender.
    pub fn new(config: &IngestConfig, writer: Writer, metrics: Metrics) -> Result<Ingest> {
        config
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        let token = match &config.bearer_token_file {
            None => None,
            Some(path) => {
                crate::grants::check_not_world_writable(path, "ingest.bearerTokenFile")?;
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!(
                        "ingest.bearerTokenFile {}: cannot read it: {e}",
                        path.display()
                    ))
                })?;
                let token = text.trim().to_owned();
                if token.is_empty() {
                    return Err(Error::Config(format!(
                        "ingest.bearerTokenFile {} is empty",
                        path.display()
                    )));
                }
                Some(token)
            }
        };
        Ok(Ingest {
            inner: Arc::new(Inner {
                writer,
                limits: config.limits(),
                mapping: config.mapping(),
                token,
                turns: Semaphore::new(config.max_in_flight),
                metrics,
                written: AtomicU64::new(0),
            }),
        })
    }

    /// Whether ingest asks for a bearer token.
    pub fn requires_token(&self) -> bool {
        self.inner.token.is_some()
    }

    /// Rows written (and answered 2xx) so far.
    pub fn rows_written(&self) -> u64 {
        self.inner.written.load(Ordering::Relaxed)
    }

    /// The routes, to merge into the listener's router.
    pub fn routes(self) -> Router {
        Router::new()
            .route(REMOTE_WRITE_PATH, post(remote_write_route))
            .route(OTLP_METRICS_PATH, post(otlp_route))
            .with_state(self)
    }
}

/// An answer that is not a success, with what the sender needs to act on it.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn later(status: StatusCode, message: impl Into<String>, after: Duration) -> Self {
        Refusal {
            status,
            message: message.into(),
            retry_after: Some(after),
        }
    }
}

impl From<Rejection> for Refusal {
    fn from(r: Rejection) -> Self {
        let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Refusal::new(status, r.to_string())
    }
}

impl From<Pressure> for Refusal {
    fn from(p: Pressure) -> Self {
        Refusal::later(StatusCode::TOO_MANY_REQUESTS, p.reason, p.retry_after)
    }
}

impl From<WriteFailure> for Refusal {
    fn from(f: WriteFailure) -> Self {
        match f.class {
            // Disk full, a call over its limit: storage is short of something; come back later.
            ErrorClass::Resource => Refusal::later(
                StatusCode::TOO_MANY_REQUESTS,
                f.message,
                f.retry_in.unwrap_or(Duration::from_secs(5)),
            ),
            ErrorClass::Transient => Refusal::later(
                StatusCode::SERVICE_UNAVAILABLE,
                f.message,
                f.retry_in.unwrap_or(Duration::from_secs(1)),
            ),
            _ => Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, f.message),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, at least one (HTTP's delay-seconds).
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// How long a refused request's body may take to arrive before the connection is dropped.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// Read and discard a body the request is refused without (up to `limit` bytes, within
/// [`DRAIN_WAIT`]), so the sender, still writing it, reads the refusal and its `Retry-After`
/// instead of a broken connection. Nothing is kept: a refused flood costs no memory.
async fn drain(mut body: Body, limit: usize) {
    use http_body_util::BodyExt as _;
    let discard = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_WAIT, discard).await;
}

impl Inner {
    /// Refuse a request whose body was not read yet: drain it first (see [`drain`]).
    async fn refuse_unread(&self, body: Body, refusal: Refusal) -> Refusal {
        drain(body, self.limits.max_request_bytes).await;
        refusal
    }

    /// Everything a request goes through before its body is decoded: the token, a turn among
    /// the requests in flight, storage pressure, the declared size; then the body, read up to
    /// the limit.
    async fn admit(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> std::result::Result<(tokio::sync::SemaphorePermit<'_>, Bytes), Refusal> {
        if let Some(expected) = &self.token {
            let given = header_str(headers, &header::AUTHORIZATION)
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            if !given.is_some_and(|g| same_token(g.as_bytes(), expected.as_bytes())) {
                let why = if given.is_some() {
                    "a wrong bearer token"
                } else {
                    "no bearer token"
                };
                self.writer.store().audit(
                    "ingest.auth",
                    "ingest",
                    None,
                    Err(&crate::Error::Store(edgestore::Error::new(
                        edgestore::ErrorCode::AccessDenied,
                        format!("an ingest request with {why}"),
                    ))),
                );
                let refusal = Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "a valid bearer token is required (Authorization: Bearer ...)",
                );
                return Err(self.refuse_unread(body, refusal).await);
            }
        }
        let permit = match tokio::time::timeout(TURN_WAIT, self.turns.acquire()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => {
                let refusal = Refusal::later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is stopping",
                    Duration::from_secs(1),
                );
                return Err(self.refuse_unread(body, refusal).await);
            }
            Err(_) => {
                let refusal = Refusal::later(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests in flight (ingest.maxInFlight)",
                    Duration::from_secs(1),
                );
                return Err(self.refuse_unread(body, refusal).await);
            }
        };
        if let Some(p) = self.writer.pressure().await {
            return Err(self.refuse_unread(body, p.into()).await);
        }
        let limit = self.limits.max_request_bytes;
        let declared = header_str(headers, &header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
        if let Some(size) = declared.filter(|&n: &u64| n > limit as u64) {
            return Err(Rejection::TooLarge {
                size,
                limit: limit as u64,
            }
            .into());
        }
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Refusal::from(Rejection::TooLarge {
                    size: limit as u64 + 1,
                    limit: limit as u64,
                })
            } else {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body: {e}"),
                )
            }
        })?;
        Ok((permit, bytes))
    }

    /// Decode off the async threads (a 16 MiB body is real CPU work).
    async fn decode(
        &self,
        decode: impl FnOnce(&DecodeLimits, &RowMapping, i64) -> std::result::Result<Decoded, Rejection>
            + Send
            + 'static,
    ) -> std::result::Result<Decoded, Refusal> {
        let limits = self.limits;
        let mapping = self.mapping.clone();
        let received = now_ms();
        match tokio::task::spawn_blocking(move || decode(&limits, &mapping, received)).await {
            Ok(Ok(d)) => Ok(d),
            Ok(Err(r)) => Err(r.into()),
            Err(e) => Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("decoding failed: {e}"),
            )),
        }
    }

    fn count(&self, protocol: &'static str, status: StatusCode, rows: u64) {
        self.written.fetch_add(rows, Ordering::Relaxed);
        self.metrics.ingest_request(protocol, status.as_u16(), rows);
    }
}

async fn remote_write_route(
    State(ingest): State<Ingest>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inner = &ingest.inner;
    let outcome = remote_write_request(inner, &headers, body).await;
    let (status, rows, response) = match outcome {
        Ok((rows, response)) => (StatusCode::NO_CONTENT, rows, response),
        Err(refusal) => (refusal.status, 0, refusal.into_response()),
    };
    inner.count("remote-write", status, rows);
    response
}

async fn remote_write_request(
    inner: &Inner,
    headers: &HeaderMap,
    body: Body,
) -> std::result::Result<(u64, Response), Refusal> {
    let version = match remote_write::negotiate(
        header_str(headers, &header::CONTENT_TYPE),
        header_str(headers, &header::CONTENT_ENCODING),
        headers
            .get("x-prometheus-remote-write-version")
            .and_then(|v| v.to_str().ok()),
    ) {
        Ok(v) => v,
        Err(r) => return Err(inner.refuse_unread(body, r.into()).await),
    };
    let (_turn, bytes) = inner.admit(headers, body).await?;
    // Checked in full first (a bad series refuses the request before any row is written),
    // then rows are built in chunks on the blocking pool while the writer puts the previous
    // chunk: building rows overlaps with writing them.
    let limits = inner.limits;
    let mapping = inner.mapping.clone();
    let received = now_ms();
    let (chunks, arriving) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    let (checked_tx, checked_rx) = tokio::sync::oneshot::channel();
    let build = tokio::task::spawn_blocking(move || {
        let checked = match remote_write::check(version, &bytes, &limits) {
            Ok(c) => c,
            Err(r) => {
                let _ = checked_tx.send(Err(r));
                return;
            }
        };
        let _ = checked_tx.send(Ok((checked.counts(), checked.row_count() as u64)));
        checked.rows(&mapping, received, ROWS_PER_CHUNK, |rows| {
            // The receiver stops only when the write failed: the rest is not needed.
            let _ = chunks.blocking_send(rows);
        });
    });
    let (counts, rows) = match checked_rx.await {
        Ok(Ok(checked)) => checked,
        Ok(Err(r)) => return Err(r.into()),
        Err(_) => {
            let reason = match build.await {
                Err(e) => format!("decoding failed: {e}"),
                Ok(()) => "decoding ended without an answer".to_owned(),
            };
            return Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, reason));
        }
    };
    inner.writer.write_chunks(arriving).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if version == remote_write::Version::V2 {
        for (name, value) in remote_write::written_headers(&counts) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
    }
    Ok((rows, response))
}

async fn otlp_route(State(ingest): State<Ingest>, headers: HeaderMap, body: Body) -> Response {
    let inner = &ingest.inner;
    let outcome = otlp_request(inner, &headers, body).await;
    let (status, rows, response) = match outcome {
        Ok((rows, response)) => (StatusCode::OK, rows, response),
        Err(refusal) => (refusal.status, 0, refusal.into_response()),
    };
    inner.count("otlp", status, rows);
    response
}

async fn otlp_request(
    inner: &Inner,
    headers: &HeaderMap,
    body: Body,
) -> std::result::Result<(u64, Response), Refusal> {
    let format = match otlp::negotiate(
        header_str(headers, &header::CONTENT_TYPE),
        header_str(headers, &header::CONTENT_ENCODING),
    ) {
        Ok(f) => f,
        Err(r) => return Err(inner.refuse_unread(body, r.into()).await),
    };
    let (_turn, bytes) = inner.admit(headers, body).await?;
    let decoded = inner
        .decode(move |limits, mapping, received| {
            otlp::decode(format, &bytes, limits, mapping, received)
        })
        .await?;
    let rows = decoded.rows.len() as u64;
    let rejected = decoded.rejected;
    let message = decoded.rejected_reason.clone();
    inner.writer.write(decoded.rows).await?;
    let body = otlp::response(format, rejected, &message);
    let content_type = format.content_type();
    Ok((
        rows,
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response(),
    ))
}
