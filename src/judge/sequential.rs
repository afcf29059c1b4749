//! `coalmine-seq-v1`: anytime-valid sequential judgment for continuous canary runs.
//!
//! Kayenta's continuous mode re-runs a fixed-horizon test every interval and spends its
//! error budget again at every look. Here every metric carries an **e-process** `E_t`
//! (a nonnegative process with `E_0 = 1` that no null distribution lets grow: by Ville's
//! inequality `P(∃t: E_t ≥ 1/α) ≤ α`), so a run may look at every tick, forever, and a
//! healthy canary is failed with probability at most α. Each tick only adds the new points.
//!
//! # The tests
//! * **Count metrics** (errors, requests, crashes): [`count::CountTest`], Lindon & Malek's
//!   (2022) Beta-mixture e-process for two time-inhomogeneous Poisson processes: under H0
//!   each event is the canary's with probability ρ (its traffic share), whatever the load
//!   does over time. Needs only the two running counts.
//! * **Continuous metrics** (latency, CPU): [`quantile::QuantileTest`], the sequential
//!   two-sample quantile test of Howard & Ramdas (2022, Theorem 5) on chosen quantiles
//!   (default the median), with their quantile confidence sequences; values go into a
//!   [`histogram::LogHistogram`] (0.78 % buckets), so a tick is O(new points).
//!
//! Both are one-sided per direction: `direction = increase` uses only the e-process for
//! "the canary is higher", so a canary that got better is never failed. With `either`, the
//! metric's e-process is the average of the two one-sided ones, and a crossing is labelled
//! by the larger one (which is then itself ≥ 1/α, so the label's error is controlled too).
//! Several quantiles are merged by averaging their e-processes (an average of e-processes is
//! one).
//!
//! # Decision
//! A metric is `High`/`Low` from the first look at which its e-process reaches `1/α_m` (and
//! stays so: a run stops there). `α_m = α/m` across the `m` non-muted metric-set pairs of a
//! judgment (Bonferroni; `multiplicity: "none"` turns it off), `α` = 0.01 by default, so the
//! probability that any metric of a healthy canary is ever flagged is at most α. Kayenta's
//! effect-size gate (`effectSize.allowedIncrease`, …) applies to the point estimate (rate
//! ratio for counts, mean ratio otherwise), critical metrics and scoring are the other
//! judges'. [`SequentialState::excludes_regression`] tells when the confidence sequences
//! rule out a regression beyond the allowed ratio; [`SequentialState::early_pass`] adds the
//! minimum duration, for runs that end early as *pass*.
//!
//! # Using the state (runs, Python)
//! ```
//! use coalmine::judge::sequential::{MetricType, SequentialParams, SequentialState};
//!
//! let mut params = SequentialParams::new(MetricType::Count);
//! params.alpha = 0.01;
//! params.traffic_share = 0.5;
//! let mut state = SequentialState::new(params).unwrap();
//! for _tick in 0..30 {
//!     state.update(&[10.0, 12.0], &[25.0, 21.0]).unwrap(); // new baseline, canary points
//! }
//! let d = state.decision();
//! assert_eq!(d.label.as_str(), "High");
//! let saved = serde_json::to_string(&state).unwrap(); // persist between ticks
//! let restored: SequentialState = serde_json::from_str(&saved).unwrap();
//! assert_eq!(restored, state);
//! ```
//! `update` is one *look*: the e-process is checked after every call, and the running
//! maximum and the crossing are kept. A plain `coalmine judge` call with this judge feeds
//! each pair's values in order, one control and one experiment value per look (as a run
//! whose ticks deliver one point per series), so its result is the run's.
//!
//! Cost: `update` is O(new points) plus O(1) for the look in the common case — an upper
//! bound of `E_t` (from the last minimiser, without incomplete beta functions) shows it
//! cannot beat the running maximum; otherwise the exact e-value is computed (a short walk
//! over histogram buckets near the quantiles). `decision` and `report` compute the current
//! e-value and confidence sequences exactly.
//!
//! # Assumptions
//! Counts: Poisson event streams (given the load, events are independent); bursts of
//! correlated events (one failure logged 50 times) inflate false alarms. Continuous: values
//! within each arm independent and identically distributed over the run. Per-interval
//! aggregates of a metric are usually autocorrelated: `batchSize` replaces each `b`
//! consecutive values by their mean (batch means), which brings the dependence down at the
//! price of testing the quantiles of the batch means. See `docs/sequential.md` for the
//! validation (false alarms, detection delay, autocorrelated data).
//!
//! # References
//! 1. Lindon, M. & Malek, A. (2022). Anytime-valid inference for multinomial count data.
//!    *NeurIPS 2022*.
//! 2. Howard, S. R. & Ramdas, A. (2022). Sequential estimation of quantiles with applications
//!    to A/B-testing and best-arm identification. *Bernoulli* 28(3), 1704–1728.
//! 3. Howard, S. R., Ramdas, A., McAuliffe, J. & Sekhon, J. (2021). Time-uniform,
//!    nonparametric, nonasymptotic confidence sequences. *Ann. Statist.* 49, 1055–1080.
//! 4. Lindon, M., Sanden, C. & Shirikian, V. (2022). Rapid regression detection in software
//!    deployments through sequential testing. *KDD 2022*.
//! 5. Ramdas, A., Grünwald, P., Vovk, V. & Shafer, G. (2023). Game-theoretic statistics and
//!    safe anytime-valid inference. *Statist. Sci.* 38, 576–601 (e-processes, Ville).

pub mod count;
pub mod histogram;
mod judge;
pub mod mixture;
pub mod paired;
pub mod quantile;
mod report;
mod settings;
mod state;
pub mod tail;

