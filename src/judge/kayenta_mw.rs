//! Kayenta's Mann–Whitney confidence interval and Hodges–Lehmann estimate
//! (`kayenta-mannwhitney/.../MannWhitney.scala` + `KayentaBrentSolver.java`), reproduced
//! operation by operation, root-finder quirks included.
//!
//! It ports the asymptotic `conf.int` branch of R's `wilcox.test` with two differences that
//! matter: the interval is always asymptotic (never the exact distribution), and the
//! continuity correction is also applied when solving for the estimate. Bounds and estimate
//! come from R's `zeroin` (Brent) with an absolute tolerance of 1e-4, so for metrics of small
//! magnitude the answers depend on the iteration path; `NetflixACAJudge-v1.0` must reproduce
//! them to give the same verdicts. `coalmine-v1` uses [`super::mann_whitney`] instead.

use super::ranks::{rank_sums_with, tie_sum, ShiftedRanks};
use super::stats::qnorm_commons;
use super::StatsError;

/// Kayenta's Wilcoxon difference function `W(d, zq; x, y)`: the continuity- and
/// tie-corrected standardised rank sum of `x − d` against `y`, minus `zq`.
///
/// # Formula
/// `dz = Σ rank(x − d) − nx(nx+1)/2 − nx·ny/2`, `corr = ½·sign(dz)`,
/// `σ = √(nx·ny/12 · ((nx+ny+1) − Σ(t³−t)/((nx+ny)(nx+ny−1))))`, `W = (dz − corr)/σ − zq`.
/// Ranks are pooled over `x − d` and `y`; all tied observations are an error.
pub fn wdiff(d: f64, zq: f64, x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    let mut xs = x.to_vec();
    let mut ys = y.to_vec();
    xs.sort_unstable_by(f64::total_cmp);
    ys.sort_unstable_by(f64::total_cmp);
    wdiff_sorted(d, zq, &xs, &ys, tie_sum(&ys))
}

/// [`wdiff`] on samples sorted ascending, `O(nx + ny)`.
fn wdiff_sorted(d: f64, zq: f64, xs: &[f64], ys: &[f64], y_ties: f64) -> Result<f64, StatsError> {
    let r = rank_sums_with(xs, d, ys, y_ties);
    let (nx, ny) = (xs.len(), ys.len());
    w_of(r.u, sigma(r.pooled_ties, nx, ny), zq, nx, ny)
}

/// The standard deviation of U under ties `Σ(t³ − t)` = `pooled_ties`.
fn sigma(pooled_ties: f64, nx: usize, ny: usize) -> f64 {
    let (nx, ny) = (nx as f64, ny as f64);
    ((nx * ny / 12.0) * ((nx + ny + 1.0) - pooled_ties / ((nx + ny) * (nx + ny - 1.0)))).sqrt()
}

fn w_of(u: f64, sigma: f64, zq: f64, nx: usize, ny: usize) -> Result<f64, StatsError> {
    let (nx, ny) = (nx as f64, ny as f64);
    // U is a multiple of ½ and exact, so this equals Kayenta's rank-sum expression bit for bit.
    let dz = u - nx * ny / 2.0;
    let correction = super::stats::sign(dz) * 0.5;
    if sigma == 0.0 {
        return Err(StatsError::AllTied);
    }
    Ok((dz - correction) / sigma - zq)
}

/// Intermediate values of one [`mann_whitney_kayenta`] call, for debugging and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct KayentaInterval {
    pub lower: f64,
    pub upper: f64,
    pub estimate: f64,
    pub mu_min: f64,
    pub mu_max: f64,
    /// `qnorm(α/2)` (negative) as commons-math computes it.
    pub zq: f64,
}

