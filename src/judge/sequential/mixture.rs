//! The Beta–Bernoulli mixture e-process both sequential tests are built on, and the special
//! functions it needs.
//!
//! # Formula
//! Observe `n` Bernoulli trials with `k` successes; under H0 each succeeds with probability
//! `p0`. Against a Beta(`a`, `b`) prior on the success probability θ (optionally truncated
//! to one side of `p0`), the Bayes factor
//!
//! ```text
//!            ∫ θ^k (1−θ)^(n−k) dπ(θ)       B(a+k, b+n−k) · T(a+k, b+n−k)
//! E(k, n) = ───────────────────────── = ───────────────────────────────────────
//!             p0^k (1−p0)^(n−k)            B(a, b) · T(a, b) · p0^k (1−p0)^(n−k)
//! ```
//!
//! is a nonnegative martingale with `E(0, 0) = 1` under H0 (a mixture of likelihood ratios),
//! so by Ville's inequality `P(∃n: E ≥ 1/α) ≤ α`: an e-process. `T` is the prior mass kept:
//! `T = 1` for [`Side::Two`], `T(a, b) = 1 − I_{p0}(a, b)` for [`Side::Greater`] (prior on
//! θ > p0), `T(a, b) = I_{p0}(a, b)` for [`Side::Less`] (θ < p0), with `I` the regularised
//! incomplete beta function. Each one-sided mixture is a mixture of likelihood ratios
//! `L(θ)/L(p0)` with θ on one side, each a supermartingale under every θ' on the other
//! side of `p0` (or equal), so the one-sided E is an e-process for the composite null
//! `θ ≤ p0` (Greater) or `θ ≥ p0` (Less).
//!
//! `k` may be fractional: the quantile test evaluates E at interpolated proportions
//! (ties, see `quantile.rs`); the formula is the same analytic continuation confseq uses.
//!
//! # References
//! 1. Lindon, M. & Malek, A. (2022). Anytime-valid inference for multinomial count data.
//!    *NeurIPS 2022* (the Dirichlet–multinomial Bayes factor; savvi `Multinomial`).
//! 2. Howard, S. R., Ramdas, A., McAuliffe, J. & Sekhon, J. (2021). Time-uniform,
//!    nonparametric, nonasymptotic confidence sequences. *Ann. Statist.* 49, 1055–1080
//!    (Propositions 6–7: the beta-binomial mixture; confseq `BetaBinomialMixture`).
//! 3. Press, W. H. et al. (2007). *Numerical Recipes*, 3rd ed., §6.4 (the continued fraction
//!    for the incomplete beta function, modified Lentz).

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

/// Which alternatives a mixture puts its prior on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// θ anywhere in (0, 1): tests θ = p0.
    Two,
    /// θ > p0: tests θ ≤ p0.
    Greater,
    /// θ < p0: tests θ ≥ p0.
    Less,
}

/// `ln B(a, b)`.
pub fn ln_beta(a: f64, b: f64) -> f64 {
    lgamma(a) + lgamma(b) - lgamma(a + b)
}

/// `ln Γ(x)`, x > 0: Stirling's series for x ≥ 15 (truncation error below 3·10⁻¹⁴, about
/// four times faster than the Lanczos sum), statrs' `ln_gamma` below. The e-processes
/// evaluate it on every look.
#[inline]
pub fn lgamma(x: f64) -> f64 {
    if x < 15.0 {
        return ln_gamma(x);
    }
    const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
    let r = 1.0 / x;
    let r2 = r * r;
    // 1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷)
    let series = r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0 - r2 / 1680.0)));
    (x - 0.5) * x.ln() - x + HALF_LN_2PI + series
}

/// `ln(1 − eˣ)` for `x ≤ 0`, accurate at both ends (Mächler 2012).
pub fn ln1mexp(x: f64) -> f64 {
    if x > -std::f64::consts::LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

/// Trigamma ψ′(x) for x > 0: recurrence up to x ≥ 12, then the asymptotic series.
pub fn trigamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 12.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    // 1/x + 1/(2x²) + 1/(6x³) − 1/(30x⁵) + 1/(42x⁷) − 1/(30x⁹) + 5/(66x¹¹)
    let series = 1.0 / x
        + z / 2.0
        + z / x
            * (1.0 / 6.0 - z * (1.0 / 30.0 - z * (1.0 / 42.0 - z * (1.0 / 30.0 - z * 5.0 / 66.0))));
    acc + series
}

