//! The shipper: rounds over the pending segments, each segment through [`object::ship`] and,
//! once the target confirmed it, acknowledged with `mark_uploaded`.
//!
//! - **Nothing pending, nothing sent.** A round lists the spool directory first (names only);
//!   the target hears from us only when a segment is pending.
//! - **Bounded work per round.** Up to `ship.concurrency` segments at once, oldest first; the
//!   first failure that says the target is failing (or refusing everything: credentials, the
//!   bucket) stops the round from starting more, and every request passes the target's
//!   circuit breaker (`resilience.breaker`: open after that many failed segments in a row,
//!   one probe after the cool-down). The client retries one request itself (5xx, 429,
//!   503 SlowDown) a few times with backoff ([`super::target::client_retry`]).
//! - **Backoff between rounds.** After a troubled round the next waits longer, doubling from
//!   `ship.interval` up to a minute (jittered), and at least until the breaker's probe: a
//!   target that comes back is found within a minute.
//! - **Reported once per change.** A failure is printed when it differs from the last round's,
//!   and once more when shipping works again; the last permanent failure is kept for health
//!   (in memory and in the data directory's status file).
//! - **Clean stop.** [`Shipper::run`] stops starting segments on its signal, gives those in
//!   flight a few seconds to finish (and be acknowledged), then drops them unacknowledged.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use edgestore::spool::Sidecar;
use edgestore::{ErrorCode, SystemClock};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::error::{FailureKind, ShipError};
use super::key::KeyTemplate;
use super::object::{self, Segment, SendOptions, Shipped};
use super::status::{self, Failure, Pending};
use super::target::Target;
use super::throttle::Throttle;
use super::ShipConfig;
use crate::client::AsyncSpool;
use crate::metrics::Metrics;
use crate::resilience::{BreakerConfig, BreakerState, CircuitBreaker, RetryConfig};

/// The longest wait between rounds after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long segments in flight may take to finish once asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Retention purge at least this often while shipping (also after every round that
/// acknowledged segments).
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// What a shipper needs besides its spool.
#[derive(Debug, Clone)]
pub struct ShipperOptions {
    /// The `ship` section.
    pub config: ShipConfig,
    /// The data directory (its status file lives there).
    pub data_dir: PathBuf,
    /// The spool directory, relative to the data directory.
    pub spool_dir: String,
    /// The target's circuit breaker (`resilience.breaker`).
    pub breaker: BreakerConfig,
    /// Print failures (once per change) and recoveries on stderr: for long-running shippers;
    /// a one-shot command reports its round itself.
    pub report: bool,
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundReport {
    /// The target's URL.
    pub target: String,
    /// Segments acknowledged: uploaded now, or found there already.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Of `segments`, those an identical object already held.
    pub already_there: u64,
    /// Segments that failed and stay pending.
    pub failed: u64,
    /// Segments not tried this round (circuit open, the round stopped early, stopping).
    pub skipped: u64,
    /// Segments quarantined because they do not match their sidecar.
    pub quarantined: u64,
    /// Each distinct failure message.
    pub failures: Vec<String>,
    /// Whether one of them cannot be fixed by retrying.
    pub permanent: bool,
    /// The failures' kinds (`edgestore_ship_failures_total`'s labels), sorted.
    pub kinds: Vec<String>,
    /// The circuit breaker is open: its next probe in this many ms.
    pub retry_in_ms: Option<u64>,
    /// Whether any target-wide failure (not one segment's conflict) happened: the next round
    /// waits longer.
    pub troubled: bool,
}

impl RoundReport {
    /// `shipped N segments (B bytes) to TARGET`, with what else happened.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "shipped {} segments ({} bytes) to {}",
            self.segments, self.bytes, self.target
        );
        let mut extra = Vec::new();
        if self.already_there > 0 {
            extra.push(format!("{} already there", self.already_there));
        }
        if self.failed > 0 {
            extra.push(format!("{} failed", self.failed));
        }
        if self.skipped > 0 {
            extra.push(format!("{} not tried", self.skipped));
        }
        if self.quarantined > 0 {
            extra.push(format!("{} quarantined", self.quarantined));
        }
        if !extra.is_empty() {
            line.push_str(&format!(" ({})", extra.join(", ")));
        }
        line
    }
}

/// What happened to one segment.
enum Step {
    Acked {
        bytes: u64,
        shipped: Shipped,
    },
    /// Not tried; with the breaker's wait when it was the reason.
    Skipped(Option<Duration>),
    /// No longer pending (acknowledged or quarantined meanwhile).
    Gone,
    Failed(ShipError),
}

