//! The two-sample sequential quantile test of Howard & Ramdas (2022, Theorem 5) and their
//! quantile confidence sequences (§3, the beta-binomial "fixed quantile" bound), on
//! [`LogHistogram`]s.
//!
//! # Formula
//! For a value `x` and an arm with `N` values of which a proportion `F̂(x)` are `≤ x`, let
//! `g(prop) = ln E(prop·N, N)` be the [`BetaMixture`] e-process of the indicators
//! `1{X ≤ x}` against `P(X ≤ x) = p` (confseq's `BetaBinomialMixture(v_opt = t_opt·p(1−p),
//! alpha_opt, g = p, h = 1 − p)`), a convex function of `prop` with minimiser `m*`. At a
//! tie (an atom: `F̂(x−) < F̂(x)`) the proportion may be randomised anywhere in
//! `[F̂(x−), F̂(x)]`, so the arm's evidence at `x` is
//!
//! ```text
//! G(x) = g(clamp(m*, F̂(x−), F̂(x)))          (its smallest value over the atom)
//! ```
//!
//! and the evidence against "both arms share their p-quantile" is
//!
//! ```text
//! ln E_t = min over x of [ G_control(x) + G_canary(x) ].
//! ```
//!
//! Under H0 the common quantile `x*` makes both factors (randomised) test martingales, and
//! the product of independent test martingales is one, so `E_t ≤ M_t(x*)` and
//! `P(∃t: E_t ≥ 1/α) ≤ α` (Ville). With both mixtures two-sided this is exactly confseq's
//! `quantile_ab_p_value` (`p = min(1, 1/E_t)`). The one-sided tests coalmine's judge uses
//! take the canary's mixture on one side and the baseline's on the other: for "the canary's
//! p-quantile is higher" the baseline mixture is on `P(X ≤ x) > p` ([`Side::Greater`]) and the
//! canary's on `P(X ≤ x) < p` ([`Side::Less`]), confseq's `is_one_sided` boundary with its
//! doubled-α tuning; under the composite null (canary's quantile ≤ baseline's) the
//! baseline's quantile is a point where both factors are supermartingales.
//!
//! Only values where a histogram has data need to be tried (between them `G` is constant
//! and dominated by its neighbours). The search starts at the baseline's empirical quantile
//! and walks outwards; it stops in a direction once the arm past its minimiser bounds every
//! further sum from below by the best value found (`G` is monotone past `m*`).
//!
//! The quantile confidence sequence of one arm is `{x : G(x) < ln(1/α)}`, which equals
//! confseq's `[X₍⌊t(p−r_l)+1⌋₎, X₍⌈t(p+r_u)⌉₎]` with `r_l, r_u` from
//! `beta_binomial_mixture_bound` (demo `fixed_quantile_confidence_bounds`), widened to
//! bucket edges.
//!
//! # References
//! 1. Howard, S. R. & Ramdas, A. (2022). Sequential estimation of quantiles with applications
//!    to A/B-testing and best-arm identification. *Bernoulli* 28(3), 1704–1728.
//! 2. confseq 0.0.11, `uniform_boundaries.h`: `QuantileABTest`, `BetaBinomialMixture`.
//! 3. Lindon, M., Sanden, C. & Shirikian, V. (2022). Rapid regression detection in software
//!    deployments through sequential testing. *KDD 2022*.

use serde::{Deserialize, Serialize};

use super::histogram::{lower_edge, midpoint, upper_edge, LogHistogram};
use super::mixture::{BetaMixture, Side};
use super::Tail;

/// One arm's evidence function.
struct Arm<'a> {
    h: &'a LogHistogram,
    mix: &'a BetaMixture,
    n: f64,
    m_star: f64,
    g_min: f64,
}

impl<'a> Arm<'a> {
    fn new(h: &'a LogHistogram, mix: &'a BetaMixture) -> Self {
        let n = h.n() as f64;
        let m_star = if n > 0.0 { mix.argmin_k(n) / n } else { 0.0 };
        let g_min = mix.ln_e(m_star * n, n);
        Arm {
            h,
            mix,
            n,
            m_star,
            g_min,
        }
    }

    fn g(&self, prop: f64) -> f64 {
        self.mix.ln_e(prop * self.n, self.n)
    }

    fn g_atom(&self, lo: f64, hi: f64) -> f64 {
        self.g(self.m_star.clamp(lo, hi))
    }

    /// A lower bound of `G` at every value above one whose `F̂ = hi`.
    fn bound_right(&self, hi: f64) -> f64 {
        if hi >= self.m_star {
            self.g(hi)
        } else {
            self.g_min
        }
    }

