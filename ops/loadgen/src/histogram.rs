//! A fixed-size log-linear histogram of durations, for percentiles over many clients.
//!
//! Buckets split every power of two of microseconds into [`SUB_BUCKETS`] equal parts, so a
//! bucket is at most 1.6% wider than its lower bound from 64 µs up to 2^24 µs (≈ 16.8 s;
//! longer durations land in the last bucket). Recording is an index computation and an
//! increment; histograms of many slots merge by adding counts, which is how `arbor load`
//! reports one p99 over a thousand subscribers. Percentiles are reported as the upper bound
//! of their bucket: "p99 ≤ x".

use std::time::Duration;

use serde::ser::{Serialize, SerializeSeq, Serializer};

/// Sub-buckets per power of two.
pub const SUB_BUCKETS: u32 = 64;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Powers of two covered: 1 µs up to 2^24 µs.
const OCTAVES: u32 = 24;
/// Number of buckets.
pub const BUCKETS: usize = (OCTAVES * SUB_BUCKETS) as usize;

/// Counts of durations by bucket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    counts: [u32; BUCKETS],
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
            total: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("p50", &self.percentile(0.5))
            .field("p99", &self.percentile(0.99))
            .finish()
    }
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = bucket_of(us);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.total += 1;
    }

    /// Adds `other`'s counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
    }

    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The upper bound of the bucket holding the `q`-quantile (`0.0..=1.0`), or `None` if
    /// nothing was recorded.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        // The rank of the quantile among the samples, 1-based: ⌈q·n⌉, at least 1.
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(Duration::from_micros(upper_bound_us(i)));
            }
        }
        Some(Duration::from_micros(upper_bound_us(BUCKETS - 1)))
    }
}

/// The bucket of a duration of `us` microseconds.
fn bucket_of(us: u64) -> usize {
    let us = us.max(1);
    let octave = 63 - us.leading_zeros();
    // The SUB_BITS bits after the leading one.
    let sub = if octave >= SUB_BITS {
        (us >> (octave - SUB_BITS)) as u32 & (SUB_BUCKETS - 1)
    } else {
        (us << (SUB_BITS - octave)) as u32 & (SUB_BUCKETS - 1)
    };
    ((octave * SUB_BUCKETS + sub) as usize).min(BUCKETS - 1)
}

/// The smallest duration in microseconds above bucket `i`.
fn upper_bound_us(i: usize) -> u64 {
    let (octave, sub) = (i as u32 / SUB_BUCKETS, u64::from(i as u32 % SUB_BUCKETS));
    // (1 + (sub + 1) / SUB_BUCKETS) · 2^octave, rounded up to whole microseconds.
    ((u64::from(SUB_BUCKETS) + sub + 1) << octave).div_ceil(u64::from(SUB_BUCKETS))
}

/// Serialized sparsely: `[[upper_bound_us, count], ...]` for the buckets in use.
impl Serialize for Histogram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let used = self.counts.iter().filter(|&&c| c > 0).count();
        let mut seq = s.serialize_seq(Some(used))?;
        for (i, &c) in self.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            seq.serialize_element(&(upper_bound_us(i), c))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_has_no_percentiles() {
        assert_eq!(Histogram::default().percentile(0.5), None);
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.percentile(0.5).unwrap();
        let p99 = h.percentile(0.99).unwrap();
        assert!((50_000..=55_000).contains(&p50.as_micros()), "{p50:?}");
        assert!((99_000..=108_000).contains(&p99.as_micros()), "{p99:?}");
        assert_eq!(h.percentile(1.0), h.percentile(0.999));
    }

    #[test]
    fn merge_adds_counts() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(9));
        b.record(Duration::from_millis(9));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert!(a.percentile(0.5).unwrap() >= Duration::from_millis(9));
        assert!(a.percentile(0.3).unwrap() < Duration::from_millis(2));
    }

    #[test]
    fn sparse_json() {
        let mut h = Histogram::default();
        h.record(Duration::from_micros(100));
        h.record(Duration::from_micros(100));
        assert_eq!(serde_json::to_string(&h).unwrap(), "[[101,2]]");
    }

    proptest! {
        /// Every duration lands in a bucket whose upper bound is above it and within 1.6%
        /// (plus a microsecond of rounding) of it, up to the last bucket.
        #[test]
        fn buckets_bound_their_durations(us in 0u64..(1 << 24)) {
            let i = bucket_of(us);
            let upper = upper_bound_us(i);
            prop_assert!(upper > us, "{us} µs in bucket {i} bounded by {upper}");
            let widest = 1.0 + 1.0 / f64::from(SUB_BUCKETS);
            prop_assert!(upper as f64 <= (us.max(1) as f64) * widest + 1.0, "{us} → {upper}");
            if i > 0 {
                prop_assert!(upper_bound_us(i - 1) <= us.max(1), "{us} belongs lower");
            }
        }
    }
}