#[derive(Debug, Default)]
struct State {
    /// The last round's failure, as reported (kind label, and the message when permanent).
    reported: Option<String>,
    /// The last permanent failure, until a round attempts segments without one.
    permanent: Option<Failure>,
    last_purge: Option<Instant>,
    /// Finished audit files this process has shipped (or found shipped).
    audit_shipped: std::collections::BTreeSet<String>,
}

struct Inner {
    target: Target,
    template: KeyTemplate,
    options: ShipperOptions,
    spool_dir: PathBuf,
    spool: AsyncSpool,
    metrics: Metrics,
    breaker: CircuitBreaker,
    throttle: Option<Throttle>,
    /// One round at a time (the loop's and a forwarded `spool ship --once`).
    rounds: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    stopping: AtomicBool,
}

/// Ships one spool's finished segments to one target. Clones share everything.
#[derive(Clone)]
pub struct Shipper {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("target", &self.inner.target.name())
            .field("spool_dir", &self.inner.spool_dir)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Shipper {
    /// A shipper to `options.config.target` (its client built now; no request is sent).
    pub fn open(
        spool: AsyncSpool,
        metrics: Metrics,
        options: ShipperOptions,
    ) -> Result<Shipper, ShipError> {
        let target = Target::open(&options.config)?;
        Shipper::with_target(target, spool, metrics, options)
    }

    /// A shipper to `target` (tests pass an in-memory one).
    pub fn with_target(
        target: Target,
        spool: AsyncSpool,
        metrics: Metrics,
        options: ShipperOptions,
    ) -> Result<Shipper, ShipError> {
        let setup = |e: super::InvalidSetting| ShipError::Setup {
            target: target.name().to_owned(),
            message: e.to_string(),
        };
        options.config.validate().map_err(setup)?;
        let template = options.config.template().map_err(setup)?;
        let spool_dir = options.data_dir.join(&options.spool_dir);
        let state = State {
            // A failure the previous owner recorded stands until this one attempts again.
            permanent: status::read_failure(&options.data_dir)
                .filter(|f| f.target == target.name()),
            ..State::default()
        };
        Ok(Shipper {
            inner: Arc::new(Inner {
                template,
                spool_dir,
                spool,
                metrics,
                breaker: CircuitBreaker::new(options.breaker, Arc::new(SystemClock)),
                throttle: options.config.max_bytes_per_second.map(Throttle::new),
                rounds: tokio::sync::Mutex::new(()),
                state: Mutex::new(state),
                stopping: AtomicBool::new(false),
                target,
                options,
            }),
        })
    }

    /// The target's URL.
    pub fn target(&self) -> &str {
        self.inner.target.name()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The pending segments, listed locally.
    pub async fn pending(&self) -> Result<Vec<Pending>, ShipError> {
        let dir = self.inner.spool_dir.clone();
        let listed = tokio::task::spawn_blocking(move || status::list_pending(&dir))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        listed.map_err(|source| ShipError::Local {
            name: self.inner.spool_dir.display().to_string(),
            source,
        })
    }

    /// Refresh `edgestore_ship_lag_seconds` from the pending segments (listed locally), for an
    /// exporter between rounds.
    pub async fn refresh_lag(&self) {
        if let Ok(pending) = self.pending().await {
            self.set_lag(&pending);
        }
    }

    /// Health reasons: lag over `max_lag`, or the last attempt's permanent failure.
    pub async fn health(&self, max_lag: Duration) -> Vec<String> {
        match self.pending().await {
            Ok(pending) => {
                let failure = self.state().permanent.clone();
                status::health_reasons(self.target(), &pending, failure.as_ref(), max_lag, now_ms())
            }
            Err(e) => vec![format!("shipping: cannot list pending segments: {e}")],
        }
    }

    /// Ship every pending segment once (one round). `Err` only when the pending segments
    /// cannot be listed; per-segment failures are in the report.
    pub async fn ship_once(&self) -> Result<RoundReport, ShipError> {
        let _round = self.inner.rounds.lock().await;
        let mut report = RoundReport {
            target: self.target().to_owned(),
            ..RoundReport::default()
        };
        let pending = self.pending().await?;
        let mut remaining = pending.clone();
        if !pending.is_empty() {
            let halt = AtomicBool::new(false);
            let concurrency = self.inner.options.config.concurrency.max(1);
            let steps: Vec<(Pending, Step)> = futures::stream::iter(pending)
                .map(|p| {
                    let halt = &halt;
                    async move {
                        let step = self.ship_one(&p, halt).await;
                        (p, step)
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let mut corrupt = false;
            for (p, step) in steps {
                match step {
                    Step::Acked { bytes, shipped } => {
                        report.segments += 1;
                        report.bytes += bytes;
                        if shipped == Shipped::AlreadyThere {
                            report.already_there += 1;
                        }
                        self.inner.metrics.ship_segment(bytes);
                        remaining.retain(|r| r.name != p.name);
                    }
                    Step::Gone => remaining.retain(|r| r.name != p.name),
                    Step::Skipped(wait) => {
                        report.skipped += 1;
                        if let Some(w) = wait {
                            report.troubled = true;
                            let ms = u64::try_from(w.as_millis()).unwrap_or(u64::MAX);
                            report.retry_in_ms = Some(report.retry_in_ms.map_or(ms, |r| r.max(ms)));
                        }
                    }
                    Step::Failed(e) => {
                        let kind = e.kind();
                        self.inner.metrics.ship_failure(kind.as_str());
                        if kind == FailureKind::Corrupt {
                            corrupt = true;
                            report.quarantined += 1;
                            remaining.retain(|r| r.name != p.name);
                        } else {
                            report.failed += 1;
                        }
                        if !matches!(kind, FailureKind::Conflict | FailureKind::Corrupt) {
                            report.troubled = true;
                        }
                        report.permanent |= kind.is_permanent();
                        let label = kind.as_str().to_owned();
                        // A failure of the target (credentials, bucket, network) is the same
                        // for every segment: reported once per kind. A conflict or a corrupt
                        // segment is about that segment: each is reported.
                        let per_segment =
                            matches!(kind, FailureKind::Conflict | FailureKind::Corrupt);
                        let first_of_kind = match report.kinds.binary_search(&label) {
                            Ok(_) => false,
                            Err(at) => {
                                report.kinds.insert(at, label);
                                true
                            }
                        };
                        let message = e.to_string();
                        if (per_segment || first_of_kind) && !report.failures.contains(&message) {
                            report.failures.push(message);
                        }
                        self.note_failure(&e);
                    }
                }
            }
            if corrupt {
                // The spool's own check moves what fails it to `quarantine/`.
                if let Err(e) = self.inner.spool.verify().await {
                    report.failures.push(format!("quarantine: {e}"));
                }
            }
        }
        self.set_lag(&remaining);
        if !report.troubled {
            self.ship_audit(&mut report).await;
        }
        let attempted = report.segments + report.failed + report.quarantined > 0;
        if attempted && !report.permanent {
            self.clear_permanent();
        }
        self.maybe_purge(report.segments > 0).await;
        self.report_change(&report, attempted);
        Ok(report)
    }

    /// Ship the audit log's finished (rotated) files, once each, to
    /// `audit/{identifier}/{file}` under the target's prefix, through the same exactly-once
    /// path as segments. They stay in the data directory (the chain is verified there); a
    /// failure is reported in the round and tried again next round.
    async fn ship_audit(&self, report: &mut RoundReport) {
        let data_dir = self.inner.options.data_dir.clone();
        let files = tokio::task::spawn_blocking(move || crate::audit::finished_files(&data_dir))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        let Ok(files) = files else {
            return;
        };
        let identifier = self.inner.spool.identifier().to_owned();
        for path in files {
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if self.state().audit_shipped.contains(&name) {
                continue;
            }
            let bytes = match tokio::fs::read(&path).await {
                Ok(b) => b,
                Err(_) => continue,
            };
            let key = self.inner.target.key(&format!("audit/{identifier}/{name}"));
            let options = SendOptions {
                part_size: usize::try_from(self.inner.options.config.part_size)
                    .unwrap_or(usize::MAX),
                throttle: self.inner.throttle.as_ref(),
            };
            match object::ship(
                &self.inner.target,
                &key,
                &Segment::new(&name, bytes),
                options,
            )
            .await
            {
                Ok(_) => {
                    self.state().audit_shipped.insert(name);
                }
                Err(e) => {
                    report.failures.push(format!("audit log {name}: {e}"));
                    return;
                }
            }
        }
    }

    /// Read, check and ship one segment, then acknowledge it.
    async fn ship_one(&self, p: &Pending, halt: &AtomicBool) -> Step {
        let inner = &self.inner;
        if self.stopping() || halt.load(Ordering::Relaxed) {
            return Step::Skipped(None);
        }
        let dir = inner.spool_dir.clone();
        let name = p.name.clone();
        let segment = match tokio::task::spawn_blocking(move || read_segment(&dir, &name)).await {
            Ok(Ok(Some(s))) => s,
            Ok(Ok(None)) => return Step::Gone,
            Ok(Err(e)) => return Step::Failed(e),
            Err(e) => {
                return Step::Failed(ShipError::Local {
                    name: p.name.clone(),
                    source: std::io::Error::other(e),
                })
            }
        };
        let Some(key) = inner.template.render(&p.name) else {
            return Step::Gone;
        };
        let key = inner.target.key(&key);
        if self.stopping() || halt.load(Ordering::Relaxed) {
            return Step::Skipped(None);
        }
        let permit = match inner.breaker.admit() {
            Ok(permit) => permit,
            Err(crate::Error::CircuitOpen { retry_in, .. }) => {
                return Step::Skipped(Some(retry_in))
            }
            Err(_) => return Step::Skipped(None),
        };
        let options = SendOptions {
            part_size: usize::try_from(inner.options.config.part_size).unwrap_or(usize::MAX),
            throttle: inner.throttle.as_ref(),
        };
        let shipped = object::ship(&inner.target, &key, &segment, options).await;
        let verdict: crate::Result<()> = match &shipped {
            Err(e) if e.kind().counts_against_target() => Err(crate::Error::Store(
                edgestore::Error::new(ErrorCode::Io, e.to_string()),
            )),
            _ => Ok(()),
        };
        inner.breaker.record(permit, &verdict);
        match shipped {
            Err(e) => {
                // The target is failing or refuses everything: the other segments would fail
                // the same way. A conflict is this segment's alone.
                if !matches!(e.kind(), FailureKind::Conflict) {
                    halt.store(true, Ordering::Relaxed);
                }
                Step::Failed(e)
            }
            Ok(shipped) => match inner.spool.mark_uploaded(vec![p.name.clone()]).await {
                Ok(_) => Step::Acked {
                    bytes: segment.bytes.len() as u64,
                    shipped,
                },
                Err(e) => Step::Failed(ShipError::Store(e)),
            },
        }
    }

    fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Relaxed)
    }

    fn set_lag(&self, pending: &[Pending]) {
        let lag = status::lag(pending, now_ms()).map_or(Duration::ZERO, |(_, d)| d);
        self.inner.metrics.set_ship_lag(lag);
    }

    /// Keep a permanent failure for health (in memory, and in the status file when it changed).
    fn note_failure(&self, e: &ShipError) {
        if !e.is_permanent() {
            return;
        }
        let failure = Failure {
            target: self.target().to_owned(),
            kind: e.kind().as_str().to_owned(),
            permanent: true,
            message: e.to_string(),
            at_ms: now_ms(),
        };
        let mut state = self.state();
        // Messages carry timings: a new kind is a change, a new message of the same is not.
        let changed = state
            .permanent
            .as_ref()
            .is_none_or(|f| f.kind != failure.kind);
        state.permanent = Some(failure.clone());
        drop(state);
        if changed {
            self.save_failure(Some(&failure));
        }
    }

    fn clear_permanent(&self) {
        if self.state().permanent.take().is_some() {
            self.save_failure(None);
        }
    }

    fn save_failure(&self, failure: Option<&Failure>) {
        if let Err(e) = status::write_failure(&self.inner.options.data_dir, failure) {
            if self.inner.options.report {
                eprintln!("edgestore ship: cannot record the shipping status: {e}");
            }
        }
    }

    /// Print the round's failure when it differs from the last one, and a recovery once.
    fn report_change(&self, report: &RoundReport, attempted: bool) {
        // Messages carry timings and keys: the kinds of trouble are what changes.
        let signature = (!report.kinds.is_empty() || report.retry_in_ms.is_some())
            .then(|| format!("{:?} {}", report.kinds, report.retry_in_ms.is_some()));
        let mut state = self.state();
        if signature == state.reported || (signature.is_none() && !attempted) {
            return;
        }
        let previous = std::mem::replace(&mut state.reported, signature.clone());
        drop(state);
        if !self.inner.options.report {
            return;
        }
        match (signature, previous) {
            (Some(_), _) => {
                let extra = report.failures.len().saturating_sub(1);
                let more = if extra > 0 {
                    format!(" (and {extra} other failures)")
                } else {
                    String::new()
                };
                let first = report.failures.first().cloned().unwrap_or_else(|| {
                    format!(
                        "ship target {}: circuit open after repeated failures; next attempt in {} s",
                        self.target(),
                        report.retry_in_ms.unwrap_or(0).div_ceil(1000)
                    )
                });
                eprintln!("edgestore ship: {first}{more}");
            }
            (None, Some(_)) => {
                eprintln!("edgestore ship: shipping to {} works again", self.target())
            }
            (None, None) => {}
        }
    }

    /// The spool's retention purge after acknowledging (and now and then), when
    /// `ship.deleteAfter` is on.
    async fn maybe_purge(&self, acked: bool) {
        if !self.inner.options.config.delete_after {
            return;
        }
        {
            let mut state = self.state();
            let due = acked || state.last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY);
            if !due {
                return;
            }
            state.last_purge = Some(Instant::now());
        }
        if let Err(e) = self.inner.spool.purge().await {
            if self.inner.options.report {
                eprintln!("edgestore ship: retention purge failed: {e}");
            }
        }
    }

    /// The wait before the next round.
    fn next_delay(
        &self,
        outcome: &Result<RoundReport, ShipError>,
        troubled_rounds: &mut u32,
    ) -> Duration {
        let interval = self.inner.options.config.interval;
        let closed = self.inner.breaker.state() == BreakerState::Closed;
        let (troubled, breaker) = match outcome {
            // Segments went and the breaker closed again (its probe succeeded): the target is
            // back, so the ones the probe held back go at the usual pace.
            Ok(r) if r.segments > 0 && closed => (false, None),
            Ok(r) => (r.troubled, r.retry_in_ms.map(Duration::from_millis)),
            Err(_) => (true, None),
        };
        if !troubled {
            *troubled_rounds = 0;
            return interval;
        }
        let backoff = RetryConfig {
            max_attempts: u32::MAX,
            initial_backoff: interval,
            max_backoff: MAX_BACKOFF.max(interval),
        }
        .delay(*troubled_rounds);
        *troubled_rounds = troubled_rounds.saturating_add(1);
        backoff.max(breaker.unwrap_or(Duration::ZERO))
    }

    /// Ship in rounds until `stop` resolves: the first round at once, then every
    /// `ship.interval` (longer after failures). On `stop`, segments in flight get a few
    /// seconds to finish; what is still in flight then is dropped without acknowledging it.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut delay = Duration::ZERO;
        let mut troubled_rounds = 0u32;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(delay) => {}
            }
            let round = self.ship_once();
            tokio::pin!(round);
            let outcome = tokio::select! {
                outcome = &mut round => outcome,
                _ = &mut stop => {
                    self.inner.stopping.store(true, Ordering::Relaxed);
                    let _ = tokio::time::timeout(STOP_GRACE, &mut round).await;
                    break;
                }
            };
            if let Err(e) = &outcome {
                if self.inner.options.report {
                    eprintln!("edgestore ship: {e}");
                }
            }
            delay = self.next_delay(&outcome, &mut troubled_rounds);
        }
        self.inner.stopping.store(true, Ordering::Relaxed);
    }
}

