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
        self.kth_and_next(k).0
    }

    /// The k-th smallest difference and the (k+1)-th (equal to the k-th when
    /// `k = n·m`), for the price of one selection.
    pub(crate) fn kth_and_next(&self, k: u64) -> (f64, f64) {
        let n = self.x.len();
        let m = self.y.len();
        assert!(
            k >= 1 && k <= self.len(),
            "k = {k} out of 1..={}",
            self.len()
        );
        // Candidates of row i are columns lo[i]..hi[i]; `below` counts the differences known
        // to rank before the k-th.
        let mut lo = vec![0usize; n];
        let mut hi = vec![m; n];
        let mut le = vec![0usize; n];
        let mut lt = vec![0usize; n];
        let mut widths = vec![0u64; n + 1];
        let mut below: u64 = 0;
        let mut active: u64 = self.len();
        let small_enough = (2 * (n + m)).max(4096) as u64;
        let mut rng = SplitMix64(0x9e37_79b9_7f4a_7c15 ^ k ^ ((n as u64) << 32) ^ m as u64);
        let mut sample: Vec<f64> = Vec::with_capacity(SAMPLE);
        while active > small_enough {
            let before = active;
            for i in 0..n {
                widths[i + 1] = widths[i] + (hi[i] - lo[i]) as u64;
            }
            // Floyd–Rivest: sample the candidates and bracket the target rank between two
            // sample order statistics; the bracket holds the answer with high probability
            // and only ~3/√SAMPLE of the candidates.
            sample.clear();
            sample.extend(
                (0..SAMPLE).map(|_| draw_one(&mut rng, &widths, &lo, active, |r, c| self.at(r, c))),
            );
            sample.sort_unstable_by(f64::total_cmp);
            let target = (k - below) as f64 / active as f64 * SAMPLE as f64;
            let spread = 1.5 * (SAMPLE as f64).sqrt();
            let lo_idx = (target - spread).floor();
            let hi_idx = (target + spread).ceil();
            let low_pivot = (lo_idx >= 0.0).then(|| sample[lo_idx as usize]);
            let high_pivot = (hi_idx < SAMPLE as f64).then(|| sample[hi_idx as usize]);
            let n_lt = low_pivot.map_or(0, |p| self.count_into(p, true, &mut lt));
            if k <= n_lt {
                // below the bracket (an unlucky sample): keep what is < the low pivot
                for i in 0..n {
                    hi[i] = hi[i].min(lt[i]).max(lo[i]);
                }
            } else {
                let n_le = high_pivot.map_or(self.len(), |p| self.count_into(p, false, &mut le));
                if k > n_le {
                    // above the bracket: everything ≤ the high pivot ranks before the answer
                    for i in 0..n {
                        lo[i] = lo[i].max(le[i]).min(hi[i]);
                    }
                } else {
                    if let (Some(a), Some(b)) = (low_pivot, high_pivot) {
                        if a == b {
                            return self.finish_at(a, k, &mut le);
                        }
                    }
                    for i in 0..n {
                        if low_pivot.is_some() {
                            lo[i] = lo[i].max(lt[i]);
                        }
                        if high_pivot.is_some() {
                            hi[i] = hi[i].min(le[i]);
                        }
                        hi[i] = hi[i].max(lo[i]);
                    }
                }
            }
            below = lo.iter().map(|&l| l as u64).sum();
            active = lo.iter().zip(&hi).map(|(&l, &h)| (h - l) as u64).sum();
            if active == before {
                // No progress (ties around the bracket): one quickselect step on a random
                // candidate, which always removes at least that candidate.
                let pivot = draw_one(&mut rng, &widths, &lo, active, |row, col| self.at(row, col));
                let n_lt = self.count_into(pivot, true, &mut lt);
                let n_le = self.count_into(pivot, false, &mut le);
                if n_lt < k && k <= n_le {
                    return self.finish_at(pivot, k, &mut le);
                }
                if k <= n_lt {
                    for i in 0..n {
                        hi[i] = hi[i].min(lt[i]).max(lo[i]);
                    }
                } else {
                    for i in 0..n {
                        lo[i] = lo[i].max(le[i]).min(hi[i]);
                    }
                }
                below = lo.iter().map(|&l| l as u64).sum();
                active = lo.iter().zip(&hi).map(|(&l, &h)| (h - l) as u64).sum();
            }
        }
        let mut rest: Vec<f64> = Vec::with_capacity(active as usize);
        for i in 0..n {
            for c in lo[i]..hi[i] {
                rest.push(self.at(i, c));
            }
        }
        let idx = (k - below - 1) as usize;
        let (_, v, _) = rest.select_nth_unstable_by(idx, f64::total_cmp);
        let v = *v;
        self.finish_at(v, k, &mut le)
    }

    /// `(v, next)` when `v` is the k-th smallest difference.
    fn finish_at(&self, v: f64, k: u64, le: &mut [usize]) -> (f64, f64) {
        if k == self.len() {
            return (v, v);
        }
        let m = self.y.len();
        let n_le = self.count_into(v, false, le);
        if n_le > k {
            return (v, v);
        }
        // the smallest difference above v: the first column past each row's `≤ v` prefix
        let next = le
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c < m)
            .map(|(i, &c)| self.at(i, c))
            .min_by(f64::total_cmp)
            .expect("k < n·m leaves a difference after the k-th");
        (v, next)
    }

    /// The median of all differences (mean of the two middle ones when `n·m` is even):
    /// the two-sample Hodges–Lehmann estimator.
    pub(crate) fn median(&self) -> f64 {
        let len = self.len();
        if len % 2 == 1 {
            self.kth(len / 2 + 1)
        } else {
            let (a, b) = self.kth_and_next(len / 2);
            (a + b) / 2.0
        }
    }
}

