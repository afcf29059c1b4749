//! The count-metric test: Lindon & Malek's (2022) e-process for two time-inhomogeneous
//! Poisson counting processes, savvi's `InhomogeneousPoissonProcess`.
//!
//! # Model
//! Baseline and canary events arrive as Poisson processes with intensities
//! `λ_b(t) = (1−ρ)·λ(t)·e^{δ_b}` and `λ_c(t) = ρ·λ(t)·e^{δ_c}`, where `λ(t)` is any common,
//! unknown, time-varying load and ρ the canary's traffic share. Conditionally on an event
//! happening, it is the canary's with probability
//! `θ = ρe^{δ_c} / (ρe^{δ_c} + (1−ρ)e^{δ_b})`, independently of everything before: the
//! sequence of event owners is Bernoulli(θ), whatever `λ(t)` does. H0 "the canary's rate is
//! the baseline's" (rate ratio `e^{δ_c−δ_b} = 1`) is θ = ρ, and only the running counts are
//! needed: `K` canary events out of `N`.
//!
//! # Formula
//! `E_t` is the [`BetaMixture`] Bayes factor with savvi's prior Beta(kρ, k(1−ρ)) (the
//! Dirichlet(k·θ0) of the multinomial test with two categories; `k` = `concentration`,
//! default 100). For a direction the prior is truncated to that side of ρ, which makes `E_t`
//! an e-process for the composite null "the canary's rate is not higher" (or lower).
//!
//! The confidence sequence for θ is savvi's (Lindon & Malek 2022, §3):
//! `{θ : K ln θ + (N−K) ln(1−θ) ≥ ln B(a+K, b+N−K) − ln B(a, b) + ln α}` (the two-sided
//! prior), intersected over all looks so far, mapped to the rate ratio
//! `RR = θ(1−ρ) / ((1−θ)ρ)` (savvi's contrast `δ_c − δ_b = ln RR`).
//!
//! # References
//! 1. Lindon, M. & Malek, A. (2022). Anytime-valid inference for multinomial count data.
//!    *NeurIPS 2022*.
//! 2. Lindon, M. et al. (2024). Sequential A/B testing keeps the world streaming Netflix,
//!    part 2: counting processes. Netflix Technology Blog.
//! 3. savvi 0.3.1, `savvi/multinomial.py`: `Multinomial`, `InhomogeneousPoissonProcess`.

use serde::{Deserialize, Serialize};

use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::mixture::{BetaMixture, Side};
use super::Tail;

/// The count test state: running event counts, the running confidence sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTest {
    /// ρ: the share of events expected in the canary under H0.
    pub traffic_share: f64,
    /// `k`: the prior concentration.
    pub concentration: f64,
    /// Events seen in the baseline (control) and the canary (experiment).
    pub events_control: f64,
    pub events_experiment: f64,
    /// The running intersection of the confidence sequence for θ, at level `cs_alpha`.
    pub theta_lower: f64,
    pub theta_upper: f64,
    pub cs_alpha: f64,
    two: BetaMixture,
    tails: Vec<(Tail, BetaMixture)>,
    /// `coalmine-seq-v2`: the per-look overdispersion estimate that scales the counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<Dispersion>,
}

