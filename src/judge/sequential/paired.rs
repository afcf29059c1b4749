//! `coalmine-seq-v2`'s continuous test: canary and baseline compared **look by look** (a run's
//! tick is one look, and both arms' new values cover the same wall-clock interval), so a
//! load both arms share cancels; the per-look differences are batched to take their serial
//! dependence out, and the batch means are tested with a scale-invariant Gaussian mixture
//! (the sequential t-test), so no variance has to be known or plugged in.
//!
//! # Steps
//! 1. **Pairing.** Each look gives `d = ln(mean canary) − ln(mean baseline)` of that look's
//!    new values (`difference` of the means instead when a mean is not positive at the first
//!    paired look). Values of an arm whose look brought nothing from the other arm wait for
//!    the next look that does.
//! 2. **Batch size from warm-up only.** The first `warmup` paired looks (default 30) give the
//!    lag-1 autocorrelation `r` of `d` (Kendall's bias correction), raised to its one-sided
//!    95 % upper bound `r + 1.645·√((1 − r²)/warmup)`; the batch size is the variance
//!    inflation `b = ⌈(1 + r)/(1 − r)⌉` (at most `warmup`), the number of looks an AR(1)
//!    series needs for one effectively independent value. It is fixed from then on, so the
//!    data that are tested never choose their own batching. The warm-up looks are batched
//!    too (in order).
//! 3. **Test.** With `n` batch means, `S` their sum and `t` the one-sample t statistic of
//!    `H0: mean d = 0`, the e-process is the Bayes factor of the t-test with a `N(0, g)`
//!    prior on the standardised effect `μ/σ` and the right-Haar prior on σ (Rouder et al.
//!    2009 with a fixed `g`; Pérez-Ortiz et al. 2024 show this is an e-process: a test
//!    martingale for the maximal invariant under scale):
//!    `E_n = (1 + n·g)^{-1/2} · ((1 + t²/ν) / (1 + t²/(ν(1 + n·g))))^{(ν+1)/2}`, `ν = n − 1`.
//!    `g = (2 ln(1/α) + ln(2 ln(1/α) + 1)) / n*` tunes it for `n*` batches (the run's looks
//!    over `b`; Howard et al. 2021, eq. (14)). It is two-sided; the crossing is labelled by
//!    the sign of `S`, and `direction: increase` counts only crossings with `S > 0`.
//! 4. **Confidence sequence.** `E_n` is monotone in `|t|`, so `{μ : E_n(μ) < 1/α}` is
//!    `mean ± c_n · sd/√n` with `c_n² = ν(A − 1)/(1 − A/k)`, `k = 1 + n·g`,
//!    `A = (√k/α)^{2/(ν+1)}` (unbounded while `A ≥ k`).
//!
//! # Guarantee
//! Exact (time-uniform, `P(∃n: E_n ≥ 1/α) ≤ α`) when the batch means are independent and
//! Gaussian with a common variance; asymptotic otherwise: batch means of `b` looks are close
//! to Gaussian (CLT) and close to independent when `b` is at least the series' variance
//! inflation, which the warm-up's upper bound is chosen to reach. `benches/validate_sequential.rs`
//! measures the false-alarm rate on AR(1) series up to φ = 0.8.
//!
//! # References
//! 1. Rouder, J. N., Speckman, P. L., Sun, D., Morey, R. D. & Iverson, G. (2009). Bayesian
//!    t tests for accepting and rejecting the null hypothesis. *Psychon. Bull. Rev.* 16.
//! 2. Pérez-Ortiz, M. F., Lardy, T., de Heide, R. & Grünwald, P. D. (2024). E-statistics,
//!    group invariance and anytime-valid testing. *Ann. Statist.* 52(4).
//! 3. Howard, S. R., Ramdas, A., McAuliffe, J. & Sekhon, J. (2021). Time-uniform,
//!    nonparametric, nonasymptotic confidence sequences. *Ann. Statist.* 49.
//! 4. Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H. & Ramdas, A. (2024).
//!    Time-uniform central limit theory and asymptotic confidence sequences. *Ann. Statist.*
//! 5. Kendall, M. G. (1954). Note on bias in the estimation of autocorrelation. *Biometrika* 41.

