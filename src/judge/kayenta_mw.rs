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

use super::ranks::{rank_sums_with, tie_sum};
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
    let nx = xs.len() as f64;
    let ny = ys.len() as f64;
    let r = rank_sums_with(xs, d, ys, y_ties);
    // U is a multiple of ½ and exact, so this equals Kayenta's rank-sum expression bit for bit.
    let dz = r.u - nx * ny / 2.0;
    let correction = signum(dz) * 0.5;
    let sigma = ((nx * ny / 12.0)
        * ((nx + ny + 1.0) - r.pooled_ties / ((nx + ny) * (nx + ny - 1.0))))
        .sqrt();
    if sigma == 0.0 {
        return Err(StatsError::AllTied);
    }
    Ok((dz - correction) / sigma - zq)
}

fn signum(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
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
    let alpha = 1.0 - confidence;
    let mu_min = fold_min(x) - fold_max(y);
    let mu_max = fold_max(x) - fold_min(y);
    let zq = qnorm_commons(alpha / 2.0);
    let mut xs = x.to_vec();
    let mut ys = y.to_vec();
    xs.sort_unstable_by(f64::total_cmp);
    ys.sort_unstable_by(f64::total_cmp);
    let y_ties = tie_sum(&ys);
    let f = |d: f64, z: f64| wdiff_sorted(d, z, &xs, &ys, y_ties);
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