/// The overdispersion of the per-look counts around the conditional binomial, as the
/// cumulative statistic sees it: `K − p̂N = Σ_t (e_t − p̂ n_t)` over looks `t` (`e_t` canary
/// events, `n_t` both arms', `p̂ = K/N`), whose variance is `Σ (e_t − p̂ n_t)²` when events
/// come in bursts and `p̂(1 − p̂)·N` when they are Poisson. Their ratio, with the degrees of
/// freedom correction `L/(L − 1)` over the `L` looks with events, is
/// `φ̂ = L/(L − 1) · Σ (e_t − p̂ n_t)² / (p̂(1 − p̂)·N)`: the cluster-robust (HC1) over the
/// model-based variance of the binomial fit, what R's `sandwich::vcovHC(fit, "HC1") /
/// vcov(fit)` gives for `glm(cbind(e, n − e) ~ 1, binomial)`. Bursts (one incident logging
/// many errors) give φ̂ ≫ 1; Poisson counts φ̂ ≈ 1.
///
/// The test divides both counts by the one-sided [`DISPERSION_LEVEL`] upper confidence bound
/// `φ̂·d/χ²_{1−level}(d)` with `d` the looks' effective number `(Σn_t)²/Σn_t² − 1` (big
/// looks dominate the estimate), capped at `Σn_t²/N`, the dispersion if every look's events
/// were one burst, and at least 1: the quasi-Poisson correction, made safe for the first
/// looks, where a few looks cannot tell a burst from a regression. With fewer than
/// [`DISPERSION_MIN_LOOKS`] looks with events the counts carry no evidence yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dispersion {
    /// Looks with at least one event.
    pub looks: u64,
    /// `Σ e_t`, `Σ n_t`, `Σ e_t²`, `Σ e_t n_t`, `Σ n_t²` over those looks.
    pub sum_e: f64,
    pub sum_n: f64,
    pub sum_e2: f64,
    pub sum_en: f64,
    pub sum_n2: f64,
    /// The factor at the last look with events (computed once per such look; ∞ before
    /// [`DISPERSION_MIN_LOOKS`], written as `"Infinity"` so a saved state reads back).
    #[serde(default, with = "crate::judge::json::kayenta_f64")]
    pub factor: f64,
}

/// The confidence of φ̂'s upper bound.
pub const DISPERSION_LEVEL: f64 = 0.9;
/// Looks with events before the counts are scaled and judged.
pub const DISPERSION_MIN_LOOKS: u64 = 3;

impl Dispersion {
    pub fn observe(&mut self, control: f64, experiment: f64) {
        let n = control + experiment;
        if n > 0.0 {
            self.looks += 1;
            self.sum_e += experiment;
            self.sum_n += n;
            self.sum_e2 += experiment * experiment;
            self.sum_en += experiment * n;
            self.sum_n2 += n * n;
            self.factor = self.compute_factor();
        }
    }

    /// φ̂ (NaN below two looks with events or when one arm has every event).
    pub fn estimate(&self) -> f64 {
        let p = self.sum_e / self.sum_n;
        if self.looks < 2 || !(p > 0.0 && p < 1.0) {
            return f64::NAN;
        }
        let ss = (self.sum_e2 - 2.0 * p * self.sum_en + p * p * self.sum_n2).max(0.0);
        let l = self.looks as f64;
        l / (l - 1.0) * ss / (p * (1.0 - p) * self.sum_n)
    }

    /// `Σn_t²/N`: the dispersion if every look's events were one burst.
    pub fn cap(&self) -> f64 {
        (self.sum_n2 / self.sum_n).max(1.0)
    }

    fn compute_factor(&self) -> f64 {
        if self.looks < DISPERSION_MIN_LOOKS {
            return f64::INFINITY;
        }
        let phi = self.estimate();
        if phi.is_nan() {
            return self.cap(); // one arm has every event: assume the worst burstiness
        }
        // whole degrees of freedom, rounded down (a smaller df gives a larger bound)
        let d = (self.sum_n * self.sum_n / self.sum_n2 - 1.0)
            .max(1.0)
            .floor();
        let upper = phi * d / chi2_lower_quantile(d as usize);
        if upper.is_finite() {
            upper.min(self.cap()).max(1.0)
        } else {
            self.cap()
        }
    }

    /// The factor the counts are divided by (≥ 1; infinite before [`DISPERSION_MIN_LOOKS`]).
    pub fn phi(&self) -> f64 {
        if self.looks < DISPERSION_MIN_LOOKS {
            f64::INFINITY
        } else {
            self.factor
        }
    }
}

/// `χ²_{1−level}(df)`, the lower quantile behind φ̂'s upper bound: statrs' inverse CDF,
/// computed once per df up to [`CHI2_TABLE`] and kept (every look of every count metric
/// needs one; the inverse CDF is an iterative solve), Wilson–Hilferty's cube-root
/// approximation beyond (relative error below 1e-4 there).
pub(super) fn chi2_lower_quantile(df: usize) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=CHI2_TABLE)
            .map(|k| {
                ChiSquared::new(k.max(1) as f64)
                    .map_or(f64::NAN, |c| c.inverse_cdf(1.0 - DISPERSION_LEVEL))
            })
            .collect()
    });
    if df <= CHI2_TABLE {
        return table[df.max(1)];
    }
    let k = df as f64;
    let z = -1.281_551_565_544_600_5; // Φ⁻¹(0.1)
    let h = 2.0 / (9.0 * k);
    k * (1.0 - h + z * h.sqrt()).powi(3)
}

