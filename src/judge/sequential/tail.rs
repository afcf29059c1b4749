//! Histogram metrics, sequentially: an e-process on the canary's slow requests, interval by
//! interval (the anytime-valid counterpart of `coalmine-v2`'s stratified test,
//! [`crate::judge::histogram`]).
//!
//! # Test
//! Once the pooled requests of both arms number `10/(1 − q)`, the scored bounds are fixed
//! as `coalmine-v2` chooses them ([`crate::judge::histogram::tail_bounds`]: the upper tail
//! around the quantile of interest `q`); a request scores the number of them it exceeds.
//! Every later interval both arms measured is a look: the canary's total score less its
//! expectation `u_t`, with variance `v_t`, when the interval's requests were split between
//! the arms at random (whatever the load did to latency in that interval). The e-process is
//! the mixture over a grid of effects λ on the tested side (half-normal weights, scale 0.5)
//! of `Π_t exp((λ·u_t − λ²·v_t/2) / φ_t)`: the Gaussian likelihood ratio of each interval's
//! score, which the hundreds of requests behind it make near exact (as the paired test's
//! t-mixture, this is an asymptotic e-process).
//!
//! Slow requests come in bursts (a GC pause) more than a random split allows:
//! * each look is tempered by `φ_t`, the one-sided 90 % upper bound of the dispersion of the
//!   (capped) looks before it around their median effect (at least 1; no evidence before 3
//!   looks): `exp((λu − λ²v/2)/φ)` is the Gaussian likelihood ratio at variance `φ·v` for
//!   the effect `λ/φ`, an e-variable when `φ` is at least the looks' true dispersion — why
//!   the upper bound, and why only looks before this one;
//! * `u_t` is capped on both sides at `3·√(φ_t·min(v_t, v_ref))`, `v_ref` the median look's
//!   variance, so one interval's burst adds a bounded amount of evidence; under a symmetric
//!   null `E[cosh(λ·capped u)] ≤ E[cosh(λ·u)]`, so capping keeps each factor an e-variable.
//!
//! The Gaussian factor is exact only in the limit: hypergeometric scores are close to
//! symmetric when the arms are of similar size; with a small canary share and few slow
//! requests per interval they are skewed, and each factor's expectation can exceed 1 by a
//! few percent at large λ (where the prior puts little weight). The validation
//! (`cargo bench --bench histogram`) uses equal arms.
//!
//! # References
//! 1. Hoeffding, W. (1963). Probability inequalities for sums of bounded random variables.
//!    *J. Amer. Statist. Assoc.* 58, 13–30.
//! 2. Ramdas, A., Grünwald, P., Vovk, V. & Shafer, G. (2023). Game-theoretic statistics and
//!    safe anytime-valid inference. *Statist. Sci.* 38, 576–601.
//! 3. Lindon, M., Sanden, C. & Shirikian, V. (2022). Rapid regression detection in software
//!    deployments through sequential testing. *KDD 2022*.

use serde::{Deserialize, Serialize};

use super::count::{chi2_lower_quantile, DISPERSION_MIN_LOOKS};
use super::Tail;
use crate::judge::histogram::{
    cap, effect, median, robust_x2, score_stratum, table, tail_bounds, CAP,
};
use crate::judge::StatsError;

/// Points of the λ grid per tail, from [`LAMBDA_MIN`] to [`LAMBDA_MAX`] geometrically.
const GRID: usize = 48;
const LAMBDA_MIN: f64 = 0.005;
const LAMBDA_MAX: f64 = 3.0;
/// The half-normal prior's scale on λ.
const PRIOR_SCALE: f64 = 0.5;
/// Pooled requests before the bounds are fixed, in units of `1/(1 − q)`.
const REQUESTS_FOR_BOUND: f64 = 10.0;

/// The state of a histogram metric's sequential test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistogramTest {
    pub tails: Vec<Tail>,
    /// The quantile of interest (from the first look's buckets; NaN before).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub quantile: f64,
    /// The bucket bounds (from the first look; later looks must have the same).
    #[serde(with = "crate::judge::json::kayenta_f64_vec")]
    pub bounds: Vec<f64>,
    /// The bound nearest the quantile (slow requests are above it) and the scored ones,
    /// once chosen.
    pub bound: Option<usize>,
    pub scored: Vec<usize>,
    /// Each arm's cumulative counts over every interval so far, `[baseline, canary]`.
    pub arms: [Vec<f64>; 2],
    /// Slow and all requests, `[baseline, canary]`, over the looks since the bound was
    /// chosen.
    pub slow: [f64; 2],
    pub requests: [f64; 2],
    /// All requests of the intervals the slow ones were counted in (the slow shares).
    #[serde(default)]
    pub counted: [f64; 2],
    /// The informative looks' `(u, v)`, `u` capped as [`cap`] caps it (for the dispersion).
    pub looks: Vec<(f64, f64)>,
    /// Per tail, the tempered `ln Π L_t(λ_i)` on the grid.
    pub ln_lr: Vec<Vec<f64>>,
    /// The dispersion bound the last look was tempered with (∞ before 3 looks).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub phi: f64,
}

