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
pub mod mixture;
pub mod quantile;

use std::borrow::Borrow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use count::CountTest;
pub use histogram::LogHistogram;
pub use mixture::{BetaMixture, Side};
pub use quantile::{quantile_bounds, two_sided_ln_e, QuantileBounds, QuantileTest};

use super::classifier::{Direction, Label, NanStrategy};
use super::effect::EffectMeasure;
use super::json::{describe, JsonPath, ShapeError};
use super::lookup::{get, Reader};
use super::model::{
    AnalysisResult, CanaryConfig, CanaryJudgeResult, MetricConfig, MetricSetPair, ResultMetadata,
    SeriesMetadata,
};
use super::score::Thresholds;
use super::transform::{remove_nans, replace_nans};
use super::{stats, JudgeError, JudgeKind, Parallelism, StatsError};

/// How a metric is tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// Values are event counts per interval (non-negative integers): [`CountTest`].
    Count,
    /// Anything else: [`QuantileTest`].
    Continuous,
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
    fn label(self) -> Label {
        match self {
            Tail::Increase => Label::High,
            Tail::Decrease => Label::Low,
        }
    }
}

/// The settings of one metric's sequential test. Stored in the state, so a persisted state
/// is self-contained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialParams {
    pub metric_type: MetricType,
    pub alternative: Alternative,
    /// This metric's level (after any multiplicity correction): flagged at `E ≥ 1/alpha`.
    pub alpha: f64,
    /// Quantiles tested for continuous metrics (default `[0.5]`).
    pub quantiles: Vec<f64>,
    /// The sample size the quantile mixtures are tuned for (default 1,000 values per arm).
    pub t_opt: f64,
    /// ρ: the canary's expected share of events (count metrics; default 0.5).
    pub traffic_share: f64,
    /// `k`: the count prior's concentration, savvi's default 100.
    pub concentration: f64,
    /// Continuous metrics: test means of consecutive batches of this many values (1 = raw).
    pub batch_size: u32,
    /// `true`: NaN counts as 0 (`nanStrategy: replace`); `false`: NaN is dropped.
    pub nan_as_zero: bool,
    /// Early pass once the confidence sequence's upper bound of the ratio (rate ratio or
    /// quantile ratio) is at most this (increase tail) …
    pub pass_ratio_increase: f64,
    /// … and its lower bound at least this (decrease tail).
    pub pass_ratio_decrease: f64,
}

impl SequentialParams {
    /// Defaults: α 0.01, `either`, median, `t_opt` 1,000, ρ 0.5, `k` 100, raw values, NaN
    /// dropped, early pass within ±10 %.
    pub fn new(metric_type: MetricType) -> Self {
        SequentialParams {
            metric_type,
            alternative: Alternative::Either,
            alpha: 0.01,
            quantiles: vec![0.5],
            t_opt: 1000.0,
            traffic_share: 0.5,
            concentration: 100.0,
            batch_size: 1,
            nan_as_zero: false,
            pass_ratio_increase: 1.1,
            pass_ratio_decrease: 0.9,
        }
    }

    pub fn validate(&self) -> Result<(), StatsError> {
        let bad = |m: String| Err(StatsError::InvalidArgument(m));
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return bad(format!("alpha must be in (0, 1), got {}", self.alpha));
        }
        if !(self.traffic_share > 0.0 && self.traffic_share < 1.0) {
            return bad(format!(
                "trafficShare must be in (0, 1), got {}",
                self.traffic_share
            ));
        }
        if !(self.concentration > 0.0 && self.concentration.is_finite()) {
            return bad(format!(
                "concentration must be a positive number, got {}",
                self.concentration
            ));
        }
        if !(self.t_opt >= 1.0 && self.t_opt.is_finite()) {
            return bad(format!("tOpt must be a number ≥ 1, got {}", self.t_opt));
        }
        if self.quantiles.is_empty() || self.quantiles.iter().any(|&p| !(p > 0.0 && p < 1.0)) {
            return bad(format!(
                "quantiles must be a non-empty list of numbers in (0, 1), got {:?}",
                self.quantiles
            ));
        }
        if self.batch_size == 0 {
            return bad("batchSize must be at least 1".into());
        }
        Ok(())
    }
}

/// The e-process bookkeeping across looks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Monitor {
    pub looks: u64,
    /// `ln max_{s≤t} E_s` (≥ 0: `E_0 = 1`).
    pub ln_max_e: f64,
    pub crossed: Option<Crossing>,
    /// Looks at which the exact e-value was computed (the others were bounded).
    pub exact_looks: u64,
}

/// The first look at which the e-process reached `1/α`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Crossing {
    pub look: u64,
    pub tail: Tail,
    pub ln_e: f64,
}

/// Running sums for Kayenta's mean ratio and the point counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sums {
    pub n: u64,
    pub sum: f64,
}

/// The test behind a [`SequentialState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum SeqTest {
    Count(CountTest),
    Continuous(QuantileTest),
}

/// One metric's incremental, serialisable sequential test (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialState {
    pub params: SequentialParams,
    pub monitor: Monitor,
    /// `[control, experiment]`.
    pub sums: [Sums; 2],
    pub test: SeqTest,
    /// The most this test could show by the end of its horizon ([`SequentialState::refresh_reach`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<Reach>,
}

/// How much data a sequential test will have seen when it ends: what its defaults are tuned
/// for (`tOpt`) and whether it can still reach `1/α`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    /// The values given are all there will be (a plain judgment).
    Complete,
    /// A run of this many looks (ticks) in all; the values so far project the rest.
    Looks(u64),
    /// Not known (a state fed by hand): no projection.
    Unknown,
}

/// The largest e-value a test can reach with the values it will have by the end of its
/// horizon: every value of one arm beyond every value of the other (continuous metrics), or
/// every event in one arm (counts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reach {
    /// Values per arm (events, for counts) projected to the end of the horizon.
    pub n_control: u64,
    pub n_experiment: u64,
    /// `ln` of the largest e-value reachable with them.
    pub ln_max_e: f64,
}

