//! The two-sample Wilcoxon rank-sum / Mann–Whitney test with the Hodges–Lehmann shift
//! estimate and its confidence interval, with the semantics of R's
//! `wilcox.test(x = experiment, y = control, conf.int = TRUE, conf.level, exact, correct)`.
//!
//! # Conventions
//! * Non-finite values are dropped first, as R does (`x <- x[is.finite(x)]`).
//! * `W = Σ rank(x) − n(n+1)/2` over the pooled sample (average ranks for ties), i.e. the
//!   Mann–Whitney `U` of the experiment: `#{x_i > y_j} + ½·#{x_i = y_j}`.
//! * `exact = None` uses the exact null distribution when both samples have fewer than 50
//!   values and there are no ties, as R does; `Some(true)` asks for it (R falls back to the
//!   normal approximation with ties, so do we, and say so in [`MannWhitney::warnings`]).
//! * p-values are two-sided.
//! * **Exact path:** p-value from the distribution of `W` (Harding's generating-function
//!   recursion, see [`WilcoxonDistribution`]); the interval is
//!   `[D₍q₎, D₍nm−q+1₎]` with `q = qwilcox(α/2, n, m)` (at least 1) over the sorted pairwise
//!   differences `D = x_i − y_j` (Bauer 1972), and the achieved confidence is reported when
//!   the requested one is not attainable.
//! * **Asymptotic path:** `z = (W − nm/2 − CORRECTION)/σ` with the tie-corrected
//!   `σ² = nm/12 · ((N+1) − Σ(t³−t)/(N(N−1)))` and `CORRECTION = ½·sign(W − nm/2)` when
//!   `correct`. R finds the interval bounds with `uniroot(tol = 1e-4)` on its `wdiff`
//!   function, a non-increasing step function of the shift `d` that only jumps where `d`
//!   is a pairwise difference. We compute, exactly, at which difference it changes sign: on
//!   the open gaps between differences `wdiff` depends only on the count `u` of differences
//!   above `d`, so the sign change is at `D₍nm−u*+1₎` for the smallest `u*` with
//!   `h(u*) > 0`; R's own answer lies within its 1e-4 tolerance of that point.
//! * The estimate is the Hodges–Lehmann estimator, the median of all `n·m` differences
//!   (Hodges & Lehmann 1963). On the exact path this is R's `median(diffs)`; on the
//!   asymptotic path R reports wherever `uniroot` stops inside the zero set of its
//!   uncorrected `wdiff`, which is the same point when `n·m` is odd and any point between
//!   the two middle differences when it is even, where we report their midpoint.
//! * No `n·m` array is ever built: order statistics of the differences come from
//!   [`PairwiseDiffs`] in `O((n+m) log(nm))`.
//!
//! # References
//! 1. Hodges, J. L. & Lehmann, E. L. (1963). Estimates of location based on rank tests.
//!    *Ann. Math. Statist.* 34, 598–611.
//! 2. Bauer, D. F. (1972). Constructing confidence sets using rank statistics.
//!    *JASA* 67, 687–690.
//! 3. Hollander, M. & Wolfe, D. A. (1973). *Nonparametric Statistical Methods*, pp. 69–79.
//! 4. Harding, E. F. (1984). An efficient, minimal-storage procedure for calculating the
//!    Mann–Whitney U, generalized U and similar distributions. *Appl. Statist.* 33, 1–6.
//! 5. Monahan, J. F. (1984). Algorithm 616: fast computation of the Hodges–Lehmann location
//!    estimator. *ACM TOMS* 10, 265–270.
//! 6. R Core Team, `src/library/stats/R/wilcox.test.R`, `src/nmath/wilcox.c`.

use serde::Serialize;

use super::pairwise::PairwiseDiffs;
use super::ranks::rank_sums;
use super::stats::{pnorm, pnorm_upper, qnorm, sign};
use super::StatsError;

/// How the p-value and interval were computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The exact null distribution of W (no ties).
    Exact,
    /// The normal approximation with tie correction (and continuity correction if asked).
    Asymptotic,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Asymptotic => "asymptotic",
        }
    }
}

