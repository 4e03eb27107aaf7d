//! Order statistics over samples: every figure is a median (or a percentile) of repeated
//! measurements, never a mean, so one descheduled rep on a shared machine cannot move it.

use std::time::Duration;

/// Seconds as `f64`.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The `q` quantile (0..=1, nearest rank) of `samples`; NaN when there are none.
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    v[idx]
}

/// The median of `samples`; NaN when there are none.
pub fn median(samples: &[f64]) -> f64 {
    percentile(samples, 0.5)
}

/// A tiny deterministic index sequence (SplitMix64) so random-access figures visit the same
/// keys in every run and on both engines.
#[derive(Debug, Clone)]
pub struct Indices(u64);

impl Indices {
    /// Start the sequence at `seed`.
    pub fn new(seed: u64) -> Self {
        Indices(seed)
    }

    /// The next index below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles_are_nearest_rank() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&v), 3.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 5.0);
        assert_eq!(percentile(&v, 0.99), 5.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn indices_stay_below_n_and_repeat_per_seed() {
        let a: Vec<usize> = {
            let mut i = Indices::new(7);
            (0..100).map(|_| i.below(10)).collect()
        };
        let mut i = Indices::new(7);
        assert!(a.iter().all(|&x| x < 10));
        assert_eq!(a, (0..100).map(|_| i.below(10)).collect::<Vec<_>>());
    }
}
