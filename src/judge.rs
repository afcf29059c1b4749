//! The judge: from metric-set pairs (control vs experiment series per metric and tag
//! combination) and a canary config to a scored, classified `CanaryJudgeResult`.
//!
//! Pure and IO-free: slices and JSON values in, a structured result out; no clock, no global
//! random generator (the one random step Kayenta has is seeded from the data).
//!
//! Judges:
//! * [`JudgeKind::NetflixAcaV1`] — `NetflixACAJudge-v1.0`, Kayenta's default judge reproduced
//!   exactly (see `kayenta_mw` and `classifier`), so migrating users get the same verdicts.
//! * [`JudgeKind::CoalmineV1`] — `coalmine-v1`, the default: the same pipeline and result
//!   shape, with the R-semantics Mann–Whitney ([`mann_whitney()`]: exact distribution for small
//!   samples, exact interval endpoints, no root-finder artefacts), per-metric `confidence`
//!   and `tolerance`, and the test's statistics in every result.

pub mod classifier;
pub mod effect;
pub mod histogram;
pub mod json;
pub mod kayenta_mw;
pub mod lookup;
pub mod lrv;
pub mod mann_whitney;
pub mod model;
pub(crate) mod pairwise;
pub(crate) mod ranks;
pub mod score;
pub mod sequential;
pub mod slo;
pub mod split;
pub mod stats;
pub mod transform;
pub mod v2;

use serde_json::Value;
use std::borrow::Borrow;

pub use classifier::{Direction, Label, NanStrategy};
pub use mann_whitney::{mann_whitney, MannWhitney, Method, WilcoxonDistribution};
pub use model::{CanaryConfig, CanaryJudgeResult, JudgeRequest, MetricSetPair, PairTimes};
pub use score::Thresholds;

use classifier::{classify, ClassifierParams, ClassifyInput, IntervalMethod, TestDetail};
use effect::EffectMeasure;
use json::{JsonPath, ShapeError};
use lookup::Reader;
use model::{
    AnalysisResult, EffectReport, GroupScoreResult, MetricConfig, ResultMetadata, ScoreResult,
    SeriesMetadata, TestReport,
};
use score::ScoredResult;
use transform::{remove_nans, replace_nans, Detector};

/// Errors of the statistical functions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("cannot compute confidence interval when all observations are tied")]
    AllTied,
    #[error("{0}")]
    NotEnoughData(String),
    #[error("{0}")]
    InvalidArgument(String),
}

/// Errors of a judgment: all are problems with the input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JudgeError {
    #[error(transparent)]
    Invalid(#[from] ShapeError),
    #[error("Unable to resolve canary judge '{name}' (known judges: {known})")]
    UnknownJudge { name: String, known: String },
    #[error("{path}: could not find metric config for '{name}' in canaryConfig.metrics")]
    MissingMetricConfig { path: JsonPath, name: String },
}

impl JudgeError {
    /// Every judgment error is a problem with the input.
    pub fn kind(&self) -> crate::error::kind::ErrorKind {
        crate::error::kind::ErrorKind::InvalidInput
    }
}

/// The judges coalmine ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JudgeKind {
    /// `NetflixACAJudge-v1.0`.
    NetflixAcaV1,
    /// `coalmine-v1`.
    CoalmineV1,
    /// `coalmine-seq-v1`: anytime-valid sequential tests ([`sequential`]).
    CoalmineSeqV1,
    /// `coalmine-v2`: dependence-corrected, paired where the arms line up, tails, counts,
    /// the canary's false-alarm rate controlled across metrics ([`v2`]).
    CoalmineV2,
    /// `coalmine-seq-v2`: anytime-valid, paired look by look with batches sized from the
    /// warm-up, dispersion-scaled counts ([`sequential::paired`]).
    CoalmineSeqV2,
}

