//! [`RetryPolicy`]: bounded exponential backoff with jitter for transient (busy) failures.
//!
//! Lives outside the rusqlite driver so the host can reuse it when it implements the component's
//! `sqlite` import. The policy only decides *when* to try again; *what* is safe to retry is the
//! driver's call (see `sql::sqlite`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First delay.
    pub initial_delay: Duration,
    /// Cap of a single delay.
    pub max_delay: Duration,
    /// Give up once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
    /// Give up after this many attempts (the first one included).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 1 ms doubling to 50 ms, for at most 5 s: generous for write contention between a few
    /// processes, short enough that a stuck lock surfaces as `busy` instead of a hang.
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(50),
            max_elapsed: Duration::from_secs(5),
            max_attempts: 500,
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `retry` (0-based): exponential, capped, then jittered into
    /// `[d/2, d]` so contending writers spread out instead of waking in lockstep.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(30)).unwrap_or(u32::MAX);
        let base = self
            .initial_delay
            .saturating_mul(factor)
            .min(self.max_delay);
        let half = base / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            0
        } else {
            random_u64() % (nanos + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Run `op` until it succeeds, fails with an error `retryable` rejects, or the budget is
    /// spent (then the last error is returned).
    pub fn run<T, E>(
        &self,
        mut op: impl FnMut() -> Result<T, E>,
        retryable: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            match op() {
                Ok(v) => return Ok(v),
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    if !retryable(&e)
                        || attempt >= self.max_attempts
                        || start.elapsed() >= self.max_elapsed
                    {
                        return Err(e);
                    }
                    std::thread::sleep(self.delay(attempt - 1));
                }
            }
        }
    }
}

/// A cheap random number: std's randomly keyed hasher over a counter. Jitter needs spread, not
/// cryptographic quality, and this avoids a dependency.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy::default();
        for retry in 0..40 {
            let d = p.delay(retry);
            assert!(d <= p.max_delay, "{d:?}");
        }
        let d = p.delay(3);
        assert!(
            d >= Duration::from_millis(4) && d <= Duration::from_millis(8),
            "{d:?}"
        );
    }

    #[test]
    fn retries_until_success_or_budget() {
        let p = RetryPolicy {
            max_attempts: 4,
            initial_delay: Duration::from_micros(10),
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let r: Result<(), i32> = p.run(
            || {
                calls += 1;
                Err(1)
            },
            |_| true,
        );
        assert_eq!((r, calls), (Err(1), 4));
        let mut calls = 0;
        let r: Result<u32, i32> = p.run(
            || {
                calls += 1;
                if calls < 3 {
                    Err(1)
                } else {
                    Ok(calls)
                }
            },
            |_| true,
        );
        assert_eq!(r, Ok(3));
        let mut calls = 0;
        let r: Result<(), i32> = p.run(
            || {
                calls += 1;
                Err(2)
            },
            |e| *e == 1,
        );
        assert_eq!((r, calls), (Err(2), 1));
    }
}
