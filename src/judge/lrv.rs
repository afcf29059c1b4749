//! Long-run variance of a series: the variance of its mean when its values are serially
//! dependent (autocorrelated per-minute aggregates), which the i.i.d. formula `s²/n` can
//! underestimate many times over.
//!
//! [`lrvar`] is a port of R's `sandwich::lrvar` (Zeileis 2004; sandwich 3.0-2) for one
//! series: Andrews' (1991) kernel estimator with Andrews & Monahan's (1992) AR(1)
//! prewhitening, the automatic bandwidth of `bwAndrews` (AR(1) approximation) and the
//! `n/(n−1)` adjustment. Hand-written because no crate provides it, and ported line by line so
//! the test vectors of `tests/it/judge_v2.rs` (generated with R) match to rounding.
//!
//! [`long_run`] is what the judges use: the same estimator with one small-sample correction.
//! With a few dozen values, the prewhitening coefficient (the lag-1 autocorrelation) is biased
//! towards zero by about `(1 + 3φ)/n` (Kendall 1954; Marriott & Pope 1954), and the recolouring
//! factor `1/(1 − φ)²` turns that bias into a long-run variance several times too small at
//! φ = 0.8 and n = 60: a test built on it would flag healthy canaries. The correction adds the
//! bias back before recolouring (capped below 1).

use serde::{Deserialize, Serialize};

/// The kernel weighting the autocovariances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// `1 − |x|` on `[−1, 1]`: only lags below the bandwidth count, cost `O(n · bandwidth)`.
    Bartlett,
    /// Andrews' optimal kernel (R's default); every lag counts, cost `O(n²)`.
    QuadraticSpectral,
}

/// Options of [`lrvar`] (R's arguments of the same names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrvarOptions {
    pub kernel: Kernel,
    /// VAR(1) prewhitening (`prewhite = TRUE`).
    pub prewhite: bool,
    /// The `n/(n − 1)` finite-sample adjustment (`adjust = TRUE`).
    pub adjust: bool,
}

impl Default for LrvarOptions {
    fn default() -> Self {
        LrvarOptions {
            kernel: Kernel::Bartlett,
            prewhite: true,
            adjust: true,
        }
    }
}

/// What [`estimate`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The estimated variance of the series' mean (R's `lrvar`).
    pub var_of_mean: f64,
    /// The prewhitening AR(1) coefficient as estimated (0 without prewhitening).
    pub ar1: f64,
    /// The coefficient used to recolour (`ar1` corrected for small-sample bias, or as is).
    pub ar1_used: f64,
    /// The kernel bandwidth (Andrews' automatic choice).
    pub bandwidth: f64,
}

/// R's `sandwich::lrvar(x, kernel = …, prewhite = …, adjust = …)`: the variance of the mean
/// of `x` (NaN for fewer than 3 values).
pub fn lrvar(x: &[f64], options: LrvarOptions) -> f64 {
    estimate(x, options, false).var_of_mean
}