    /// A lower bound of `G` at every value below one whose `F̂(x−) = lo`.
    fn bound_left(&self, lo: f64) -> f64 {
        if lo <= self.m_star {
            self.g(lo)
        } else {
            self.g_min
        }
    }
}

/// `min over x of G_control(x) + G_experiment(x)` and a key attaining it (see module docs).
/// `(0, None)` while either histogram is empty (E = 1).
pub fn ab_ln_e(
    control: &LogHistogram,
    experiment: &LogHistogram,
    control_mix: &BetaMixture,
    experiment_mix: &BetaMixture,
) -> (f64, Option<u32>) {
    if control.is_empty() || experiment.is_empty() {
        return (0.0, None);
    }
    let a = Arm::new(control, control_mix);
    let b = Arm::new(experiment, experiment_mix);
    let lo_key = control.base().min(experiment.base());
    let hi_key = control.end().max(experiment.end());
    let start = control.quantile_key(control_mix.p0);
    let (below_a, below_b) = (control.count_below(start), experiment.count_below(start));
    let mut best = f64::INFINITY;
    let mut best_key = start;
    let eval = |k: u32, ba: u64, bb: u64, xa: u64, xb: u64, best: &mut f64, best_key: &mut u32| {
        let (la, ha) = (ba as f64 / a.n, (ba + xa) as f64 / a.n);
        let (lb, hb) = (bb as f64 / b.n, (bb + xb) as f64 / b.n);
        let v = a.g_atom(la, ha) + b.g_atom(lb, hb);
        if v < *best {
            *best = v;
            *best_key = k;
        }
        (la, ha, lb, hb)
    };
    // rightwards from the start, inclusive
    let (mut ba, mut bb) = (below_a, below_b);
    let mut k = start;
    while k < hi_key {
        let (xa, xb) = (a.h.count(k), b.h.count(k));
        if xa + xb > 0 {
            let (_, ha, _, hb) = eval(k, ba, bb, xa, xb, &mut best, &mut best_key);
            if a.bound_right(ha) + b.bound_right(hb) >= best {
                break;
            }
        }
        ba += xa;
        bb += xb;
        k += 1;
    }
    // leftwards from just below the start
    let (mut ba, mut bb) = (below_a, below_b);
    let mut k = start;
    while k > lo_key {
        k -= 1;
        let (xa, xb) = (a.h.count(k), b.h.count(k));
        if xa + xb == 0 {
            continue;
        }
        ba -= xa;
        bb -= xb;
        let (la, _, lb, _) = eval(k, ba, bb, xa, xb, &mut best, &mut best_key);
        if a.bound_left(la) + b.bound_left(lb) >= best {
            break;
        }
    }
    (best, Some(best_key))
}

/// confseq's `quantile_ab_p_value(control, experiment, p, t_opt, alpha_opt)` on histograms:
/// the two-sided test of equal `p`-quantiles, as `ln E_t` (`p = min(1, e^(−ln E))`).
pub fn two_sided_ln_e(
    control: &LogHistogram,
    experiment: &LogHistogram,
    p: f64,
    t_opt: f64,
    alpha_opt: f64,
) -> f64 {
    let mix = BetaMixture::confseq_quantile(p, t_opt, alpha_opt, Side::Two);
    ab_ln_e(control, experiment, &mix, &mix).0
}

/// A confidence sequence for one arm's `p`-quantile at one time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuantileBounds {
    /// Lower bound: the lower edge of the bucket of the lower order statistic (−∞ when the
    /// sequence is unbounded below).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub lower: f64,
    /// Upper bound: the upper edge of the bucket of the upper order statistic (+∞ …).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub upper: f64,
    /// The empirical quantile (rank `⌊n·p⌋ + 1`), its bucket's midpoint.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub estimate: f64,
    /// The lower edges of the buckets of the two bounding order statistics: equal to the
    /// order statistics themselves when the data are bucket edges (the oracle fixtures).
    #[serde(skip)]
    pub lower_point: f64,
    #[serde(skip)]
    pub upper_point: f64,
}

