//! Metric classification: Kayenta's `MannWhitneyClassifier` decision procedure
//! (`judge/classifiers/metric/MannWhitneyClassifier.scala`), with the interval computed
//! either by Kayenta's root finder (`NetflixACAJudge-v1.0`) or by the exact R-semantics
//! Mann–Whitney (`coalmine-v1`).

use serde::Serialize;

use super::effect::{mean_ratio, EffectMeasure};
use super::kayenta_mw::{mann_whitney_kayenta, mann_whitney_kayenta_sorted};
use super::mann_whitney::{mann_whitney, MannWhitney, Method};
use super::transform::{add_gaussian_noise, seed_from, JavaRandom};
use super::StatsError;
use std::borrow::Cow;

/// Which change of a metric counts against the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Increase,
    Decrease,
    Either,
}

impl Direction {
    /// Kayenta: `"increase"`, `"decrease"`, anything else is `Either` (case-sensitive).
    pub fn parse(s: &str) -> Self {
        match s {
            "increase" => Direction::Increase,
            "decrease" => Direction::Decrease,
            _ => Direction::Either,
        }
    }

    fn allows_high(self) -> bool {
        matches!(self, Direction::Increase | Direction::Either)
    }

    fn allows_low(self) -> bool {
        matches!(self, Direction::Decrease | Direction::Either)
    }
}

/// What to do with NaN values (`nanStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NanStrategy {
    Remove,
    Replace,
}

impl NanStrategy {
    /// Kayenta: `"replace"` replaces, anything else (the default `"none"` included) removes.
    pub fn parse(s: &str) -> Self {
        if s == "replace" {
            NanStrategy::Replace
        } else {
            NanStrategy::Remove
        }
    }
}

/// A metric's classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub enum Label {
    Pass,
    High,
    Low,
    Nodata,
    NodataFailMetric,
    Error,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Pass => "Pass",
            Label::High => "High",
            Label::Low => "Low",
            Label::Nodata => "Nodata",
            Label::NodataFailMetric => "NodataFailMetric",
            Label::Error => "Error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Pass" => Label::Pass,
            "High" => Label::High,
            "Low" => Label::Low,
            "Nodata" => Label::Nodata,
            "NodataFailMetric" => Label::NodataFailMetric,
            "Error" => Label::Error,
            _ => return None,
        })
    }
}

/// How the confidence interval of the shift is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IntervalMethod {
    /// Kayenta's asymptotic interval solved by Brent with tolerance 1e-4; Gaussian noise on
    /// constant series (seeded from the data).
    Kayenta,
    /// [`mann_whitney`] with R `wilcox.test` semantics (exact distribution for small samples
    /// without ties, exact interval endpoints, continuity correction).
    Exact { exact: Option<bool>, correct: bool },
}

/// The classifier's parameters (`MannWhitneyClassifier` constructor arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassifierParams {
    /// Half-width of the "no change" band, as a fraction of `|estimate|`.
    pub tolerance: f64,
    pub confidence: f64,
    /// `(allowedDecrease, allowedIncrease)`.
    pub effect_thresholds: (f64, f64),
    /// `(criticalDecrease, criticalIncrease)`.
    pub critical_thresholds: (f64, f64),
    pub measure: EffectMeasure,
    pub interval: IntervalMethod,
}

impl ClassifierParams {
    /// The class defaults Kayenta's unit tests use (tolerance 0.25, confidence 0.95).
    pub fn kayenta_class_defaults() -> Self {
        ClassifierParams {
            tolerance: 0.25,
            confidence: 0.95,
            effect_thresholds: (1.0, 1.0),
            critical_thresholds: (1.0, 1.0),
            measure: EffectMeasure::MeanRatio,
            interval: IntervalMethod::Kayenta,
        }
    }
}

/// The statistics behind a classification (absent on early exits).
#[derive(Debug, Clone, PartialEq)]
pub enum TestDetail {
    Kayenta {
        lower: f64,
        upper: f64,
        estimate: f64,
    },
    MannWhitney(MannWhitney),
}