/// `MannWhitney.mannWhitneyUTest(x = experiment, y = control, confidenceLevel)`.
pub fn mann_whitney_kayenta(
    x: &[f64],
    y: &[f64],
    confidence: f64,
) -> Result<KayentaInterval, StatsError> {
    if x.is_empty() || y.is_empty() {
        return Err(StatsError::NotEnoughData(
            "both samples need at least one value".into(),
        ));
    }
    let mut xs = x.to_vec();
    let mut ys = y.to_vec();
    xs.sort_unstable_by(f64::total_cmp);
    ys.sort_unstable_by(f64::total_cmp);
    mann_whitney_kayenta_sorted(x, y, &xs, &ys, confidence)
}

/// [`mann_whitney_kayenta`] given also both samples sorted ascending (`f64::total_cmp`), for
/// a caller that has sorted them already.
pub(crate) fn mann_whitney_kayenta_sorted(
    x: &[f64],
    y: &[f64],
    xs: &[f64],
    ys: &[f64],
    confidence: f64,
) -> Result<KayentaInterval, StatsError> {
    debug_assert!(xs.len() == x.len() && ys.len() == y.len() && !x.is_empty() && !y.is_empty());
    let alpha = 1.0 - confidence;
    // folded over the samples in their order, as Kayenta's `min`/`max` are
    let mu_min = fold_min(x) - fold_max(y);
    let mu_max = fold_max(x) - fold_min(y);
    let zq = qnorm_commons(alpha / 2.0);
    let ranks = ShiftedRanks::new(xs, ys, tie_sum(ys));
    let (nx, ny) = (xs.len(), ys.len());
    let common_ties = ranks.within_ties();
    let common_sigma = sigma(common_ties, nx, ny);
    // the bracket's ends are evaluated for each of the three roots
    let (at_min, at_max) = (ranks.at(mu_min), ranks.at(mu_max));
    let f = |d: f64, z: f64| {
        let r = if d == mu_min {
            at_min
        } else if d == mu_max {
            at_max
        } else {
            ranks.at(d)
        };
        // without a tie between x − d and y (almost every shift) σ is the same: computed once
        let s = if r.pooled_ties == common_ties {
            common_sigma
        } else {
            sigma(r.pooled_ties, nx, ny)
        };
        w_of(r.u, s, z, nx, ny)
    };
    let root = |z: f64| -> Result<f64, StatsError> {
        let f_lower = f(mu_min, z)?;
        let f_upper = f(mu_max, z)?;
        if f_lower <= 0.0 {
            Ok(mu_min)
        } else if f_upper >= 0.0 {
            Ok(mu_max)
        } else {
            zeroin(mu_min, mu_max, f_lower, f_upper, |d| f(d, z))
        }
    };
    let lower = root(-zq)?;
    let upper = root(zq)?;
    let f_lower = f(mu_min, 0.0)?;
    let f_upper = f(mu_max, 0.0)?;
    let estimate = zeroin(mu_min, mu_max, f_lower, f_upper, |d| f(d, 0.0))?;
    Ok(KayentaInterval {
        lower,
        upper,
        estimate,
        mu_min,
        mu_max,
        zq,
    })
}

fn fold_min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn fold_max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

const ZEROIN_MAX_ITER: usize = 1000;
const ZEROIN_TOL: f64 = 1e-4;

