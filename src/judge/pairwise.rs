//! Order statistics of the `n·m` pairwise differences `x_i − y_j` without materialising them.
//!
//! Both samples are sorted once. Seen as a matrix with rows `i` (x ascending) and columns
//! `c` (y descending), every row and every column is sorted, so the number of differences
//! `≤ t` is found with one two-pointer sweep in `O(n + m)`. The k-th smallest difference is
//! then found by repeatedly splitting the still-possible region of every row at a pivot drawn
//! from that region (Monahan 1984, "Algorithm 616: fast computation of the Hodges–Lehmann
//! location estimator", after Johnson & Mizoguchi 1978), until few enough candidates remain
//! to select among directly. Each round costs `O(n + m)` and removes a constant expected
//! fraction of the candidates, so a selection takes `O((n + m) log(n·m))` time and `O(n + m)`
//! memory: 100,000 × 100,000 samples (10¹⁰ differences) are routine.
//!
//! Differences are compared exactly as computed (`x_i - y_j` in f64): subtraction is monotone
//! under rounding, so rows and columns stay sorted in floating point and the k-th value
//! returned is bit-identical to sorting the materialised differences.

/// The pairwise differences `x_i − y_j` of two sorted samples.
pub(crate) struct PairwiseDiffs<'a> {
    /// ascending
    x: &'a [f64],
    /// ascending (row `i`, column `c` is `x[i] - y[m - 1 - c]`, ascending in `c`)
    y: &'a [f64],
}

impl<'a> PairwiseDiffs<'a> {
    /// `x` and `y` must be sorted ascending and free of NaN.
    pub(crate) fn new(x: &'a [f64], y: &'a [f64]) -> Self {
        debug_assert!(x.windows(2).all(|w| w[0] <= w[1]));
        debug_assert!(y.windows(2).all(|w| w[0] <= w[1]));
        Self { x, y }
    }

    pub(crate) fn len(&self) -> u64 {
        self.x.len() as u64 * self.y.len() as u64
    }

    #[inline]
    fn at(&self, i: usize, c: usize) -> f64 {
        self.x[i] - self.y[self.y.len() - 1 - c]
    }

    /// Number of differences `≤ t` (or `< t` when `strict`), per row into `out` (prefix
    /// lengths in column order) and in total.
    fn count_into(&self, t: f64, strict: bool, out: &mut [usize]) -> u64 {
        let m = self.y.len();
        // Row i's prefix length is non-increasing in i (x ascending), so sweep the column
        // boundary from the right.
        let mut c = m;
        let mut total = 0u64;
        for (i, slot) in out.iter_mut().enumerate() {
            while c > 0 {
                let v = self.at(i, c - 1);
                let inside = if strict { v < t } else { v <= t };
                if inside {
                    break;
                }
                c -= 1;
            }
            *slot = c;
            total += c as u64;
        }
        total
    }

    /// Number of differences `≤ t`.
    #[cfg(test)]
    pub(crate) fn count_le(&self, t: f64) -> u64 {
        let mut scratch = vec![0usize; self.x.len()];
        self.count_into(t, false, &mut scratch)
    }

    /// The k-th smallest difference, `k` 1-based (`1 ≤ k ≤ n·m`).
    pub(crate) fn kth(&self, k: u64) -> f64 {
        let n = self.x.len();
        let m = self.y.len();
        assert!(k >= 1 && k <= self.len(), "k = {k} out of 1..={}", self.len());
        // Candidates of row i are columns lo[i]..hi[i]; `below` counts the differences known
        // to rank before the k-th.
        let mut lo = vec![0usize; n];
        let mut hi = vec![m; n];
        let mut le = vec![0usize; n];
        let mut lt = vec![0usize; n];
        let mut below: u64 = 0;
        let mut active: u64 = self.len();
        let small_enough = (4 * (n + m)).max(256) as u64;
        let mut rng = SplitMix64(0x9e37_79b9_7f4a_7c15 ^ k ^ ((n as u64) << 32) ^ m as u64);
        while active > small_enough {
            // A pivot drawn uniformly from the candidates.
            let mut r = rng.next() % active;
            let mut pivot = f64::NAN;
            for i in 0..n {
                let w = (hi[i] - lo[i]) as u64;
                if r < w {
                    pivot = self.at(i, lo[i] + r as usize);
                    break;
                }
                r -= w;
            }
            let n_lt = self.count_into(pivot, true, &mut lt);
            let n_le = self.count_into(pivot, false, &mut le);
            if n_lt < k && k <= n_le {
                return pivot;
            }
            if k <= n_lt {
                // the answer is below the pivot: drop everything ≥ pivot
                for i in 0..n {
                    hi[i] = hi[i].min(lt[i]).max(lo[i]);
                }
            } else {
                // the answer is above the pivot: everything ≤ pivot ranks before it
                for i in 0..n {
                    lo[i] = lo[i].max(le[i]).min(hi[i]);
                }
            }
            below = lo.iter().map(|&l| l as u64).sum();
            active = lo.iter().zip(&hi).map(|(&l, &h)| (h - l) as u64).sum();
        }
        let mut rest: Vec<f64> = Vec::with_capacity(active as usize);
        for i in 0..n {
            for c in lo[i]..hi[i] {
                rest.push(self.at(i, c));
            }
        }
        let idx = (k - below - 1) as usize;
        let (_, v, _) = rest.select_nth_unstable_by(idx, f64::total_cmp);
        *v
    }

    /// The median of all differences (mean of the two middle ones when `n·m` is even):
    /// the two-sample Hodges–Lehmann estimator.
    pub(crate) fn median(&self) -> f64 {
        let len = self.len();
        if len % 2 == 1 {
            self.kth(len / 2 + 1)
        } else {
            let a = self.kth(len / 2);
            let b = self.kth(len / 2 + 1);
            (a + b) / 2.0
        }
    }
}

/// A tiny deterministic generator for pivots (Steele, Lea & Flood 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(x: &[f64], y: &[f64]) -> Vec<f64> {
        let mut d: Vec<f64> = x.iter().flat_map(|a| y.iter().map(move |b| a - b)).collect();
        d.sort_by(f64::total_cmp);
        d
    }

    #[test]
    fn kth_matches_sorting_with_ties_and_sizes() {
        let mut rng = SplitMix64(7);
        for (n, m, levels) in [(1, 1, 5), (3, 7, 3), (40, 25, 1000), (200, 150, 7), (90, 300, 100000)] {
            let mut x: Vec<f64> = (0..n).map(|_| (rng.next() % levels) as f64 * 0.37).collect();
            let mut y: Vec<f64> = (0..m).map(|_| (rng.next() % levels) as f64 * 0.41 - 3.0).collect();
            x.sort_by(f64::total_cmp);
            y.sort_by(f64::total_cmp);
            let all = brute(&x, &y);
            let p = PairwiseDiffs::new(&x, &y);
            for k in [1, 2, all.len() as u64 / 3, all.len() as u64 / 2 + 1, all.len() as u64] {
                let k = k.clamp(1, all.len() as u64);
                assert_eq!(p.kth(k).to_bits(), all[k as usize - 1].to_bits(), "n={n} m={m} k={k}");
            }
            assert_eq!(p.count_le(all[all.len() / 2]), all.iter().filter(|&&d| d <= all[all.len() / 2]).count() as u64);
        }
    }
}