/// Projections above this many values per arm are simulated with this many: a complete
/// separation of 2,000 values a side is far beyond any `1/α` (e-values grow with `n`), and
/// a run of 10,000 metrics simulates its first tick in a fraction of a second.
const REACH_SIMULATION_CAP: u64 = 2_000;

/// What a state says now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// `High`/`Low` once the e-process crossed `1/α` (sticky), `Nodata` while an arm has no
    /// value, else `Pass` (no evidence yet; see `excludes_regression` for a positive pass).
    pub label: Label,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub e_value: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub max_e_value: f64,
    /// Anytime-valid p-value `min(1, 1/max_s E_s)`.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub p_value: f64,
    pub alpha: f64,
    pub looks: u64,
    pub crossed_at_look: Option<u64>,
    pub excludes_regression: bool,
}

impl SequentialState {
    pub fn new(params: SequentialParams) -> Result<Self, StatsError> {
        params.validate()?;
        let tails = params.alternative.tails();
        let test = match params.metric_type {
            MetricType::Count => SeqTest::Count(CountTest::new(
                params.traffic_share,
                params.concentration,
                tails,
                params.alpha,
            )),
            MetricType::Continuous => SeqTest::Continuous(QuantileTest::new(
                &params.quantiles,
                tails,
                params.t_opt,
                params.alpha,
                params.batch_size,
            )),
        };
        Ok(SequentialState {
            params,
            monitor: Monitor {
                looks: 0,
                ln_max_e: 0.0,
                crossed: None,
                exact_looks: 0,
            },
            sums: [Sums::default(); 2],
            test,
            reach: None,
        })
    }

    /// Project the values (or events) per arm to the end of `horizon` and record the
    /// largest e-value reachable with them ([`Reach`]). Cached: simulated again only when
    /// the projection moved by more than a quarter.
    pub fn refresh_reach(&mut self, horizon: Horizon) {
        let looks = self.monitor.looks.max(1);
        let scale = |n: f64| -> u64 {
            match horizon {
                Horizon::Complete | Horizon::Unknown => n.round() as u64,
                Horizon::Looks(total) => {
                    (n * total.max(looks) as f64 / looks as f64).round() as u64
                }
            }
        };
        if horizon == Horizon::Unknown || self.monitor.crossed.is_some() {
            self.reach = None;
            return;
        }
        let (nc, ne) = match &self.test {
            SeqTest::Count(c) => {
                // both arms' events go to the arm of the alternative in the best case
                let total = scale(c.events_control + c.events_experiment);
                (total, total)
            }
            SeqTest::Continuous(_) => (scale(self.sums[0].n as f64), scale(self.sums[1].n as f64)),
        };
        if let Some(r) = self.reach {
            let moved = |a: u64, b: u64| (a as f64 - b as f64).abs() > 0.25 * b.max(1) as f64;
            if !moved(nc, r.n_control) && !moved(ne, r.n_experiment) {
                return;
            }
        }
        self.reach = Some(Reach {
            n_control: nc,
            n_experiment: ne,
            ln_max_e: self.max_ln_e(nc, ne),
        });
    }

    /// `ln` of the e-value a fresh test with these parameters shows after `nc`/`ne` values
    /// (continuous; events for counts) separated as far as they can be, in the direction of
    /// the first alternative.
    fn max_ln_e(&self, nc: u64, ne: u64) -> f64 {
        let Ok(mut probe) = SequentialState::new(self.params.clone()) else {
            return f64::INFINITY;
        };
        let up = self.params.alternative.tails()[0] == Tail::Increase;
        let ok = match &self.test {
            SeqTest::Count(_) => {
                if nc == 0 {
                    return f64::INFINITY; // no events yet: nothing to project
                }
                let events = [nc as f64];
                if up {
                    probe.update(&[0.0], &events)
                } else {
                    probe.update(&events, &[0.0])
                }
            }
            SeqTest::Continuous(_) => {
                let (nc, ne) = (nc.min(REACH_SIMULATION_CAP), ne.min(REACH_SIMULATION_CAP));
                if nc == 0 || ne == 0 {
                    return f64::INFINITY;
                }
                let low: Vec<f64> = (1..=nc).map(|i| i as f64).collect();
                let high: Vec<f64> = (1..=ne).map(|i| (nc + i) as f64 * 2.0).collect();
                if up {
                    probe.update(&low, &high)
                } else {
                    let high_c: Vec<f64> = (1..=nc).map(|i| (ne + i) as f64 * 2.0).collect();
                    let low_e: Vec<f64> = (1..=ne).map(|i| i as f64).collect();
                    probe.update(&high_c, &low_e)
                }
            }
        };
        match ok {
            Ok(()) => probe.e_value().ln(),
            Err(_) => f64::INFINITY,
        }
    }

    /// Why this test cannot flag its metric by the end of its horizon, if it cannot.
    pub fn unreachable(&self) -> Option<String> {
        let r = self.reach?;
        let threshold = 1.0 / self.params.alpha;
        if self.monitor.crossed.is_some() || r.ln_max_e >= threshold.ln() {
            return None;
        }
        let what = match self.params.metric_type {
            MetricType::Count => format!("{} events in all", r.n_control),
            MetricType::Continuous if r.n_control == r.n_experiment => {
                format!("{} values per arm", r.n_control)
            }
            MetricType::Continuous => {
                format!(
                    "{} baseline and {} canary values",
                    r.n_control, r.n_experiment
                )
            }
        };
        Some(format!(
            "cannot be judged: with {what} by its end, the largest e-value this test can reach is {} < 1/α = {} (α = {} for this metric, tOpt {}); more values, a longer run or a larger alpha would let it decide",
            significant(r.ln_max_e.exp()),
            significant(threshold),
            significant(self.params.alpha),
            significant(self.params.t_opt),
        ))
    }