/// [`lrvar`]'s estimate, optionally with the small-sample correction of the prewhitening
/// coefficient (see the module docs).
pub fn estimate(x: &[f64], options: LrvarOptions, correct_bias: bool) -> Estimate {
    let n = x.len();
    let nan = Estimate {
        var_of_mean: f64::NAN,
        ar1: f64::NAN,
        ar1_used: f64::NAN,
        bandwidth: f64::NAN,
    };
    if n < 3 {
        return nan;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    // estfun(lm(x ~ 1)): the residuals
    let u: Vec<f64> = x.iter().map(|v| v - mean).collect();
    if u.iter().all(|&v| v == 0.0) {
        return Estimate {
            var_of_mean: 0.0,
            ar1: 0.0,
            ar1_used: 0.0,
            bandwidth: 0.0,
        };
    }
    // ar(u, order.max = 1, demean = FALSE, aic = FALSE, method = "ols"): no intercept
    let (e, ar1) = if options.prewhite {
        let (num, den) = lag1_sums(&u);
        let a = num / den;
        let e: Vec<f64> = (1..n).map(|t| u[t] - a * u[t - 1]).collect();
        (e, a)
    } else {
        (u, 0.0)
    };
    let ar1_used = if options.prewhite && correct_bias {
        kendall_corrected(ar1, n as f64)
    } else {
        ar1
    };
    let bandwidth = andrews_bandwidth(&e, options.kernel);
    let m = e.len();
    let weights = kernel_weights(m, bandwidth, options.kernel);
    let mut utu = kernel_sum(&e, &weights);
    if options.adjust {
        utu *= n as f64 / (n as f64 - 1.0);
    }
    if options.prewhite {
        let d = 1.0 / (1.0 - ar1_used);
        utu *= d * d;
    }
    Estimate {
        var_of_mean: utu / (n as f64 * n as f64),
        ar1,
        ar1_used,
        bandwidth,
    }
}

/// `bwAndrews(…, approx = "AR(1)")` for one (already prewhitened) series: fit an AR(1) with
/// an intercept by least squares and plug its coefficient into Andrews' formula.
fn andrews_bandwidth(e: &[f64], kernel: Kernel) -> f64 {
    let m = e.len();
    if m < 3 {
        return 0.0;
    }
    // lm(e[t] ~ 1 + e[t-1])
    let k = (m - 1) as f64;
    let lag_mean = e[..m - 1].iter().sum::<f64>() / k;
    let lead_mean = e[1..].iter().sum::<f64>() / k;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for t in 1..m {
        let a = e[t - 1] - lag_mean;
        sxy += a * (e[t] - lead_mean);
        sxx += a * a;
    }
    let rho = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let n = m as f64;
    match kernel {
        Kernel::Bartlett => bartlett_bandwidth(rho, n),
        Kernel::QuadraticSpectral => {
            let alpha2 = 4.0 * rho * rho / (1.0 - rho).powi(4);
            1.3221 * (n * alpha2).powf(0.2)
        }
    }
}

/// Andrews' AR(1) bandwidth for the Bartlett kernel: `1.1447·(n·α₁)^⅓`.
fn bartlett_bandwidth(rho: f64, n: f64) -> f64 {
    let alpha1 = 4.0 * rho * rho / ((1.0 - rho).powi(2) * (1.0 + rho).powi(2));
    1.1447 * (n * alpha1).powf(1.0 / 3.0)
}

/// `(Σ u_t·u_{t−1}, Σ u_{t−1}²)` over `t ≥ 1`: the least-squares AR(1) fit without intercept.
pub(crate) fn lag1_sums(u: &[f64]) -> (f64, f64) {
    let (mut num, mut den) = (0.0, 0.0);
    for t in 1..u.len() {
        num += u[t] * u[t - 1];
        den += u[t - 1] * u[t - 1];
    }
    (num, den)
}

/// Kendall's bias of a lag-1 estimate from `n` values with an estimated mean, added back;
/// kept within ±0.97 so the recolouring stays finite.
pub(crate) fn kendall_corrected(ar1: f64, n: f64) -> f64 {
    (ar1 + (1.0 + 3.0 * ar1) / n).clamp(-0.97, 0.97)
}

/// `meatHAC`'s kernel sum for one series: `w₀·Σe² + 2·Σ_j w_j·Σ_t e_t·e_{t+j}` (lags beyond
/// the series count nothing).
fn kernel_sum(e: &[f64], weights: &[f64]) -> f64 {
    let mut sum = weights[0] * e.iter().map(|v| v * v).sum::<f64>();
    for (j, w) in weights
        .iter()
        .enumerate()
        .skip(1)
        .take_while(|(j, _)| *j < e.len())
    {
        let s: f64 = e[..e.len() - j]
            .iter()
            .zip(&e[j..])
            .map(|(a, b)| a * b)
            .sum();
        sum += 2.0 * w * s;
    }
    sum
}

/// `weightsAndrews`: the kernel at lags `0..m` over the bandwidth, cut after the last weight
/// above 1e-7.
fn kernel_weights(m: usize, bandwidth: f64, kernel: Kernel) -> Vec<f64> {
    let mut w: Vec<f64> = (0..m)
        .map(|j| {
            let x = if bandwidth > 0.0 {
                j as f64 / bandwidth
            } else if j == 0 {
                0.0
            } else {
                f64::INFINITY
            };
            match kernel {
                Kernel::Bartlett => {
                    if x.abs() > 1.0 {
                        0.0
                    } else {
                        1.0 - x.abs()
                    }
                }
                Kernel::QuadraticSpectral => quadratic_spectral(x),
            }
        })
        .collect();
    let last = w.iter().rposition(|v| v.abs() > 1e-7).unwrap_or(0);
    w.truncate(last + 1);
    w
}

/// `kweights(x, "Quadratic Spectral")`, with R's Gaussian approximation near zero.
fn quadratic_spectral(x: f64) -> f64 {
    fn qs(x: f64) -> f64 {
        let y = 6.0 * std::f64::consts::PI * x / 5.0;
        3.0 * (1.0 / y).powi(2) * (y.sin() / y - y.cos())
    }
    if !x.is_finite() {
        0.0
    } else if x.abs() < 0.001 {
        let cf = 1e6 * qs(0.001).ln();
        (cf * x * x).exp()
    } else {
        qs(x)
    }
}

/// A series' dependence, as a judge reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LongRun {
    /// Values in the series.
    pub n: usize,
    /// The long-run variance per value (`n · var_of_mean`).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub variance: f64,
    /// The lag-1 autocorrelation used (prewhitening coefficient after the bias correction).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub ar1: f64,
    /// The effective sample size: `n · s² / long-run variance`, within `[1, n]`.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub effective_n: f64,
}