impl JudgeKind {
    /// The judge used when neither the caller nor the config names one.
    pub const DEFAULT: JudgeKind = JudgeKind::CoalmineV2;
    pub const ALL: [JudgeKind; 5] = [
        JudgeKind::CoalmineV2,
        JudgeKind::CoalmineV1,
        JudgeKind::NetflixAcaV1,
        JudgeKind::CoalmineSeqV2,
        JudgeKind::CoalmineSeqV1,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JudgeKind::NetflixAcaV1 => "NetflixACAJudge-v1.0",
            JudgeKind::CoalmineV1 => "coalmine-v1",
            JudgeKind::CoalmineSeqV1 => "coalmine-seq-v1",
            JudgeKind::CoalmineV2 => "coalmine-v2",
            JudgeKind::CoalmineSeqV2 => "coalmine-seq-v2",
        }
    }

    /// The sequential tests a judge uses (`None`: a fixed-horizon judge).
    pub fn sequential(self) -> Option<sequential::SeqVersion> {
        match self {
            JudgeKind::CoalmineSeqV1 => Some(sequential::SeqVersion::V1),
            JudgeKind::CoalmineSeqV2 => Some(sequential::SeqVersion::V2),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Result<Self, JudgeError> {
        JudgeKind::ALL
            .into_iter()
            .find(|j| j.name() == name)
            .ok_or_else(|| JudgeError::UnknownJudge {
                name: name.to_string(),
                known: JudgeKind::ALL.map(JudgeKind::name).join(", "),
            })
    }

    /// The caller's choice, else the config's `judge.name`, else [`JudgeKind::DEFAULT`].
    pub fn resolve(override_name: Option<&str>, config: &CanaryConfig) -> Result<Self, JudgeError> {
        match override_name.or(config.judge_name.as_deref()) {
            Some(name) => JudgeKind::from_name(name),
            None => Ok(JudgeKind::DEFAULT),
        }
    }
}

/// Parse a remote-judge request document and judge it.
pub fn judge_value(request: &Value, judge: Option<&str>) -> Result<CanaryJudgeResult, JudgeError> {
    let request = JudgeRequest::from_value(request)?;
    judge_request(&request, judge)
}

/// Judge a request with the named judge (or the config's, or the default).
pub fn judge_request(
    request: &JudgeRequest,
    judge: Option<&str>,
) -> Result<CanaryJudgeResult, JudgeError> {
    let kind = JudgeKind::resolve(judge, &request.canary_config)?;
    run(
        kind,
        &request.canary_config,
        &request.metric_set_pair_list,
        request.score_thresholds,
    )
}

/// Judge metric-set pairs against a config with the given judge.
pub fn run(
    kind: JudgeKind,
    config: &CanaryConfig,
    pairs: &[MetricSetPair],
    thresholds: Thresholds,
) -> Result<CanaryJudgeResult, JudgeError> {
    run_with(kind, config, pairs, thresholds, Parallelism::Auto)
}

/// How many threads one judgment may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// The calling thread only: for callers that already run many judgments in parallel
    /// (the daemon's pool, `rejudge`).
    Sequential,
    /// Up to the machine's cores, when the judgment is big enough to gain from it.
    Auto,
}

/// Below this many points in a judgment, threads cost more than they save.
const PARALLEL_MIN_POINTS: usize = 50_000;

impl Parallelism {
    /// Whether a judgment of `pairs` uses the pool's threads.
    fn parallel<P: Borrow<MetricSetPair>>(self, pairs: &[P]) -> bool {
        let points = || -> usize {
            pairs
                .iter()
                .map(|p| p.borrow().control.len() + p.borrow().experiment.len())
                .sum()
        };
        self == Parallelism::Auto && points() >= PARALLEL_MIN_POINTS
    }
}