    pub fn params(&self) -> &SequentialParams {
        &self.params
    }

    /// Looks so far (calls to [`SequentialState::update`]).
    pub fn looks(&self) -> u64 {
        self.monitor.looks
    }

    /// Values seen per arm (after NaN handling): `(control, experiment)`.
    pub fn n(&self) -> (u64, u64) {
        (self.sums[0].n, self.sums[1].n)
    }

    /// Kayenta's `deviation`: mean(experiment) / mean(control), NaN when a mean is 0.
    pub fn mean_ratio(&self) -> f64 {
        let mean = |s: &Sums| if s.n == 0 { 0.0 } else { s.sum / s.n as f64 };
        let (c, e) = (mean(&self.sums[0]), mean(&self.sums[1]));
        if c == 0.0 || e == 0.0 {
            f64::NAN
        } else {
            e / c
        }
    }

    /// Feed the new points of both series (in time order) and look once. Cost O(new
    /// points) plus the look. Count metrics reject values that are not non-negative
    /// integers (the state is left unchanged).
    pub fn update(
        &mut self,
        new_control: &[f64],
        new_experiment: &[f64],
    ) -> Result<(), StatsError> {
        let nan_as_zero = self.params.nan_as_zero;
        let clean = move |x: f64| {
            if x.is_nan() {
                nan_as_zero.then_some(0.0)
            } else {
                Some(x)
            }
        };
        if let SeqTest::Count(_) = self.test {
            for (arm, values) in [("control", new_control), ("experiment", new_experiment)] {
                if let Some((i, x)) = values.iter().enumerate().find(|(_, &x)| {
                    clean(x).is_some_and(|x| !(x >= 0.0 && x.is_finite() && x.fract() == 0.0))
                }) {
                    return Err(StatsError::InvalidArgument(format!(
                        "count metric values must be non-negative integers: new {arm} value [{i}] is {x}"
                    )));
                }
            }
        }
        for (arm, values) in [new_control, new_experiment].into_iter().enumerate() {
            let mut sum = 0.0;
            let mut n = 0u64;
            match &mut self.test {
                SeqTest::Count(_) => {
                    for x in values.iter().filter_map(|&x| clean(x)) {
                        sum += x;
                        n += 1;
                    }
                }
                SeqTest::Continuous(q) => {
                    for x in values.iter().filter_map(|&x| clean(x)) {
                        sum += x;
                        n += 1;
                        q.insert(arm, x);
                    }
                }
            }
            self.sums[arm].sum += sum;
            self.sums[arm].n += n;
            if let SeqTest::Count(c) = &mut self.test {
                if arm == 0 {
                    c.add(sum, 0.0);
                } else {
                    c.add(0.0, sum);
                }
            }
        }
        self.look();
        Ok(())
    }

    fn look(&mut self) {
        self.monitor.looks += 1;
        let tails = self.params.alternative.tails();
        let upper = match &mut self.test {
            SeqTest::Count(c) => {
                c.tighten_cs();
                c.ln_e_upper_by_tail()
            }
            SeqTest::Continuous(q) => q.ln_e_upper_by_tail(tails),
        };
        if ln_mean_exp(&upper.iter().map(|x| x.1).collect::<Vec<_>>()) <= self.monitor.ln_max_e {
            return; // E_t ≤ max_{s<t} E_s: neither the maximum nor the crossing can change
        }
        self.monitor.exact_looks += 1;
        let exact = match &mut self.test {
            SeqTest::Count(c) => c.ln_e_by_tail(),
            SeqTest::Continuous(q) => q.ln_e_by_tail_refresh(tails),
        };
        let ln_e = ln_mean_exp(&exact.iter().map(|x| x.1).collect::<Vec<_>>());
        if ln_e > self.monitor.ln_max_e {
            self.monitor.ln_max_e = ln_e;
        }
        if self.monitor.crossed.is_none() && ln_e >= (1.0 / self.params.alpha).ln() {
            let tail = exact
                .iter()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(Tail::Increase, |x| x.0);
            self.monitor.crossed = Some(Crossing {
                look: self.monitor.looks,
                tail,
                ln_e,
            });
        }
    }

    /// Exact `ln E_t` per tail, now.
    pub fn ln_e_by_tail(&self) -> Vec<(Tail, f64)> {
        match &self.test {
            SeqTest::Count(c) => c.ln_e_by_tail(),
            SeqTest::Continuous(q) => q.ln_e_by_tail(self.params.alternative.tails()),
        }
    }

    /// The current e-value of the metric's e-process.
    pub fn e_value(&self) -> f64 {
        ln_mean_exp(&self.ln_e_by_tail().iter().map(|x| x.1).collect::<Vec<_>>()).exp()
    }

    /// The anytime-valid p-value `min(1, 1/max_s E_s)`.
    pub fn p_value(&self) -> f64 {
        (-self.monitor.ln_max_e).exp().min(1.0)
    }

    pub fn decision(&self) -> Decision {
        let (nc, ne) = self.n();
        let label = match self.monitor.crossed {
            Some(c) => c.tail.label(),
            None if nc == 0 || ne == 0 => Label::Nodata,
            None => Label::Pass,
        };
        Decision {
            label,
            e_value: self.e_value(),
            max_e_value: self.monitor.ln_max_e.exp(),
            p_value: self.p_value(),
            alpha: self.params.alpha,
            looks: self.monitor.looks,
            crossed_at_look: self.monitor.crossed.map(|c| c.look),
            excludes_regression: self.excludes_regression(),
        }
    }

