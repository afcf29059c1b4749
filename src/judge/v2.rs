//! `coalmine-v2`: a fixed-horizon judge whose verdicts hold on real metric series.
//!
//! Per metric (after Kayenta's NaN and outlier handling):
//! * **Location**, corrected for serial dependence. Unpaired: the Wilcoxon rank statistic
//!   (difference of mean pooled ranks) with the long-run variance of each arm's ranks in place
//!   of the i.i.d. variance, a Welch t reference with effective sample sizes (in the spirit of
//!   Dehling, Fried & Wendler, Biometrika 2020). Paired, when both arms were sampled at the same
//!   instants: the mean of the log-ratio (or difference) series with its long-run variance, so
//!   load shared by both arms cancels.
//! * **Spread** (directions `increase`/`decrease` only): a Levene-type test on the squared
//!   deviations from the pooled median (log scale for positive data), long-run variance
//!   again, one-sided: variance-only and heavy-tail regressions that leave the median alone.
//!   Its effect gate is a quantile ratio (`tailQuantile`, default 0.95).
//! * **Counts** (`metricType: "count"`, or inferred): the rate ratio against the traffic
//!   share, conditional binomial on the totals (exact when counts are Poisson-like), with the
//!   totals scaled down by the estimated long-run dispersion when the counts are bursty.
//!
//! A metric's p-value is the Bonferroni-adjusted smallest p-value among its tests whose
//! effect exceeds the allowed effect. Across metrics, Holm's step-down procedure (or
//! Bonferroni, or none) keeps the canary's false-alarm rate at `1 − confidence`. A metric is
//! `High`/`Low` only when its test rejects at that level; one whose data cannot reach the
//! level is inconclusive (`Nodata`, with the reason and `inconclusive: true`).

use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ContinuousCDF, StudentsT};

use super::classifier::{Direction, Label};
use super::effect::mean_ratio;
use super::json::{JsonPath, ShapeError};
use super::lookup::{check, Reader};
use super::lrv::{long_run, pooled_long_run, LongRun};
use super::model::{
    AnalysisResult, CanaryConfig, MetricConfig, MetricSetPair, PairTimes, ResultMetadata,
    SeriesMetadata, TestDetails,
};
use super::sequential::MetricType;
use super::stats::{self, average_ranks, percentile_sorted};
use super::{Parallelism, Thresholds};
use crate::judge::{CanaryJudgeResult, JudgeError, JudgeKind};
use std::borrow::Borrow;

/// How the canary-level false-alarm rate is controlled across metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Multiplicity {
    /// Holm's step-down: as strict as Bonferroni for the first rejection, less after.
    Holm,
    Bonferroni,
    /// Each metric at the full level (the canary's false-alarm rate grows with its metrics).
    None,
}

/// Judge-wide settings (`judge.judgeConfigurations`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The canary's false-alarm rate: `1 − confidence`.
    pub alpha: f64,
    pub multiplicity: Multiplicity,
    /// The canary's share of the traffic (count metrics).
    pub traffic_share: f64,
    /// The quantile the spread test's effect gate compares (upper for `increase`).
    pub tail_quantile: f64,
    /// Below this many effective values on either side, a metric is inconclusive.
    pub min_effective_n: f64,
    /// Whether arms sampled at the same instants are compared pairwise.
    pub pairing: bool,
}

impl Settings {
    pub fn from_config(config: &CanaryConfig) -> Result<Self, ShapeError> {
        let r = config.judge_configurations();
        let base = r.base_path.clone();
        let confidence = r.f64(&["confidence"], 0.95)?;
        check(
            confidence > 0.0 && confidence < 1.0,
            &base.key("confidence"),
            format!("confidence must be in (0, 1), got {confidence}"),
        )?;
        let multiplicity = match r.string(&["multiplicity"], "holm").as_str() {
            "holm" => Multiplicity::Holm,
            "bonferroni" => Multiplicity::Bonferroni,
            "none" => Multiplicity::None,
            other => {
                return Err(ShapeError::new(
                    &base.key("multiplicity"),
                    format!(
                        "multiplicity must be \"holm\", \"bonferroni\" or \"none\", got {other:?}"
                    ),
                ))
            }
        };
        let traffic_share = r.traffic_share()?;
        let tail_quantile = r.f64(&["tailQuantile"], 0.95)?;
        check(
            tail_quantile > 0.5 && tail_quantile < 1.0,
            &base.key("tailQuantile"),
            format!("tailQuantile must be in (0.5, 1), got {tail_quantile}"),
        )?;
        let min_effective_n = r.f64(&["minEffectiveN"], 2.0)?;
        check(
            (2.0..=1e9).contains(&min_effective_n),
            &base.key("minEffectiveN"),
            format!("minEffectiveN must be at least 2, got {min_effective_n}"),
        )?;
        let pairing = match r.string(&["pairing"], "auto").as_str() {
            "auto" => true,
            "off" => false,
            other => {
                return Err(ShapeError::new(
                    &base.key("pairing"),
                    format!("pairing must be \"auto\" or \"off\", got {other:?}"),
                ))
            }
        };
        Ok(Settings {
            // 1 − 0.95 is 0.050000000000000044 in binary; the level as the user wrote it
            alpha: level_alpha(confidence),
            multiplicity,
            traffic_share,
            tail_quantile,
            min_effective_n,
            pairing,
        })
    }
}