/// Candidates sampled per selection round.
const SAMPLE: usize = 256;

/// One candidate drawn uniformly, given the cumulative row widths.
fn draw_one(
    rng: &mut SplitMix64,
    widths: &[u64],
    lo: &[usize],
    active: u64,
    at: impl Fn(usize, usize) -> f64,
) -> f64 {
    let r = rng.next() % active;
    // the row whose cumulative width range holds r
    let row = widths.partition_point(|&w| w <= r) - 1;
    at(row, lo[row] + (r - widths[row]) as usize)
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
        let mut d: Vec<f64> = x
            .iter()
            .flat_map(|a| y.iter().map(move |b| a - b))
            .collect();
        d.sort_by(f64::total_cmp);
        d
    }

    #[test]
    fn kth_matches_sorting_with_ties_and_sizes() {
        let mut rng = SplitMix64(7);
        for (n, m, levels) in [
            (1, 1, 5),
            (3, 7, 3),
            (40, 25, 1000),
            (200, 150, 7),
            (90, 300, 100000),
            (700, 600, 1 << 40),
            (500, 800, 3),
        ] {
            let mut x: Vec<f64> = (0..n)
                .map(|_| (rng.next() % levels) as f64 * 0.37)
                .collect();
            let mut y: Vec<f64> = (0..m)
                .map(|_| (rng.next() % levels) as f64 * 0.41 - 3.0)
                .collect();
            x.sort_by(f64::total_cmp);
            y.sort_by(f64::total_cmp);
            let all = brute(&x, &y);
            let p = PairwiseDiffs::new(&x, &y);
            for k in [
                1,
                2,
                all.len() as u64 / 3,
                all.len() as u64 / 2 + 1,
                all.len() as u64 - 1,
                all.len() as u64,
            ] {
                let k = k.clamp(1, all.len() as u64);
                let (v, next) = p.kth_and_next(k);
                assert_eq!(
                    v.to_bits(),
                    all[k as usize - 1].to_bits(),
                    "n={n} m={m} k={k}"
                );
                let want_next = all[(k as usize).min(all.len() - 1)];
                assert_eq!(
                    next.to_bits(),
                    want_next.to_bits(),
                    "next: n={n} m={m} k={k}"
                );
            }
            assert_eq!(
                p.count_le(all[all.len() / 2]),
                all.iter().filter(|&&d| d <= all[all.len() / 2]).count() as u64
            );
        }
    }
}