/// Result of [`mann_whitney`]. The interval and estimate describe the shift
/// `experiment − control`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MannWhitney {
    /// Lower bound of the confidence interval for the shift.
    pub lower: f64,
    /// Upper bound of the confidence interval for the shift.
    pub upper: f64,
    /// Hodges–Lehmann estimate of the shift.
    pub estimate: f64,
    /// Two-sided p-value for H0: no shift.
    pub p_value: f64,
    /// The statistic `W` (Mann–Whitney U of the experiment).
    pub statistic: f64,
    pub method: Method,
    /// Whether the continuity correction was applied (asymptotic path only).
    pub corrected: bool,
    /// The confidence level asked for.
    pub confidence: f64,
    /// The confidence level the interval has: differs from `confidence` on the exact path
    /// when it is not attainable (R then warns "Requested conf.level not achievable").
    pub achieved_confidence: f64,
    /// The smallest two-sided p-value any data of these sample sizes (and, on the
    /// asymptotic path, this tie pattern) could give: `2/C(n+m, n)` exactly, `2·Φ(−z_max)`
    /// with `z_max = (nm/2 − CORRECTION)/σ` asymptotically. At or above `1 − confidence` the
    /// test cannot reject whatever the values are: the samples are too small to judge.
    pub min_p_value: f64,
    /// Sample sizes after dropping non-finite values.
    pub n_experiment: usize,
    pub n_control: usize,
    /// R's warnings, in R's words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Largest `min(n, m)² · max(n, m)` for which the exact distribution is computed
/// (a few hundred milliseconds); above it `exact = Some(true)` is an error.
const EXACT_WORK_LIMIT: f64 = 2.0e9;