    /// Whether the confidence sequence rules out, in every tested direction, a ratio beyond
    /// the pass ratios (`pass_ratio_increase` above, `pass_ratio_decrease` below), at level
    /// `1 − α` jointly over quantiles. Never before both arms have data.
    pub fn excludes_regression(&self) -> bool {
        let tails = self.params.alternative.tails();
        let ok = |lower: f64, upper: f64| {
            tails.iter().all(|t| match t {
                Tail::Increase => upper <= self.params.pass_ratio_increase,
                Tail::Decrease => lower >= self.params.pass_ratio_decrease,
            })
        };
        let (nc, ne) = self.n();
        if nc == 0 || ne == 0 {
            return false;
        }
        match &self.test {
            SeqTest::Count(c) => {
                c.kn().1 > 0.0 && ok(c.rate_ratio(c.theta_lower), c.rate_ratio(c.theta_upper))
            }
            SeqTest::Continuous(_) => self.quantile_reports(&[]).iter().all(|q| match q.ratio {
                Some(r) => ok(r.lower, r.upper),
                None => false,
            }),
        }
    }

    /// [`SequentialState::excludes_regression`] once the run has lasted its minimum
    /// duration (the judge has no clock: the run passes both).
    pub fn early_pass(&self, elapsed_secs: f64, min_duration_secs: f64) -> bool {
        self.monitor.crossed.is_none()
            && elapsed_secs >= min_duration_secs
            && self.excludes_regression()
    }

    fn quantile_reports(&self, sub_ln_e: &[f64]) -> Vec<QuantileReport> {
        let SeqTest::Continuous(q) = &self.test else {
            return Vec::new();
        };
        let nq = self.params.quantiles.len() as f64;
        let arm_alpha = self.params.alpha / (2.0 * nq);
        self.params
            .quantiles
            .iter()
            .map(|&p| {
                let c = quantile_bounds(&q.control, p, arm_alpha, self.params.t_opt);
                let e = quantile_bounds(&q.experiment, p, arm_alpha, self.params.t_opt);
                let e_of = |tail: Tail| {
                    q.tests
                        .iter()
                        .position(|t| t.p == p && t.tail == tail)
                        .and_then(|i| sub_ln_e.get(i))
                        .map(|v| v.exp())
                };
                let (ratio, shift) = if c.lower > 0.0 && e.lower >= 0.0 {
                    (
                        Some(Interval {
                            lower: e.lower / c.upper,
                            upper: e.upper / c.lower,
                            estimate: e.estimate / c.estimate,
                        }),
                        None,
                    )
                } else {
                    (
                        None,
                        Some(Interval {
                            lower: e.lower - c.upper,
                            upper: e.upper - c.lower,
                            estimate: e.estimate - c.estimate,
                        }),
                    )
                };
                QuantileReport {
                    p,
                    e_value_increase: e_of(Tail::Increase),
                    e_value_decrease: e_of(Tail::Decrease),
                    control: c,
                    experiment: e,
                    level: 1.0 - self.params.alpha / nq,
                    ratio,
                    shift,
                }
            })
            .collect()
    }

    /// The statistics for `resultMetadata.test`.
    pub fn report(&self) -> SequentialReport {
        let d = self.decision();
        let (nc, ne) = self.n();
        let p = &self.params;
        let mut r = SequentialReport {
            kind: "".into(),
            method: "".into(),
            metric_type: p.metric_type,
            metric_type_inferred: false,
            alternative: p.alternative,
            e_value: d.e_value,
            max_e_value: d.max_e_value,
            p_value: d.p_value,
            alpha: p.alpha,
            threshold: 1.0 / p.alpha,
            looks: d.looks,
            crossed_at_look: d.crossed_at_look,
            excludes_regression: d.excludes_regression,
            confidence_sequence: None,
            n_control: nc,
            n_experiment: ne,
            events_control: None,
            events_experiment: None,
            traffic_share: None,
            concentration: None,
            t_opt: None,
            batch_size: None,
            quantiles: Vec::new(),
            reach: self.reach.map(|r| ReachReport {
                n_control: r.n_control,
                n_experiment: r.n_experiment,
                max_e_value: r.ln_max_e.exp(),
            }),
            effect_size: f64::NAN,
            warnings: Vec::new(),
        };
        match &self.test {
            SeqTest::Count(c) => {
                r.kind = "sequential-count".into();
                r.method =
                    "beta-mixture e-process, Poisson counting processes (Lindon & Malek 2022)"
                        .into();
                r.events_control = Some(c.events_control);
                r.events_experiment = Some(c.events_experiment);
                r.traffic_share = Some(c.traffic_share);
                r.concentration = Some(c.concentration);
                r.effect_size = c.rate_ratio_estimate();
                r.confidence_sequence = Some(ConfidenceSequence {
                    parameter: "rateRatio".into(),
                    lower: c.rate_ratio(c.theta_lower),
                    upper: c.rate_ratio(c.theta_upper),
                    estimate: c.rate_ratio_estimate(),
                    level: 1.0 - c.cs_alpha,
                });
            }
            SeqTest::Continuous(q) => {
                r.kind = "sequential-quantile".into();
                r.method =
                    "two-sample quantile e-process (Howard & Ramdas 2022, Thm 5), one-sided".into();
                r.t_opt = Some(p.t_opt);
                r.batch_size = Some(q.batch_size);
                r.effect_size = self.mean_ratio();
                r.quantiles = self.quantile_reports(&q.sub_test_ln_e());
                r.confidence_sequence = r.quantiles.first().map(|qr| {
                    let (parameter, iv) = match (qr.ratio, qr.shift) {
                        (Some(iv), _) => ("quantileRatio", iv),
                        (None, Some(iv)) => ("quantileShift", iv),
                        (None, None) => unreachable!("a quantile report has a ratio or a shift"),
                    };
                    ConfidenceSequence {
                        parameter: parameter.into(),
                        lower: iv.lower,
                        upper: iv.upper,
                        estimate: iv.estimate,
                        level: qr.level,
                    }
                });
            }
        }
        r
    }
}

