//! One metric's sequential test: its parameters, the incremental and serialisable state,
//! the e-process bookkeeping across looks, the decision, and what the test can still reach
//! by the end of its horizon.

use serde::{Deserialize, Serialize};

use super::count::CountTest;
use super::paired::PairedTest;
use super::quantile::QuantileTest;
use super::tail::HistogramTest;
use super::{Alternative, MetricType, Tail};
use crate::judge::classifier::Label;
use crate::judge::StatsError;

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
    /// Which judge's tests: `coalmine-seq-v1` (quantiles, Poisson counts) or
    /// `coalmine-seq-v2` (paired looks with warm-up batching, dispersion-scaled counts).
    #[serde(default)]
    pub version: SeqVersion,
    /// `coalmine-seq-v2`: paired looks that choose the batch size (default 30).
    #[serde(default = "default_warmup")]
    pub warmup: u32,
    /// `coalmine-seq-v2`: the looks the paired test is tuned for (the run's; 0: `tOpt`).
    #[serde(default)]
    pub horizon_looks: f64,
    /// `coalmine-seq-v2`: the quantile its tail test watches (default 0.9).
    #[serde(default = "default_tail_quantile")]
    pub tail_quantile: f64,
}

fn default_tail_quantile() -> f64 {
    0.9
}

/// The tests of a sequential state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SeqVersion {
    #[default]
    V1,
    V2,
}

impl SeqVersion {
    /// The judge whose tests these are.
    pub fn kind(self) -> crate::judge::JudgeKind {
        match self {
            SeqVersion::V1 => crate::judge::JudgeKind::CoalmineSeqV1,
            SeqVersion::V2 => crate::judge::JudgeKind::CoalmineSeqV2,
        }
    }
}

/// `warmup`'s default.
pub const DEFAULT_WARMUP: u32 = 30;