/// Mann–Whitney test with confidence interval, R `wilcox.test(experiment, control,
/// conf.int = TRUE, conf.level = confidence, exact, correct)` semantics (see module docs).
pub fn mann_whitney(
    experiment: &[f64],
    control: &[f64],
    confidence: f64,
    exact: Option<bool>,
    correct: bool,
) -> Result<MannWhitney, StatsError> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "confidence must be in (0, 1), got {confidence}"
        )));
    }
    let mut x: Vec<f64> = experiment
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let mut y: Vec<f64> = control.iter().copied().filter(|v| v.is_finite()).collect();
    if x.is_empty() {
        return Err(StatsError::NotEnoughData(
            "not enough (non-missing) 'experiment' observations".into(),
        ));
    }
    if y.is_empty() {
        return Err(StatsError::NotEnoughData(
            "not enough (non-missing) 'control' observations".into(),
        ));
    }
    x.sort_unstable_by(f64::total_cmp);
    y.sort_unstable_by(f64::total_cmp);
    let sorted = rank_sums(&x, 0.0, &y);
    let n = x.len();
    let m = y.len();
    let mut warnings = Vec::new();
    let want_exact = exact.unwrap_or(n < 50 && m < 50);
    let has_ties = sorted.pooled_ties > 0.0;
    let diffs = PairwiseDiffs::new(&x, &y);
    let alpha = 1.0 - confidence;

    if want_exact && !has_ties {
        let (small, large) = (n.min(m) as f64, n.max(m) as f64);
        if small * small * large > EXACT_WORK_LIMIT {
            return Err(StatsError::InvalidArgument(format!(
                "the exact distribution for samples of {n} and {m} values is too large to compute; use exact = false"
            )));
        }
        let dist = WilcoxonDistribution::new(n, m);
        let nm = (n * m) as f64;
        let w = sorted.u;
        let p = if w > nm / 2.0 {
            dist.sf(w as i64 - 1)
        } else {
            dist.cdf(w as i64)
        };
        let p_value = (2.0 * p).min(1.0);
        let mut qu = dist.quantile(alpha / 2.0);
        if qu == 0 {
            qu = 1;
        }
        let ql = (n * m) as i64 - qu;
        let achieved_alpha = 2.0 * dist.cdf(qu - 1);
        if achieved_alpha - alpha > alpha / 2.0 {
            warnings.push("Requested conf.level not achievable".to_string());
        }
        return Ok(MannWhitney {
            lower: diffs.kth(qu as u64),
            upper: diffs.kth(ql as u64 + 1),
            estimate: diffs.median(),
            p_value,
            statistic: w,
            method: Method::Exact,
            corrected: false,
            confidence,
            achieved_confidence: 1.0 - achieved_alpha,
            min_p_value: (2.0 * dist.cdf(0)).min(1.0),
            n_experiment: n,
            n_control: m,
            warnings,
        });
    }

    if want_exact {
        warnings.push("cannot compute exact p-value with ties".to_string());
        warnings.push("cannot compute exact confidence intervals with ties".to_string());
    }
    let (nf, mf) = (n as f64, m as f64);
    let nm = nf * mf;
    let big_n = nf + mf;
    let sigma = |ties: f64| ((nm / 12.0) * ((big_n + 1.0) - ties / (big_n * (big_n - 1.0)))).sqrt();
    let sigma0 = sigma(sorted.pooled_ties);
    if sigma0 == 0.0 {
        return Err(StatsError::AllTied);
    }
    let dz = sorted.u - nm / 2.0;
    let correction = if correct { sign(dz) * 0.5 } else { 0.0 };
    let z = (dz - correction) / sigma0;
    let p_value = 2.0 * pnorm(z).min(pnorm_upper(z));

    // R's wdiff(d, zq) at a point d, ties between x − d and y included.
    let wdiff_at = |d: f64, zq: f64| -> Result<f64, StatsError> {
        let s = rank_sums(&x, d, &y);
        let sd = sigma(s.pooled_ties);
        if sd == 0.0 {
            return Err(StatsError::AllTied);
        }
        let dz = s.u - nm / 2.0;
        let corr = if correct { sign(dz) * 0.5 } else { 0.0 };
        Ok((dz - corr) / sd - zq)
    };
    // Between differences only the ties within each sample remain.
    let sigma_gap = sigma(sorted.within_ties);
    let h = |u: f64, zq: f64| {
        let dz = u - nm / 2.0;
        let corr = if correct { sign(dz) * 0.5 } else { 0.0 };
        (dz - corr) / sigma_gap - zq
    };
    let mu_min = x[0] - y[m - 1];
    let mu_max = x[n - 1] - y[0];
    let total = n as u64 * m as u64;
    let root = |zq: f64| -> Result<f64, StatsError> {
        if wdiff_at(mu_min, zq)? <= 0.0 {
            return Ok(mu_min);
        }
        if wdiff_at(mu_max, zq)? >= 0.0 {
            return Ok(mu_max);
        }
        // smallest u in 0..=nm with h(u) > 0 (h is non-decreasing in u)
        let guess = (nm / 2.0 + zq * sigma_gap).ceil().clamp(0.0, nm) as u64;
        let mut u = guess;
        while u > 0 && h((u - 1) as f64, zq) > 0.0 {
            u -= 1;
        }
        while u < total && h(u as f64, zq) <= 0.0 {
            u += 1;
        }
        let rank = (total - u + 1).clamp(1, total);
        Ok(diffs.kth(rank))
    };
    let (lower, upper) = if mu_min == mu_max {
        // Both samples constant: every difference is mu_min, and so is the shift. R stops
        // here ("cannot compute confidence interval when all observations are tied") because
        // its wdiff meets a fully tied pooled sample at d = mu_min; the answer is not in doubt.
        warnings.push(
            "all pairwise differences are equal: the interval is that single difference"
                .to_string(),
        );
        (mu_min, mu_min)
    } else {
        (root(qnorm(1.0 - alpha / 2.0))?, root(qnorm(alpha / 2.0))?)
    };
    Ok(MannWhitney {
        lower,
        upper,
        estimate: diffs.median(),
        p_value,
        statistic: sorted.u,
        method: Method::Asymptotic,
        corrected: correct,
        confidence,
        achieved_confidence: confidence,
        min_p_value: {
            let corr = if correct { 0.5 } else { 0.0 };
            (2.0 * pnorm_upper((nm / 2.0 - corr) / sigma0)).min(1.0)
        },
        n_experiment: n,
        n_control: m,
        warnings,
    })
}

/// The exact null distribution of the Mann–Whitney statistic for samples of `n` and `m`
/// values without ties (R's `dwilcox`/`pwilcox`/`qwilcox`).
///
/// # Formula
/// Its generating function is the Gaussian binomial coefficient divided by `C(n+m, n)`:
/// `Σ_k P(W = k) q^k = Π_{i=1}^{s} (1 − q^{l+i}) / (1 − q^i) · i/(l+i)` with
/// `s = min(n, m)`, `l = max(n, m)` (Harding 1984). Each factor is applied as a
/// multiplication by `1 − q^{l+i}` and a running-sum division by `1 − q^i`, scaled so the
/// coefficients stay probabilities (no overflow for any sample size). The lower half is
/// computed and mirrored: in the lower tail every term is a sum of positive numbers, so
/// small p-values keep full relative precision.
#[derive(Debug, Clone)]
pub struct WilcoxonDistribution {
    n: usize,
    m: usize,
    probs: Vec<f64>,
}

