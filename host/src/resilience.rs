//! Resilience at the client's one dispatch point ([`crate::Store`]): retry with exponential
//! backoff and jitter for *transient* failures, and a circuit breaker that stops sending work
//! to an engine that keeps failing for reasons that are not the caller's fault.
//!
//! Both are plain state machines here; the store wires them around every call. Time is
//! injected (a [`Clock`] for the breaker, a sleep function for the retry loop) so the rules
//! are tested without waiting.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use edgestore::sql::RetryPolicy;
use edgestore::{Clock, ErrorClass, ErrorCode};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// When and how often a transient failure is retried (config section `resilience.retry`:
/// `maxAttempts`, `initialBackoff`, `maxBackoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per retry.
    #[serde(with = "crate::duration")]
    pub initial_backoff: Duration,
    /// Cap of one delay.
    #[serde(with = "crate::duration")]
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    /// 5 attempts, 10 ms doubling up to 1 s. The core's SQLite driver already retries `busy`
    /// for up to 5 s inside one call; this outer layer re-sends what outlasts that (or found
    /// the store's queue full) a few times soon after.
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryConfig {
    /// The delay before retry number `retry` (0-based): the core's [`RetryPolicy`] rule,
    /// exponential and capped, jittered into `[d/2, d]` so contending clients spread out.
    pub fn delay(&self, retry: u32) -> Duration {
        RetryPolicy {
            initial_delay: self.initial_backoff,
            max_delay: self.max_backoff,
            max_elapsed: Duration::MAX,
            max_attempts: self.max_attempts,
        }
        .delay(retry)
    }
}

/// Whether an error is worth retrying: only the transient class, and never a refusal by the
/// breaker itself (that would only extend the outage it protects against).
pub fn is_retryable(err: &Error) -> bool {
    !matches!(err, Error::CircuitOpen { .. }) && err.class() == ErrorClass::Transient
}