impl TestDetail {
    pub fn interval(&self) -> (f64, f64, f64) {
        match self {
            TestDetail::Kayenta {
                lower,
                upper,
                estimate,
            } => (*lower, *upper, *estimate),
            TestDetail::MannWhitney(mw) => (mw.lower, mw.upper, mw.estimate),
        }
    }
}

/// Outcome of [`classify`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricClassification {
    pub label: Label,
    pub reason: Option<String>,
    /// Kayenta's `deviation`: the mean ratio (reported as `resultMetadata.ratio`).
    pub deviation: f64,
    pub critical: bool,
    /// The effect size that gated the decision (meanRatio or CLES).
    pub effect_size: Option<f64>,
    /// The interval bound `tolerance · |estimate|` the CI was compared against.
    pub bound: Option<f64>,
    pub test: Option<TestDetail>,
    /// Why the metric could not be judged at the configured level (coalmine judges): it is
    /// then `Pass`, with this as its reason, whatever the interval says.
    pub not_judged: Option<String>,
}

impl MetricClassification {
    fn early(label: Label, reason: Option<String>, deviation: f64, critical: bool) -> Self {
        MetricClassification {
            label,
            reason,
            deviation,
            critical,
            effect_size: None,
            bound: None,
            test: None,
            not_judged: None,
        }
    }
}

/// Inputs of one classification beyond the two series.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyInput<'a> {
    pub metric_name: &'a str,
    pub direction: Direction,
    pub nan_strategy: NanStrategy,
    pub critical: bool,
    pub data_required: bool,
    /// Labels used in reason strings ("Canary" / "Baseline" in the judge).
    pub experiment_label: &'a str,
    pub control_label: &'a str,
}

/// `MannWhitneyClassifier.classify(control, experiment, direction, nanStrategy, isCritical,
/// isDataRequired)` on already transformed series. `Err` means the classification failed
/// (the judge reports `Error`, "Metric Classification Failed").
/// Kayenta's classification of a metric left without values on a side by NaN handling:
/// `NodataFailMetric` for a non-critical metric that must have data, else `Nodata` (critical
/// when the metric is); `Pass` when NaNs were replaced. `(label, reason, critical)`.
pub(crate) fn missing_data(
    metric_name: &str,
    nan_strategy: NanStrategy,
    must_have_data: bool,
    critical: bool,
) -> (Label, Option<String>, bool) {
    match nan_strategy {
        NanStrategy::Remove => {
            let reason = Some(format!("Missing data for {metric_name}"));
            if must_have_data && !critical {
                (Label::NodataFailMetric, reason, false)
            } else {
                (Label::Nodata, reason, critical)
            }
        }
        NanStrategy::Replace => (Label::Pass, None, false),
    }
}

pub fn classify(
    control: &[f64],
    experiment: &[f64],
    input: &ClassifyInput<'_>,
    params: &ClassifierParams,
) -> Result<MetricClassification, StatsError> {
    // 1. No data.
    if experiment.is_empty() || control.is_empty() {
        let (label, reason, critical) = missing_data(
            input.metric_name,
            input.nan_strategy,
            input.data_required,
            input.critical,
        );
        return Ok(MetricClassification::early(label, reason, 1.0, critical));
    }
    // 2. Identical samples.
    let mut se = experiment.to_vec();
    let mut sc = control.to_vec();
    // equal under total_cmp means identical bits: an unstable sort gives the same arrays
    se.sort_unstable_by(f64::total_cmp);
    sc.sort_unstable_by(f64::total_cmp);
    if se.len() == sc.len() && se.iter().zip(&sc).all(|(a, b)| a == b) {
        let reason = format!(
            "The {} and {} data are identical",
            input.experiment_label, input.control_label
        );
        return Ok(MetricClassification::early(
            Label::Pass,
            Some(reason),
            1.0,
            false,
        ));
    }
    // 3. A single value overall.
    let first = se[0];
    if se.iter().chain(sc.iter()).all(|&v| v == first) {
        return Ok(MetricClassification::early(Label::Pass, None, 1.0, false));
    }
    // 4. Compare.
    let mut c = compare(control, experiment, &se, &sc, input, params)?;
    // 5. Critical escalation.
    let effect = c.effect_size.unwrap_or(f64::NAN);
    let (crit_dec, crit_inc) = params.critical_thresholds;
    if input.critical && c.label == Label::High && (effect.is_nan() || effect >= crit_inc) {
        c.reason = Some(format!(
            "The metric {} was classified as High (Critical)",
            input.metric_name
        ));
        c.critical = true;
    } else if input.critical && c.label == Label::Low && (effect.is_nan() || effect <= crit_dec) {
        c.reason = Some(format!(
            "The metric {} was classified as Low (Critical)",
            input.metric_name
        ));
        c.critical = true;
    }
    Ok(c)
}