/// `v` with 3 significant digits, without trailing zeros (`300`, `0.00333`, `3.06`).
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `ln(mean(exp(xs)))`, stable.
pub fn ln_mean_exp(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + (xs.iter().map(|x| (x - m).exp()).sum::<f64>() / xs.len() as f64).ln()
}

/// A confidence sequence at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfidenceSequence {
    /// `rateRatio` (counts), `quantileRatio` or `quantileShift` (continuous, first quantile).
    pub parameter: std::borrow::Cow<'static, str>,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub lower: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub upper: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub estimate: f64,
    pub level: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub lower: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub upper: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub estimate: f64,
}

/// One quantile's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuantileReport {
    pub p: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e_value_increase: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e_value_decrease: Option<f64>,
    /// Each arm's quantile confidence sequence, at level `1 − α/(2·#quantiles)`.
    pub control: QuantileBounds,
    pub experiment: QuantileBounds,
    /// Level of `ratio` / `shift`.
    pub level: f64,
    /// `[canary lower / baseline upper, canary upper / baseline lower]` (positive data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Interval>,
    /// `[canary lower − baseline upper, canary upper − baseline lower]` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<Interval>,
}

/// [`Reach`] as reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReachReport {
    pub n_control: u64,
    pub n_experiment: u64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub max_e_value: f64,
}

/// `resultMetadata.test` of `coalmine-seq-v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialReport {
    /// `"sequential-count"` or `"sequential-quantile"`.
    pub kind: std::borrow::Cow<'static, str>,
    pub method: std::borrow::Cow<'static, str>,
    pub metric_type: MetricType,
    /// `true` when `metricType` was not configured and [`MetricType::infer`] chose it.
    pub metric_type_inferred: bool,
    pub alternative: Alternative,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub e_value: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub max_e_value: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub p_value: f64,
    pub alpha: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub threshold: f64,
    pub looks: u64,
    pub crossed_at_look: Option<u64>,
    pub excludes_regression: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence_sequence: Option<ConfidenceSequence>,
    pub n_control: u64,
    pub n_experiment: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_control: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_experiment: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concentration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t_opt: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantiles: Vec<QuantileReport>,
    /// The values (events) per arm projected to the end of the run and the largest e-value
    /// reachable with them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reach: Option<ReachReport>,
    /// The effect size the `effectSize` gate used: rate ratio (counts) or mean ratio.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub effect_size: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// The judge

/// Judge-wide settings from `canaryConfig.judge.judgeConfigurations`.
#[derive(Debug, Clone)]
struct JudgeSettings {
    alpha: f64,
    bonferroni: bool,
    t_opt: Option<f64>,
    concentration: f64,
    traffic_share: f64,
    quantiles: Vec<f64>,
    batch_size: f64,
    pass_margin: f64,
}

