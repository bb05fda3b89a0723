//! A log-bucketed latency histogram in the spirit of HdrHistogram, with a fixed precision of 5
//! significant bits (every recorded value lands in a bucket no wider than 1/32 of its value, so
//! a percentile is at most ~3% above the true one).
//!
//! Recording is one `leading_zeros`, a shift and an increment: no allocation, no floating point,
//! so the load generator can record every request without disturbing what it measures.

/// Sub-buckets per power of two, as a bit count: 5 bits = 32 sub-buckets = ~3% precision.
const SUB_BITS: u32 = 5;
/// Sub-buckets per power of two.
const SUB: usize = 1 << SUB_BITS;
/// Buckets needed to cover every `u64`: the linear range `0..2*SUB`, then `SUB` buckets for each
/// of the remaining `64 - SUB_BITS - 1` powers of two.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// A histogram of `u64` samples (the load generator records nanoseconds).
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// The bucket a value falls in. Values below `2 * SUB` have a bucket each; above, every power of
/// two `[2^e, 2^(e+1))` is split into `SUB` equal buckets.
fn bucket_of(value: u64) -> usize {
    if value < (2 * SUB) as u64 {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= SUB_BITS + 1
    let shift = exponent - SUB_BITS;
    let sub = ((value >> shift) as usize) & (SUB - 1);
    (shift as usize + 1) * SUB + sub
}

/// The smallest and largest value that land in `bucket`.
fn bucket_bounds(bucket: usize) -> (u64, u64) {
    if bucket < 2 * SUB {
        return (bucket as u64, bucket as u64);
    }
    let shift = (bucket / SUB - 1) as u32;
    let sub = (bucket % SUB) as u64;
    let low = (SUB as u64 + sub) << shift;
    (low, low + ((1u64 << shift) - 1))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
            sum: 0,
        }
    }

    /// Counts one sample.
    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    /// Adds every sample of `other` (per-thread histograms are merged at the end of a run).
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += *theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest sample recorded (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean of the samples (exact), 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the highest value of the bucket holding the sample of
    /// rank `ceil(q * count)`, capped at the exact maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_bounds(bucket).1.min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        for v in 0..(2 * SUB as u64) {
            assert_eq!(bucket_of(v), v as usize);
            assert_eq!(bucket_bounds(v as usize), (v, v));
        }
    }

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        let mut expected_low = 0u64;
        for bucket in 0..BUCKETS {
            let (low, high) = bucket_bounds(bucket);
            assert_eq!(low, expected_low, "gap before bucket {bucket}");
            assert!(high >= low);
            assert_eq!(bucket_of(low), bucket);
            assert_eq!(bucket_of(high), bucket);
            if bucket + 1 == BUCKETS {
                assert_eq!(high, u64::MAX);
            } else {
                expected_low = high + 1;
            }
        }
    }

    #[test]
    fn bucket_width_is_within_precision() {
        for &v in &[
            64u64,
            100,
            1_000,
            12_345,
            1_000_000,
            987_654_321,
            u64::MAX / 3,
        ] {
            let (low, high) = bucket_bounds(bucket_of(v));
            assert!(low <= v && v <= high);
            assert!(
                (high - low) as f64 <= v as f64 / SUB as f64,
                "{v}: {low}..{high}"
            );
        }
    }

    #[test]
    fn quantiles_of_uniform_samples() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 10_000_000);
        let close = |got: u64, want: u64| {
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err <= 1.0 / SUB as f64, "got {got}, want ~{want}");
        };
        close(h.quantile(0.5), 5_000_000);
        close(h.quantile(0.99), 9_900_000);
        close(h.quantile(0.999), 9_990_000);
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert!((h.mean() - 5_000_500.0).abs() < 1.0);
    }

    #[test]
    fn quantile_never_exceeds_max_and_empty_is_zero() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.99), 0);
        h.record(1_000_001);
        assert_eq!(h.quantile(0.5), 1_000_001);
        assert_eq!(h.quantile(0.0), 1_000_001);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 0..100 {
            a.record(v);
            b.record(v + 1_000);
        }
        a.merge(&b);
        assert_eq!(a.count(), 200);
        assert_eq!(a.max(), 1_099);
        assert!(a.quantile(0.5) < 100);
        assert!(a.quantile(0.51) >= 1_000);
    }
}