fn distinct_count_is_one(sorted: &[f64]) -> bool {
    sorted.first() == sorted.last()
}

fn compare(
    control: &[f64],
    experiment: &[f64],
    sorted_experiment: &[f64],
    sorted_control: &[f64],
    input: &ClassifyInput<'_>,
    params: &ClassifierParams,
) -> Result<MetricClassification, StatsError> {
    let (experiment, control, test) = match params.interval {
        IntervalMethod::Kayenta => {
            // Both series constant (and different): Kayenta adds N(0, (v·1e-5)²) noise so the
            // ranks are not all tied. Seeded from the data: the same input, the same verdict.
            let (exp, ctl, iv) = if distinct_count_is_one(sorted_experiment)
                && distinct_count_is_one(sorted_control)
            {
                let mut rng = JavaRandom::new(seed_from(&[experiment, control]));
                let e = add_gaussian_noise(experiment, 0.0, experiment[0] * 1e-5, &mut rng);
                let c = add_gaussian_noise(control, 0.0, control[0] * 1e-5, &mut rng);
                let iv = mann_whitney_kayenta(&e, &c, params.confidence)?;
                (Cow::Owned(e), Cow::Owned(c), iv)
            } else {
                let iv = mann_whitney_kayenta_sorted(
                    experiment,
                    control,
                    sorted_experiment,
                    sorted_control,
                    params.confidence,
                )?;
                (Cow::Borrowed(experiment), Cow::Borrowed(control), iv)
            };
            let test = TestDetail::Kayenta {
                lower: iv.lower,
                upper: iv.upper,
                estimate: iv.estimate,
            };
            (exp, ctl, test)
        }
        IntervalMethod::Exact { exact, correct } => {
            let mw = mann_whitney(experiment, control, params.confidence, exact, correct)?;
            (
                Cow::Borrowed(experiment),
                Cow::Borrowed(control),
                TestDetail::MannWhitney(mw),
            )
        }
    };
    let (lower, upper, estimate) = test.interval();
    let deviation = mean_ratio(&control, &experiment);
    let effect = match params.measure {
        EffectMeasure::MeanRatio => deviation,
        EffectMeasure::Cles => EffectMeasure::Cles.compute(&control, &experiment),
    };
    let bound = params.tolerance * estimate.abs();
    let (allowed_dec, allowed_inc) = params.effect_thresholds;
    let is_high = input.direction.allows_high()
        && lower > bound
        && (effect.is_nan() || effect >= allowed_inc);
    let is_low = input.direction.allows_low()
        && upper < -bound
        && (effect.is_nan() || effect <= allowed_dec);
    let (mut label, mut reason) = if is_high {
        (
            Label::High,
            Some(format!("{} was classified as High", input.metric_name)),
        )
    } else if is_low {
        (
            Label::Low,
            Some(format!("{} was classified as Low", input.metric_name)),
        )
    } else {
        (Label::Pass, None)
    };
    // coalmine's judges claim a change only when the test rejects at the level asked for
    // (`NetflixACAJudge-v1.0` is Kayenta's procedure, and Kayenta does not check).
    let not_judged = match &test {
        TestDetail::MannWhitney(mw) => significance_gap(mw, label != Label::Pass),
        TestDetail::Kayenta { .. } => None,
    };
    if let Some(why) = &not_judged {
        label = Label::Pass;
        reason = Some(why.clone());
    }
    Ok(MetricClassification {
        label,
        reason,
        deviation,
        critical: false,
        effect_size: Some(effect),
        bound: Some(bound),
        test: Some(test),
        not_judged,
    })
}