fn number_list(
    data: &Value,
    path: &[&str],
    base: &JsonPath,
) -> Result<Option<Vec<f64>>, ShapeError> {
    let p = path.iter().fold(base.clone(), |p, k| p.key(k));
    match get(data, path) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(Some(vec![n.as_f64().unwrap_or(f64::NAN)])),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64().ok_or_else(|| {
                    ShapeError::new(
                        &p.index(i),
                        format!("expected a number, found {}", describe(v)),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ShapeError::new(
            &p,
            format!("expected a list of numbers, found {}", describe(&other)),
        )),
    }
}

fn check(ok: bool, path: &JsonPath, message: String) -> Result<(), ShapeError> {
    if ok {
        Ok(())
    } else {
        Err(ShapeError::new(path, message))
    }
}

impl JudgeSettings {
    fn from_config(config: &CanaryConfig) -> Result<Self, ShapeError> {
        let empty = Value::Null;
        let data = config
            .raw
            .get("judge")
            .and_then(|j| j.get("judgeConfigurations"))
            .unwrap_or(&empty);
        let base = JsonPath::root()
            .key("canaryConfig")
            .key("judge")
            .key("judgeConfigurations");
        let r = Reader {
            data,
            base_path: base.clone(),
        };
        let alpha = r.f64(&["alpha"], 0.01)?;
        check(
            alpha > 0.0 && alpha < 1.0,
            &base.key("alpha"),
            format!("alpha must be in (0, 1), got {alpha}"),
        )?;
        let multiplicity = r.string(&["multiplicity"], "bonferroni");
        check(
            matches!(multiplicity.as_str(), "bonferroni" | "none"),
            &base.key("multiplicity"),
            format!("multiplicity must be \"bonferroni\" or \"none\", got {multiplicity:?}"),
        )?;
        // Traffic share: explicit, else instance counts, else an even split.
        let share = match r.opt_f64(&["trafficShare"])? {
            Some(s) => s,
            None => {
                let canary = r.opt_f64(&["canaryInstances"])?;
                let baseline = r.opt_f64(&["baselineInstances"])?;
                match (canary, baseline) {
                    (Some(c), Some(b)) => {
                        check(
                            c > 0.0 && b > 0.0,
                            &base.key("canaryInstances"),
                            format!(
                                "instance counts must be positive, got canary {c}, baseline {b}"
                            ),
                        )?;
                        c / (c + b)
                    }
                    _ => 0.5,
                }
            }
        };
        Ok(JudgeSettings {
            alpha,
            bonferroni: multiplicity == "bonferroni",
            t_opt: r.opt_f64(&["tOpt"])?,
            concentration: r.f64(&["concentration"], 100.0)?,
            traffic_share: share,
            quantiles: number_list(data, &["quantiles"], &base)?.unwrap_or_else(|| vec![0.5]),
            batch_size: r.f64(&["batchSize"], 1.0)?,
            pass_margin: r.f64(&["passMargin"], 0.1)?,
        })
    }
}

/// A metric's resolved settings.
#[derive(Debug, Clone)]
struct MetricSettings {
    nan_strategy: NanStrategy,
    critical: bool,
    must_have_data: bool,
    muted: bool,
    /// `(allowedDecrease, allowedIncrease)`, `(criticalDecrease, criticalIncrease)`.
    allowed: (f64, f64),
    critical_thresholds: (f64, f64),
    metric_type: Option<MetricType>,
    /// `tOpt` as configured (judge-wide or per metric); `None`: from the horizon.
    t_opt: Option<f64>,
    params: SequentialParams,
    warnings: Vec<String>,
}

impl MetricSettings {
    /// The series as the summaries see it: NaNs removed, or replaced by 0.
    fn clean(&self, s: &[f64]) -> Vec<f64> {
        match self.nan_strategy {
            NanStrategy::Remove => remove_nans(s),
            NanStrategy::Replace => replace_nans(s, 0.0),
        }
    }

    /// The parameters of `pair`'s state at per-metric level `alpha`: the configured metric
    /// type, or the one inferred from the pair's values; `tOpt` as configured, or the values
    /// per arm the test will have seen by the end of `horizon` (the pair's values, times the
    /// run's looks when they are its first tick's), in batches.
    fn params_for(&self, pair: &MetricSetPair, alpha: f64, horizon: Horizon) -> SequentialParams {
        let mut params = self.params.clone();
        params.alpha = alpha;
        let (control, experiment) = (self.clean(&pair.control), self.clean(&pair.experiment));
        params.metric_type = self
            .metric_type
            .unwrap_or_else(|| MetricType::infer(&control, &experiment));
        params.t_opt = self.t_opt.unwrap_or_else(|| {
            let per_look = control.len().max(experiment.len()).max(1) as f64;
            let looks = match horizon {
                Horizon::Looks(n) => n.max(1) as f64,
                Horizon::Complete | Horizon::Unknown => 1.0,
            };
            (per_look * looks / params.batch_size as f64).max(1.0)
        });
        params
    }

    fn resolve(metric: &MetricConfig, js: &JudgeSettings) -> Result<Self, ShapeError> {
        let base = metric.path.key("analysisConfigurations");
        let r = Reader {
            data: &metric.analysis,
            base_path: base.clone(),
        };
        let cp = base.key("canary");
        let direction = Direction::parse(&r.string(&["canary", "direction"], "either"));
        let nan_strategy = NanStrategy::parse(&r.string(&["canary", "nanStrategy"], "none"));
        let measure =
            EffectMeasure::parse(&r.string(&["canary", "effectSize", "measure"], "meanRatio"));
        let mut warnings = Vec::new();
        if measure == EffectMeasure::Cles {
            warnings.push(
                "effectSize.measure \"cles\" is not sequential: the mean ratio gates instead"
                    .into(),
            );
        }
        if r.string(&["canary", "outliers", "strategy"], "none") == "remove" {
            warnings.push("outliers.strategy \"remove\" needs the whole sample and is ignored by coalmine-seq-v1".into());
        }
        let neutral = 1.0;
        let allowed = (
            r.f64(&["canary", "effectSize", "allowedDecrease"], neutral)?,
            r.f64(&["canary", "effectSize", "allowedIncrease"], neutral)?,
        );
        let critical_thresholds = (
            r.f64(&["canary", "effectSize", "criticalDecrease"], neutral)?,
            r.f64(&["canary", "effectSize", "criticalIncrease"], neutral)?,
        );
        let metric_type = match get(&metric.analysis, &["canary", "metricType"]) {
            None => None,
            Some(Value::String(s)) if s == "count" => Some(MetricType::Count),
            Some(Value::String(s)) if s == "continuous" => Some(MetricType::Continuous),
            Some(other) => {
                return Err(ShapeError::new(
                    &cp.key("metricType"),
                    format!(
                        "expected \"count\" or \"continuous\", found {}",
                        describe(&other)
                    ),
                ))
            }
        };
        let pass_margin = r.f64(&["canary", "passMargin"], js.pass_margin)?;
        check(
            (0.0..1.0).contains(&pass_margin),
            &cp.key("passMargin"),
            format!("passMargin must be in [0, 1), got {pass_margin}"),
        )?;
        let batch = r.f64(&["canary", "batchSize"], js.batch_size)?;
        check(
            batch >= 1.0 && batch.fract() == 0.0 && batch <= u32::MAX as f64,
            &cp.key("batchSize"),
            format!("batchSize must be a positive integer, got {batch}"),
        )?;
        let params = SequentialParams {
            metric_type: MetricType::Continuous, // set per pair
            alternative: direction.into(),
            alpha: js.alpha, // corrected per judgment
            quantiles: number_list(&metric.analysis, &["canary", "quantiles"], &base)?
                .unwrap_or_else(|| js.quantiles.clone()),
            t_opt: r.opt_f64(&["canary", "tOpt"])?.or(js.t_opt).unwrap_or(1.0),
            traffic_share: r.f64(&["canary", "trafficShare"], js.traffic_share)?,
            concentration: r.f64(&["canary", "concentration"], js.concentration)?,
            batch_size: batch as u32,
            nan_as_zero: nan_strategy == NanStrategy::Replace,
            pass_ratio_increase: if allowed.1 > 1.0 {
                allowed.1
            } else {
                1.0 + pass_margin
            },
            pass_ratio_decrease: if allowed.0 < 1.0 {
                allowed.0
            } else {
                1.0 - pass_margin
            },
        };
        params
            .validate()
            .map_err(|e| ShapeError::new(&cp, e.to_string()))?;
        Ok(MetricSettings {
            nan_strategy,
            critical: r.bool(&["canary", "critical"], false)?,
            must_have_data: r.bool(&["canary", "mustHaveData"], false)?,
            muted: r.bool(&["canary", "muted"], false)?,
            allowed,
            critical_thresholds,
            metric_type,
            t_opt: r.opt_f64(&["canary", "tOpt"])?.or(js.t_opt),
            params,
            warnings,
        })
    }
}

/// `coalmine-seq-v1` over a whole judgment (called by [`super::run_with`]).
pub fn run<P: Borrow<MetricSetPair>>(
    config: &CanaryConfig,
    pairs: &[P],
    thresholds: Thresholds,
    parallelism: Parallelism,
) -> Result<CanaryJudgeResult, JudgeError> {
    let (mut jobs, alpha_m) = resolve_jobs(config, pairs)?;
    let results = par_map(
        &mut jobs,
        threads_for(parallelism, pairs),
        |(pair, metric, ms)| {
            let mut state = replay(
                ms.params_for(pair, alpha_m, Horizon::Complete),
                &pair.control,
                &pair.experiment,
            );
            if let Ok(st) = &mut state {
                st.refresh_reach(Horizon::Complete);
            }
            analysis(pair, metric, ms, state.as_ref())
        },
    );
    Ok(super::assemble(
        JudgeKind::CoalmineSeqV1,
        config,
        results,
        thresholds,
    ))
}

/// Threads for a judgment of `pairs`: both cores from 200,000 points on (below that, the
/// spawn costs more than it saves).
fn threads_for<P: Borrow<MetricSetPair>>(parallelism: Parallelism, pairs: &[P]) -> usize {
    let points: usize = pairs
        .iter()
        .map(|p| p.borrow().control.len() + p.borrow().experiment.len())
        .sum();
    match parallelism {
        Parallelism::Auto if points >= 200_000 => {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
        _ => 1,
    }
}

/// `items.iter_mut().map(f)` on up to `threads` scoped threads, in order.
fn par_map<T: Send, R: Send>(
    items: &mut [T],
    threads: usize,
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.iter_mut().map(f).collect();
    }
    let f = &f;
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks_mut(chunk)
            .map(|c| s.spawn(move || c.iter_mut().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("judging a metric does not panic"))
            .collect()
    })
}