/// The effect a gate compares: canary over baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Measure {
    Mean,
    /// Kayenta's common-language effect size `P(canary > baseline)`, neutral at 0.5.
    Cles,
    Median,
    Quantile(f64),
}

impl Measure {
    fn parse(s: &str, path: &JsonPath) -> Result<Self, ShapeError> {
        match s {
            // Kayenta's name for the mean ratio
            "meanRatio" | "mean" => Ok(Measure::Mean),
            "median" => Ok(Measure::Median),
            "cles" => Ok(Measure::Cles),
            _ => match s.strip_prefix("quantile:").map(str::parse::<f64>) {
                Some(Ok(q)) if q > 0.0 && q < 1.0 => Ok(Measure::Quantile(q)),
                _ => Err(ShapeError::new(
                    path,
                    format!("effectSize.measure for coalmine-v2 must be \"mean\", \"median\" or \"quantile:q\" with q in (0, 1), got {s:?}"),
                )),
            },
        }
    }

    /// The value of no effect (the default allowed effect).
    fn neutral(self) -> f64 {
        if self == Measure::Cles {
            0.5
        } else {
            1.0
        }
    }

    fn name(self) -> String {
        match self {
            Measure::Mean => "mean".into(),
            Measure::Cles => "cles".into(),
            Measure::Median => "median".into(),
            Measure::Quantile(q) => format!("quantile:{q}"),
        }
    }

    /// The measure of `experiment` over that of `control` (NaN when the control's is 0).
    fn ratio(self, control: &[f64], experiment: &[f64]) -> f64 {
        match self {
            Measure::Mean => mean_ratio(control, experiment),
            Measure::Cles => super::effect::cles(control, experiment),
            Measure::Median => quantile(experiment, 0.5) / quantile(control, 0.5),
            Measure::Quantile(q) => quantile(experiment, q) / quantile(control, q),
        }
    }
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut s = values.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    percentile_sorted(&s, q * 100.0)
}

/// A metric's settings (`analysisConfigurations.canary`).
#[derive(Debug, Clone)]
pub struct MetricSettings {
    basics: super::CanaryBasics,
    metric_type: Option<MetricType>,
    measure: Measure,
    /// (decrease, increase) allowed effects, as ratios.
    allowed: (f64, f64),
    critical_allowed: (f64, f64),
    /// A level of its own: tested at `1 − confidence`, outside the canary's family.
    own_alpha: Option<f64>,
}

impl MetricSettings {
    pub fn resolve(metric: &MetricConfig) -> Result<Self, ShapeError> {
        let r = Reader {
            data: &metric.analysis,
            base_path: metric.path.key("analysisConfigurations"),
        };
        let canary = r.base_path.key("canary");
        let measure = Measure::parse(
            &r.string(&["canary", "effectSize", "measure"], "mean"),
            &canary.key("effectSize").key("measure"),
        )?;
        let own_alpha = match r.opt_f64(&["canary", "confidence"])? {
            Some(c) => {
                check(
                    c > 0.0 && c < 1.0,
                    &canary.key("confidence"),
                    format!("confidence must be in (0, 1), got {c}"),
                )?;
                Some(level_alpha(c))
            }
            None => None,
        };
        let metric_type = match r.string(&["canary", "metricType"], "auto").as_str() {
            "auto" => None,
            "count" => Some(MetricType::Count),
            "continuous" => Some(MetricType::Continuous),
            // the judge folds its `le` series into one pair with buckets (`histogram`)
            "histogram" => None,
            other => {
                return Err(ShapeError::new(
                    &canary.key("metricType"),
                    format!(
                        "metricType must be \"count\", \"continuous\", \"histogram\" or \"auto\", got {other:?}"
                    ),
                ))
            }
        };
        super::histogram::quantile_of(metric)?;
        Ok(MetricSettings {
            basics: super::CanaryBasics::read(&r)?,
            metric_type,
            measure,
            allowed: (
                r.f64(
                    &["canary", "effectSize", "allowedDecrease"],
                    measure.neutral(),
                )?,
                r.f64(
                    &["canary", "effectSize", "allowedIncrease"],
                    measure.neutral(),
                )?,
            ),
            critical_allowed: (
                r.f64(
                    &["canary", "effectSize", "criticalDecrease"],
                    measure.neutral(),
                )?,
                r.f64(
                    &["canary", "effectSize", "criticalIncrease"],
                    measure.neutral(),
                )?,
            ),
            own_alpha,
        })
    }
}

impl MetricSettings {
    /// The allowed effect as a ratio, for gates that compare ratios whatever the measure
    /// (the spread test's quantile, the rate test): the configured one unless it is CLES.
    fn ratio_allowed(&self) -> (f64, f64) {
        if self.measure == Measure::Cles {
            (1.0, 1.0)
        } else {
            self.allowed
        }
    }
}