/// The two-sided confidence sequence `{x : G(x) < ln(1/α)}` for the `p`-quantile of the
/// values in `h` (Howard & Ramdas 2022, beta-binomial fixed-quantile bound tuned for
/// `t_opt`, `alpha_opt = α`).
pub fn quantile_bounds(h: &LogHistogram, p: f64, alpha: f64, t_opt: f64) -> QuantileBounds {
    if h.is_empty() {
        let inf = f64::INFINITY;
        return QuantileBounds {
            lower: -inf,
            upper: inf,
            estimate: f64::NAN,
            lower_point: -inf,
            upper_point: inf,
        };
    }
    let mix = BetaMixture::confseq_quantile(p, t_opt, alpha, Side::Two);
    let arm = Arm::new(h, &mix);
    let thr = (1.0 / alpha).ln();
    let n = h.n();
    let start_rank = ((arm.m_star * arm.n).ceil() as u64).clamp(1, n);
    let start = h.key_at_rank(start_rank);
    let below_start = h.count_below(start);
    let inside =
        |below: u64, at: u64| arm.g_atom(below as f64 / arm.n, (below + at) as f64 / arm.n) < thr;
    // leftwards
    let (mut lo_key, mut below, mut k) = (start, below_start, start);
    let mut unbounded_low = false;
    loop {
        if k == h.base() {
            unbounded_low = arm.g(0.0) < thr;
            break;
        }
        k -= 1;
        let c = h.count(k);
        if c == 0 {
            continue;
        }
        below -= c;
        if !inside(below, c) {
            break;
        }
        lo_key = k;
    }
    // rightwards
    let (mut hi_key, mut below, mut k) = (start, below_start + h.count(start), start);
    let mut unbounded_high = false;
    loop {
        k += 1;
        if k >= h.end() {
            unbounded_high = arm.g(1.0) < thr;
            break;
        }
        let c = h.count(k);
        if c == 0 {
            continue;
        }
        if !inside(below, c) {
            break;
        }
        below += c;
        hi_key = k;
    }
    let inf = f64::INFINITY;
    QuantileBounds {
        lower: if unbounded_low {
            -inf
        } else {
            lower_edge(lo_key)
        },
        upper: if unbounded_high {
            inf
        } else {
            upper_edge(hi_key)
        },
        estimate: midpoint(h.quantile_key(p)),
        lower_point: if unbounded_low {
            -inf
        } else {
            lower_edge(lo_key)
        },
        upper_point: if unbounded_high {
            inf
        } else {
            lower_edge(hi_key)
        },
    }
}

/// Where a sub-test's last minimiser was, and the counts around it, kept up to date on
/// every insert so that a look can bound `E_t` from above in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Cache {
    key: u32,
    /// Values below / in the key's bucket: `[control, experiment]`.
    below: [u64; 2],
    at: [u64; 2],
}

/// One one-sided quantile test (a quantile and a direction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuantileSubTest {
    pub p: f64,
    pub tail: Tail,
    control_mix: BetaMixture,
    experiment_mix: BetaMixture,
    cache: Option<Cache>,
}

impl QuantileSubTest {
    pub fn new(p: f64, tail: Tail, t_opt: f64, alpha_opt: f64) -> Self {
        let (sc, se) = match tail {
            Tail::Increase => (Side::Greater, Side::Less),
            Tail::Decrease => (Side::Less, Side::Greater),
        };
        QuantileSubTest {
            p,
            tail,
            control_mix: BetaMixture::confseq_quantile(p, t_opt, alpha_opt, sc),
            experiment_mix: BetaMixture::confseq_quantile(p, t_opt, alpha_opt, se),
            cache: None,
        }
    }

    #[inline]
    fn note_insert(&mut self, arm: usize, key: u32) {
        if let Some(c) = &mut self.cache {
            if key < c.key {
                c.below[arm] += 1;
            } else if key == c.key {
                c.at[arm] += 1;
            }
        }
    }

    /// An upper bound of `ln E_t` from the cached point, or `+∞` without one.
    fn ln_e_upper(&self, nc: f64, ne: f64) -> f64 {
        let Some(c) = self.cache else {
            return f64::INFINITY;
        };
        if nc == 0.0 || ne == 0.0 {
            return 0.0;
        }
        let bound = |mix: &BetaMixture, n: f64, below: u64, at: u64| {
            mix.ln_e_upper(below as f64, n)
                .min(mix.ln_e_upper((below + at) as f64, n))
        };
        bound(&self.control_mix, nc, c.below[0], c.at[0])
            + bound(&self.experiment_mix, ne, c.below[1], c.at[1])
    }

