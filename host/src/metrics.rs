//! Prometheus metrics of one [`crate::Store`], in its own [`Registry`] (not the crate's global
//! one): a process may run several stores (tests do), and each exports only its own numbers.
//!
//! The store's dispatch feeds the per-call metrics (latency, errors, retries, the breaker's
//! state) at its one call site; gauges that describe the disk are refreshed by whoever
//! exports ([`Metrics::set_disk_usage`]) just before [`Metrics::gather_text`].

use std::time::Duration;

use edgestore::spool::Usage;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::error::{Error, Result};
use crate::resilience::BreakerState;

/// The content type of [`Metrics::gather_text`] (Prometheus text exposition 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets, seconds: 50 µs (a native get) to 10 s (the default call bound).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// The label an error is counted under: the core's code, or `circuit-open` for a call the
/// breaker refused (so refusals and real failures are told apart).
pub fn error_code_label(err: &Error) -> &'static str {
    match err {
        Error::CircuitOpen { .. } => "circuit-open",
        other => other.code().as_str(),
    }
}

/// The metrics of one store.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    engine: &'static str,
    duration: HistogramVec,
    errors: IntCounterVec,
    retries: IntCounterVec,
    open_connections: IntGauge,
    disk_usage: IntGaugeVec,
    spool_rows: IntCounter,
    spool_segments: IntCounter,
    breaker: IntGauge,
    ingest_requests: IntCounterVec,
    ingest_rows: IntCounterVec,
    ship_segments: IntCounter,
    ship_bytes: IntCounter,
    ship_failures: IntCounterVec,
    ship_lag: Gauge,
    backup_bytes: IntCounterVec,
    backup_failures: IntCounter,
    backup_age: Gauge,
    backup_verified: IntGauge,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> Result<T> {
    r.register(Box::new(c.clone()))
        .map_err(|e| Error::runtime(format!("register metric: {e}")))?;
    Ok(c)
}

fn built<T>(r: prometheus::Result<T>) -> Result<T> {
    r.map_err(|e| Error::runtime(format!("define metric: {e}")))
}