/// The λ grid and the log prior weights (they sum to 1).
fn grid() -> (Vec<f64>, Vec<f64>) {
    let ratio = (LAMBDA_MAX / LAMBDA_MIN).powf(1.0 / (GRID - 1) as f64);
    let lambda: Vec<f64> = (0..GRID)
        .map(|i| LAMBDA_MIN * ratio.powi(i as i32))
        .collect();
    // half-normal density times the grid spacing around each point
    let w: Vec<f64> = lambda
        .iter()
        .map(|l| (-0.5 * (l / PRIOR_SCALE).powi(2)).exp() * l * (ratio - 1.0 / ratio) / 2.0)
        .collect();
    let total: f64 = w.iter().sum();
    (lambda, w.iter().map(|x| (x / total).ln()).collect())
}

impl HistogramTest {
    pub fn new(tails: &[Tail]) -> Self {
        HistogramTest {
            tails: tails.to_vec(),
            quantile: f64::NAN,
            bounds: Vec::new(),
            bound: None,
            scored: Vec::new(),
            arms: [Vec::new(), Vec::new()],
            slow: [0.0; 2],
            requests: [0.0; 2],
            counted: [0.0; 2],
            looks: Vec::new(),
            ln_lr: vec![vec![0.0; GRID]; tails.len()],
            phi: f64::INFINITY,
        }
    }

    /// Add the intervals of one look, each with both arms' cumulative counts per bound.
    pub fn add(
        &mut self,
        bounds: &[f64],
        quantile: f64,
        strata: &[[Vec<f64>; 2]],
    ) -> Result<(), StatsError> {
        if strata.is_empty() {
            return Ok(()); // a look without intervals (a tick without data)
        }
        if self.bounds.is_empty() {
            self.bounds = bounds.to_vec();
            self.quantile = quantile;
            self.arms = [vec![0.0; bounds.len()], vec![0.0; bounds.len()]];
        } else if self.bounds != bounds {
            return Err(StatsError::InvalidArgument(format!(
                "the histogram's bucket bounds changed during the run (from {:?} to {:?})",
                self.bounds, bounds
            )));
        }
        let (lambda, _) = grid();
        for s in strata {
            for (arm, counts) in s.iter().enumerate() {
                for (acc, c) in self.arms[arm].iter_mut().zip(counts) {
                    *acc += c;
                }
            }
            if self.bound.is_none() {
                let pooled: Vec<f64> = (0..self.bounds.len())
                    .map(|j| self.arms[0][j] + self.arms[1][j])
                    .collect();
                if pooled.last().copied().unwrap_or(0.0)
                    >= REQUESTS_FOR_BOUND / (1.0 - self.quantile)
                {
                    if let Some((j, scored)) = tail_bounds(&pooled, self.quantile) {
                        self.bound = Some(j);
                        self.scored = scored;
                    }
                }
            }
            let Some(j) = self.bound else { continue };
            let last = self.bounds.len() - 1;
            if let Some((a, b, c, d)) = table(&s[0], &s[1], j) {
                self.slow[0] += c;
                self.slow[1] += a;
                self.counted[0] += c + d;
                self.counted[1] += a + b;
            }
            self.requests[0] += s[0][last];
            self.requests[1] += s[1][last];
            let Some((score, mean, v)) = score_stratum(&s[0], &s[1], &self.scored) else {
                continue;
            };
            let u = score - mean;
            // temper with the dispersion of the looks before this one
            self.phi = self.dispersion_bound();
            let v_ref = median(
                &self
                    .looks
                    .iter()
                    .map(|l| l.1)
                    .chain(std::iter::once(v))
                    .collect::<Vec<_>>(),
            );
            self.looks.push((cap(u, v, v_ref), v));
            if self.phi.is_finite() {
                // capped on both sides at CAP standard deviations of this look, or of a
                // typical one's (see `histogram::cap`), widened by the dispersion: under a
                // symmetric null, E[cosh(λ·capped u)] ≤ E[cosh(λ·u)], so each factor stays
                // an e-variable
                let c = CAP * (self.phi * v.min(v_ref)).sqrt();
                let uc = u.clamp(-c, c);
                for (tail, lr) in self.tails.iter().zip(self.ln_lr.iter_mut()) {
                    let sign = match tail {
                        Tail::Increase => 1.0,
                        Tail::Decrease => -1.0,
                    };
                    for (l, lam) in lr.iter_mut().zip(&lambda) {
                        let lam = sign * lam;
                        *l += (lam * uc - lam * lam * v / 2.0) / self.phi;
                    }
                }
            }
        }
        Ok(())
    }

    /// The dispersion estimate `X²/(L − 1)` of the informative looks so far (NaN below 2).
    pub fn dispersion(&self) -> f64 {
        let l = self.looks.len();
        if l < 2 {
            return f64::NAN;
        }
        robust_x2(&self.looks, self.v_ref()) / (l - 1) as f64
    }