use serde::{Deserialize, Serialize};

pub use count::CountTest;
pub use histogram::LogHistogram;
pub use judge::{
    judge_states, judge_states_gated, metric_alpha, params_for, replay, run, state_key,
};
pub use mixture::{BetaMixture, Side};
pub use paired::{PairedScale, PairedTest};
pub use quantile::{quantile_bounds, two_sided_ln_e, QuantileBounds, QuantileTest};
pub use report::{
    ConfidenceSequence, HistogramReport, Interval, QuantileReport, ReachReport, SequentialReport,
};
pub use state::{
    ln_mean_exp, Crossing, Decision, Horizon, Monitor, Reach, SeqTest, SeqVersion,
    SequentialParams, SequentialState, Sums, DEFAULT_WARMUP,
};

use super::classifier::{Direction, Label};

/// How a metric is tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// Values are event counts per interval (non-negative integers): [`CountTest`].
    Count,
    /// Anything else: [`QuantileTest`].
    Continuous,
    /// Bucket counts of a histogram ([`tail::HistogramTest`]): never inferred from values;
    /// the judge folds a metric's `le` series into one pair.
    Histogram,
}

impl MetricType {
    /// The rule for configs without `metricType`: `Count` when every non-NaN value of both
    /// series is a non-negative integer (and there is at least one), else `Continuous`.
    /// Integer-valued latencies would be taken for counts: set `metricType` for those.
    pub fn infer(control: &[f64], experiment: &[f64]) -> MetricType {
        let mut any = false;
        for &x in control.iter().chain(experiment) {
            if x.is_nan() {
                continue;
            }
            if !(x >= 0.0 && x.is_finite() && x.fract() == 0.0) {
                return MetricType::Continuous;
            }
            any = true;
        }
        if any {
            MetricType::Count
        } else {
            MetricType::Continuous
        }
    }
}

/// The alternative a metric is tested against (from `direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Alternative {
    Increase,
    Decrease,
    Either,
}

impl From<Direction> for Alternative {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Increase => Alternative::Increase,
            Direction::Decrease => Alternative::Decrease,
            Direction::Either => Alternative::Either,
        }
    }
}

impl Alternative {
    pub fn tails(self) -> &'static [Tail] {
        match self {
            Alternative::Increase => &[Tail::Increase],
            Alternative::Decrease => &[Tail::Decrease],
            Alternative::Either => &[Tail::Increase, Tail::Decrease],
        }
    }
}

/// One direction of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tail {
    Increase,
    Decrease,
}

impl Tail {
    pub(crate) fn label(self) -> Label {
        match self {
            Tail::Increase => Label::High,
            Tail::Decrease => Label::Low,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_of_any_size_give_the_same_e_value_as_points_one_by_one() {
        let mut u = crate::synthetic::Synth::new(7).into_uniforms();
        let c: Vec<f64> = (0..600).map(|_| 100.0 + 20.0 * u()).collect();
        let e: Vec<f64> = (0..600).map(|_| 103.0 + 20.0 * u()).collect();
        let mut params = SequentialParams::new(MetricType::Continuous);
        params.quantiles = vec![0.5, 0.9];
        let one = replay(params.clone(), &c, &e).unwrap();
        let mut batched = SequentialState::new(params).unwrap();
        for (cc, ee) in c.chunks(100).zip(e.chunks(100)) {
            batched.update(cc, ee).unwrap();
        }
        assert_eq!(one.e_value(), batched.e_value());
        assert_eq!(one.report().quantiles, batched.report().quantiles);
        assert!(one.looks() == 600 && batched.looks() == 6);
    }

    #[test]
    fn skipped_looks_never_miss_a_new_maximum() {
        // The bounded looks must give the same running maximum as exact looks everywhere.
        let mut u = crate::synthetic::Synth::new(11).into_uniforms();
        for (shift, v2) in [0.0, 0.5, 2.0]
            .into_iter()
            .flat_map(|s| [(s, false), (s, true)])
        {
            let mut params = if v2 {
                SequentialParams::v2(MetricType::Continuous)
            } else {
                SequentialParams::new(MetricType::Continuous)
            };
            params.alternative = Alternative::Increase;
            params.horizon_looks = 400.0;
            let mut s = SequentialState::new(params).unwrap();
            let mut max_exact: f64 = 0.0;
            for _ in 0..400 {
                let (c, e) = (10.0 + 3.0 * u(), 10.0 + shift + 3.0 * u());
                s.update(&[c], &[e]).unwrap();
                max_exact = max_exact.max(s.e_value().ln());
                assert!(
                    (s.monitor.ln_max_e - max_exact).abs() < 1e-9,
                    "shift {shift}, v2 {v2}"
                );
            }
            assert!(s.monitor.exact_looks < 400 || shift > 0.0);
        }
    }

    #[test]
    fn count_state_is_direction_aware() {
        let mut params = SequentialParams::new(MetricType::Count);
        params.alternative = Alternative::Increase;
        let mut s = SequentialState::new(params.clone()).unwrap();
        for _ in 0..200 {
            s.update(&[10.0], &[3.0]).unwrap(); // canary far better
        }
        assert_eq!(s.decision().label, Label::Pass);
        assert!(s.excludes_regression());
        params.alternative = Alternative::Either;
        let mut s = SequentialState::new(params).unwrap();
        for _ in 0..200 {
            s.update(&[10.0], &[3.0]).unwrap();
        }
        assert_eq!(s.decision().label, Label::Low);
        assert!(s.update(&[1.5], &[1.0]).is_err());
    }
}