/// A pair to judge, its metric's config and resolved settings.
type Job<'a> = (&'a MetricSetPair, &'a MetricConfig, MetricSettings);

/// Every pair's metric config and settings, and the per-metric level (`alpha / m` over the
/// non-muted pairs under Bonferroni).
fn resolve_jobs<'a, P: Borrow<MetricSetPair>>(
    config: &'a CanaryConfig,
    pairs: &'a [P],
) -> Result<(Vec<Job<'a>>, f64), JudgeError> {
    let js = JudgeSettings::from_config(config)?;
    let list_path = JsonPath::root().key("metricSetPairList");
    let mut jobs = Vec::with_capacity(pairs.len());
    for (i, pair) in pairs.iter().map(Borrow::borrow).enumerate() {
        let metric = config
            .metric(&pair.name)
            .ok_or_else(|| JudgeError::MissingMetricConfig {
                path: list_path.index(i).key("name"),
                name: pair.name.clone(),
            })?;
        jobs.push((pair, metric, MetricSettings::resolve(metric, &js)?));
    }
    let counted = jobs.iter().filter(|j| !j.2.muted).count();
    let alpha_m = metric_alpha(js.alpha, counted, js.bonferroni);
    Ok((jobs, alpha_m))
}

/// The key of a pair's state across a run's ticks: metric name and tags.
pub fn state_key(pair: &MetricSetPair) -> String {
    format!(
        "{}\u{1f}{}",
        pair.name,
        serde_json::to_string(&pair.tags).unwrap_or_default()
    )
}