/// `(ln I_x(a, b), ln(1 − I_x(a, b)))`, the regularised incomplete beta function and its
/// complement in log space, so that neither underflows. The smaller tail comes from the
/// continued fraction (Numerical Recipes §6.4), the other from [`ln1mexp`].
pub fn ln_beta_reg(a: f64, b: f64, x: f64) -> (f64, f64) {
    if x <= 0.0 {
        return (f64::NEG_INFINITY, 0.0);
    }
    if x >= 1.0 {
        return (0.0, f64::NEG_INFINITY);
    }
    let ln_front = a * x.ln() + b * (-x).ln_1p() - ln_beta(a, b);
    if x < (a + 1.0) / (a + b + 2.0) {
        let ln_i = ln_front + betacf(a, b, x).ln() - a.ln();
        (ln_i, ln1mexp(ln_i.min(0.0)))
    } else {
        let ln_c = ln_front + betacf(b, a, 1.0 - x).ln() - b.ln();
        (ln1mexp(ln_c.min(0.0)), ln_c)
    }
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn betacf(a: f64, b: f64, x: f64) -> f64 {
    const FPMIN: f64 = 1e-300;
    const EPS: f64 = 1e-16;
    let max_iter = 200 + (10.0 * a.max(b).sqrt()) as usize;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < FPMIN {
        d = FPMIN;
    }
    d = 1.0 / d;
    let mut h = d;
    // One Lentz step with the next coefficient: the factor it multiplies `h` by.
    let mut step = |aa: f64| -> f64 {
        d = 1.0 + aa * d;
        if d.abs() < FPMIN {
            d = FPMIN;
        }
        c = 1.0 + aa / c;
        if c.abs() < FPMIN {
            c = FPMIN;
        }
        d = 1.0 / d;
        d * c
    };
    for m in 1..=max_iter {
        let m = m as f64;
        let m2 = 2.0 * m;
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)));
        let del = step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)));
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// A Beta(`a`, `b`) mixture of Bernoulli likelihood ratios against the null `p0` (see the
/// module docs). Immutable; the sufficient statistics `(k, n)` live with the caller.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BetaMixture {
    pub a: f64,
    pub b: f64,
    pub p0: f64,
    pub side: Side,
    /// `ln B(a, b) + ln T(a, b)`.
    ln_norm: f64,
    /// `ln T(a, b)`: the two-sided bound adds `−ln T` (≥ 0).
    ln_t_prior: f64,
    ln_p0: f64,
    ln_q0: f64,
}

impl BetaMixture {
    pub fn new(a: f64, b: f64, p0: f64, side: Side) -> Self {
        assert!(
            a > 0.0 && b > 0.0,
            "Beta prior parameters must be positive, got ({a}, {b})"
        );
        assert!(
            p0 > 0.0 && p0 < 1.0,
            "null probability must be in (0, 1), got {p0}"
        );
        let ln_t_prior = ln_mass(a, b, p0, side);
        BetaMixture {
            a,
            b,
            p0,
            side,
            ln_norm: ln_beta(a, b) + ln_t_prior,
            ln_t_prior,
            ln_p0: p0.ln(),
            ln_q0: (-p0).ln_1p(),
        }
    }

    /// savvi's prior for a traffic share `rho`: Dirichlet(`k·θ0`) with θ0 = (1 − ρ, ρ),
    /// i.e. Beta(`k·ρ`, `k·(1 − ρ)`) on the canary's share.
    pub fn savvi(rho: f64, k: f64, side: Side) -> Self {
        BetaMixture::new(k * rho, k * (1.0 - rho), rho, side)
    }

