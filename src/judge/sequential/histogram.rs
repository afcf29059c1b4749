//! A fixed-resolution log-linear histogram: the sufficient statistic of the quantile test.
//!
//! A value's bucket is its IEEE-754 bit pattern, mapped to an order-preserving integer,
//! with the low `52 − MANTISSA_BITS` mantissa bits dropped: every bucket spans a relative
//! width of at most `2⁻⁷ ≈ 0.78 %` (128 buckets per power of two, on both sides of zero), the
//! same for every metric and unit. Inserting a value is one shift and one increment, so a
//! tick costs O(new points) and history is never re-sorted; memory is one `u32` per bucket
//! between the smallest and largest value seen (a latency metric spanning 1 ms–10 s needs
//! about 1,700 buckets).
//!
//! The quantile test run on bucket keys is a test on the discretised data `D = bucket(X)`.
//! `bucket` is non-decreasing, so equal `p`-quantiles of `X` give equal `p`-quantiles of
//! `D` (and an ordering of quantiles is kept): the test keeps its level. Confidence bounds
//! widen to the enclosing bucket edges, which keeps their coverage. Data that are already
//! bucket lower edges (at most 8 significant bits, e.g. integers below 256) lose nothing;
//! the oracle fixtures use such data so the results equal confseq's on the raw values.

use serde::{Deserialize, Serialize};

/// Mantissa bits kept in a bucket key.
pub const MANTISSA_BITS: u32 = 7;
const SHIFT: u32 = 52 - MANTISSA_BITS;

/// The order-preserving integer image of an `f64` (not NaN).
fn ordered_bits(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 0 {
        bits | (1 << 63)
    } else {
        !bits
    }
}

fn from_ordered_bits(o: u64) -> f64 {
    if o >> 63 == 1 {
        f64::from_bits(o & !(1 << 63))
    } else {
        f64::from_bits(!o)
    }
}

/// The bucket key of a value (NaN must be filtered out first). `-0.0` and `0.0` share key.
pub fn key_of(x: f64) -> u32 {
    let x = if x == 0.0 { 0.0 } else { x };
    (ordered_bits(x) >> SHIFT) as u32
}

/// The smallest value in bucket `key`.
pub fn lower_edge(key: u32) -> f64 {
    from_ordered_bits((key as u64) << SHIFT)
}

/// The largest value in bucket `key`.
pub fn upper_edge(key: u32) -> f64 {
    from_ordered_bits((((key as u64) + 1) << SHIFT) - 1)
}

/// The value reported for a bucket: the midpoint of its edges (finite buckets).
pub fn midpoint(key: u32) -> f64 {
    let (lo, hi) = (lower_edge(key), upper_edge(key));
    if lo.is_finite() && hi.is_finite() {
        lo + 0.5 * (hi - lo)
    } else {
        lo
    }
}

/// Counts per bucket over a contiguous key range `[base, base + counts.len())`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogHistogram {
    base: u32,
    counts: Vec<u32>,
    n: u64,
}

impl LogHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of values inserted.
    pub fn n(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// First key of the stored range.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// One past the last key of the stored range.
    pub fn end(&self) -> u32 {
        self.base + self.counts.len() as u32
    }

    /// Count in bucket `key` (0 outside the stored range).
    #[inline]
    pub fn count(&self, key: u32) -> u64 {
        if key >= self.base && key < self.end() {
            self.counts[(key - self.base) as usize] as u64
        } else {
            0
        }
    }

    /// Insert a (non-NaN) value; returns its key.
    #[inline]
    pub fn insert(&mut self, x: f64) -> u32 {
        let key = key_of(x);
        if self.counts.is_empty() {
            self.base = key;
            self.counts.push(0);
        } else if key < self.base || key >= self.end() {
            self.grow_to(key);
        }
        self.counts[(key - self.base) as usize] += 1;
        self.n += 1;
        key
    }

    /// Extend the range to include `key`, with slack so repeated extension stays amortised
    /// O(1) per bucket.
    #[cold]
    fn grow_to(&mut self, key: u32) {
        let slack = (self.counts.len() as u32 / 4).max(8);
        if key < self.base {
            let new_base = key.saturating_sub(slack);
            let extra = (self.base - new_base) as usize;
            let mut counts = vec![0u32; extra + self.counts.len()];
            counts[extra..].copy_from_slice(&self.counts);
            self.counts = counts;
            self.base = new_base;
        } else {
            let new_end = key.saturating_add(slack).saturating_add(1);
            self.counts.resize((new_end - self.base) as usize, 0);
        }
    }

    /// Number of values in buckets below `key`.
    pub fn count_below(&self, key: u32) -> u64 {
        if key <= self.base {
            return 0;
        }
        let upto = ((key - self.base) as usize).min(self.counts.len());
        self.counts[..upto].iter().map(|&c| c as u64).sum()
    }

    /// The key holding the `rank`-th smallest value (1-based, `1 ≤ rank ≤ n`).
    pub fn key_at_rank(&self, rank: u64) -> u32 {
        let mut cum = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            cum += c as u64;
            if cum >= rank {
                return self.base + i as u32;
            }
        }
        self.end().saturating_sub(1)
    }

    /// The empirical `p`-quantile's key, confseq's convention: the order statistic of rank
    /// `⌊n·p⌋ + 1`.
    pub fn quantile_key(&self, p: f64) -> u32 {
        let rank = ((self.n as f64 * p).floor() as u64 + 1).min(self.n).max(1);
        self.key_at_rank(rank)
    }

    /// Heap bytes used by the counts.
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_preserve_order_and_edges_enclose_values() {
        let xs = [
            -1e9, -3.5, -1.0, -1e-300, 0.0, 1e-300, 0.001, 1.0, 1.004, 2.0, 255.0, 1e12,
        ];
        for w in xs.windows(2) {
            assert!(key_of(w[0]) <= key_of(w[1]), "{} {}", w[0], w[1]);
        }
        for &x in &xs {
            let k = key_of(x);
            assert!(
                lower_edge(k) <= x && x <= upper_edge(k),
                "{x}: [{}, {}]",
                lower_edge(k),
                upper_edge(k)
            );
            if x > 0.0 && x.is_normal() {
                assert!(upper_edge(k) / lower_edge(k) - 1.0 < 1.0 / 128.0 + 1e-12);
            }
        }
        // integers below 256 are bucket lower edges, one per bucket
        for i in 1..256 {
            assert_eq!(lower_edge(key_of(i as f64)), i as f64);
        }
        assert_ne!(key_of(1.0), key_of(1.0 + 1.0 / 128.0));
        assert_eq!(key_of(1.0), key_of(1.0 + 1.0 / 256.0));
    }

    #[test]
    fn counts_and_ranks_survive_growth_in_both_directions() {
        let mut h = LogHistogram::new();
        let xs = [10.0, 1000.0, 0.5, 10.0, 1e6, -2.0, 3.0];
        for &x in &xs {
            h.insert(x);
        }
        assert_eq!(h.n(), 7);
        assert_eq!(h.count(key_of(10.0)), 2);
        let mut sorted = xs.to_vec();
        sorted.sort_by(f64::total_cmp);
        for (i, &x) in sorted.iter().enumerate() {
            assert_eq!(h.key_at_rank(i as u64 + 1), key_of(x));
        }
        assert_eq!(h.count_below(key_of(10.0)), 3);
        assert_eq!(h.quantile_key(0.5), key_of(10.0)); // rank ⌊3.5⌋ + 1 = 4
    }
}