/// One test behind a metric's classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// `"location"`, `"spread"` or `"rate"`.
    pub name: String,
    /// How: `"wilcoxon-hac"`, `"paired-log-ratio-hac"`, `"paired-difference-hac"`,
    /// `"levene-hac"`, `"conditional-binomial"` or `"quasi-binomial"`.
    pub method: String,
    /// The alternative tested: `"greater"`, `"less"` or `"two-sided"`.
    pub alternative: String,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub statistic: f64,
    /// Degrees of freedom of the t reference (none for the binomial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub df: Option<f64>,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub p_value: f64,
    /// The estimated effect, canary over baseline (a ratio; a difference for paired
    /// non-positive data).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub estimate: f64,
    /// Its interval at the metric's share of the level (`1 − α/k`), where one is computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
    /// The measure of the effect gate, its value and whether it is beyond the allowed effect.
    pub gate_measure: String,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub gate_value: f64,
    pub beyond_allowed: bool,
    /// The serial dependence the test allowed for: both arms' common long-run variance (of the
    /// paired series when paired), its lag-1 autocorrelation and the effective sample size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependence: Option<LongRun>,
    /// Instants compared pairwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<usize>,
    /// Count tests: the events, the dispersion used and the expected canary share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<f64>,
    /// Histogram tests: the bucket bound above which a request is slow (`events` are then
    /// the slow requests), all requests `[baseline, canary]`, and each arm's quantile from
    /// its pooled buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantiles: Option<[f64; 2]>,
    /// Histogram tests: the bounds whose exceedances score a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scored: Option<Vec<f64>>,
}

/// `resultMetadata.test` of `coalmine-v2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V2Report {
    /// `"coalmine-v2"`.
    pub kind: String,
    /// `"holm"`, `"bonferroni"`, `"none"`, or `"own"` for a metric with its own confidence.
    pub multiplicity: String,
    /// The canary's false-alarm rate the decision keeps.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub family_alpha: f64,
    /// The metric's p-value (Bonferroni over its gated tests) and after the family correction.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub p_value: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub adjusted_p_value: f64,
    /// `"paired"`, `"unpaired"`, `"counts"` or `"histogram"`.
    pub pairing: String,
    pub tests: Vec<TestResult>,
}

/// What the tests of one metric found, before the family correction.
struct Evaluated {
    /// Decided before any test: `(label, reason, critical)`.
    early: Option<(Label, Option<String>, bool)>,
    inconclusive: Option<String>,
    tests: Vec<TestResult>,
    /// Metric p-value and the label a rejection gives.
    p_value: f64,
    label_if_rejected: Label,
    pairing: &'static str,
    effect: f64,
}

impl Evaluated {
    /// Nothing found yet.
    fn new(pairing: &'static str) -> Self {
        Evaluated {
            early: None,
            inconclusive: None,
            tests: Vec::new(),
            p_value: 1.0,
            label_if_rejected: Label::Pass,
            pairing,
            effect: f64::NAN,
        }
    }

    /// Decided before any test: an arm without data, as the metric's NaN settings say.
    fn missing_data(mut self, pair: &MetricSetPair, s: &MetricSettings) -> Self {
        self.early = Some(super::classifier::missing_data(
            &pair.name,
            s.basics.nan_strategy,
            s.basics.must_have_data,
            s.basics.critical,
        ));
        self
    }
}

fn t_cdf(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    if t == f64::INFINITY {
        return 1.0;
    }
    if t == f64::NEG_INFINITY {
        return 0.0;
    }
    StudentsT::new(0.0, 1.0, df.max(1.0))
        .map(|d| d.cdf(t))
        .unwrap_or(f64::NAN)
}

fn t_quantile(p: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df.max(1.0))
        .map(|d| d.inverse_cdf(p))
        .unwrap_or(f64::NAN)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alt {
    Greater,
    Less,
    TwoSided,
}

impl Alt {
    fn of(d: Direction) -> Self {
        match d {
            Direction::Increase => Alt::Greater,
            Direction::Decrease => Alt::Less,
            Direction::Either => Alt::TwoSided,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Alt::Greater => "greater",
            Alt::Less => "less",
            Alt::TwoSided => "two-sided",
        }
    }
    fn p(self, t: f64, df: f64) -> f64 {
        match self {
            // the upper tail as the lower tail of −t: no cancellation for tiny p-values
            Alt::Greater => t_cdf(-t, df),
            Alt::Less => t_cdf(t, df),
            Alt::TwoSided => (2.0 * t_cdf(-t.abs(), df)).min(1.0),
        }
    }
}

/// A two-sample mean comparison with the arms' common long-run variance ([`pooled_long_run`]):
/// `(t, df, dependence)`, the t reference with the effective sample size less the two means.
/// A zero standard error (both arms constant) falls back to the pooled i.i.d. variance.
fn two_sample_hac(x: &[f64], y: &[f64]) -> (f64, f64, LongRun) {
    let lr = pooled_long_run(&[x, y]);
    let (n, m) = (x.len() as f64, y.len() as f64);
    let diff = stats::mean(y) - stats::mean(x);
    let mut se2 = lr.variance * (1.0 / n + 1.0 / m);
    let mut df = lr.effective_n - 2.0;
    if se2.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        let pooled: Vec<f64> = x.iter().chain(y).copied().collect();
        se2 = stats::variance(&pooled, true) * (1.0 / n + 1.0 / m);
        df = n + m - 2.0;
    }
    let t = if se2 > 0.0 { diff / se2.sqrt() } else { 0.0 };
    (t, df.max(1.0), lr)
}

fn all_positive(v: &[f64]) -> bool {
    v.iter().all(|&x| x > 0.0 && x.is_finite())
}

/// The share of a metric's level its location test gets when a spread test runs beside it.
const LOCATION_WEIGHT: f64 = 0.8;

