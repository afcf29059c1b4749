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
    let (n, m) = (x.len(), y.len());
    let xv = |i: usize| x[i] - shift;
    let (mut i, mut j) = (0, 0);
    let mut u2: u128 = 0; // 2·U, exact
    let mut pooled_ties = 0.0;
    let mut within_ties = 0.0;
    let cube = |t: usize| {
        let t = t as f64;
        t * t * t - t
    };
    while i < n || j < m {
        let v = match (i < n, j < m) {
            (true, true) => xv(i).min(y[j]),
            (true, false) => xv(i),
            (false, true) => y[j],
            (false, false) => unreachable!(),
        };
        let i0 = i;
        while i < n && xv(i) == v {
            i += 1;
        }
        let j0 = j;
        while j < m && y[j] == v {
            j += 1;
        }
        let (tx, ty) = (i - i0, j - j0);
        // every x equal to v is above the j0 ys below v and ties with the ty ys at v
        u2 += tx as u128 * (2 * j0 as u128 + ty as u128);
        if tx + ty > 1 {
            pooled_ties += cube(tx + ty);
        }
        if tx > 1 {
            within_ties += cube(tx);
        }
        if ty > 1 {
            within_ties += cube(ty);
        }
    }
    RankSums { u: u2 as f64 / 2.0, pooled_ties, within_ties }
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