use serde::{Deserialize, Serialize};

use super::quantile::QuantileTest;
use super::Tail;
use crate::judge::lrv::{kendall_corrected, lag1_sums};

/// The weight of the paired location e-process in the metric's; the rest goes to the tail
/// test. `0.8·E_paired + 0.2·E_tail` is an e-process (a convex combination of two), so the
/// level holds; a pure shift needs `E_paired ≥ 1/(0.8α)` instead of `1/α` (ln 125 vs ln 100
/// at α = 0.01), and a spread-only change, invisible to the paired mean, is still caught.
pub const LOCATION_WEIGHT: f64 = 0.8;

/// How each look's two means become one paired value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PairedScale {
    /// `ln(canary mean) − ln(baseline mean)`.
    LogRatio,
    /// `canary mean − baseline mean`.
    Difference,
}

impl PairedScale {
    /// One look's paired value from its two means (`None`: not comparable on this scale).
    fn paired(self, control_mean: f64, experiment_mean: f64) -> Option<f64> {
        let d = match self {
            PairedScale::LogRatio if control_mean > 0.0 && experiment_mean > 0.0 => {
                experiment_mean.ln() - control_mean.ln()
            }
            PairedScale::LogRatio => return None,
            PairedScale::Difference => experiment_mean - control_mean,
        };
        d.is_finite().then_some(d)
    }
}

/// Running sum and count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Acc {
    pub n: u64,
    pub sum: f64,
}

impl Acc {
    fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
    }
    fn mean(&self) -> f64 {
        self.sum / self.n as f64
    }
}

/// The upper one-sided 95 % normal quantile used on the warm-up autocorrelation.
const WARMUP_Z: f64 = 1.645;

/// The paired test's state (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedTest {
    pub warmup: u32,
    pub alpha: f64,
    /// The looks the mixture is tuned for (`n*·b`).
    pub horizon_looks: f64,
    pub tails: Vec<Tail>,
    pub scale: Option<PairedScale>,
    /// Values of each arm waiting for a look with values in both (`[control, experiment]`).
    pending: [Acc; 2],
    /// The lag-1 autocorrelation of the warm-up (bias-corrected) and its upper bound.
    pub warmup_ar1: Option<f64>,
    pub warmup_ar1_upper: Option<f64>,
    pub batch_size: Option<u32>,
    /// The batch being filled.
    batch: Acc,
    /// Batch means: count, sum, sum of squares.
    pub batches: u64,
    pub sum: f64,
    pub sum_sq: f64,
    /// Paired looks, and looks skipped (a mean that is not positive on the log scale).
    pub paired_looks: u64,
    pub skipped_looks: u64,
    /// The quantile the tail test watches (default 0.9).
    pub tail_quantile: f64,
    /// Each arm's look means during the warm-up (for the tail test, once it is sized).
    warm_means: [Vec<f64>; 2],
    /// The tail test: `coalmine-seq-v1`'s two-sample quantile e-process at `tail_quantile`
    /// on batch means of each arm's look means, the batch size from the warm-up (the larger
    /// of the two arms' autocorrelation bounds: an arm can be more dependent than the
    /// difference, e.g. under a shared load).
    pub tail: Option<QuantileTest>,
}

impl PairedTest {
    pub fn new(
        warmup: u32,
        alpha: f64,
        horizon_looks: f64,
        tails: &[Tail],
        tail_quantile: f64,
    ) -> Self {
        PairedTest {
            warmup: warmup.max(2),
            alpha,
            horizon_looks: horizon_looks.max(1.0),
            tails: tails.to_vec(),
            scale: None,
            pending: [Acc::default(); 2],
            warmup_ar1: None,
            warmup_ar1_upper: None,
            batch_size: None,
            batch: Acc::default(),
            batches: 0,
            sum: 0.0,
            sum_sq: 0.0,
            paired_looks: 0,
            skipped_looks: 0,
            tail_quantile,
            warm_means: [Vec::new(), Vec::new()],
            tail: None,
        }
    }