    /// confseq's `BetaBinomialMixture(v_opt = t_opt·p(1−p), alpha_opt, g = p, h = 1 − p)`
    /// for the indicator `X ≤ x` of a `p`-quantile: Beta(`r/(1−p)`, `r/p`) with
    /// `r = max(ρ − p(1−p), 10⁻³·p(1−p))` and ρ from [`best_rho`] (one-sided: α doubled).
    pub fn confseq_quantile(p: f64, t_opt: f64, alpha_opt: f64, side: Side) -> Self {
        let gh = p * (1.0 - p);
        let rho = match side {
            Side::Two => best_rho(t_opt * gh, alpha_opt),
            Side::Greater | Side::Less => best_rho(t_opt * gh, 2.0 * alpha_opt),
        };
        let r = (rho - gh).max(1e-3 * gh);
        BetaMixture::new(r / (1.0 - p), r / p, p, side)
    }

    /// `ln E(k, n)`.
    pub fn ln_e(&self, k: f64, n: f64) -> f64 {
        let (a, b) = (self.a + k, self.b + n - k);
        ln_beta(a, b) + ln_mass(a, b, self.p0, self.side) - self.ln_norm - self.ln_lik0(k, n)
    }

    /// An upper bound of [`BetaMixture::ln_e`] that needs no incomplete beta function:
    /// the posterior mass `T(a+k, b+n−k) ≤ 1`. Equal to `ln_e` for [`Side::Two`].
    pub fn ln_e_upper(&self, k: f64, n: f64) -> f64 {
        ln_beta(self.a + k, self.b + n - k) - self.ln_norm - self.ln_lik0(k, n)
    }

    /// `ln[p0^k (1−p0)^(n−k)]`.
    pub fn ln_lik0(&self, k: f64, n: f64) -> f64 {
        k * self.ln_p0 + (n - k) * self.ln_q0
    }

    /// The `k ∈ [0, n]` minimising `ln E(·, n)` (a convex function of `k`): 0 for
    /// [`Side::Greater`] (increasing in `k`), `n` for [`Side::Less`], and the root of
    /// `ψ(a+k) − ψ(b+n−k) = ln(p0/(1−p0))` for [`Side::Two`] (Newton from the
    /// `ψ(x) ≈ ln(x − ½)` guess, kept inside a shrinking bracket).
    pub fn argmin_k(&self, n: f64) -> f64 {
        match self.side {
            Side::Greater => 0.0,
            Side::Less => n,
            Side::Two => {
                let target = self.ln_p0 - self.ln_q0;
                let f = |k: f64| digamma(self.a + k) - digamma(self.b + n - k) - target;
                let (mut lo, mut hi) = (0.0, n);
                if n == 0.0 || f(lo) >= 0.0 {
                    return 0.0;
                }
                if f(hi) <= 0.0 {
                    return n;
                }
                let mut k = (self.p0 * (self.a + self.b + n - 1.0) - self.a + 0.5).clamp(0.0, n);
                for _ in 0..100 {
                    let fk = f(k);
                    if fk > 0.0 {
                        hi = k;
                    } else {
                        lo = k;
                    }
                    let d = trigamma(self.a + k) + trigamma(self.b + n - k);
                    let mut next = k - fk / d;
                    if !(next > lo && next < hi) {
                        next = 0.5 * (lo + hi);
                    }
                    if (next - k).abs() <= 1e-13 * n.max(1.0) || hi - lo <= 1e-13 * n.max(1.0) {
                        return next;
                    }
                    k = next;
                }
                k
            }
        }
    }
}

/// `ln T(a, b)`: the Beta(a, b) mass on the mixture's side of `p0`.
fn ln_mass(a: f64, b: f64, p0: f64, side: Side) -> f64 {
    match side {
        Side::Two => 0.0,
        Side::Greater => ln_beta_reg(a, b, p0).1,
        Side::Less => ln_beta_reg(a, b, p0).0,
    }
}