/// Run `attempt` until it succeeds, fails with an error that is not retryable, or
/// `config.max_attempts` attempts are spent; `sleep` waits between attempts and `on_retry`
/// hears about every retried failure (the store counts them).
pub async fn retry<T, A, AF, S, SF>(
    config: &RetryConfig,
    mut attempt: A,
    sleep: S,
    mut on_retry: impl FnMut(&Error),
) -> Result<T>
where
    A: FnMut() -> AF,
    AF: Future<Output = Result<T>>,
    S: Fn(Duration) -> SF,
    SF: Future<Output = ()>,
{
    let mut retries = 0u32;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if is_retryable(&e) && retries.saturating_add(1) < config.max_attempts => {
                on_retry(&e);
                sleep(config.delay(retries)).await;
                retries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// When the breaker opens and for how long (config section `resilience.breaker`:
/// `failureThreshold`, `coolDown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures (of the kinds [`counts_as_failure`] accepts) that open it.
    pub failure_threshold: u32,
    /// How long it stays open before one probe call is let through.
    #[serde(with = "crate::duration")]
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    /// Open after 5 consecutive failures, probe after 30 s.
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast with [`Error::CircuitOpen`].
    Open,
    /// The cool-down has passed: one probe call decides between closed and open.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open`, `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    /// The value of the `edgestore_circuit_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// Whether a failure says the engine (or what it stands on) is failing, rather than the
/// caller asking for something wrong: transient and resource errors, I/O errors, and internal
/// failures (traps, a broken runtime). Not-found, invalid input, constraint violations,
/// corrupt data, permission and grant refusals and a closed store say nothing about the
/// engine's health and never open the circuit.
pub fn counts_as_failure(err: &Error) -> bool {
    if matches!(err, Error::CircuitOpen { .. } | Error::Closed) {
        return false;
    }
    matches!(err.class(), ErrorClass::Transient | ErrorClass::Resource)
        || matches!(err.code(), ErrorCode::Io | ErrorCode::Internal)
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive: u32,
    /// When it last opened (UTC ms) or, when half-open, when the probe was let through.
    since_ms: i64,
    last_failure: Option<(ErrorCode, ErrorClass, String)>,
}

/// A circuit breaker: closed -> open after `failure_threshold` consecutive counted failures;
/// open fails fast; after `cool_down` it half-opens and lets exactly one probe through; the
/// probe's success closes it, its failure opens it again. Clones share the state.
#[derive(Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

/// Leave to make one call, from [`CircuitBreaker::admit`]; hand it back with the outcome.
#[derive(Debug)]
#[must_use = "report the call's outcome with CircuitBreaker::record"]
pub struct Permit {
    probe: bool,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl CircuitBreaker {
    /// A closed breaker reading time from `clock`.
    pub fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        CircuitBreaker {
            config,
            clock,
            inner: Arc::new(Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive: 0,
                since_ms: 0,
                last_failure: None,
            })),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The configuration.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// The state now. An open breaker whose cool-down has passed reports `half-open`: the next
    /// call will be the probe.
    pub fn state(&self) -> BreakerState {
        let inner = self.inner();
        match inner.state {
            BreakerState::Open
                if self.clock.now_ms().saturating_sub(inner.since_ms)
                    >= ms(self.config.cool_down) =>
            {
                BreakerState::HalfOpen
            }
            s => s,
        }
    }

    /// The last counted failure, in words (for health reports).
    pub fn last_failure(&self) -> Option<String> {
        self.inner()
            .last_failure
            .as_ref()
            .map(|(_, _, m)| m.clone())
    }

    /// Ask to make a call: `Err(CircuitOpen)` while open, or while half-open with the probe
    /// still out (a probe that never reported back is replaced after another cool-down).
    pub fn admit(&self) -> Result<Permit> {
        let now = self.clock.now_ms();
        let cool = ms(self.config.cool_down);
        let mut inner = self.inner();
        match inner.state {
            BreakerState::Closed => Ok(Permit { probe: false }),
            BreakerState::Open | BreakerState::HalfOpen
                if now.saturating_sub(inner.since_ms) >= cool =>
            {
                inner.state = BreakerState::HalfOpen;
                inner.since_ms = now;
                Ok(Permit { probe: true })
            }
            _ => {
                let retry_in = Duration::from_millis(
                    u64::try_from(cool.saturating_sub(now.saturating_sub(inner.since_ms)))
                        .unwrap_or(0),
                );
                let (code, class, message) = inner.last_failure.clone().unwrap_or((
                    ErrorCode::Internal,
                    ErrorClass::Resource,
                    "no failure recorded".to_owned(),
                ));
                Err(Error::CircuitOpen {
                    code,
                    class,
                    last: message,
                    retry_in,
                })
            }
        }
    }

    /// Report the outcome of a call made with `permit`.
    pub fn record<T>(&self, permit: Permit, outcome: &Result<T>) {
        let failure = match outcome {
            Err(e) if counts_as_failure(e) => Some((e.code(), e.class(), e.to_string())),
            _ => None,
        };
        let now = self.clock.now_ms();
        let mut inner = self.inner();
        match (inner.state, permit.probe) {
            (BreakerState::HalfOpen, true) => match failure {
                None => {
                    inner.state = BreakerState::Closed;
                    inner.consecutive = 0;
                }
                Some(f) => {
                    inner.state = BreakerState::Open;
                    inner.since_ms = now;
                    inner.last_failure = Some(f);
                }
            },
            (BreakerState::Closed, _) => match failure {
                None => inner.consecutive = 0,
                Some(f) => {
                    inner.consecutive = inner.consecutive.saturating_add(1);
                    inner.last_failure = Some(f);
                    if inner.consecutive >= self.config.failure_threshold {
                        inner.state = BreakerState::Open;
                        inner.since_ms = now;
                    }
                }
            },
            // A call admitted before the circuit opened, finishing late: the open circuit's
            // own probe decides, not stragglers.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgestore::ManualClock;
    use std::cell::{Cell, RefCell};
    use std::future::ready;

    fn busy() -> Error {
        Error::Store(edgestore::Error::new(ErrorCode::Busy, "locked"))
    }
    fn disk_full() -> Error {
        Error::Store(edgestore::Error::new(ErrorCode::DiskFull, "no space"))
    }
    fn not_found() -> Error {
        Error::Store(edgestore::Error::new(ErrorCode::NotFound, "missing"))
    }

    fn breaker(threshold: u32, cool_ms: u64) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::new(1_000);
        let b = CircuitBreaker::new(
            BreakerConfig {
                failure_threshold: threshold,
                cool_down: Duration::from_millis(cool_ms),
            },
            Arc::new(clock.clone()),
        );
        (b, clock)
    }

    fn fail(b: &CircuitBreaker, e: Error) {
        let p = b.admit().expect("admitted");
        b.record::<()>(p, &Err(e));
    }

    fn succeed(b: &CircuitBreaker) {
        let p = b.admit().expect("admitted");
        b.record(p, &Ok(()));
    }

    #[test]
    fn opens_after_consecutive_counted_failures_only() {
        let (b, _clock) = breaker(3, 100);
        fail(&b, disk_full());
        fail(&b, busy());
        succeed(&b); // resets the streak
        fail(&b, disk_full());
        fail(&b, disk_full());
        // The caller's mistakes do not count, and they reset the streak: the engine answered.
        fail(&b, not_found());
        fail(&b, disk_full());
        fail(&b, disk_full());
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, disk_full());
        assert_eq!(b.state(), BreakerState::Open);
        let err = b.admit().unwrap_err();
        assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
        assert_eq!(err.code(), ErrorCode::DiskFull, "carries the cause's code");
        assert_eq!(err.class(), ErrorClass::Resource);
        assert!(!is_retryable(&err));
        assert!(err.to_string().contains("no space"), "{err}");
    }

    #[test]
    fn half_opens_after_cool_down_with_one_probe_that_closes_it() {
        let (b, clock) = breaker(1, 100);
        fail(&b, busy());
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance_ms(99);
        assert!(b.admit().is_err(), "still cooling down");
        clock.advance_ms(1);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.admit().expect("the probe");
        assert!(b.admit().is_err(), "only one probe at a time");
        b.record(probe, &Ok(()));
        assert_eq!(b.state(), BreakerState::Closed);
        succeed(&b);
        succeed(&b);
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_a_full_cool_down() {
        let (b, clock) = breaker(2, 100);
        fail(&b, busy());
        fail(&b, busy());
        clock.advance_ms(150);
        let probe = b.admit().expect("the probe");
        b.record::<()>(probe, &Err(disk_full()));
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance_ms(99);
        assert!(b.admit().is_err());
        clock.advance_ms(1);
        let probe = b.admit().expect("the next probe");
        // A not-the-engine's-fault failure means the engine answered: closed.
        b.record::<()>(probe, &Err(not_found()));
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_another_cool_down() {
        let (b, clock) = breaker(1, 100);
        fail(&b, busy());
        clock.advance_ms(100);
        let lost = b.admit().expect("the probe");
        drop(lost);
        clock.advance_ms(50);
        assert!(b.admit().is_err());
        clock.advance_ms(50);
        let probe = b.admit().expect("a new probe");
        b.record(probe, &Ok(()));
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn stragglers_do_not_change_an_open_circuit() {
        let (b, _clock) = breaker(1, 100);
        let early = b.admit().expect("closed");
        fail(&b, busy());
        b.record(early, &Ok(()));
        assert_eq!(b.state(), BreakerState::Open);
    }

    fn run_scripted(
        config: RetryConfig,
        script: Vec<Result<u32>>,
    ) -> (Result<u32>, u32, Vec<Duration>) {
        let script = RefCell::new(script.into_iter());
        let calls = Cell::new(0u32);
        let slept = RefCell::new(Vec::new());
        let mut retried = 0u32;
        let out = futures_lite_block_on(retry(
            &config,
            || {
                calls.set(calls.get() + 1);
                let next = script.borrow_mut().next().unwrap_or(Ok(0));
                ready(next)
            },
            |d| {
                slept.borrow_mut().push(d);
                ready(())
            },
            |_| retried += 1,
        ));
        assert_eq!(retried as usize, slept.borrow().len());
        (out, calls.get(), slept.into_inner())
    }

    /// Drive a future whose every await is immediately ready (the scripted sleeps are).
    fn futures_lite_block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn retries_transient_failures_up_to_max_attempts_with_growing_backoff() {
        let config = RetryConfig {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(25),
        };
        let (out, calls, slept) = run_scripted(config, vec![Err(busy()), Err(busy()), Ok(7)]);
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls, 3);
        assert_eq!(slept.len(), 2);
        assert!(slept[0] >= Duration::from_millis(5) && slept[0] <= Duration::from_millis(10));
        assert!(slept[1] >= Duration::from_millis(10) && slept[1] <= Duration::from_millis(20));

        let (out, calls, slept) = run_scripted(config, (0..10).map(|_| Err(busy())).collect());
        assert_eq!(out.unwrap_err().code(), ErrorCode::Busy);
        assert_eq!(calls, 4, "gives up after max_attempts");
        assert!(slept[2] <= Duration::from_millis(25), "capped: {slept:?}");
    }

    #[test]
    fn never_retries_other_classes_or_an_open_circuit() {
        let config = RetryConfig::default();
        for err in [
            disk_full(),
            not_found(),
            Error::CircuitOpen {
                code: ErrorCode::Busy,
                class: ErrorClass::Transient,
                last: "busy".into(),
                retry_in: Duration::from_secs(1),
            },
        ] {
            let (out, calls, slept) = run_scripted(config, vec![Err(err)]);
            assert!(out.is_err());
            assert_eq!((calls, slept.len()), (1, 0));
        }
        let once = RetryConfig {
            max_attempts: 1,
            ..config
        };
        let (_, calls, _) = run_scripted(once, vec![Err(busy())]);
        assert_eq!(calls, 1);
    }
}