    /// Add one arm's new (clean) value.
    pub fn insert(&mut self, arm: usize, x: f64) {
        self.pending[arm].add(x);
    }

    /// Close the look: pair what the arms brought, if both brought something.
    pub fn end_look(&mut self) {
        let [c, e] = self.pending;
        if c.n == 0 || e.n == 0 {
            return;
        }
        self.pending = [Acc::default(); 2];
        let (mc, me) = (c.mean(), e.mean());
        let scale = *self.scale.get_or_insert(
            if mc > 0.0 && me > 0.0 && mc.is_finite() && me.is_finite() {
                PairedScale::LogRatio
            } else {
                PairedScale::Difference
            },
        );
        let Some(d) = scale.paired(mc, me) else {
            self.skipped_looks += 1;
            return;
        };
        self.paired_looks += 1;
        match self.batch_size {
            Some(b) => {
                self.add_to_batch(d, b);
                if let Some(t) = &mut self.tail {
                    t.insert(0, mc);
                    t.insert(1, me);
                }
            }
            None => {
                self.warm_means[0].push(mc);
                self.warm_means[1].push(me);
                if self.warm_means[0].len() >= self.warmup as usize {
                    self.choose_batch_size();
                }
            }
        }
    }

    fn add_to_batch(&mut self, d: f64, b: u32) {
        self.batch.add(d);
        if self.batch.n >= b as u64 {
            let m = self.batch.mean();
            self.batch = Acc::default();
            self.batches += 1;
            self.sum += m;
            self.sum_sq += m * m;
        }
    }

    fn choose_batch_size(&mut self) {
        let [c, e] = std::mem::take(&mut self.warm_means);
        // the warm-up's paired values: every look kept there was paired on `scale`
        let scale = self.scale.expect("a paired look chose the scale");
        let w: Vec<f64> = c
            .iter()
            .zip(&e)
            .filter_map(|(&mc, &me)| scale.paired(mc, me))
            .collect();
        let (r, upper, b) = self.batch_from(&w);
        self.warmup_ar1 = Some(r);
        self.warmup_ar1_upper = Some(upper);
        self.batch_size = Some(b);
        for d in w {
            self.add_to_batch(d, b);
        }
        let b_tail = b.max(self.batch_from(&c).2).max(self.batch_from(&e).2);
        let n_star = (self.horizon_looks / b_tail as f64).max(1.0);
        let mut tail = QuantileTest::new(
            &[self.tail_quantile],
            &self.tails,
            n_star,
            self.alpha,
            b_tail,
        );
        for (x, y) in c.into_iter().zip(e) {
            tail.insert(0, x);
            tail.insert(1, y);
        }
        self.tail = Some(tail);
    }

    /// A warm-up series' lag-1 autocorrelation (bias-corrected), its one-sided 95 % upper
    /// bound, and the batch size that bound asks for.
    fn batch_from(&self, w: &[f64]) -> (f64, f64, u32) {
        let n = w.len() as f64;
        let mean = w.iter().sum::<f64>() / n;
        let u: Vec<f64> = w.iter().map(|x| x - mean).collect();
        let (num, den) = lag1_sums(&u);
        let r = if den > 0.0 {
            kendall_corrected(num / den, n)
        } else {
            0.0
        };
        let upper = (r + WARMUP_Z * ((1.0 - r * r).max(0.0) / n).sqrt()).clamp(0.0, 0.97);
        let b = (((1.0 + upper) / (1.0 - upper)).ceil() as u32).clamp(1, self.warmup);
        (r, upper, b)
    }

