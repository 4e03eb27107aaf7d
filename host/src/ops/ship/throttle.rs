//! `ship.maxBytesPerSecond`: a token bucket shared by every upload, for links that must keep
//! room for other traffic. A body (one PUT, or one multipart part) takes its bytes from the
//! bucket before it is sent; what the bucket lacks becomes a wait, so the long-run rate never
//! exceeds the cap while a single body still goes out at line speed. Large segments are sent
//! in parts of `ship.partSize`, which bounds the burst.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The bucket: at most one second's worth of bytes saved up.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Bytes that may be sent now; negative when bodies already sent are still being paid for.
    tokens: f64,
    at: Instant,
}

impl Throttle {
    /// A bucket refilling at `bytes_per_second` (at least 1), starting full.
    pub fn new(bytes_per_second: u64) -> Throttle {
        let rate = bytes_per_second.max(1) as f64;
        Throttle {
            rate,
            state: Mutex::new(State {
                tokens: rate,
                at: Instant::now(),
            }),
        }
    }

    /// How long a body of `bytes` must wait before it is sent (its bytes are taken now).
    pub fn reserve(&self, bytes: u64) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let refill = now.duration_since(s.at).as_secs_f64() * self.rate;
        s.tokens = (s.tokens + refill).min(self.rate);
        s.at = now;
        s.tokens -= bytes as f64;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / self.rate)
        }
    }

    /// Wait until a body of `bytes` may be sent.
    pub async fn acquire(&self, bytes: u64) {
        let wait = self.reserve(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_run_rate_is_the_cap() {
        let t = Throttle::new(1_000_000);
        // A full bucket: one second's bytes go at once.
        assert_eq!(t.reserve(1_000_000), Duration::ZERO);
        // Then every byte waits its turn, and waits add up across callers.
        let first = t.reserve(500_000);
        let second = t.reserve(500_000);
        assert!((0.45..=0.5).contains(&first.as_secs_f64()), "{first:?}");
        assert!((0.95..=1.0).contains(&second.as_secs_f64()), "{second:?}");
        // A body larger than the bucket waits for the whole of it.
        let big = Throttle::new(100);
        assert!(big.reserve(1_100).as_secs_f64() >= 9.9);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn acquire_waits() {
        let t = Throttle::new(1_000_000);
        t.acquire(1_000_000).await;
        let start = Instant::now();
        t.acquire(100_000).await;
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "{:?}",
            start.elapsed()
        );
    }
}