/// A pending segment's bytes from the spool directory, checked against its sidecar
/// (`<segment>.sum`: length and CRC-32); `None` when it is no longer there. Read through a
/// capability on the spool directory, so a name can never reach outside it.
fn read_segment(spool_dir: &Path, name: &str) -> Result<Option<Segment>, ShipError> {
    let local = |source: std::io::Error| ShipError::Local {
        name: name.to_owned(),
        source,
    };
    let dir = cap_std::fs::Dir::open_ambient_dir(spool_dir, cap_std::ambient_authority())
        .map_err(local)?;
    let bytes = match dir.read(name) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(local(e)),
    };
    match dir.read(format!("{name}.sum")) {
        Ok(text) => {
            let corrupt = |detail: String| ShipError::Corrupt {
                name: name.to_owned(),
                detail,
            };
            let sidecar: Sidecar = serde_json::from_slice(&text)
                .map_err(|e| corrupt(format!("unreadable sidecar: {e}")))?;
            if sidecar.bytes != bytes.len() as u64 {
                return Err(corrupt(format!(
                    "{} bytes, the sidecar says {}",
                    bytes.len(),
                    sidecar.bytes
                )));
            }
            let crc = crc32fast::hash(&bytes);
            if crc != sidecar.crc32 {
                return Err(corrupt(format!(
                    "CRC-32 {crc:08x}, the sidecar says {:08x}",
                    sidecar.crc32
                )));
            }
        }
        // A segment without a sidecar (older spools) ships as it is.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(local(e)),
    }
    Ok(Some(Segment::new(name, bytes)))
}

#[cfg(test)]
mod tests;