    /// `g`, the prior variance of the standardised effect.
    pub fn g(&self) -> f64 {
        let n_star = (self.horizon_looks / self.batch_size.unwrap_or(1) as f64).max(2.0);
        let l = 2.0 * (1.0 / self.alpha).ln();
        (l + (l + 1.0).ln()) / n_star
    }

    /// `(mean, sd)` of the batch means (`None` below two batches or with no spread).
    pub fn mean_sd(&self) -> Option<(f64, f64)> {
        let n = self.batches as f64;
        if self.batches < 2 {
            return None;
        }
        let mean = self.sum / n;
        let var = ((self.sum_sq - self.sum * mean) / (n - 1.0)).max(0.0);
        (var > 0.0 && var.is_finite()).then(|| (mean, var.sqrt()))
    }

    /// `ln E_n` of the two-sided t-mixture (0 until two batches differ).
    pub fn ln_e(&self) -> f64 {
        let Some((mean, sd)) = self.mean_sd() else {
            return 0.0;
        };
        let n = self.batches as f64;
        let t = mean / (sd / n.sqrt());
        ln_bayes_factor(t * t, n, self.g())
    }

    /// The tail the evidence points to (the sign of the batch means' sum).
    pub fn pointing(&self) -> Tail {
        if self.sum >= 0.0 {
            Tail::Increase
        } else {
            Tail::Decrease
        }
    }

    /// `ln E` of the paired location test as the metric sees it: the two-sided mixture when
    /// its sign points to a tested tail, `ln 1 = 0` otherwise (a canary that got better is
    /// no evidence against `direction: increase`).
    pub fn ln_e_location(&self) -> f64 {
        if self.tails.contains(&self.pointing()) {
            self.ln_e()
        } else {
            0.0
        }
    }

    /// `ln E` of the tail test (the mean over the tested tails), and the tail it points to.
    fn ln_e_tail(&self) -> Option<(Tail, f64)> {
        let t = self.tail.as_ref()?;
        Some(Self::toward(t.ln_e_by_tail(&self.tails)))
    }

    fn toward(by_tail: Vec<(Tail, f64)>) -> (Tail, f64) {
        let ln = super::ln_mean_exp(&by_tail.iter().map(|x| x.1).collect::<Vec<_>>());
        let toward = by_tail
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(Tail::Increase, |x| x.0);
        (toward, ln)
    }

    /// The metric's e-value `0.8·E_location + 0.2·E_tail` as one `(tail, ln E)` entry; the
    /// tail is the one of the larger contribution.
    pub fn ln_e_by_tail(&self) -> Vec<(Tail, f64)> {
        self.combine(self.ln_e_tail())
    }

    /// [`PairedTest::ln_e_by_tail`] with the tail test's cheap upper bound: at least the
    /// exact value, O(1) (a look whose bound cannot beat the running maximum is skipped).
    pub fn ln_e_upper_by_tail(&self) -> Vec<(Tail, f64)> {
        let tail = self
            .tail
            .as_ref()
            .map(|t| Self::toward(t.ln_e_upper_by_tail(&self.tails)));
        self.combine(tail)
    }

    /// The exact value, moving the tail test's caches to its new minimisers.
    pub fn ln_e_by_tail_refresh(&mut self) -> Vec<(Tail, f64)> {
        let tails = self.tails.clone();
        let tail = self
            .tail
            .as_mut()
            .map(|t| Self::toward(t.ln_e_by_tail_refresh(&tails)));
        self.combine(tail)
    }

    fn combine(&self, tail: Option<(Tail, f64)>) -> Vec<(Tail, f64)> {
        let location = LOCATION_WEIGHT.ln() + self.ln_e_location();
        let Some((tail_toward, tail_ln)) = tail else {
            // before the warm-up sized the tests: nothing to show yet
            return vec![(self.pointing(), 0.0)];
        };
        let tail = (1.0 - LOCATION_WEIGHT).ln() + tail_ln;
        let total = super::ln_mean_exp(&[location, tail]) + 2f64.ln();
        let toward = if location >= tail {
            if self.tails.contains(&self.pointing()) {
                self.pointing()
            } else {
                tail_toward
            }
        } else {
            tail_toward
        };
        vec![(toward, total)]
    }