impl Metrics {
    /// Fresh metrics for a store running `engine` (`native` or `component`).
    pub fn new(engine: &'static str) -> Result<Self> {
        let registry = Registry::new();
        let duration = reg(
            &registry,
            built(HistogramVec::new(
                HistogramOpts::new(
                    "edgestore_operation_duration_seconds",
                    "Time of one store operation, from dispatch to reply (each attempt).",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["engine", "operation"],
            ))?,
        )?;
        let errors = reg(
            &registry,
            built(IntCounterVec::new(
                Opts::new(
                    "edgestore_errors_total",
                    "Failed operation attempts, by error code and class.",
                ),
                &["code", "class"],
            ))?,
        )?;
        let retries = reg(
            &registry,
            built(IntCounterVec::new(
                Opts::new(
                    "edgestore_retries_total",
                    "Transient failures retried, by operation.",
                ),
                &["operation"],
            ))?,
        )?;
        let open_connections = reg(
            &registry,
            built(IntGauge::new(
                "edgestore_open_connections",
                "SQLite connections the store's engine holds open.",
            ))?,
        )?;
        let disk_usage = reg(
            &registry,
            built(IntGaugeVec::new(
                Opts::new(
                    "edgestore_disk_usage_bytes",
                    "Bytes the spool holds on disk, by state.",
                ),
                &["state"],
            ))?,
        )?;
        let spool_rows = reg(
            &registry,
            built(IntCounter::new(
                "edgestore_spool_rows_total",
                "Rows the spool accepted.",
            ))?,
        )?;
        let spool_segments = reg(
            &registry,
            built(IntCounter::new(
                "edgestore_spool_segments_total",
                "Segments the spool finished (on flush, on the timer, and at max records).",
            ))?,
        )?;
        let breaker = reg(
            &registry,
            built(IntGauge::new(
                "edgestore_circuit_breaker_state",
                "The store's circuit breaker: 0 closed, 1 half-open, 2 open.",
            ))?,
        )?;
        let ingest_requests = reg(
            &registry,
            built(IntCounterVec::new(
                Opts::new(
                    "edgestore_ingest_requests_total",
                    "Ingest requests answered, by protocol (remote-write, otlp) and HTTP status.",
                ),
                &["protocol", "status"],
            ))?,
        )?;
        let ingest_rows = reg(
            &registry,
            built(IntCounterVec::new(
                Opts::new(
                    "edgestore_ingest_rows_total",
                    "Rows received over ingest, written and answered 2xx, by protocol.",
                ),
                &["protocol"],
            ))?,
        )?;
        let ship_segments = reg(
            &registry,
            built(IntCounter::new(
                "edgestore_ship_segments_total",
                "Segments shipped to the object store and acknowledged (uploaded, or found there already).",
            ))?,
        )?;
        let ship_bytes = reg(
            &registry,
            built(IntCounter::new(
                "edgestore_ship_bytes_total",
                "Bytes of the segments shipped and acknowledged.",
            ))?,
        )?;
        let ship_failures = reg(
            &registry,
            built(IntCounterVec::new(
                Opts::new(
                    "edgestore_ship_failures_total",
                    "Segments whose shipping failed, by kind (transient, throttled, denied, no-bucket, rejected, conflict, corrupt, local, store, config).",
                ),
                &["kind"],
            ))?,
        )?;
        let ship_lag = reg(
            &registry,
            built(Gauge::new(
                "edgestore_ship_lag_seconds",
                "Age of the oldest segment waiting to be shipped (since it was finished); 0 when none waits.",
            ))?,
        )?;
        let backup_bytes = reg(
            &registry,
            built(IntCounterVec::new(
                Opts::new(
                    "edgestore_backup_bytes_total",
                    "Bytes written to every backup target, by kind (snapshot, increment).",
                ),
                &["kind"],
            ))?,
        )?;
        let backup_failures = reg(
            &registry,
            built(IntCounter::new(
                "edgestore_backup_failures_total",
                "Backup rounds that failed (capture, upload or verify).",
            ))?,
        )?;
        let backup_age = reg(
            &registry,
            built(Gauge::new(
                "edgestore_backup_age_seconds",
                "Age of the newest state every backup target holds (0 while backups keep up).",
            ))?,
        )?;
        let backup_verified = reg(
            &registry,
            built(IntGauge::new(
                "edgestore_backup_verified",
                "1 when the last verification restored the latest backup and it matched, 0 when it failed, -1 before any.",
            ))?,
        )?;
        backup_verified.set(-1);
        Ok(Metrics {
            registry,
            engine,
            duration,
            errors,
            retries,
            open_connections,
            disk_usage,
            spool_rows,
            spool_segments,
            breaker,
            ingest_requests,
            ingest_rows,
            ship_segments,
            ship_bytes,
            ship_failures,
            ship_lag,
            backup_bytes,
            backup_failures,
            backup_age,
            backup_verified,
        })
    }

    /// The registry, for exporting alongside other metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// One attempt of `operation` took `elapsed`.
    pub fn observe(&self, operation: &str, elapsed: Duration) {
        self.duration
            .with_label_values(&[self.engine, operation])
            .observe(elapsed.as_secs_f64());
    }

    /// Count a failed attempt.
    pub fn error(&self, err: &Error) {
        self.errors
            .with_label_values(&[error_code_label(err), err.class().as_str()])
            .inc();
    }

    /// Count a retry of `operation`.
    pub fn retry(&self, operation: &str) {
        self.retries.with_label_values(&[operation]).inc();
    }

    /// The breaker changed (or may have).
    pub fn set_breaker(&self, state: BreakerState) {
        self.breaker.set(state.gauge_value());
    }

    /// Rows accepted by a put.
    pub fn spool_rows(&self, rows: u64) {
        self.spool_rows.inc_by(rows);
    }

    /// One ingest request answered with `status`, `rows` of it written.
    pub fn ingest_request(&self, protocol: &str, status: u16, rows: u64) {
        self.ingest_requests
            .with_label_values(&[protocol, &status.to_string()])
            .inc();
        if rows > 0 {
            self.ingest_rows.with_label_values(&[protocol]).inc_by(rows);
        }
    }

    /// One segment shipped and acknowledged.
    pub fn ship_segment(&self, bytes: u64) {
        self.ship_segments.inc();
        self.ship_bytes.inc_by(bytes);
    }

    /// One segment's shipping failed with `kind`.
    pub fn ship_failure(&self, kind: &str) {
        self.ship_failures.with_label_values(&[kind]).inc();
    }

    /// The age of the oldest pending segment.
    pub fn set_ship_lag(&self, lag: Duration) {
        self.ship_lag.set(lag.as_secs_f64());
    }

    /// Bytes written to the backup targets.
    pub fn backup_bytes(&self, kind: &str, bytes: u64) {
        self.backup_bytes.with_label_values(&[kind]).inc_by(bytes);
    }

    /// A backup round failed.
    pub fn backup_failure(&self) {
        self.backup_failures.inc();
    }

    /// Age of the newest state every target holds.
    pub fn set_backup_age(&self, age: Duration) {
        self.backup_age.set(age.as_secs_f64());
    }

    /// The last verification's outcome.
    pub fn set_backup_verified(&self, ok: bool) {
        self.backup_verified.set(i64::from(ok));
    }

    /// Segments finished.
    pub fn spool_segments(&self, segments: u64) {
        self.spool_segments.inc_by(segments);
    }

    /// SQLite connections open now.
    pub fn set_open_connections(&self, n: u64) {
        self.open_connections
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// SQLite connections open at the last call.
    pub fn open_connections(&self) -> u64 {
        u64::try_from(self.open_connections.get()).unwrap_or(0)
    }

    /// The spool's bytes by state: `pending`, `uploaded`, `quarantined`, `journals`.
    pub fn set_disk_usage(&self, usage: &Usage) {
        for (state, counts) in [
            ("pending", usage.pending),
            ("uploaded", usage.uploaded),
            ("quarantined", usage.quarantined),
            ("journals", usage.journals),
        ] {
            self.disk_usage
                .with_label_values(&[state])
                .set(i64::try_from(counts.bytes).unwrap_or(i64::MAX));
        }
    }

    /// Everything in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn gather_text(&self) -> Result<String> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(|e| Error::runtime(format!("encode metrics: {e}")))?;
        String::from_utf8(out).map_err(|e| Error::runtime(format!("encode metrics: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgestore::ErrorCode;

    #[test]
    fn exposes_every_family_with_labels() {
        let m = Metrics::new("native").unwrap();
        m.observe("get", Duration::from_micros(70));
        m.error(&Error::Store(edgestore::Error::new(
            ErrorCode::NotFound,
            "x",
        )));
        m.error(&Error::Store(edgestore::Error::new(
            ErrorCode::NotFound,
            "y",
        )));
        m.retry("create");
        m.spool_rows(10);
        m.spool_segments(1);
        m.set_open_connections(2);
        m.set_breaker(BreakerState::Open);
        m.set_disk_usage(&Usage::default());
        m.ship_segment(300);
        m.ship_failure("throttled");
        m.set_ship_lag(Duration::from_millis(2500));
        let text = m.gather_text().unwrap();
        for want in [
            "edgestore_operation_duration_seconds_bucket{engine=\"native\",operation=\"get\",le=\"0.0001\"} 1",
            "edgestore_errors_total{class=\"permanent\",code=\"not-found\"} 2",
            "edgestore_retries_total{operation=\"create\"} 1",
            "edgestore_spool_rows_total 10",
            "edgestore_spool_segments_total 1",
            "edgestore_open_connections 2",
            "edgestore_circuit_breaker_state 2",
            "edgestore_disk_usage_bytes{state=\"quarantined\"} 0",
            "edgestore_ship_segments_total 1",
            "edgestore_ship_bytes_total 300",
            "edgestore_ship_failures_total{kind=\"throttled\"} 1",
            "edgestore_ship_lag_seconds 2.5",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // Two stores in one process do not share numbers.
        let other = Metrics::new("component").unwrap();
        assert!(!other.gather_text().unwrap().contains("not-found"));
    }
}