/// R's C `zeroin` (Brent 1973) as ported in `KayentaBrentSolver`: bisection, secant and
/// inverse quadratic interpolation with an absolute tolerance of 1e-4. Returns the last
/// iterate without error when it does not converge.
pub fn zeroin(
    ax: f64,
    bx: f64,
    fa0: f64,
    fb0: f64,
    mut f: impl FnMut(f64) -> Result<f64, StatsError>,
) -> Result<f64, StatsError> {
    const EPS: f64 = f64::EPSILON;
    let (mut a, mut b) = (ax, bx);
    let (mut fa, mut fb) = (fa0, fb0);
    let mut c = a;
    let mut fc = fa;
    // commons `Precision.equals(fa, 0)`: within one ulp of zero
    let tiny = f64::from_bits(1);
    if fa.abs() <= tiny {
        return Ok(a);
    }
    if fb.abs() <= tiny {
        return Ok(b);
    }
    for _ in 0..=ZEROIN_MAX_ITER {
        let prev_step = b - a;
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol_act = 2.0 * EPS * b.abs() + ZEROIN_TOL / 2.0;
        let mut new_step = (c - b) / 2.0;
        if new_step.abs() <= tol_act || fb == 0.0 {
            return Ok(b);
        }
        if prev_step.abs() >= tol_act && fa.abs() > fb.abs() {
            let cb = c - b;
            let (mut p, mut q);
            if a == c {
                let t1 = fb / fa;
                p = cb * t1;
                q = 1.0 - t1;
            } else {
                q = fa / fc;
                let t1 = fb / fc;
                let t2 = fb / fa;
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0));
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if p < (0.75 * cb * q - (tol_act * q).abs() / 2.0) && p < (prev_step * q / 2.0).abs() {
                new_step = p / q;
            }
        }
        if new_step.abs() < tol_act {
            new_step = if new_step > 0.0 { tol_act } else { -tol_act };
        }
        a = b;
        fa = fb;
        b += new_step;
        fb = f(b)?;
        if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) {
            c = a;
            fc = fa;
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::ranks::tests::uniform;

    /// [`mann_whitney_kayenta`] as first ported: every `W` by a full merge.
    fn plain(x: &[f64], y: &[f64], confidence: f64) -> Result<(f64, f64, f64), StatsError> {
        let mu_min = fold_min(x) - fold_max(y);
        let mu_max = fold_max(x) - fold_min(y);
        let zq = qnorm_commons((1.0 - confidence) / 2.0);
        let f = |d: f64, z: f64| wdiff(d, z, x, y);
        let root = |z: f64| -> Result<f64, StatsError> {
            let (fl, fu) = (f(mu_min, z)?, f(mu_max, z)?);
            if fl <= 0.0 {
                Ok(mu_min)
            } else if fu >= 0.0 {
                Ok(mu_max)
            } else {
                zeroin(mu_min, mu_max, fl, fu, |d| f(d, z))
            }
        };
        let (lower, upper) = (root(-zq)?, root(zq)?);
        let (fl, fu) = (f(mu_min, 0.0)?, f(mu_max, 0.0)?);
        let estimate = zeroin(mu_min, mu_max, fl, fu, |d| f(d, 0.0))?;
        Ok((lower, upper, estimate))
    }

    #[test]
    fn interval_is_bit_identical_to_evaluating_every_shift_by_a_full_merge() {
        let mut st = 5u64;
        let mut next = || uniform(&mut st);
        for case in 0..600 {
            let (n, m) = (2 + case % 45, 2 + (case * 13) % 50);
            let shift = [0.0, 0.02, 0.1, -0.05][case % 4];
            let mut draw = |len: usize, s: f64| -> Vec<f64> {
                (0..len)
                    .map(|_| {
                        let v = (1.0 + s) * (100.0 + 10.0 * (next() + next() + next() - 1.5));
                        match case % 5 {
                            0 => (v * 100.0).round() / 100.0,
                            1 => (v / 4.0).round(),
                            2 => v * 1e-7,
                            3 => (next() * 3.0).floor(),
                            _ => v,
                        }
                    })
                    .collect()
            };
            let (x, y) = (draw(n, shift), draw(m, 0.0));
            let want = plain(&x, &y, 0.98);
            let got = mann_whitney_kayenta(&x, &y, 0.98).map(|r| (r.lower, r.upper, r.estimate));
            match (want, got) {
                (Ok(w), Ok(g)) => assert!(
                    w.0.to_bits() == g.0.to_bits()
                        && w.1.to_bits() == g.1.to_bits()
                        && w.2.to_bits() == g.2.to_bits(),
                    "case {case}: {w:?} vs {g:?}"
                ),
                (w, g) => assert_eq!(w.is_err(), g.is_err(), "case {case}"),
            }
        }
    }
}