    /// `ln E` of each component: `(location, tail)`.
    pub fn components(&self) -> (f64, Option<f64>) {
        (self.ln_e_location(), self.ln_e_tail().map(|x| x.1))
    }

    /// The confidence sequence for the mean paired value at level `1 − alpha`, with the
    /// estimate: `(lower, estimate, upper)`; unbounded while the mixture cannot exclude
    /// anything.
    pub fn confidence_sequence(&self, alpha: f64) -> Option<(f64, f64, f64)> {
        let (mean, sd) = self.mean_sd()?;
        let n = self.batches as f64;
        let c = critical_t(n, self.g(), alpha);
        let half = c * sd / n.sqrt();
        Some((mean - half, mean, mean + half))
    }

    /// The largest `ln E` reachable with `batches` batch means (as `|t| → ∞`).
    pub fn max_ln_e(batches: f64, g: f64) -> f64 {
        if batches < 2.0 {
            return 0.0;
        }
        0.5 * (batches - 1.0) * (1.0 + batches * g).ln()
    }
}

/// `ln` of the t-mixture Bayes factor for `t²` from `n` values with prior variance `g`.
pub fn ln_bayes_factor(t2: f64, n: f64, g: f64) -> f64 {
    let nu = n - 1.0;
    let k = 1.0 + n * g;
    -0.5 * k.ln() + 0.5 * (nu + 1.0) * ((t2 / nu).ln_1p() - (t2 / (nu * k)).ln_1p())
}

/// The `|t|` at which the Bayes factor reaches `1/alpha` (infinite when it cannot).
pub fn critical_t(n: f64, g: f64, alpha: f64) -> f64 {
    let nu = n - 1.0;
    let k = 1.0 + n * g;
    let ln_a = (2.0 / (nu + 1.0)) * (0.5 * k.ln() - alpha.ln());
    let a = ln_a.exp();
    if a >= k {
        return f64::INFINITY;
    }
    (nu * (a - 1.0) / (1.0 - a / k)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_critical_t_is_where_the_bayes_factor_reaches_one_over_alpha() {
        for (n, g) in [(8.0, 1.0), (30.0, 0.05), (300.0, 0.005)] {
            let c = critical_t(n, g, 0.01);
            assert!(c.is_finite());
            let ln_bf = ln_bayes_factor(c * c, n, g);
            assert!((ln_bf - 100f64.ln()).abs() < 1e-9, "n {n}: {ln_bf}");
        }
        // two batches cannot reach 100 with a small g
        assert!(critical_t(2.0, 0.01, 0.01).is_infinite());
        assert!(PairedTest::max_ln_e(2.0, 0.01) < 100f64.ln());
    }

    #[test]
    fn warm_up_chooses_the_batch_size_and_batches_the_warm_up_too() {
        let mut t = PairedTest::new(30, 0.01, 1080.0, &[Tail::Increase], 0.9);
        let mut u = crate::synthetic::Synth::new(3).into_uniforms();
        let mut ar = 0.0;
        for _ in 0..300 {
            ar = 0.8 * ar + (u() - 0.5);
            t.insert(0, 100.0);
            t.insert(1, 100.0 * (ar * 0.1f64).exp());
            t.end_look();
        }
        let b = t.batch_size.unwrap();
        assert!(
            b >= 5,
            "an AR(1) 0.8 series needs batches of several looks: {b}"
        );
        assert_eq!(t.batches, 300 / b as u64);
        assert_eq!(t.scale, Some(PairedScale::LogRatio));
        // a look with only one arm waits for the other
        let before = t.paired_looks;
        t.insert(0, 100.0);
        t.end_look();
        assert_eq!(t.paired_looks, before);
        t.insert(1, 101.0);
        t.end_look();
        assert_eq!(t.paired_looks, before + 1);
    }
}