/// The one fan-out of judging work: `f` over `items`, results in order — on rayon's pool (a
/// thread per core) when `parallel`, else on the calling thread. Every judge and `rejudge`
/// use it.
pub(crate) fn fan_out<T: Send, R: Send>(
    items: &mut [T],
    parallel: bool,
    f: impl Fn(&mut T) -> R + Sync + Send,
) -> Vec<R> {
    use rayon::prelude::*;
    if parallel && items.len() > 1 {
        items.par_iter_mut().map(f).collect()
    } else {
        items.iter_mut().map(f).collect()
    }
}

/// A metric-set pair to judge, its metric's config and its resolved settings.
pub(crate) type Job<'a, S> = (&'a MetricSetPair, &'a MetricConfig, S);

/// Match every pair to its metric config (by name, as Kayenta does) and resolve its
/// settings with `settings` — all before judging, so input errors are reported in list
/// order.
pub(crate) fn resolve_jobs<'a, P: Borrow<MetricSetPair>, S>(
    config: &'a CanaryConfig,
    pairs: &'a [P],
    settings: impl Fn(&'a MetricConfig) -> Result<S, ShapeError>,
) -> Result<Vec<Job<'a, S>>, JudgeError> {
    let list_path = JsonPath::root().key("metricSetPairList");
    pairs
        .iter()
        .map(Borrow::borrow)
        .enumerate()
        .map(|(i, pair)| {
            let metric =
                config
                    .metric(&pair.name)
                    .ok_or_else(|| JudgeError::MissingMetricConfig {
                        path: list_path.index(i).key("name"),
                        name: pair.name.clone(),
                    })?;
            // every judge applies the metric's SLO gates (optional): check them up front
            slo::gates(&metric.analysis, &metric.path)?;
            Ok((pair, metric, settings(metric)?))
        })
        .collect()
}

/// [`run`] with explicit [`Parallelism`]. Results do not depend on it. A config with a
/// `trafficSplit` guard gets it checked over the judgment's looks ([`split`]).
pub fn run_with<P: Borrow<MetricSetPair> + Sync>(
    kind: JudgeKind,
    config: &CanaryConfig,
    pairs: &[P],
    thresholds: Thresholds,
    parallelism: Parallelism,
) -> Result<CanaryJudgeResult, JudgeError> {
    let mut result = judge_pairs(kind, config, pairs, thresholds, parallelism)?;
    split::guard_judgment(config, pairs, &mut result)?;
    Ok(result)
}

/// [`run_with`] without the traffic-split guard (a run carries the guard's state itself).
pub(crate) fn judge_pairs<P: Borrow<MetricSetPair> + Sync>(
    kind: JudgeKind,
    config: &CanaryConfig,
    pairs: &[P],
    thresholds: Thresholds,
    parallelism: Parallelism,
) -> Result<CanaryJudgeResult, JudgeError> {
    match kind {
        JudgeKind::CoalmineSeqV1 | JudgeKind::CoalmineSeqV2 => {
            let version = kind.sequential().expect("a sequential judge");
            return match histogram::fold(config, pairs)? {
                Some(folded) => sequential::run(version, config, &folded, thresholds, parallelism),
                None => sequential::run(version, config, pairs, thresholds, parallelism),
            };
        }
        JudgeKind::CoalmineV2 => {
            // a histogram metric's `le` series become one pair judged on its requests
            return match histogram::fold(config, pairs)? {
                Some(folded) => v2::run(config, &folded, thresholds, parallelism),
                None => v2::run(config, pairs, thresholds, parallelism),
            };
        }
        _ => {}
    }
    let defaults = JudgeDefaults::from_config(kind, config)?;
    let mut jobs = resolve_jobs(config, pairs, |metric| {
        MetricParams::resolve(kind, metric, &defaults)
    })?;
    let results = fan_out(
        &mut jobs,
        parallelism.parallel(pairs),
        |(pair, metric, params)| judge_pair(kind, pair, metric, params),
    );
    Ok(assemble(kind, config, pairs, results, thresholds))
}