impl WilcoxonDistribution {
    pub fn new(n: usize, m: usize) -> Self {
        let (s, l) = (n.min(m), n.max(m));
        let mut p = vec![1.0_f64];
        for i in 1..=s {
            let deg = i * l;
            let half = deg / 2;
            let mut next = vec![0.0_f64; deg + 1];
            let prev_deg = p.len() - 1;
            let shift = l + i;
            for k in 0..=half {
                let a = if k <= prev_deg { p[k] } else { 0.0 };
                let b = if k >= shift && k - shift <= prev_deg {
                    p[k - shift]
                } else {
                    0.0
                };
                let carry = if k >= i { next[k - i] } else { 0.0 };
                next[k] = a - b + carry;
            }
            let scale = i as f64 / (l + i) as f64;
            for v in next.iter_mut().take(half + 1) {
                *v *= scale;
            }
            for k in half + 1..=deg {
                next[k] = next[deg - k];
            }
            p = next;
        }
        WilcoxonDistribution { n, m, probs: p }
    }

    /// `P(W = k)`.
    pub fn pmf(&self, k: i64) -> f64 {
        if k < 0 || k as usize >= self.probs.len() {
            0.0
        } else {
            self.probs[k as usize]
        }
    }

    fn nm(&self) -> i64 {
        (self.n * self.m) as i64
    }

    /// `P(W ≤ q)`, summed over the shorter tail as R's `pwilcox` does.
    pub fn cdf(&self, q: i64) -> f64 {
        if q < 0 {
            return 0.0;
        }
        if q >= self.nm() {
            return 1.0;
        }
        if 2 * q <= self.nm() {
            (0..=q).fold(0.0, |acc, i| acc + self.pmf(i))
        } else {
            let upper = (0..self.nm() - q).fold(0.0, |acc, i| acc + self.pmf(i));
            1.0 - upper
        }
    }

    /// `P(W > q)`.
    pub fn sf(&self, q: i64) -> f64 {
        if q < 0 {
            return 1.0;
        }
        if q >= self.nm() {
            return 0.0;
        }
        if 2 * q <= self.nm() {
            1.0 - (0..=q).fold(0.0, |acc, i| acc + self.pmf(i))
        } else {
            // P(W > q) = P(W < nm − q) by symmetry
            (0..self.nm() - q).fold(0.0, |acc, i| acc + self.pmf(i))
        }
    }

    /// Smallest `q` with `P(W ≤ q) ≥ p` (R's `qwilcox`, including its `10·DBL_EPSILON` fuzz).
    pub fn quantile(&self, p: f64) -> i64 {
        let eps = 10.0 * f64::EPSILON;
        let mut acc = 0.0;
        let mut q = 0i64;
        if p <= 0.5 {
            let target = p - eps;
            loop {
                acc += self.pmf(q);
                if acc >= target {
                    return q;
                }
                q += 1;
            }
        } else {
            let target = 1.0 - p + eps;
            loop {
                acc += self.pmf(q);
                if acc > target {
                    return self.nm() - q;
                }
                q += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts by the textbook recursion c(k; n, m) = c(k − m; n − 1, m) + c(k; n, m − 1).
    fn counts(n: usize, m: usize) -> Vec<f64> {
        let mut table = vec![vec![Vec::<f64>::new(); m + 1]; n + 1];
        for i in 0..=n {
            for j in 0..=m {
                table[i][j] = if i == 0 || j == 0 {
                    vec![1.0]
                } else {
                    let mut v = vec![0.0; i * j + 1];
                    for (k, slot) in v.iter_mut().enumerate() {
                        let a = if k >= j {
                            table[i - 1][j].get(k - j).copied().unwrap_or(0.0)
                        } else {
                            0.0
                        };
                        let b = table[i][j - 1].get(k).copied().unwrap_or(0.0);
                        *slot = a + b;
                    }
                    v
                };
            }
        }
        table[n][m].clone()
    }

    #[test]
    fn harding_matches_the_counting_recursion() {
        for (n, m) in [(1, 1), (2, 3), (5, 5), (7, 12), (20, 13)] {
            let c = counts(n, m);
            let total: f64 = c.iter().sum();
            let d = WilcoxonDistribution::new(n, m);
            for (k, ck) in c.iter().enumerate() {
                let want = ck / total;
                let got = d.pmf(k as i64);
                assert!(
                    (got - want).abs() <= 1e-13 * want.max(1e-300),
                    "n={n} m={m} k={k}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn symmetric_in_sample_sizes() {
        let a = WilcoxonDistribution::new(4, 9);
        let b = WilcoxonDistribution::new(9, 4);
        assert_eq!(a.probs, b.probs);
    }
}
