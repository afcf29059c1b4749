//! Rank statistics of two sorted samples by one merge, without sorting the pooled sample.
//!
//! With average ranks, `Σ rank(x_i) − n(n+1)/2 = #{x > y} + ½·#{x = y}` (the Mann–Whitney
//! `U` of x), a multiple of ½: every partial sum is exact in f64 below 2⁵², so computing it
//! by counting gives the same bits as summing ranks in any order. Tie sums `Σ(t³ − t)` are
//! integers, exact in any order too. Kayenta's and R's `wdiff` can therefore be evaluated in
//! `O(n + m)` per point instead of `O(N log N)`.

/// Rank sums of `x − shift` against `y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RankSums {
    /// `#{x_i − shift > y_j} + ½·#{x_i − shift = y_j}`.
    pub u: f64,
    /// `Σ(t³ − t)` over tie groups of the pooled sample.
    pub pooled_ties: f64,
    /// `Σ(t³ − t)` over tie groups within x plus within y.
    pub within_ties: f64,
}

/// `x` and `y` sorted ascending, free of NaN. `x_i − shift` is computed exactly as a caller
/// building the shifted array would (subtraction is monotone, so it stays sorted).
pub(crate) fn rank_sums(x: &[f64], shift: f64, y: &[f64]) -> RankSums {
    rank_sums_with(x, shift, y, tie_sum(y))
}

/// `Σ(t³ − t)` over tie groups of a sorted sample.
pub(crate) fn tie_sum(sorted: &[f64]) -> f64 {
    let mut total = 0.0;
    let mut start = 0;
    while start < sorted.len() {
        let mut end = start + 1;
        while end < sorted.len() && sorted[end] == sorted[start] {
            end += 1;
        }
        total += cube(end - start);
        start = end;
    }
    total
}

#[inline]
fn cube(t: usize) -> f64 {
    let t = t as f64;
    t * t * t - t
}

/// [`rank_sums`] with `y`'s tie sum ([`tie_sum`]) computed once by the caller: the inner
/// loop of Kayenta's root finder, which evaluates it ~100 times per metric.
pub(crate) fn rank_sums_with(x: &[f64], shift: f64, y: &[f64], y_ties: f64) -> RankSums {
    let (n, m) = (x.len(), y.len());
    let mut j = 0;
    let mut i = 0;
    let mut u2: u64 = 0; // 2·U, exact
    let mut x_ties = 0.0;
    let mut mixed = 0.0; // cube(tx + ty) − cube(ty) for groups shared with y
    while i < n {
        let v = x[i] - shift;
        while j < m && y[j] < v {
            j += 1;
        }
        let mut je = j;
        while je < m && y[je] == v {
            je += 1;
        }
        let i0 = i;
        i += 1;
        while i < n && x[i] - shift == v {
            i += 1;
        }
        let (tx, ty) = (i - i0, je - j);
        u2 += tx as u64 * (2 * j as u64 + ty as u64);
        x_ties += cube(tx);
        if ty > 0 {
            mixed += cube(tx + ty) - cube(ty) - cube(tx);
        }
        j = je;
    }
    RankSums {
        u: u2 as f64 / 2.0,
        pooled_ties: x_ties + y_ties + mixed,
        within_ties: x_ties + y_ties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::stats::average_ranks;

    #[test]
    fn merge_equals_pooled_ranking() {
        let mut x = vec![0.5, 1.0, 1.0, 2.0, 3.5, 3.5, 3.5, 7.0];
        let mut y = vec![-1.0, 0.0, 1.0, 1.5, 2.5, 3.5, 9.0];
        x.sort_by(f64::total_cmp);
        y.sort_by(f64::total_cmp);
        for shift in [0.0, 0.5, 1.0, -2.0, 2.5] {
            let shifted: Vec<f64> = x.iter().map(|v| v - shift).collect();
            let mut pooled = shifted.clone();
            pooled.extend_from_slice(&y);
            let (ranks, ties) = average_ranks(&pooled);
            let n = x.len() as f64;
            let rank_sum: f64 = ranks[..x.len()].iter().sum();
            let r = rank_sums(&x, shift, &y);
            assert_eq!(r.u, rank_sum - n * (n + 1.0) / 2.0, "shift {shift}");
            assert_eq!(r.pooled_ties, ties, "shift {shift}");
        }
    }
}