/// Why a Mann–Whitney result cannot back a classification at its confidence level, if it
/// cannot: the samples are too small for any data to be significant (R's "Requested
/// conf.level not achievable"), or — for a metric the interval would flag (`flagged`) — the
/// p-value is not below `1 − confidence`.
pub fn significance_gap(mw: &MannWhitney, flagged: bool) -> Option<String> {
    let alpha = 1.0 - mw.confidence;
    let (n, m) = (mw.n_experiment, mw.n_control);
    let sizes = if n == m {
        format!("n = {n} a side")
    } else {
        format!("n = {n} canary, {m} baseline")
    };
    if mw.achieved_confidence + 1e-12 < mw.confidence || mw.min_p_value >= alpha {
        return Some(match mw.method {
            Method::Exact => format!(
                "insufficient data: {sizes}; the exact test needs at least {} values a side to reach {} (these reach {})",
                exact_min_per_side(alpha),
                percent(mw.confidence),
                percent(mw.achieved_confidence.min(1.0 - mw.min_p_value).max(0.0)),
            ),
            Method::Asymptotic => format!(
                "insufficient data: {sizes} with ties; no ranking of these values gives a p-value below {} (the smallest possible is {:.3})",
                format_alpha(alpha),
                mw.min_p_value,
            ),
        });
    }
    if flagged && mw.p_value >= alpha {
        return Some(format!(
            "not significant at {}: p = {:.4} is not below {} ({sizes})",
            percent(mw.confidence),
            mw.p_value,
            format_alpha(alpha)
        ));
    }
    None
}

/// The fewest values a side with which the exact two-sided test can reach level `1 − alpha`
/// at all: the smallest `k` with `2/C(2k, k) ≤ alpha` (5 at 98 %, 4 at 95 %).
pub fn exact_min_per_side(alpha: f64) -> usize {
    let mut binom = 2.0; // C(2k, k) for k = 1
    let mut k = 1;
    while 2.0 / binom > alpha && k < 64 {
        // C(2k+2, k+1) = C(2k, k) · (2k+1)(2k+2) / (k+1)²
        binom *= (2 * k + 1) as f64 * (2 * k + 2) as f64 / ((k + 1) * (k + 1)) as f64;
        k += 1;
    }
    k
}

/// `0.98` → `"98%"`, `0.975` → `"97.5%"`.
fn percent(c: f64) -> String {
    let p = format!("{:.2}", c * 100.0);
    format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
}

fn format_alpha(a: f64) -> String {
    let p = format!("{a:.6}");
    p.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Kayenta's `MeanInequalityClassifier` ("primarily used for benchmarking"): compares means,
/// no significance test.
pub fn classify_mean_inequality(
    control: &[f64],
    experiment: &[f64],
    input: &ClassifyInput<'_>,
) -> MetricClassification {
    if experiment.is_empty() || control.is_empty() {
        return match input.nan_strategy {
            NanStrategy::Remove if input.data_required && !input.critical => {
                MetricClassification::early(Label::NodataFailMetric, None, 0.0, false)
            }
            NanStrategy::Remove => {
                MetricClassification::early(Label::Nodata, None, 0.0, input.critical)
            }
            NanStrategy::Replace => MetricClassification::early(Label::Pass, None, 1.0, false),
        };
    }
    let me = super::stats::mean(experiment);
    let mc = super::stats::mean(control);
    let ratio = me / mc;
    if input.direction.allows_high() && me > mc {
        let reason = format!(
            "The {} mean was greater than the {} mean",
            input.experiment_label, input.control_label
        );
        MetricClassification::early(Label::High, Some(reason), ratio, input.critical)
    } else if input.direction.allows_low() && me < mc {
        let reason = format!(
            "The {} mean was less than the {} mean",
            input.experiment_label, input.control_label
        );
        MetricClassification::early(Label::Low, Some(reason), ratio, input.critical)
    } else {
        MetricClassification::early(Label::Pass, None, 1.0, false)
    }
}

/// The method name of a test, for reports.
pub fn method_name(test: &TestDetail) -> &'static str {
    match test {
        TestDetail::Kayenta { .. } => "kayenta-asymptotic",
        TestDetail::MannWhitney(mw) => match mw.method {
            Method::Exact => "exact",
            Method::Asymptotic => "asymptotic",
        },
    }
}