/// The location test without pairing: mean pooled ranks, long-run variances.
fn location_unpaired(x: &[f64], y: &[f64], alt: Alt, level: f64, s: &MetricSettings) -> TestResult {
    let (n, m) = (x.len(), y.len());
    let mut pooled = Vec::with_capacity(n + m);
    pooled.extend_from_slice(x);
    pooled.extend_from_slice(y);
    let (ranks, _) = average_ranks(&pooled);
    let scale = (n + m) as f64;
    let u: Vec<f64> = ranks.iter().map(|r| r / scale).collect();
    let (t, df, dependence) = two_sample_hac(&u[..n], &u[n..]);
    let p = alt.p(t, df);
    // the mean ratio and its interval by the delta method with the values' long-run variance
    let (mx, my) = (stats::mean(x), stats::mean(y));
    let values = pooled_long_run(&[x, y]);
    let ratio = my / mx;
    let se_log =
        (values.variance * (1.0 / (m as f64 * my * my) + 1.0 / (n as f64 * mx * mx))).sqrt();
    let q = t_quantile(1.0 - level / 2.0, df);
    let (lower, upper) = if mx > 0.0 && my > 0.0 && se_log.is_finite() {
        (
            Some(ratio * (-q * se_log).exp()),
            Some(ratio * (q * se_log).exp()),
        )
    } else {
        (None, None)
    };
    let gate_value = s.measure.ratio(x, y);
    TestResult {
        name: "location".into(),
        method: "wilcoxon-hac".into(),
        alternative: alt.name().into(),
        statistic: t,
        df: Some(df),
        p_value: p,
        estimate: ratio,
        lower,
        upper,
        gate_measure: s.measure.name(),
        gate_value,
        beyond_allowed: beyond(gate_value, pointing(alt, t >= 0.0), s.allowed),
        dependence: Some(dependence),
        pairs: None,
        events: None,
        dispersion: None,
        bound: None,
        requests: None,
        quantiles: None,
        scored: None,
    }
}

/// The direction an effect points to under `alt`: the alternative's own, or (two-sided)
/// whether the observed effect is `upward`.
fn pointing(alt: Alt, upward: bool) -> Alt {
    match alt {
        Alt::TwoSided if upward => Alt::Greater,
        Alt::TwoSided => Alt::Less,
        a => a,
    }
}

/// Whether a ratio is beyond the allowed effect in direction `alt` (NaN: not established).
fn beyond(ratio: f64, alt: Alt, allowed: (f64, f64)) -> bool {
    match alt {
        Alt::Greater => ratio > allowed.1,
        Alt::Less => ratio < allowed.0,
        Alt::TwoSided => ratio > allowed.1 || ratio < allowed.0,
    }
}