/// Score judged metrics into the `CanaryJudgeResult` of `kind` (every judge's last step).
pub(crate) fn assemble<P: Borrow<MetricSetPair>>(
    kind: JudgeKind,
    config: &CanaryConfig,
    pairs: &[P],
    results: Vec<AnalysisResult>,
    thresholds: Thresholds,
) -> CanaryJudgeResult {
    assemble_gated(kind, config, pairs, None, results, thresholds)
}

/// [`assemble`] with the SLO gates on `window`'s values (see [`apply_slo_gates`]).
pub(crate) fn assemble_gated<P: Borrow<MetricSetPair>>(
    kind: JudgeKind,
    config: &CanaryConfig,
    pairs: &[P],
    window: Option<&[MetricSetPair]>,
    mut results: Vec<AnalysisResult>,
    thresholds: Thresholds,
) -> CanaryJudgeResult {
    apply_slo_gates(config, pairs, window, &mut results);
    let scored: Vec<ScoredResult<'_>> = results
        .iter()
        .map(|r| ScoredResult {
            label: Label::parse(&r.classification).unwrap_or(Label::Error),
            groups: &r.groups,
            critical: r.critical,
            muted: r.muted,
            reason: r.classification_reason.as_deref(),
            inconclusive: r.inconclusive,
        })
        .collect();
    let s = score::score(&scored, &config.group_weights, thresholds);
    CanaryJudgeResult {
        judge_name: kind.name().to_string(),
        score: ScoreResult {
            score: s.summary,
            classification: s.classification.as_str().to_string(),
            classification_reason: s.reason,
        },
        group_scores: s
            .groups
            .into_iter()
            .map(|g| GroupScoreResult {
                name: g.name,
                score: g.score,
                classification: String::new(),
                classification_reason: String::new(),
            })
            .collect(),
        results,
        traffic_split: None,
    }
}