/// Degrees of freedom with a tabulated χ² quantile.
const CHI2_TABLE: usize = 2000;

impl CountTest {
    pub fn new(traffic_share: f64, concentration: f64, tails: &[Tail], cs_alpha: f64) -> Self {
        let side = |t: Tail| match t {
            Tail::Increase => Side::Greater,
            Tail::Decrease => Side::Less,
        };
        CountTest {
            traffic_share,
            concentration,
            events_control: 0.0,
            events_experiment: 0.0,
            theta_lower: 0.0,
            theta_upper: 1.0,
            cs_alpha,
            two: BetaMixture::savvi(traffic_share, concentration, Side::Two),
            tails: tails
                .iter()
                .map(|&t| (t, BetaMixture::savvi(traffic_share, concentration, side(t))))
                .collect(),
            dispersion: None,
        }
    }

    /// The same test on dispersion-scaled counts (`coalmine-seq-v2`).
    pub fn with_dispersion(mut self) -> Self {
        self.dispersion = Some(Dispersion::default());
        self
    }

    /// φ̂ (1 without the dispersion correction).
    pub fn phi(&self) -> f64 {
        self.dispersion.map_or(1.0, |d| d.phi())
    }

    /// `(K, N)`, divided by φ̂ under the dispersion correction (`(0, 0)` while it has too
    /// few looks with events).
    pub fn kn(&self) -> (f64, f64) {
        let phi = self.phi();
        if phi.is_infinite() {
            return (0.0, 0.0);
        }
        (
            self.events_experiment / phi,
            (self.events_control + self.events_experiment) / phi,
        )
    }

    /// Add one look's events (already validated as non-negative integers).
    pub fn add(&mut self, control: f64, experiment: f64) {
        self.events_control += control;
        self.events_experiment += experiment;
        if let Some(d) = &mut self.dispersion {
            d.observe(control, experiment);
        }
    }

    /// savvi's two-sided `ln odds` (the Dirichlet–multinomial Bayes factor).
    pub fn ln_e_two_sided(&self) -> f64 {
        let (k, n) = self.kn();
        self.two.ln_e(k, n)
    }

    /// Per-tail upper bounds of `ln E_t` without incomplete beta functions.
    pub fn ln_e_upper_by_tail(&self) -> Vec<(Tail, f64)> {
        let (k, n) = self.kn();
        self.tails
            .iter()
            .map(|(t, m)| (*t, m.ln_e_upper(k, n)))
            .collect()
    }

    /// Per-tail exact `ln E_t`.
    pub fn ln_e_by_tail(&self) -> Vec<(Tail, f64)> {
        let (k, n) = self.kn();
        self.tails.iter().map(|(t, m)| (*t, m.ln_e(k, n))).collect()
    }

    /// The confidence set for θ at this look alone.
    pub fn theta_cs_now(&self, alpha: f64) -> (f64, f64) {
        let (k, n) = self.kn();
        let c = self.two.ln_e(k, n) + self.two.ln_lik0(k, n) + alpha.ln();
        likelihood_set(k, n, c)
    }

    /// Intersect the running confidence sequence with this look's set.
    /// Under the dispersion correction the set is this look's (φ̂ moves, and an
    /// intersection would keep bounds from a smaller φ̂).
    pub fn tighten_cs(&mut self) {
        let (lo, hi) = self.theta_cs_now(self.cs_alpha);
        if self.dispersion.is_some() {
            (self.theta_lower, self.theta_upper) = (lo, hi);
            return;
        }
        self.theta_lower = self.theta_lower.max(lo);
        self.theta_upper = self.theta_upper.min(hi);
        if self.theta_lower > self.theta_upper {
            // Only reachable through rounding at a single point: keep the latest set.
            self.theta_lower = lo;
            self.theta_upper = hi;
        }
    }

    /// θ → rate ratio `θ(1−ρ) / ((1−θ)ρ)`.
    pub fn rate_ratio(&self, theta: f64) -> f64 {
        let rho = self.traffic_share;
        if theta >= 1.0 {
            f64::INFINITY
        } else {
            theta * (1.0 - rho) / ((1.0 - theta) * rho)
        }
    }

