//! The judge driver: a whole judgment (each pair replayed into a fresh state), a run's tick
//! (states carried across ticks), and the classification of each metric from its state.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use super::report::SequentialReport;
use super::settings::{JudgeSettings, MetricSettings};
use super::state::{Horizon, SeqVersion, SequentialParams, SequentialState};
use super::MetricType;
use crate::judge::classifier::{Label, NanStrategy};
use crate::judge::json::{JsonPath, ShapeError};
use crate::judge::model::{
    AnalysisResult, CanaryConfig, CanaryJudgeResult, MetricConfig, MetricSetPair, ResultMetadata,
    SeriesMetadata,
};
use crate::judge::score::Thresholds;
use crate::judge::{fan_out, stats, JudgeError, Parallelism, StatsError};

/// `coalmine-seq-v1` or `-v2` over a whole judgment (called by [`super::run_with`]).
pub fn run<P: Borrow<MetricSetPair>>(
    version: SeqVersion,
    config: &CanaryConfig,
    pairs: &[P],
    thresholds: Thresholds,
    parallelism: Parallelism,
) -> Result<CanaryJudgeResult, JudgeError> {
    let (mut jobs, alpha_m) = resolve_jobs(version, config, pairs)?;
    let results = fan_out(
        &mut jobs,
        parallelism.parallel(pairs),
        |(pair, metric, ms)| {
            let params = ms.params_for(pair, alpha_m, Horizon::Complete);
            let mut state = match &pair.histogram {
                Some(h) => replay_histogram(params, h),
                None => replay(params, &pair.control, &pair.experiment),
            };
            if let Ok(st) = &mut state {
                st.refresh_reach(Horizon::Complete);
            }
            analysis(pair, metric, ms, state.as_ref())
        },
    );
    Ok(crate::judge::assemble(
        version.kind(),
        config,
        pairs,
        results,
        thresholds,
    ))
}

/// A pair to judge, its metric's config and resolved settings.
type Job<'a> = crate::judge::Job<'a, MetricSettings>;

/// Every pair's metric config and settings, and the per-metric level (`alpha / m` over the
/// non-muted pairs under Bonferroni).
fn resolve_jobs<'a, P: Borrow<MetricSetPair>>(
    version: SeqVersion,
    config: &'a CanaryConfig,
    pairs: &'a [P],
) -> Result<(Vec<Job<'a>>, f64), JudgeError> {
    let js = JudgeSettings::from_config(config, version)?;
    let jobs =
        crate::judge::resolve_jobs(config, pairs, |metric| MetricSettings::resolve(metric, &js))?;
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
    version: SeqVersion,
    config: &CanaryConfig,
    pairs: &[MetricSetPair],
    states: &mut BTreeMap<String, SequentialState>,
    thresholds: Thresholds,
    horizon: Horizon,
) -> Result<CanaryJudgeResult, JudgeError> {
    judge_states_gated(version, config, pairs, states, thresholds, horizon, None)
}

/// [`judge_states`] with the SLO gates evaluated on `window` (the run's window at this
/// tick, of which `pairs` holds only the values new since the last tick).
pub fn judge_states_gated(
    version: SeqVersion,
    config: &CanaryConfig,
    pairs: &[MetricSetPair],
    states: &mut BTreeMap<String, SequentialState>,
    thresholds: Thresholds,
    horizon: Horizon,
    window: Option<&[MetricSetPair]>,
) -> Result<CanaryJudgeResult, JudgeError> {
    // a histogram metric's `le` series become one pair with its buckets, in the tick's new
    // values and in the window the SLO gates judge
    let folded = crate::judge::histogram::fold_owned(config, pairs)?;
    let pairs = folded.as_deref().unwrap_or(pairs);
    let folded_window = window
        .map(|w| crate::judge::histogram::fold_owned(config, w))
        .transpose()?
        .flatten();
    let window = folded_window.as_deref().or(window);
    let (jobs, alpha_m) = resolve_jobs(version, config, pairs)?;
    // Each job takes its state out of the map (created on first sight), so that the updates,
    // independent of one another, can run on both cores; the states go back afterwards.
    let mut work: Vec<(String, Result<SequentialState, StatsError>)> = jobs
        .iter()
        .map(|(pair, _, ms)| {
            let key = state_key(pair);
            let state = match states.remove(&key) {
                // a state made on a tick without data, before the metric showed it is a
                // histogram (or is not): made again
                Some(st)
                    if st.n() == (0, 0)
                        && matches!(st.test, super::state::SeqTest::Histogram(_))
                            != pair.histogram.is_some() =>
                {
                    SequentialState::new(ms.params_for(pair, alpha_m, horizon))
                }
                Some(st) => Ok(st),
                None => SequentialState::new(ms.params_for(pair, alpha_m, horizon)),
            };
            (key, state)
        })
        .collect();
    let mut items: Vec<_> = work.iter_mut().map(|(_, st)| st).zip(&jobs).collect();
    let results = fan_out(
        &mut items,
        Parallelism::Auto.parallel(pairs),
        |(state, (pair, metric, ms))| {
            let updated = match &mut **state {
                Ok(st) => match &pair.histogram {
                    Some(h) => st.update_histogram(h),
                    None => st.update(&pair.control, &pair.experiment),
                }
                .map(|()| {
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
    Ok(crate::judge::assemble_gated(
        version.kind(),
        config,
        pairs,
        window,
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

/// Feed a histogram pair's intervals into a fresh state, one look per interval both arms
/// measured.
pub fn replay_histogram(
    params: SequentialParams,
    buckets: &crate::judge::histogram::Buckets,
) -> Result<SequentialState, StatsError> {
    let mut state = SequentialState::new(params)?;
    if let Some(problem) = &buckets.problem {
        return Err(StatsError::NotEnoughData(problem.clone()));
    }
    for one in buckets.strata.chunks(1) {
        state.look_at_intervals(&buckets.bounds, buckets.quantile, one)?;
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
    let mut inconclusive = false;
    let (label, reason, critical, metadata) = match state {
        // a histogram whose buckets cannot be judged (no +Inf bucket…): not judged, as in
        // coalmine-v2
        Err(StatsError::NotEnoughData(why)) if pair.histogram.is_some() => {
            let why = format!("cannot judge {} from its buckets: {why}", pair.name);
            not_judged = Some(why.clone());
            inconclusive = true;
            (
                Label::Nodata,
                Some(format!("Inconclusive: {why}")),
                false,
                None,
            )
        }
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
            let (mut label, mut reason, critical) = classify(&pair.name, state, &report, ms);
            if label == Label::Pass {
                if let Some(why) = state.unreachable() {
                    if state.params.version == SeqVersion::V2 {
                        // as coalmine-v2: not a Pass nobody could have backed
                        label = Label::Nodata;
                        inconclusive = true;
                        reason = Some(format!("Inconclusive: {why}"));
                    } else {
                        reason = Some(why.clone());
                    }
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
            test: Some(crate::judge::model::TestDetails::Sequential(Box::new(
                report,
            ))),
        }),
        critical,
        muted: ms.muted,
        not_judged,
        inconclusive,
        slo: None,
        error_budget: None,
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
    version: SeqVersion,
    config: &CanaryConfig,
    pairs: &[MetricSetPair],
    pair_index: usize,
    metric_type: Option<MetricType>,
) -> Result<SequentialParams, JudgeError> {
    let (jobs, alpha_m) = resolve_jobs(version, config, pairs)?;
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