fn default_warmup() -> u32 {
    DEFAULT_WARMUP
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
            version: SeqVersion::V1,
            warmup: DEFAULT_WARMUP,
            horizon_looks: 0.0,
            tail_quantile: 0.9,
        }
    }

    /// The same with `coalmine-seq-v2`'s tests.
    pub fn v2(metric_type: MetricType) -> Self {
        SequentialParams {
            version: SeqVersion::V2,
            ..SequentialParams::new(metric_type)
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
        if !(self.tail_quantile > 0.0 && self.tail_quantile < 1.0) {
            return bad(format!(
                "tailQuantile must be in (0, 1), got {}",
                self.tail_quantile
            ));
        }
        if !(2..=10_000).contains(&self.warmup) {
            return bad(format!(
                "warmup must be 2 to 10000 looks, got {}",
                self.warmup
            ));
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
    Paired(PairedTest),
    Histogram(HistogramTest),
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
    /// `ln` of the largest e-value reachable with them (∞: nothing to project yet).
    #[serde(with = "crate::judge::json::kayenta_f64")]
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
        let test = match (params.metric_type, params.version) {
            (MetricType::Count, version) => {
                let test = CountTest::new(
                    params.traffic_share,
                    params.concentration,
                    tails,
                    params.alpha,
                );
                SeqTest::Count(if version == SeqVersion::V2 {
                    test.with_dispersion()
                } else {
                    test
                })
            }
            (MetricType::Continuous, SeqVersion::V2) => SeqTest::Paired(PairedTest::new(
                params.warmup,
                params.alpha,
                if params.horizon_looks > 0.0 {
                    params.horizon_looks
                } else {
                    params.t_opt
                },
                tails,
                params.tail_quantile,
            )),
            (MetricType::Histogram, _) => SeqTest::Histogram(HistogramTest::new(tails)),
            (MetricType::Continuous, SeqVersion::V1) => SeqTest::Continuous(QuantileTest::new(
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
            SeqTest::Histogram(h) => {
                let looks = scale(h.looks.len() as f64);
                (looks, looks)
            }
            SeqTest::Paired(p) => {
                let looks = scale(p.paired_looks as f64);
                (looks, looks)
            }
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
        if let SeqTest::Histogram(h) = &self.test {
            return h.max_ln_e(nc as f64);
        }
        if let SeqTest::Paired(p) = &self.test {
            // the t-mixture's supremum over |t| with the batches those looks make, and the
            // tail test's with every canary batch beyond every baseline one; before the
            // warm-up chose the batch sizes, batches of one look (the most there could be)
            let b = p.batch_size.unwrap_or(1) as f64;
            let bt = p.tail.as_ref().map_or(b, |t| t.batch_size as f64);
            let location = PairedTest::max_ln_e((nc as f64 / b).floor(), p.g());
            let m = ((nc as f64 / bt).floor() as u64).min(REACH_SIMULATION_CAP);
            let tail = if m == 0 {
                0.0
            } else {
                let first = self.params.alternative.tails()[0];
                let n_star = (p.horizon_looks / bt).max(1.0);
                let mut probe = QuantileTest::new(&[p.tail_quantile], &[first], n_star, p.alpha, 1);
                for i in 1..=m {
                    let (low, high) = (i as f64, (m + i) as f64 * 2.0);
                    let (c, e) = if first == Tail::Increase {
                        (low, high)
                    } else {
                        (high, low)
                    };
                    probe.insert(0, c);
                    probe.insert(1, e);
                }
                probe.ln_e_by_tail(&[first])[0].1
            };
            let w = super::paired::LOCATION_WEIGHT;
            return ln_mean_exp(&[w.ln() + location, (1.0 - w).ln() + tail]) + 2f64.ln();
        }
        // a count probe is one look; coalmine-seq-v2's events count divided by the current
        // dispersion (1 while it has too few looks to say), in the Poisson test they become
        let mut probe_params = self.params.clone();
        let mut events = nc as f64;
        if let SeqTest::Count(c) = &self.test {
            if c.dispersion.is_some() {
                let phi = c.phi();
                events /= if phi.is_finite() { phi } else { 1.0 };
                probe_params.version = SeqVersion::V1;
            }
        }
        let Ok(mut probe) = SequentialState::new(probe_params) else {
            return f64::INFINITY;
        };
        let up = self.params.alternative.tails()[0] == Tail::Increase;
        let ok = match &self.test {
            SeqTest::Count(_) => {
                if nc == 0 {
                    return f64::INFINITY; // no events yet: nothing to project
                }
                let events = [events.floor()];
                if up {
                    probe.update(&[0.0], &events)
                } else {
                    probe.update(&events, &[0.0])
                }
            }
            SeqTest::Paired(_) | SeqTest::Histogram(_) => return f64::INFINITY,
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
        let what = match (&self.test, self.params.metric_type) {
            (SeqTest::Paired(p), _) => format!(
                "{} paired looks in batches of {}{}",
                r.n_control,
                p.batch_size.unwrap_or(1),
                if p.batch_size.is_none() {
                    " or more (warm-up)"
                } else {
                    ""
                }
            ),
            (_, MetricType::Count) => format!("{} events in all", r.n_control),
            (_, MetricType::Histogram) => format!("{} looks with slow requests", r.n_control),
            (_, MetricType::Continuous) if r.n_control == r.n_experiment => {
                format!("{} values per arm", r.n_control)
            }
            (_, MetricType::Continuous) => {
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
        if let SeqTest::Histogram(h) = &self.test {
            return h.effect().1; // the quantile ratio from the buckets
        }
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
        if let SeqTest::Histogram(_) = self.test {
            if new_control.iter().chain(new_experiment).all(|x| x.is_nan()) {
                self.look(); // a tick without data for the histogram
                return Ok(());
            }
            return Err(StatsError::InvalidArgument(
                "a histogram metric takes bucket counts, not values (update_histogram)".into(),
            ));
        }
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
        let mut look_sums = [0.0; 2];
        for (arm, values) in [new_control, new_experiment].into_iter().enumerate() {
            let mut sum = 0.0;
            let mut n = 0u64;
            for x in values.iter().filter_map(|&x| clean(x)) {
                sum += x;
                n += 1;
                match &mut self.test {
                    SeqTest::Count(_) | SeqTest::Histogram(_) => {}
                    SeqTest::Continuous(q) => q.insert(arm, x),
                    SeqTest::Paired(p) => p.insert(arm, x),
                }
            }
            self.sums[arm].sum += sum;
            self.sums[arm].n += n;
            look_sums[arm] = sum;
        }
        match &mut self.test {
            SeqTest::Count(c) => c.add(look_sums[0], look_sums[1]),
            SeqTest::Paired(p) => p.end_look(),
            SeqTest::Continuous(_) | SeqTest::Histogram(_) => {}
        }
        self.look();
        Ok(())
    }

    /// A histogram metric's look: the intervals of `buckets` both arms measured, in time
    /// order ([`super::tail`]). Requests count as the arms' values.
    pub fn update_histogram(
        &mut self,
        buckets: &crate::judge::histogram::Buckets,
    ) -> Result<(), StatsError> {
        if !matches!(self.test, SeqTest::Histogram(_)) {
            return Err(StatsError::InvalidArgument(
                "bucket counts for a metric that is not a histogram".into(),
            ));
        }
        if let Some(problem) = &buckets.problem {
            return Err(StatsError::NotEnoughData(problem.clone()));
        }
        self.look_at_intervals(&buckets.bounds, buckets.quantile, &buckets.strata)
    }

    /// [`SequentialState::update_histogram`] once the buckets are known to be judgeable:
    /// `strata` are the look's intervals, each arm's cumulative counts per bound.
    pub(super) fn look_at_intervals(
        &mut self,
        bounds: &[f64],
        quantile: f64,
        strata: &[[Vec<f64>; 2]],
    ) -> Result<(), StatsError> {
        let SeqTest::Histogram(h) = &mut self.test else {
            return Err(StatsError::InvalidArgument(
                "bucket counts for a metric that is not a histogram".into(),
            ));
        };
        h.add(bounds, quantile, strata)?;
        for s in strata {
            for (arm, counts) in s.iter().enumerate() {
                let requests = counts.last().copied().unwrap_or(0.0);
                self.sums[arm].n += requests.round() as u64;
                self.sums[arm].sum += requests;
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
            SeqTest::Paired(p) => p.ln_e_upper_by_tail(),
            SeqTest::Histogram(h) => h.ln_e_by_tail(),
        };
        if ln_mean_exp(&upper.iter().map(|x| x.1).collect::<Vec<_>>()) <= self.monitor.ln_max_e {
            return; // E_t ≤ max_{s<t} E_s: neither the maximum nor the crossing can change
        }
        self.monitor.exact_looks += 1;
        let exact = match &mut self.test {
            SeqTest::Count(c) => c.ln_e_by_tail(),
            SeqTest::Continuous(q) => q.ln_e_by_tail_refresh(tails),
            SeqTest::Paired(p) => p.ln_e_by_tail_refresh(),
            SeqTest::Histogram(h) => h.ln_e_by_tail(),
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
            SeqTest::Paired(p) => p.ln_e_by_tail(),
            SeqTest::Histogram(h) => h.ln_e_by_tail(),
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
            // no confidence sequence for the quantile ratio: no early pass
            SeqTest::Histogram(_) => false,
            SeqTest::Paired(_) => self
                .paired_ratio_cs()
                .is_some_and(|(lower, _, upper)| ok(lower, upper)),
        }
    }

    /// The paired test's confidence sequence as a canary/baseline ratio `(lower, estimate,
    /// upper)` at level `1 − α`: `exp` of the mean log-ratio's bounds, or `1 + difference /
    /// baseline mean` on the difference scale.
    pub fn paired_ratio_cs(&self) -> Option<(f64, f64, f64)> {
        let SeqTest::Paired(p) = &self.test else {
            return None;
        };
        let (lo, est, hi) = p.confidence_sequence(self.params.alpha)?;
        match p.scale? {
            super::paired::PairedScale::LogRatio => Some((lo.exp(), est.exp(), hi.exp())),
            super::paired::PairedScale::Difference => {
                let base = self.sums[0].sum / self.sums[0].n as f64;
                (base > 0.0).then(|| (1.0 + lo / base, 1.0 + est / base, 1.0 + hi / base))
            }
        }
    }

    /// [`SequentialState::excludes_regression`] once the run has lasted its minimum
    /// duration (the judge has no clock: the run passes both).
    pub fn early_pass(&self, elapsed_secs: f64, min_duration_secs: f64) -> bool {
        self.monitor.crossed.is_none()
            && elapsed_secs >= min_duration_secs
            && self.excludes_regression()
    }
}
/// `v` with 3 significant digits, without trailing zeros (`300`, `0.00333`, `3.06`).
pub(super) fn significant(v: f64) -> String {
    crate::judge::stats::significant(v, 3)
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