    /// `ln E_t` exactly; with `refresh`, move the cache to the new minimiser.
    fn ln_e(&mut self, control: &LogHistogram, experiment: &LogHistogram, refresh: bool) -> f64 {
        let (v, key) = ab_ln_e(control, experiment, &self.control_mix, &self.experiment_mix);
        if refresh {
            self.cache = key.map(|key| Cache {
                key,
                below: [control.count_below(key), experiment.count_below(key)],
                at: [control.count(key), experiment.count(key)],
            });
        }
        v
    }

    fn ln_e_now(&self, control: &LogHistogram, experiment: &LogHistogram) -> f64 {
        ab_ln_e(control, experiment, &self.control_mix, &self.experiment_mix).0
    }
}

/// Values waiting to complete a batch (batch means, for autocorrelated series).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Pending {
    sum: f64,
    count: u32,
}

/// The continuous-metric test state: one histogram per arm and the one-sided sub-tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuantileTest {
    pub control: LogHistogram,
    pub experiment: LogHistogram,
    pub batch_size: u32,
    pending: [Pending; 2],
    pub tests: Vec<QuantileSubTest>,
}

impl QuantileTest {
    pub fn new(
        quantiles: &[f64],
        tails: &[Tail],
        t_opt: f64,
        alpha_opt: f64,
        batch_size: u32,
    ) -> Self {
        let mut tests = Vec::new();
        for &tail in tails {
            for &p in quantiles {
                tests.push(QuantileSubTest::new(p, tail, t_opt, alpha_opt));
            }
        }
        QuantileTest {
            control: LogHistogram::new(),
            experiment: LogHistogram::new(),
            batch_size: batch_size.max(1),
            pending: [Pending::default(); 2],
            tests,
        }
    }

    /// Add one (non-NaN) value to an arm (0 = control, 1 = experiment); with batches of
    /// `batch_size > 1`, the value joins the arm's pending batch and the batch mean is
    /// inserted when it is complete.
    #[inline]
    pub fn insert(&mut self, arm: usize, x: f64) {
        let x = if self.batch_size == 1 {
            x
        } else {
            let p = &mut self.pending[arm];
            p.sum += x;
            p.count += 1;
            if p.count < self.batch_size {
                return;
            }
            let mean = p.sum / p.count as f64;
            *p = Pending::default();
            mean
        };
        let key = if arm == 0 {
            self.control.insert(x)
        } else {
            self.experiment.insert(x)
        };
        for t in &mut self.tests {
            t.note_insert(arm, key);
        }
    }

    fn n(&self) -> (f64, f64) {
        (self.control.n() as f64, self.experiment.n() as f64)
    }

    /// Per-tail upper bounds of `ln E_t` (the mean over quantiles), O(#sub-tests).
    pub fn ln_e_upper_by_tail(&self, tails: &[Tail]) -> Vec<(Tail, f64)> {
        let (nc, ne) = self.n();
        self.by_tail(tails, |t| t.ln_e_upper(nc, ne))
    }

    /// Per-tail exact `ln E_t`, moving the caches to the new minimisers.
    pub fn ln_e_by_tail_refresh(&mut self, tails: &[Tail]) -> Vec<(Tail, f64)> {
        let (control, experiment) = (&self.control, &self.experiment);
        let values: Vec<f64> = self
            .tests
            .iter_mut()
            .map(|t| t.ln_e(control, experiment, true))
            .collect();
        group_by_tail(&self.tests, &values, tails)
    }

    /// Per-tail exact `ln E_t` without touching the state.
    pub fn ln_e_by_tail(&self, tails: &[Tail]) -> Vec<(Tail, f64)> {
        self.by_tail(tails, |t| t.ln_e_now(&self.control, &self.experiment))
    }

    /// Per sub-test exact `ln E_t`, in `tests` order.
    pub fn sub_test_ln_e(&self) -> Vec<f64> {
        self.tests
            .iter()
            .map(|t| t.ln_e_now(&self.control, &self.experiment))
            .collect()
    }

    fn by_tail(&self, tails: &[Tail], f: impl Fn(&QuantileSubTest) -> f64) -> Vec<(Tail, f64)> {
        let values: Vec<f64> = self.tests.iter().map(f).collect();
        group_by_tail(&self.tests, &values, tails)
    }
}

fn group_by_tail(tests: &[QuantileSubTest], values: &[f64], tails: &[Tail]) -> Vec<(Tail, f64)> {
    tails
        .iter()
        .map(|&tail| {
            let xs: Vec<f64> = tests
                .iter()
                .zip(values)
                .filter(|(t, _)| t.tail == tail)
                .map(|(_, &v)| v)
                .collect();
            (tail, super::ln_mean_exp(&xs))
        })
        .collect()
}