    /// The estimate `(K/ρ) / ((N−K)/(1−ρ))` (NaN before any event).
    pub fn rate_ratio_estimate(&self) -> f64 {
        let (k, n) = self.kn();
        if n == 0.0 {
            f64::NAN
        } else {
            self.rate_ratio(k / n)
        }
    }
}

/// `{θ ∈ [0, 1] : K ln θ + (N−K) ln(1−θ) ≥ c}`: an interval around `K/N` (the log-likelihood
/// is concave). Roots by Newton's method kept inside a bisection bracket.
pub fn likelihood_set(k: f64, n: f64, c: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let f = |t: f64| xlogy(k, t) + xlogy(n - k, 1.0 - t) - c;
    let df = |t: f64| k / t - (n - k) / (1.0 - t);
    let mle = k / n;
    if f(mle) < 0.0 {
        return (mle, mle);
    }
    let lower = if k <= 0.0 || f(0.0) >= 0.0 {
        0.0
    } else {
        root(&f, &df, 0.0, mle)
    };
    let upper = if k >= n || f(1.0) >= 0.0 {
        1.0
    } else {
        root(&f, &df, mle, 1.0)
    };
    (lower, upper)
}

/// `x·ln y` with `0·ln 0 = 0`.
fn xlogy(x: f64, y: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x * y.ln()
    }
}

/// The root of a monotone `f` in `(lo, hi)` where `f(lo)` and `f(hi)` differ in sign.
fn root(f: &impl Fn(f64) -> f64, df: &impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let increasing = f(hi) > f(lo);
    let mut x = 0.5 * (lo + hi);
    for _ in 0..200 {
        let fx = f(x);
        if fx == 0.0 {
            return x;
        }
        if (fx < 0.0) == increasing {
            lo = x;
        } else {
            hi = x;
        }
        let mut next = x - fx / df(x);
        if !(next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        if (next - x).abs() <= 1e-15 * x.abs().max(1e-300) || hi - lo <= 1e-15 * hi {
            return next;
        }
        x = next;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chi_square_quantile_table_and_its_approximation_agree_with_statrs() {
        for df in [1usize, 2, 7, 30, 500, 2000, 2001, 5000, 100_000] {
            let exact = ChiSquared::new(df as f64)
                .unwrap()
                .inverse_cdf(1.0 - DISPERSION_LEVEL);
            let ours = chi2_lower_quantile(df);
            assert!(
                (ours / exact - 1.0).abs() < 1e-4,
                "df {df}: {ours} vs {exact}"
            );
        }
    }

    #[test]
    fn likelihood_set_brackets_the_mle_and_solves_the_equation() {
        let (k, n, c) = (30.0, 100.0, -70.0);
        let (lo, hi) = likelihood_set(k, n, c);
        let f = |t: f64| k * f64::ln(t) + (n - k) * f64::ln(1.0 - t) - c;
        assert!(lo < 0.3 && 0.3 < hi);
        assert!(
            f(lo).abs() < 1e-9 && f(hi).abs() < 1e-9,
            "{} {}",
            f(lo),
            f(hi)
        );
        assert_eq!(likelihood_set(0.0, 10.0, -3.0).0, 0.0);
        assert_eq!(likelihood_set(10.0, 10.0, -3.0).1, 1.0);
    }

    #[test]
    fn the_cs_excludes_the_null_exactly_when_the_two_sided_e_value_exceeds_one_over_alpha() {
        // {θ: L(θ) ≥ α·m} contains ρ ⇔ m/L(ρ) ≤ 1/α.
        let alpha = 0.05;
        for &(k, n) in &[
            (40.0, 100.0),
            (60.0, 100.0),
            (62.0, 100.0),
            (70.0, 100.0),
            (510.0, 1000.0),
        ] {
            let mut t = CountTest::new(0.5, 100.0, &[Tail::Increase], alpha);
            t.add(n - k, k);
            let (lo, hi) = t.theta_cs_now(alpha);
            let excluded = !(lo <= 0.5 && 0.5 <= hi);
            assert_eq!(
                excluded,
                t.ln_e_two_sided() > (1.0 / alpha).ln(),
                "k={k} n={n}"
            );
        }
    }
}