/// One tick of a run judged with `coalmine-seq-v1`: `pairs` hold only the values that
/// arrived since the previous tick. Each pair's state (created on first sight, with `tOpt`
/// from the first tick's values times the run's looks unless configured) takes them as one
/// look; the results are classified and scored from the states, so evidence accumulates over
/// the whole run instead of restarting every tick. With a known `horizon`, a metric whose
/// test cannot reach `1/α` by the end of the run says so.
pub fn judge_states(
    config: &CanaryConfig,
    pairs: &[MetricSetPair],
    states: &mut BTreeMap<String, SequentialState>,
    thresholds: Thresholds,
    horizon: Horizon,
) -> Result<CanaryJudgeResult, JudgeError> {
    let (jobs, alpha_m) = resolve_jobs(config, pairs)?;
    // Each job takes its state out of the map (created on first sight), so that the updates,
    // independent of one another, can run on both cores; the states go back afterwards.
    let mut work: Vec<(String, Result<SequentialState, StatsError>)> = jobs
        .iter()
        .map(|(pair, _, ms)| {
            let key = state_key(pair);
            let state = match states.remove(&key) {
                Some(st) => Ok(st),
                None => SequentialState::new(ms.params_for(pair, alpha_m, horizon)),
            };
            (key, state)
        })
        .collect();
    let mut items: Vec<_> = work.iter_mut().map(|(_, st)| st).zip(&jobs).collect();
    let results = par_map(
        &mut items,
        threads_for(Parallelism::Auto, pairs),
        |(state, (pair, metric, ms))| {
            let updated = match &mut **state {
                Ok(st) => st.update(&pair.control, &pair.experiment).map(|()| {
                    st.refresh_reach(horizon);
                }),
                Err(e) => Err(e.clone()),
            };
            let state = match (&**state, &updated) {
                (Ok(st), Ok(())) => Ok(st),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            analysis(pair, metric, ms, state)
        },
    );
    states.extend(
        work.into_iter()
            .filter_map(|(key, st)| Some((key, st.ok()?))),
    );
    Ok(super::assemble(
        JudgeKind::CoalmineSeqV1,
        config,
        results,
        thresholds,
    ))
}

/// Feed a pair's series into a fresh state, one control and one experiment value per look.
pub fn replay(
    params: SequentialParams,
    control: &[f64],
    experiment: &[f64],
) -> Result<SequentialState, StatsError> {
    let mut state = SequentialState::new(params)?;
    for i in 0..control.len().max(experiment.len()) {
        state.update(
            control.get(i..i + 1).unwrap_or(&[]),
            experiment.get(i..i + 1).unwrap_or(&[]),
        )?;
    }
    Ok(state)
}

/// One metric's `AnalysisResult` from its state once `pair`'s values went in (or the error
/// that stopped them).
fn analysis(
    pair: &MetricSetPair,
    metric: &MetricConfig,
    ms: &MetricSettings,
    state: Result<&SequentialState, &StatsError>,
) -> AnalysisResult {
    let mut not_judged = None;
    let (label, reason, critical, metadata) = match state {
        Err(e) => (
            Label::Error,
            Some(format!("Metric Classification Failed: {e}")),
            false,
            None,
        ),
        Ok(state) => {
            let mut report = state.report();
            report.metric_type_inferred = ms.metric_type.is_none();
            report.warnings.extend(ms.warnings.iter().cloned());
            let (label, mut reason, critical) = classify(&pair.name, state, &report, ms);
            if label == Label::Pass {
                if let Some(why) = state.unreachable() {
                    reason = Some(why.clone());
                    not_judged = Some(why);
                }
            }
            (label, reason, critical, Some((state.mean_ratio(), report)))
        }
    };
    AnalysisResult {
        name: pair.name.clone(),
        id: pair.id.clone(),
        tags: pair.tags.clone(),
        classification: label.as_str().to_string(),
        classification_reason: reason,
        groups: metric.groups.clone(),
        experiment_metadata: SeriesMetadata {
            stats: stats::summary(&ms.clean(&pair.experiment)),
        },
        control_metadata: SeriesMetadata {
            stats: stats::summary(&ms.clean(&pair.control)),
        },
        result_metadata: metadata.map(|(ratio, report)| ResultMetadata {
            ratio,
            test: Some(super::model::TestDetails::Sequential(Box::new(report))),
        }),
        critical,
        muted: ms.muted,
        not_judged,
    }
}

/// The classifier's decision procedure on the state: no data, crossing, effect-size gate,
/// critical escalation (Kayenta's `MannWhitneyClassifier` steps 1, 4 and 5).
fn classify(
    name: &str,
    state: &SequentialState,
    report: &SequentialReport,
    ms: &MetricSettings,
) -> (Label, Option<String>, bool) {
    let (nc, ne) = state.n();
    if nc == 0 || ne == 0 {
        return match ms.nan_strategy {
            NanStrategy::Remove => {
                let reason = Some(format!("Missing data for {name}"));
                if ms.must_have_data && !ms.critical {
                    (Label::NodataFailMetric, reason, false)
                } else {
                    (Label::Nodata, reason, ms.critical)
                }
            }
            NanStrategy::Replace => (Label::Pass, None, false),
        };
    }
    let effect = report.effect_size;
    let (allowed_dec, allowed_inc) = ms.allowed;
    let label = match state.monitor.crossed.map(|c| c.tail.label()) {
        Some(Label::High) if effect.is_nan() || effect >= allowed_inc => Label::High,
        Some(Label::Low) if effect.is_nan() || effect <= allowed_dec => Label::Low,
        _ => Label::Pass,
    };
    let (crit_dec, crit_inc) = ms.critical_thresholds;
    match label {
        Label::High if ms.critical && (effect.is_nan() || effect >= crit_inc) => (
            label,
            Some(format!(
                "The metric {name} was classified as High (Critical)"
            )),
            true,
        ),
        Label::Low if ms.critical && (effect.is_nan() || effect <= crit_dec) => (
            label,
            Some(format!(
                "The metric {name} was classified as Low (Critical)"
            )),
            true,
        ),
        Label::High => (label, Some(format!("{name} was classified as High")), false),
        Label::Low => (label, Some(format!("{name} was classified as Low")), false),
        _ => (Label::Pass, None, false),
    }
}

/// The per-metric level a judgment with these pairs uses (for runs that build states
/// themselves): `alpha / m` over the non-muted pairs under Bonferroni.
pub fn metric_alpha(alpha: f64, non_muted_pairs: usize, bonferroni: bool) -> f64 {
    if bonferroni {
        alpha / non_muted_pairs.max(1) as f64
    } else {
        alpha
    }
}

/// The parameters `coalmine-seq-v1` would use for one metric-set pair of a judgment with
/// `config` and `pairs` (the run scheduler builds its states with this, so that a run and
/// a plain judgment agree). `metric_type` overrides inference (runs infer from their first
/// tick, or set `metricType`).
pub fn params_for(
    config: &CanaryConfig,
    pairs: &[MetricSetPair],
    pair_index: usize,
    metric_type: Option<MetricType>,
) -> Result<SequentialParams, JudgeError> {
    let (jobs, alpha_m) = resolve_jobs(config, pairs)?;
    let (pair, _, ms) = jobs.get(pair_index).ok_or_else(|| {
        JudgeError::Invalid(ShapeError::new(
            &JsonPath::root().key("metricSetPairList").index(pair_index),
            "no such metric-set pair",
        ))
    })?;
    let mut params = ms.params_for(pair, alpha_m, Horizon::Complete);
    if let Some(t) = metric_type {
        params.metric_type = t;
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
    }

    #[test]
    fn batches_of_any_size_give_the_same_e_value_as_points_one_by_one() {
        let mut u = lcg(7);
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
        let mut u = lcg(11);
        for shift in [0.0, 0.5, 2.0] {
            let mut params = SequentialParams::new(MetricType::Continuous);
            params.alternative = Alternative::Increase;
            let mut s = SequentialState::new(params).unwrap();
            let mut max_exact: f64 = 0.0;
            for _ in 0..400 {
                let (c, e) = (10.0 + 3.0 * u(), 10.0 + shift + 3.0 * u());
                s.update(&[c], &[e]).unwrap();
                max_exact = max_exact.max(s.e_value().ln());
                assert!(
                    (s.monitor.ln_max_e - max_exact).abs() < 1e-9,
                    "shift {shift}"
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