    /// Its one-sided 90 % upper bound `X²/χ²_{0.1}(L − 1)`, at least 1; ∞ before 3 looks.
    fn dispersion_bound(&self) -> f64 {
        let l = self.looks.len();
        if (l as u64) < DISPERSION_MIN_LOOKS {
            return f64::INFINITY;
        }
        let upper = robust_x2(&self.looks, self.v_ref()) / chi2_lower_quantile(l - 1);
        if upper.is_finite() {
            upper.max(1.0)
        } else {
            f64::INFINITY
        }
    }

    /// A typical look's variance: the median.
    fn v_ref(&self) -> f64 {
        median(&self.looks.iter().map(|l| l.1).collect::<Vec<_>>())
    }

    /// `ln E_t` per tail: the mixture over the grid.
    pub fn ln_e_by_tail(&self) -> Vec<(Tail, f64)> {
        let (_, ln_w) = grid();
        self.tails
            .iter()
            .zip(&self.ln_lr)
            .map(|(t, lr)| {
                let terms: Vec<f64> = lr.iter().zip(&ln_w).map(|(l, w)| l + w).collect();
                (*t, ln_sum_exp(&terms))
            })
            .collect()
    }

    /// The most `ln E` the first tail could reach with `looks` more looks like the ones so
    /// far, each at the cap (every one as far on the tested side as a look can count).
    pub fn max_ln_e(&self, looks: f64) -> f64 {
        if self.bound.is_none() || self.looks.is_empty() {
            return f64::INFINITY; // nothing to project from yet
        }
        let phi = if self.phi.is_finite() { self.phi } else { 1.0 };
        let v = if self.looks.is_empty() {
            1.0
        } else {
            self.looks.iter().map(|l| l.1).sum::<f64>() / self.looks.len() as f64
        };
        let (lambda, ln_w) = grid();
        let terms: Vec<f64> = lambda
            .iter()
            .zip(&ln_w)
            .map(|(lam, w)| {
                let u = CAP * (phi * v).sqrt();
                w + looks * (lam * u - lam * lam * v / 2.0) / phi
            })
            .collect();
        ln_sum_exp(&terms)
    }

    /// `([baseline, canary] quantiles, effect, whether the effect is the quantile ratio)`.
    pub fn effect(&self) -> ([f64; 2], f64, bool) {
        if self.bounds.len() < 2 {
            return ([f64::NAN; 2], f64::NAN, false);
        }
        let tail_ratio = (self.slow[1] / self.counted[1]) / (self.slow[0] / self.counted[0]);
        effect(
            &self.bounds,
            [&self.arms[0], &self.arms[1]],
            self.quantile,
            tail_ratio,
        )
    }
}

fn ln_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stratum(a: f64, b: f64, c: f64, d: f64) -> [Vec<f64>; 2] {
        [vec![d, c + d], vec![b, a + b]]
    }

    #[test]
    fn the_prior_sums_to_one_and_no_data_is_no_evidence() {
        let (_, w) = grid();
        assert!((w.iter().map(|x| x.exp()).sum::<f64>() - 1.0).abs() < 1e-12);
        let t = HistogramTest::new(&[Tail::Increase]);
        assert!(t.ln_e_by_tail()[0].1.abs() < 1e-12);
    }

    #[test]
    fn a_slower_canary_builds_evidence_an_equal_one_does_not() {
        let mut slower = HistogramTest::new(&[Tail::Increase]);
        let mut equal = HistogramTest::new(&[Tail::Increase]);
        let mut faster = HistogramTest::new(&[Tail::Increase]);
        for i in 0..40 {
            let wobble = (i % 3) as f64;
            let s = [stratum(20.0 + wobble, 980.0, 10.0, 990.0)];
            slower.add(&[1.0, f64::INFINITY], 0.99, &s).unwrap();
            let s = [stratum(10.0 + wobble, 990.0, 11.0, 989.0)];
            equal.add(&[1.0, f64::INFINITY], 0.99, &s).unwrap();
            let s = [stratum(5.0, 995.0, 10.0 + wobble, 990.0)];
            faster.add(&[1.0, f64::INFINITY], 0.99, &s).unwrap();
        }
        assert!(slower.ln_e_by_tail()[0].1 > (1000f64).ln(), "{slower:?}");
        assert!(equal.ln_e_by_tail()[0].1 < 1.0);
        assert!(
            faster.ln_e_by_tail()[0].1 < 0.0,
            "one-sided: a faster canary is no evidence"
        );
        assert_eq!(slower.looks.len(), 40);
        assert!(slower.phi >= 1.0 && slower.phi < 2.0, "{}", slower.phi);
    }

    #[test]
    fn changed_bounds_are_an_error_and_a_look_without_intervals_is_none() {
        let mut t = HistogramTest::new(&[Tail::Increase]);
        let s = [stratum(10.0, 990.0, 10.0, 990.0)];
        t.add(&[1.0, f64::INFINITY], 0.99, &s).unwrap();
        t.add(&[], 0.99, &[]).unwrap(); // a tick without data
        let e = t.add(&[2.0, f64::INFINITY], 0.99, &s).unwrap_err();
        assert!(e.to_string().contains("bucket bounds changed"), "{e}");
    }
}