/// The normal-mixture tuning of Howard et al. (2021, eq. (14)), confseq's
/// `TwoSidedNormalMixture::best_rho(v, α) = v / (2 ln(1/α) + ln(1 + 2 ln(1/α)))`: the
/// mixture variance whose boundary is tightest at intrinsic time `v`.
pub fn best_rho(v: f64, alpha: f64) -> f64 {
    let l = (1.0 / alpha).ln();
    v / (2.0 * l + (1.0 + 2.0 * l).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_beta_matches_statrs_and_complements() {
        for &(a, b, x) in &[
            (2.0, 3.0, 0.4),
            (50.0, 50.0, 0.5),
            (0.5, 7.5, 0.9),
            (300.0, 20.0, 0.93),
            (1.5, 1.5, 0.01),
        ] {
            let (li, lc) = ln_beta_reg(a, b, x);
            let want = statrs::function::beta::beta_reg(a, b, x);
            assert!(
                (li.exp() - want).abs() < 1e-13,
                "I_{x}({a},{b}) = {} vs {want}",
                li.exp()
            );
            assert!((li.exp() + lc.exp() - 1.0).abs() < 1e-13);
        }
        // Deep tail where statrs underflows to 0. Oracle: mpmath 1.3.0 (40 digits),
        // `log(betainc(5000, 5000, 0, 0.3, regularized=True))`, and the upper tail of
        // `betainc(300, 20, 0.93, 1)`.
        let (li, _) = ln_beta_reg(5000.0, 5000.0, 0.3);
        assert!((li - -876.375_302_919_382_4).abs() < 1e-10, "{li}");
        let (li, lc) = ln_beta_reg(300.0, 20.0, 0.93);
        assert!(
            (li - -1.295_361_734_671_378).abs() < 1e-12
                && (lc - -0.319_928_172_929_969_3).abs() < 1e-12
        );
    }

    #[test]
    fn stirling_lgamma_agrees_with_lanczos() {
        for &x in &[15.0, 15.5, 40.0, 333.3, 1e4, 1e7] {
            let (a, b) = (lgamma(x), ln_gamma(x));
            assert!(
                (a - b).abs() < 1e-13 * b.abs().max(1.0),
                "x={x}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn trigamma_is_the_derivative_of_digamma() {
        for &x in &[0.3f64, 1.0, 2.5, 7.0, 40.0, 1e4] {
            let h = 1e-5 * x.max(1.0);
            let numeric = (digamma(x + h) - digamma(x - h)) / (2.0 * h);
            assert!(
                (trigamma(x) - numeric).abs() < 1e-6 * trigamma(x),
                "x = {x}"
            );
        }
        // ψ′(1) = π²/6
        assert!((trigamma(1.0) - std::f64::consts::PI.powi(2) / 6.0).abs() < 1e-13);
    }

    #[test]
    fn two_sided_mixture_is_the_prior_weighted_average_of_the_one_sided_ones() {
        // E_two = π(θ>p0)·E_greater + π(θ<p0)·E_less, by total probability.
        let (a, b, p0) = (30.0, 70.0, 0.3);
        let two = BetaMixture::new(a, b, p0, Side::Two);
        let gt = BetaMixture::new(a, b, p0, Side::Greater);
        let lt = BetaMixture::new(a, b, p0, Side::Less);
        let w = gt.ln_t_prior.exp();
        for &(k, n) in &[
            (0.0, 0.0),
            (3.0, 10.0),
            (40.0, 100.0),
            (20.0, 100.0),
            (300.0, 1000.0),
        ] {
            let mix = w * gt.ln_e(k, n).exp() + (1.0 - w) * lt.ln_e(k, n).exp();
            assert!(
                (mix / two.ln_e(k, n).exp() - 1.0).abs() < 1e-12,
                "k={k} n={n}"
            );
            assert!(gt.ln_e(k, n) <= gt.ln_e_upper(k, n) + 1e-12);
        }
        assert_eq!(two.ln_e(0.0, 0.0), 0.0);
    }

    #[test]
    fn the_two_sided_minimiser_is_a_stationary_point() {
        let m = BetaMixture::confseq_quantile(0.9, 1000.0, 0.05, Side::Two);
        for &n in &[10.0, 333.0, 1e5] {
            let k = m.argmin_k(n);
            let h = 1e-4 * n;
            assert!(
                m.ln_e(k, n) <= m.ln_e(k + h, n) && m.ln_e(k, n) <= m.ln_e(k - h, n),
                "n={n} k={k}"
            );
        }
    }
}