/// The long-run variance common to several series of the same process (a metric's two
/// arms): each series centred on its own mean, one AR(1) prewhitening coefficient fitted to
/// all of them (pooled least squares), the Bartlett kernel with Andrews' bandwidth on the
/// pooled residual autocovariances, recoloured with the bias-corrected coefficient. Pooling
/// halves the variance of the estimated dependence, which with a few dozen values a side is
/// what decides how far a test can be trusted (the two-sample t-test's pooled variance,
/// carried over to dependent series). `effective_n` is that of all values together.
pub fn pooled_long_run(series: &[&[f64]]) -> LongRun {
    let series: Vec<&[f64]> = series.iter().copied().filter(|s| s.len() >= 3).collect();
    let total: usize = series.iter().map(|s| s.len()).sum();
    let nan = LongRun {
        n: total,
        variance: f64::NAN,
        ar1: f64::NAN,
        effective_n: f64::NAN,
    };
    if series.is_empty() {
        return nan;
    }
    let centred: Vec<Vec<f64>> = series
        .iter()
        .map(|s| {
            let m = s.iter().sum::<f64>() / s.len() as f64;
            s.iter().map(|v| v - m).collect()
        })
        .collect();
    let ss: f64 = centred.iter().flatten().map(|v| v * v).sum();
    if ss == 0.0 {
        return LongRun {
            n: total,
            variance: 0.0,
            ar1: 0.0,
            effective_n: total as f64,
        };
    }
    let (num, den) = centred
        .iter()
        .map(|u| lag1_sums(u))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let a = if den > 0.0 { num / den } else { 0.0 };
    let a_c = kendall_corrected(a, total as f64 / series.len() as f64);
    let residuals: Vec<Vec<f64>> = centred
        .iter()
        .map(|u| (1..u.len()).map(|t| u[t] - a * u[t - 1]).collect())
        .collect();
    // Andrews' AR(1) bandwidth from the pooled lag-1 correlation of the residuals
    let (rn, rd) = residuals
        .iter()
        .map(|e| lag1_sums(e))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let rho = if rd > 0.0 {
        (rn / rd).clamp(-0.99, 0.99)
    } else {
        0.0
    };
    let m: usize = residuals.iter().map(|e| e.len()).sum();
    let bandwidth = bartlett_bandwidth(rho, m as f64);
    let longest = residuals.iter().map(|e| e.len()).max().unwrap_or(0);
    let weights = kernel_weights(longest, bandwidth, Kernel::Bartlett);
    let utu: f64 = residuals.iter().map(|e| kernel_sum(e, &weights)).sum();
    // per value, with the degrees of freedom the means took
    let k = series.len() as f64;
    let residual_lrv = (utu / m as f64) * (m as f64 / (m as f64 - k).max(1.0));
    let variance = (residual_lrv / (1.0 - a_c).powi(2)).max(0.0);
    let s2 = ss / (total as f64 - k).max(1.0);
    let effective_n = if variance > 0.0 {
        (total as f64 * s2 / variance).clamp(1.0, total as f64)
    } else {
        total as f64
    };
    LongRun {
        n: total,
        variance,
        ar1: a_c,
        effective_n,
    }
}

/// The judges' long-run variance of `x`: prewhitened Bartlett with the small-sample
/// correction. Needs 3 values; fewer give NaN.
pub fn long_run(x: &[f64]) -> LongRun {
    let n = x.len();
    let est = estimate(x, LrvarOptions::default(), true);
    let variance = est.var_of_mean * n as f64;
    let s2 = super::stats::variance(x, true);
    let effective_n = if variance > 0.0 && s2.is_finite() {
        (n as f64 * s2 / variance).clamp(1.0, n as f64)
    } else {
        n as f64
    };
    LongRun {
        n,
        variance,
        ar1: est.ar1_used,
        effective_n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iid_long_run_variance_is_close_to_the_sample_variance() {
        let x: Vec<f64> = (0..500)
            .map(|i| ((i * 7919 % 1000) as f64 / 1000.0) - 0.5)
            .collect();
        let plain = lrvar(
            &x,
            LrvarOptions {
                kernel: Kernel::Bartlett,
                prewhite: false,
                adjust: false,
            },
        );
        assert!(plain > 0.0);
        assert_eq!(lrvar(&[1.0, 1.0, 1.0, 1.0], LrvarOptions::default()), 0.0);
        assert!(lrvar(&[1.0, 2.0], LrvarOptions::default()).is_nan());
    }
}