/// Each metric's SLO and error-budget gates ([`slo`]), evaluated on its pair's values (as
/// the summaries see them: NaN dropped), or on `window`'s pair of the same metric and tags
/// when given (a sequential run judges each tick's new values, its gates the run's window):
/// the reports go into the result, and a canary that breaches a gate at its confidence
/// fails the metric (`High` for `max` and a burn, `Low` for `min`; critical when the metric
/// is) with the gate's sentence as the reason, whatever the comparison said. Muted metrics
/// are reported, not failed.
fn apply_slo_gates<P: Borrow<MetricSetPair>>(
    config: &CanaryConfig,
    pairs: &[P],
    window: Option<&[MetricSetPair]>,
    results: &mut [AnalysisResult],
) {
    for (r, pair) in results.iter_mut().zip(pairs.iter().map(Borrow::borrow)) {
        if r.name != pair.name {
            continue; // results follow the pairs; never apply a gate to another metric
        }
        let Some(metric) = config.metric(&pair.name) else {
            continue;
        };
        // checked when the jobs were resolved
        let Ok((gate, burn)) = slo::gates(&metric.analysis, &metric.path) else {
            continue;
        };
        if gate.is_none() && burn.is_none() {
            continue;
        }
        let source = window
            .and_then(|w| {
                w.iter()
                    .find(|p| p.name == pair.name && p.tags == pair.tags)
            })
            .unwrap_or(pair);
        let critical = lookup::get(&metric.analysis, &["canary", "critical"])
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let mut breached: Vec<(&'static str, String)> = Vec::new();
        if let Some(gate) = gate {
            let report = slo::SloReport::new(&gate, &source.control, &source.experiment);
            if report.canary.state == slo::SloState::Breached {
                let label = match gate.objective {
                    slo::Objective::Max(_) => "High",
                    slo::Objective::Min(_) => "Low",
                };
                breached.push((label, report.sentence(&gate, &pair.name)));
            }
            r.slo = Some(report);
        }
        if let Some(burn) = burn {
            let report = slo::BurnReport::new(&burn, &source.control, &source.experiment);
            if report.canary.state == slo::SloState::Breached {
                breached.push(("High", report.sentence(&pair.name)));
            }
            r.error_budget = Some(report);
        }
        if let Some((label, _)) = breached.first().filter(|_| !r.muted) {
            r.classification = label.to_string();
            r.classification_reason = Some(
                breached
                    .iter()
                    .map(|(_, s)| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; and "),
            );
            r.critical = critical;
            r.inconclusive = false;
            r.not_judged = None;
        }
    }
}

/// Check a config's judge settings (types and ranges of `analysisConfigurations` and
/// `judge.judgeConfigurations`) for one judge, without judging anything.
pub fn check_settings(kind: JudgeKind, config: &CanaryConfig) -> Result<(), JudgeError> {
    for metric in &config.metrics {
        slo::gates(&metric.analysis, &metric.path)?;
    }
    split::SplitGuard::resolve(config, None)?;
    if kind == JudgeKind::CoalmineV2 {
        return v2::check_settings(config);
    }
    let defaults = JudgeDefaults::from_config(kind, config)?;
    for metric in &config.metrics {
        MetricParams::resolve(kind, metric, &defaults)?;
    }
    Ok(())
}

/// Judge-wide settings of `coalmine-v1`, from `canaryConfig.judge.judgeConfigurations`.
#[derive(Debug, Clone, Copy)]
struct JudgeDefaults {
    confidence: f64,
    tolerance: f64,
    exact: Option<bool>,
    correct: bool,
}

impl JudgeDefaults {
    /// Kayenta hard-codes tolerance 0.25 and confidence 0.98 in `NetflixACAJudge`.
    const KAYENTA: JudgeDefaults = JudgeDefaults {
        confidence: 0.98,
        tolerance: 0.25,
        exact: None,
        correct: true,
    };

    fn from_config(kind: JudgeKind, config: &CanaryConfig) -> Result<Self, JudgeError> {
        if kind == JudgeKind::NetflixAcaV1 {
            return Ok(Self::KAYENTA);
        }
        let reader = config.judge_configurations();
        let d = Self::KAYENTA;
        let out = JudgeDefaults {
            confidence: reader.f64(&["confidence"], d.confidence)?,
            tolerance: reader.f64(&["tolerance"], d.tolerance)?,
            exact: reader.opt_bool(&["exact"])?,
            correct: reader.bool(&["continuityCorrection"], d.correct)?,
        };
        check_confidence(out.confidence, &reader.base_path.key("confidence"))?;
        check_tolerance(out.tolerance, &reader.base_path.key("tolerance"))?;
        Ok(out)
    }
}

fn check_confidence(c: f64, path: &JsonPath) -> Result<(), ShapeError> {
    if c > 0.0 && c < 1.0 {
        Ok(())
    } else {
        Err(ShapeError::new(
            path,
            format!("confidence must be in (0, 1), got {c}"),
        ))
    }
}

fn check_tolerance(t: f64, path: &JsonPath) -> Result<(), ShapeError> {
    if t >= 0.0 && t.is_finite() {
        Ok(())
    } else {
        Err(ShapeError::new(
            path,
            format!("tolerance must be a finite number ≥ 0, got {t}"),
        ))
    }
}

/// What every fixed-horizon judge reads from a metric's `analysisConfigurations.canary`, with
/// Kayenta's defaults and Kayenta's reading (an `outlierFactor` is checked even when outliers
/// are kept).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CanaryBasics {
    pub(crate) direction: Direction,
    pub(crate) nan_strategy: NanStrategy,
    pub(crate) outlier_factor: Option<f64>,
    pub(crate) critical: bool,
    pub(crate) must_have_data: bool,
    pub(crate) muted: bool,
}

impl CanaryBasics {
    pub(crate) fn read(r: &Reader<'_>) -> Result<Self, ShapeError> {
        let remove_outliers = r.string(&["canary", "outliers", "strategy"], "none") == "remove";
        let outlier_factor = r.f64(&["canary", "outliers", "outlierFactor"], 3.0)?;
        Ok(CanaryBasics {
            direction: Direction::parse(&r.string(&["canary", "direction"], "either")),
            nan_strategy: NanStrategy::parse(&r.string(&["canary", "nanStrategy"], "none")),
            outlier_factor: remove_outliers.then_some(outlier_factor),
            critical: r.bool(&["canary", "critical"], false)?,
            must_have_data: r.bool(&["canary", "mustHaveData"], false)?,
            muted: r.bool(&["canary", "muted"], false)?,
        })
    }

    /// Kayenta's cleaning of a series before any test: NaNs removed or replaced by 0, then
    /// (with an outlier factor) IQR outliers removed.
    pub(crate) fn clean(&self, series: &[f64]) -> Vec<f64> {
        let cleaned = match self.nan_strategy {
            NanStrategy::Remove => remove_nans(series),
            NanStrategy::Replace => replace_nans(series, 0.0),
        };
        match self.outlier_factor {
            Some(factor) => Detector::Iqr {
                factor,
                reduce_sensitivity: true,
            }
            .remove_outliers(&cleaned),
            None => cleaned,
        }
    }
}

/// `effectSize.measure` and `(allowedDecrease, allowedIncrease)`, each side defaulting to the
/// measure's no-change value.
fn effect_gate(r: &Reader<'_>) -> Result<(EffectMeasure, f64, f64), ShapeError> {
    let measure =
        EffectMeasure::parse(&r.string(&["canary", "effectSize", "measure"], "meanRatio"));
    let neutral = measure.neutral();
    // increase first: its error is the one reported when both are bad
    let increase = r.f64(&["canary", "effectSize", "allowedIncrease"], neutral)?;
    let decrease = r.f64(&["canary", "effectSize", "allowedDecrease"], neutral)?;
    Ok((measure, decrease, increase))
}

/// A metric's effect-size gate as the fixed-horizon judges read it from its
/// `analysisConfigurations`: the measure and `(allowedDecrease, allowedIncrease)` (`None`
/// when the settings are invalid).
pub fn allowed_effect(analysis: &Value) -> Option<(EffectMeasure, f64, f64)> {
    effect_gate(&Reader {
        data: analysis,
        base_path: JsonPath::root(),
    })
    .ok()
}

/// The IQR factor the judges remove a metric's outliers with (`outliers.strategy:
/// "remove"`, read from its `analysisConfigurations` as they read it) and how many values of
/// `series` their cleaning drops as outliers; `None` when outliers are kept or the settings
/// are invalid.
pub fn outliers_removed(analysis: &Value, series: &[f64]) -> Option<(f64, usize)> {
    let basics = CanaryBasics::read(&Reader {
        data: analysis,
        base_path: JsonPath::root(),
    })
    .ok()?;
    let factor = basics.outlier_factor?;
    let without_nans = CanaryBasics {
        outlier_factor: None,
        ..basics
    }
    .clean(series)
    .len();
    Some((factor, without_nans - basics.clean(series).len()))
}

/// A metric's resolved `analysisConfigurations.canary` settings (Kayenta's defaults).
#[derive(Debug, Clone, Copy)]
struct MetricParams {
    basics: CanaryBasics,
    classifier: ClassifierParams,
}

impl MetricParams {
    fn resolve(
        kind: JudgeKind,
        metric: &MetricConfig,
        defaults: &JudgeDefaults,
    ) -> Result<Self, ShapeError> {
        let r = Reader {
            data: &metric.analysis,
            base_path: metric.path.key("analysisConfigurations"),
        };
        let basics = CanaryBasics::read(&r)?;
        let (measure, allowed_decrease, allowed_increase) = effect_gate(&r)?;
        let neutral = measure.neutral();
        let critical_increase = r.f64(&["canary", "effectSize", "criticalIncrease"], neutral)?;
        let critical_decrease = r.f64(&["canary", "effectSize", "criticalDecrease"], neutral)?;
        let (confidence, tolerance, interval) = match kind {
            JudgeKind::NetflixAcaV1 => (
                defaults.confidence,
                defaults.tolerance,
                IntervalMethod::Kayenta,
            ),
            JudgeKind::CoalmineV1
            | JudgeKind::CoalmineSeqV1
            | JudgeKind::CoalmineSeqV2
            | JudgeKind::CoalmineV2 => {
                let confidence = r.f64(&["canary", "confidence"], defaults.confidence)?;
                check_confidence(confidence, &r.base_path.key("canary").key("confidence"))?;
                let tolerance = r.f64(&["canary", "tolerance"], defaults.tolerance)?;
                check_tolerance(tolerance, &r.base_path.key("canary").key("tolerance"))?;
                let exact = r.opt_bool(&["canary", "exact"])?.or(defaults.exact);
                let correct = r.bool(&["canary", "continuityCorrection"], defaults.correct)?;
                (
                    confidence,
                    tolerance,
                    IntervalMethod::Exact { exact, correct },
                )
            }
        };
        Ok(MetricParams {
            basics,
            classifier: ClassifierParams {
                tolerance,
                confidence,
                effect_thresholds: (allowed_decrease, allowed_increase),
                critical_thresholds: (critical_decrease, critical_increase),
                measure,
                interval,
            },
        })
    }
}

fn judge_pair(
    kind: JudgeKind,
    pair: &MetricSetPair,
    metric: &MetricConfig,
    params: &MetricParams,
) -> AnalysisResult {
    let experiment = params.basics.clean(&pair.experiment);
    let control = params.basics.clean(&pair.control);
    let input = ClassifyInput {
        metric_name: &pair.name,
        direction: params.basics.direction,
        nan_strategy: params.basics.nan_strategy,
        critical: params.basics.critical,
        data_required: params.basics.must_have_data,
        experiment_label: "Canary",
        control_label: "Baseline",
    };
    let outcome = classify(&control, &experiment, &input, &params.classifier);
    let not_judged = outcome.as_ref().ok().and_then(|c| c.not_judged.clone());
    let (classification, reason, critical, result_metadata) = match outcome {
        Ok(c) => {
            let test = match (kind, &c.test) {
                (JudgeKind::CoalmineV1, Some(TestDetail::MannWhitney(mw))) => Some(TestReport {
                    kind: "mann-whitney".into(),
                    method: mw.method.as_str().into(),
                    lower: mw.lower,
                    upper: mw.upper,
                    estimate: mw.estimate,
                    p_value: mw.p_value,
                    confidence: mw.confidence,
                    achieved_confidence: mw.achieved_confidence,
                    min_p_value: mw.min_p_value,
                    n_experiment: mw.n_experiment,
                    n_control: mw.n_control,
                    bound: c.bound.unwrap_or(f64::NAN),
                    effect_size: EffectReport {
                        measure: params.classifier.measure,
                        value: c.effect_size.unwrap_or(f64::NAN),
                    },
                    warnings: mw.warnings.clone(),
                }),
                _ => None,
            };
            (
                c.label,
                c.reason,
                c.critical,
                Some(ResultMetadata {
                    ratio: c.deviation,
                    test: test.map(model::TestDetails::MannWhitney),
                }),
            )
        }
        Err(_) => (
            Label::Error,
            Some("Metric Classification Failed".to_string()),
            false,
            None,
        ),
    };
    AnalysisResult {
        name: pair.name.clone(),
        id: pair.id.clone(),
        tags: pair.tags.clone(),
        classification: classification.as_str().to_string(),
        classification_reason: reason,
        groups: metric.groups.clone(),
        experiment_metadata: SeriesMetadata {
            stats: stats::summary(&experiment),
        },
        control_metadata: SeriesMetadata {
            stats: stats::summary(&control),
        },
        result_metadata,
        critical,
        muted: params.basics.muted,
        not_judged,
        inconclusive: false,
        slo: None,
        error_budget: None,
    }
}