/// Values at instants both arms have (NaN-free), in time order.
fn align(control: &[f64], experiment: &[f64], times: &PairTimes) -> Option<(Vec<f64>, Vec<f64>)> {
    if times.control.len() != control.len() || times.experiment.len() != experiment.len() {
        return None;
    }
    let mut c: Vec<(i64, f64)> = times
        .control
        .iter()
        .zip(control)
        .filter_map(|(t, v)| Some((((*t)?), *v)).filter(|p| p.1.is_finite()))
        .collect();
    c.sort_by_key(|p| p.0);
    let mut out = (Vec::new(), Vec::new());
    for (t, v) in times.experiment.iter().zip(experiment) {
        let (Some(t), true) = (*t, v.is_finite()) else {
            continue;
        };
        if let Ok(i) = c.binary_search_by_key(&t, |p| p.0) {
            out.0.push((t, c[i].1));
            out.1.push(*v);
        }
    }
    // pairing needs most instants of both arms to line up
    let k = out.0.len();
    let enough = k >= 10 && k * 5 >= 4 * control.len().min(experiment.len());
    if !enough {
        return None;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    idx.sort_by_key(|&i| out.0[i].0);
    Some((
        idx.iter().map(|&i| out.0[i].1).collect(),
        idx.iter().map(|&i| out.1[i]).collect(),
    ))
}

/// The paired location test: mean of the log-ratio (or difference) series with its long-run
/// variance.
fn location_paired(x: &[f64], y: &[f64], alt: Alt, level: f64, s: &MetricSettings) -> TestResult {
    let log = all_positive(x) && all_positive(y);
    let d: Vec<f64> = x
        .iter()
        .zip(y)
        .map(|(a, b)| if log { b.ln() - a.ln() } else { b - a })
        .collect();
    let ld = long_run(&d);
    let k = d.len() as f64;
    let mean = stats::mean(&d);
    let df = (ld.effective_n - 1.0).max(1.0);
    let se = (ld.variance / k).sqrt();
    let t = if se > 0.0 {
        mean / se
    } else if mean == 0.0 {
        0.0
    } else {
        mean.signum() * f64::INFINITY
    };
    let p = alt.p(t, df);
    let q = t_quantile(1.0 - level / 2.0, df);
    let (estimate, lower, upper) = if log {
        (
            mean.exp(),
            Some((mean - q * se).exp()),
            Some((mean + q * se).exp()),
        )
    } else {
        (mean, Some(mean - q * se), Some(mean + q * se))
    };
    let gate_value = s.measure.ratio(x, y);
    TestResult {
        name: "location".into(),
        method: if log {
            "paired-log-ratio-hac"
        } else {
            "paired-difference-hac"
        }
        .into(),
        alternative: alt.name().into(),
        statistic: t,
        df: Some(df),
        p_value: p,
        estimate,
        lower,
        upper,
        gate_measure: s.measure.name(),
        gate_value,
        beyond_allowed: beyond(gate_value, pointing(alt, t >= 0.0), s.allowed),
        dependence: Some(ld),
        pairs: Some(d.len()),
        events: None,
        dispersion: None,
        bound: None,
        requests: None,
        quantiles: None,
        scored: None,
    }
}

/// The spread test: squared deviations from the pooled median (log scale when positive),
/// one-sided towards the worse tail of `alt`.
fn spread(x: &[f64], y: &[f64], alt: Alt, tail_q: f64, s: &MetricSettings) -> TestResult {
    let log = all_positive(x) && all_positive(y);
    let tr = |v: f64| if log { v.ln() } else { v };
    let pooled: Vec<f64> = x.iter().chain(y).map(|&v| tr(v)).collect();
    let med = quantile(&pooled, 0.5);
    let dx: Vec<f64> = x.iter().map(|&v| (tr(v) - med).powi(2)).collect();
    let dy: Vec<f64> = y.iter().map(|&v| (tr(v) - med).powi(2)).collect();
    let (t, df, dependence) = two_sample_hac(&dx, &dy);
    // more spread is worse in either direction
    let p = Alt::Greater.p(t, df);
    let q = if alt == Alt::Less {
        1.0 - tail_q
    } else {
        tail_q
    };
    let gate = Measure::Quantile(q);
    let gate_value = gate.ratio(x, y);
    TestResult {
        name: "spread".into(),
        method: "levene-hac".into(),
        alternative: "greater".into(),
        statistic: t,
        df: Some(df),
        p_value: p,
        estimate: (stats::mean(&dy) / stats::mean(&dx)).sqrt(),
        lower: None,
        upper: None,
        gate_measure: gate.name(),
        gate_value,
        beyond_allowed: beyond(gate_value, alt, s.ratio_allowed()),
        dependence: Some(dependence),
        pairs: None,
        events: None,
        dispersion: None,
        bound: None,
        requests: None,
        quantiles: None,
        scored: None,
    }
}

/// `P(X ≥ c)` for X ~ Binomial(n, p), continuous in `c` and `n` (the regularized incomplete
/// beta function; exact at integers).
fn binom_upper(c: f64, n: f64, p: f64) -> f64 {
    if c <= 0.0 {
        1.0
    } else if c > n {
        0.0
    } else {
        statrs::function::beta::beta_reg(c, n - c + 1.0, p)
    }
}

/// The canary's expected share of all events when its rate equals the baseline's: its
/// traffic share, weighted by each arm's number of intervals.
fn expected_share(
    traffic_share: f64,
    control_intervals: usize,
    experiment_intervals: usize,
) -> f64 {
    let (n, m) = (control_intervals as f64, experiment_intervals as f64);
    traffic_share * m / (traffic_share * m + (1.0 - traffic_share) * n)
}

/// The rate test of count metrics.
fn rate(x: &[f64], y: &[f64], alt: Alt, level: f64, share: f64, s: &MetricSettings) -> TestResult {
    let (n, m) = (x.len() as f64, y.len() as f64);
    let (b, c) = (x.iter().sum::<f64>(), y.iter().sum::<f64>());
    let pi0 = expected_share(share, x.len(), y.len());
    let dependence = pooled_long_run(&[x, y]);
    let dispersion = if b + c > 0.0 {
        // the long-run variance of the counts over their mean: 1 for Poisson counts
        let d = dependence.variance / ((b + c) / (n + m));
        if d.is_finite() {
            d.max(1.0)
        } else {
            1.0
        }
    } else {
        1.0
    };
    let (cs, ns) = (c / dispersion, (b + c) / dispersion);
    let upper_p = binom_upper(cs, ns, pi0);
    let lower_p = 1.0 - binom_upper(cs + 1.0, ns, pi0).min(1.0);
    let lower_p = if cs >= ns { 1.0 } else { lower_p };
    let p = match alt {
        Alt::Greater => upper_p,
        Alt::Less => lower_p,
        Alt::TwoSided => (2.0 * upper_p.min(lower_p)).min(1.0),
    };
    // rate ratio and its Clopper–Pearson interval (on the scaled counts)
    let odds = |pi: f64| (pi / (1.0 - pi)) / (pi0 / (1.0 - pi0));
    let ratio = if b > 0.0 {
        odds(c / (b + c))
    } else if c > 0.0 {
        f64::INFINITY
    } else {
        f64::NAN
    };
    let beta_q = |a: f64, bb: f64, p: f64| {
        Beta::new(a, bb)
            .map(|d| d.inverse_cdf(p))
            .unwrap_or(f64::NAN)
    };
    let lo = if cs > 0.0 {
        odds(beta_q(cs, ns - cs + 1.0, level / 2.0))
    } else {
        0.0
    };
    let hi = if cs < ns {
        odds(beta_q(cs + 1.0, ns - cs, 1.0 - level / 2.0))
    } else {
        f64::INFINITY
    };
    TestResult {
        name: "rate".into(),
        method: if dispersion > 1.0 {
            "quasi-binomial"
        } else {
            "conditional-binomial"
        }
        .into(),
        alternative: alt.name().into(),
        statistic: c,
        df: None,
        p_value: p,
        estimate: ratio,
        lower: Some(lo),
        upper: Some(hi),
        gate_measure: "rate".into(),
        gate_value: ratio,
        beyond_allowed: beyond(ratio, pointing(alt, ratio >= 1.0), s.ratio_allowed()),
        dependence: Some(dependence),
        pairs: None,
        events: Some([b, c]),
        dispersion: Some(dispersion),
        bound: None,
        requests: None,
        quantiles: None,
        scored: None,
    }
}

/// The smallest p-value the rate test could give with these totals.
fn rate_min_p(t: &TestResult, share_pi0: f64) -> f64 {
    let [b, c] = t.events.unwrap_or([0.0, 0.0]);
    let ns = (b + c) / t.dispersion.unwrap_or(1.0);
    share_pi0.powf(ns).max((1.0 - share_pi0).powf(ns))
}

fn evaluate(
    pair: &MetricSetPair,
    s: &MetricSettings,
    settings: &Settings,
    level: f64,
) -> (Vec<f64>, Vec<f64>, Evaluated) {
    if let Some(buckets) = &pair.histogram {
        return evaluate_histogram(pair, buckets, s);
    }
    let x = s.basics.clean(&pair.control);
    let y = s.basics.clean(&pair.experiment);
    let mut ev = Evaluated::new("unpaired");
    if x.is_empty() || y.is_empty() {
        return (x, y, ev.missing_data(pair, s));
    }
    let first = x[0];
    if x.iter().chain(&y).all(|&v| v == first) {
        ev.early = Some((Label::Pass, None, false));
        return (x, y, ev);
    }
    let alt = Alt::of(s.basics.direction);
    let metric_type = s
        .metric_type
        .unwrap_or_else(|| MetricType::infer(&pair.control, &pair.experiment));
    if metric_type == MetricType::Count {
        ev.pairing = "counts";
        let t = rate(&x, &y, alt, level, settings.traffic_share, s);
        let min_p = rate_min_p(&t, expected_share(settings.traffic_share, x.len(), y.len()));
        if min_p > level {
            ev.inconclusive = Some(format!(
                "too few events to judge {}: {} in the baseline and {} in the canary{}; even all of them in one arm would give p = {} > {}",
                pair.name,
                fmt(t.events.unwrap_or_default()[0]),
                fmt(t.events.unwrap_or_default()[1]),
                match t.dispersion {
                    Some(d) if d > 1.0 => format!(" (bursty: dispersion {})", fmt(d)),
                    _ => String::new(),
                },
                fmt(min_p),
                fmt(level)
            ));
        }
        ev.effect = t.estimate;
        ev.p_value = if t.beyond_allowed { t.p_value } else { 1.0 };
        // NaN points up, as an estimate ≥ 1 does
        let upward = t.estimate.partial_cmp(&1.0) != Some(std::cmp::Ordering::Less);
        ev.label_if_rejected = if matches!(pointing(alt, upward), Alt::Less) {
            Label::Low
        } else {
            Label::High
        };
        ev.tests.push(t);
        return (x, y, ev);
    }
    let times = pair.times.as_ref().filter(|_| settings.pairing);
    let paired = times.and_then(|t| align(&pair.control, &pair.experiment, t));
    let location = match &paired {
        Some((px, py)) => {
            ev.pairing = "paired";
            location_paired(px, py, alt, level, s)
        }
        None => location_unpaired(&x, &y, alt, level, s),
    };
    // the effective values a side (paired: pairs)
    let too_small = location.dependence.map_or(f64::NAN, |l| {
        if location.pairs.is_some() {
            l.effective_n
        } else {
            l.effective_n / 2.0
        }
    });
    let raw_small = x.len().min(y.len());
    if raw_small < 5 || too_small < settings.min_effective_n {
        let short = if raw_small < 5 {
            "below the 5 values a side a test needs".to_string()
        } else {
            format!(
                "only {} effective values a side after the autocorrelation, below the {} a test needs (minEffectiveN)",
                fmt(too_small),
                settings.min_effective_n
            )
        };
        ev.inconclusive = Some(format!(
            "too little data to judge {}: {} values in the baseline and {} in the canary, {short}",
            pair.name,
            x.len(),
            y.len(),
        ));
    }
    ev.effect = location.gate_value;
    let loc_label = if matches!(pointing(alt, location.statistic >= 0.0), Alt::Less) {
        Label::Low
    } else {
        Label::High
    };
    ev.tests.push(location);
    if alt != Alt::TwoSided {
        ev.tests
            .push(spread(&x, &y, alt, settings.tail_quantile, s));
    }
    // weighted Bonferroni over the tests (the location test carries most of the metric's
    // level); only a test whose effect is beyond the allowed one counts
    let weights: &[f64] = if ev.tests.len() == 2 {
        &[LOCATION_WEIGHT, 1.0 - LOCATION_WEIGHT]
    } else {
        &[1.0]
    };
    let (best, _) = ev
        .tests
        .iter()
        .zip(weights)
        .enumerate()
        .filter(|(_, (t, _))| t.beyond_allowed)
        .map(|(i, (t, w))| (i, t.p_value / w))
        .fold(
            (usize::MAX, f64::INFINITY),
            |a, b| if b.1 < a.1 { b } else { a },
        );
    if best != usize::MAX {
        ev.p_value = (ev.tests[best].p_value / weights[best]).min(1.0);
        ev.label_if_rejected = if best == 0 {
            loc_label
        } else if alt == Alt::Less {
            Label::Low
        } else {
            Label::High
        };
        if best != 0 {
            ev.effect = ev.tests[best].gate_value;
        }
    }
    (x, y, ev)
}

/// A histogram metric: the stratified test of its slow requests ([`super::histogram`]).
fn evaluate_histogram(
    pair: &MetricSetPair,
    buckets: &super::histogram::Buckets,
    s: &MetricSettings,
) -> (Vec<f64>, Vec<f64>, Evaluated) {
    let finite = |v: &[f64]| {
        v.iter()
            .copied()
            .filter(|x| !x.is_nan())
            .collect::<Vec<_>>()
    };
    let (x, y) = (finite(&pair.control), finite(&pair.experiment));
    let mut ev = Evaluated::new("histogram");
    if buckets.problem.is_none() && (buckets.intervals[0] == 0 || buckets.intervals[1] == 0) {
        return (x, y, ev.missing_data(pair, s));
    }
    let t = match super::histogram::tail_test(buckets) {
        Ok(t) => t,
        Err(why) => {
            ev.inconclusive = Some(format!(
                "cannot judge {} from its buckets: {why}",
                pair.name
            ));
            return (x, y, ev);
        }
    };
    let alt = Alt::of(s.basics.direction);
    let p = match alt {
        Alt::Greater => t.p_greater,
        Alt::Less => t.p_less,
        Alt::TwoSided => (2.0 * t.p_greater.min(t.p_less)).min(1.0),
    };
    let upward = t.z >= 0.0;
    let beyond_allowed = beyond(t.effect, pointing(alt, upward), s.ratio_allowed());
    ev.effect = t.effect;
    ev.p_value = if beyond_allowed { p } else { 1.0 };
    ev.label_if_rejected = if matches!(pointing(alt, upward), Alt::Less) {
        Label::Low
    } else {
        Label::High
    };
    ev.tests.push(TestResult {
        name: "tail".into(),
        method: if t.dispersion > 1.0 {
            "quasi-cmh"
        } else {
            "cmh"
        }
        .into(),
        alternative: alt.name().into(),
        statistic: t.z,
        df: t.df,
        p_value: p,
        estimate: t.odds_ratio,
        lower: None,
        upper: None,
        gate_measure: if t.effect_is_quantile {
            format!("quantile:{}", buckets.quantile)
        } else {
            "tail share".into()
        },
        gate_value: t.effect,
        beyond_allowed,
        dependence: None,
        pairs: Some(t.strata),
        events: Some(t.slow),
        dispersion: Some(t.dispersion),
        bound: Some(t.bound),
        requests: Some(t.requests),
        quantiles: Some(t.quantiles),
        scored: Some(t.scored),
    });
    (x, y, ev)
}

fn fmt(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// Holm's adjusted p-values (Bonferroni: `k·p`; none: `p`), in input order.
pub fn adjust(p: &[f64], how: Multiplicity) -> Vec<f64> {
    let k = p.len() as f64;
    match how {
        Multiplicity::None => p.to_vec(),
        Multiplicity::Bonferroni => p.iter().map(|v| (v * k).min(1.0)).collect(),
        Multiplicity::Holm => {
            let mut idx: Vec<usize> = (0..p.len()).collect();
            idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
            let mut out = vec![1.0; p.len()];
            let mut running: f64 = 0.0;
            for (rank, &i) in idx.iter().enumerate() {
                running = running.max(((k - rank as f64) * p[i]).min(1.0));
                out[i] = running;
            }
            out
        }
    }
}

/// Judge with `coalmine-v2`.
pub fn run<P: Borrow<MetricSetPair> + Sync>(
    config: &CanaryConfig,
    pairs: &[P],
    thresholds: Thresholds,
    parallelism: Parallelism,
) -> Result<CanaryJudgeResult, JudgeError> {
    let settings = Settings::from_config(config)?;
    let mut jobs = super::resolve_jobs(config, pairs, MetricSettings::resolve)?;
    // the level each metric's intervals and inconclusive checks use: its share of the family
    let family = jobs
        .iter()
        .filter(|(_, _, s)| !s.basics.muted && s.own_alpha.is_none())
        .count()
        .max(1) as f64;
    let share_level = match settings.multiplicity {
        Multiplicity::None => settings.alpha,
        _ => settings.alpha / family,
    };
    let evaluated = super::fan_out(&mut jobs, parallelism.parallel(pairs), |(pair, _, s)| {
        let level = s.own_alpha.unwrap_or(share_level);
        evaluate(pair, s, &settings, level)
    });
    // the family correction over judged, non-muted metrics without a level of their own
    let in_family: Vec<usize> = (0..jobs.len())
        .filter(|&i| {
            let s = &jobs[i].2;
            let e = &evaluated[i].2;
            !s.basics.muted
                && s.own_alpha.is_none()
                && e.early.is_none()
                && e.inconclusive.is_none()
        })
        .collect();
    let p: Vec<f64> = in_family.iter().map(|&i| evaluated[i].2.p_value).collect();
    let adjusted = adjust(&p, settings.multiplicity);
    let mut adjusted_of = vec![f64::NAN; jobs.len()];
    for (j, &i) in in_family.iter().enumerate() {
        adjusted_of[i] = adjusted[j];
    }
    let results = jobs
        .iter()
        .zip(evaluated)
        .enumerate()
        .map(|(i, ((pair, metric, s), (x, y, ev)))| {
            let (adj, alpha, multiplicity) = match s.own_alpha {
                Some(a) => (ev.p_value, a, "own".to_string()),
                None if s.basics.muted => (
                    adjust(&[ev.p_value], Multiplicity::None)[0] * family,
                    settings.alpha,
                    format!("{:?}", settings.multiplicity).to_lowercase(),
                ),
                None => (
                    adjusted_of[i],
                    settings.alpha,
                    format!("{:?}", settings.multiplicity).to_lowercase(),
                ),
            };
            assemble_metric(
                pair,
                metric,
                s,
                &x,
                &y,
                ev,
                adj.min(1.0),
                alpha,
                multiplicity,
            )
        })
        .collect();
    Ok(super::assemble(
        JudgeKind::CoalmineV2,
        config,
        pairs,
        results,
        thresholds,
    ))
}

#[allow(clippy::too_many_arguments)]
fn assemble_metric(
    pair: &MetricSetPair,
    metric: &MetricConfig,
    s: &MetricSettings,
    x: &[f64],
    y: &[f64],
    ev: Evaluated,
    adjusted: f64,
    alpha: f64,
    multiplicity: String,
) -> AnalysisResult {
    let mut critical = false;
    let mut inconclusive = false;
    let mut not_judged = None;
    let (label, reason) = if let Some((label, reason, early_critical)) = ev.early.clone() {
        critical = early_critical;
        (label, reason)
    } else if let Some(why) = ev.inconclusive.clone() {
        inconclusive = true;
        not_judged = Some(why.clone());
        (Label::Nodata, Some(format!("Inconclusive: {why}")))
    } else if adjusted <= alpha {
        let label = ev.label_if_rejected;
        let (crit_dec, crit_inc) = s.critical_allowed;
        let e = ev.effect;
        if s.basics.critical
            && ((label == Label::High && (e.is_nan() || e >= crit_inc))
                || (label == Label::Low && (e.is_nan() || e <= crit_dec)))
        {
            critical = true;
            (
                label,
                Some(format!(
                    "The metric {} was classified as {} (Critical)",
                    pair.name,
                    label.as_str()
                )),
            )
        } else {
            let decided = ev
                .tests
                .iter()
                .filter(|t| t.beyond_allowed)
                .min_by(|a, b| a.p_value.total_cmp(&b.p_value));
            let why = decided
                .map(|t| {
                    format!(
                        "{} test ({}): p = {:.3e}, adjusted {:.3e} ≤ α = {}; {} {}",
                        t.name,
                        t.method,
                        t.p_value,
                        adjusted,
                        alpha,
                        t.gate_measure,
                        fmt(t.gate_value)
                    )
                })
                .unwrap_or_default();
            (
                label,
                Some(format!(
                    "The canary's {} is {} than the baseline's: {why}",
                    pair.name,
                    if label == Label::High {
                        "higher"
                    } else {
                        "lower"
                    }
                )),
            )
        }
    } else {
        let why = if ev.tests.iter().any(|t| t.beyond_allowed) {
            format!(
                "not significant at the canary's level: adjusted p = {:.3} > α = {}",
                adjusted, alpha
            )
        } else {
            "no change beyond the allowed effect".to_string()
        };
        (Label::Pass, Some(why))
    };
    let ratio = if ev.effect.is_nan() { 1.0 } else { ev.effect };
    let test = (!ev.tests.is_empty()).then(|| {
        TestDetails::V2(Box::new(V2Report {
            kind: "coalmine-v2".into(),
            multiplicity,
            family_alpha: alpha,
            p_value: ev.p_value,
            adjusted_p_value: adjusted,
            pairing: ev.pairing.into(),
            tests: ev.tests,
        }))
    });
    AnalysisResult {
        name: pair.name.clone(),
        id: pair.id.clone(),
        tags: pair.tags.clone(),
        classification: label.as_str().to_string(),
        classification_reason: reason,
        groups: metric.groups.clone(),
        experiment_metadata: SeriesMetadata {
            stats: stats::summary(y),
        },
        control_metadata: SeriesMetadata {
            stats: stats::summary(x),
        },
        result_metadata: Some(ResultMetadata { ratio, test }),
        critical,
        muted: s.basics.muted,
        not_judged,
        inconclusive,
        slo: None,
        error_budget: None,
    }
}

/// Check a config's `coalmine-v2` settings without judging.
pub fn check_settings(config: &CanaryConfig) -> Result<(), JudgeError> {
    Settings::from_config(config)?;
    for metric in &config.metrics {
        MetricSettings::resolve(metric)?;
    }
    Ok(())
}

/// `1 − confidence` as the user wrote it (`1 − 0.95` is 0.050000000000000044 in binary,
/// which reasons and JSON would show).
fn level_alpha(confidence: f64) -> f64 {
    ((1.0 - confidence) * 1e12).round() / 1e12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_matches_r_p_adjust() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.03 0.06 0.06 0.02
        let a = adjust(&[0.01, 0.04, 0.03, 0.005], Multiplicity::Holm);
        let want = [0.03, 0.06, 0.06, 0.02];
        for (g, w) in a.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{a:?}");
        }
    }

    #[test]
    fn binomial_tail_is_exact_at_integers() {
        // R: binom.test(8, 10, 0.5, alternative = "greater")$p.value = 0.0546875
        assert!((binom_upper(8.0, 10.0, 0.5) - 0.0546875).abs() < 1e-12);
    }
}
