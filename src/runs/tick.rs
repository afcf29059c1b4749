//! One judgment of a run: every metric's SQL over both scopes for the window, the
//! metric-set pairs (Kayenta mixer semantics), the judge.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{PairData, Run, RunError, RunSpec};
use crate::judge::sequential::SequentialState;
use crate::judge::split::{Looks, SplitGuard, SplitState};
use crate::judge::{self, CanaryConfig, JudgeKind, MetricSetPair, Parallelism, Thresholds};
use crate::query::{Binding, Engine, PreparedQuery, QueryError, QuerySeries};

/// A run's planned queries: per metric, control and experiment (planned once, rebound to
/// each tick's window).
pub(crate) struct Prepared {
    config: CanaryConfig,
    pub(crate) kind: JudgeKind,
    metrics: Vec<(String, PreparedQuery, PreparedQuery)>,
    tick_lock: tokio::sync::Mutex<()>,
    store: crate::store::Store,
    /// The traffic-split guard (the run's `trafficSplit`, else the config's).
    guard: Option<SplitGuard>,
    /// Per metric: whether it has an SLO or error-budget gate.
    gated: Vec<bool>,
}

impl Prepared {
    pub(crate) async fn new(
        engine: &Engine,
        config: &CanaryConfig,
        doc: &Value,
        spec: &RunSpec,
    ) -> Result<Prepared, RunError> {
        let kind = JudgeKind::resolve(spec.judge.as_deref(), config)?;
        let guard = SplitGuard::resolve(config, spec.traffic_split.as_ref())
            .map_err(|e| RunError::Invalid(e.to_string()))?;
        let docs = doc
            .get("metrics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut metrics = Vec::new();
        let gated = config
            .metrics
            .iter()
            .map(|m| {
                crate::judge::slo::gates(&m.analysis, &m.path)
                    .is_ok_and(|(slo, burn)| slo.is_some() || burn.is_some())
            })
            .collect();
        for (m, d) in config.metrics.iter().zip(docs) {
            let sql = d
                .get("query")
                .and_then(|q| q.get("sql"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    RunError::Invalid(format!("metric '{}' has no SQL query", m.name))
                })?;
            let scope_name = m.scope_name.clone().unwrap_or_else(|| "default".into());
            let scope = spec.scopes.get(&scope_name).ok_or_else(|| {
                RunError::Invalid(format!("metric '{}': no scope '{scope_name}'", m.name))
            })?;
            let control = engine
                .plan(sql, Binding::new(scope.control.tags.clone(), 0, 0))
                .await
                .map_err(|source| RunError::Plan {
                    metric: m.name.clone(),
                    source,
                })?;
            let experiment = engine
                .plan(sql, Binding::new(scope.experiment.tags.clone(), 0, 0))
                .await
                .map_err(|source| RunError::Plan {
                    metric: m.name.clone(),
                    source,
                })?;
            metrics.push((m.name.clone(), control, experiment));
        }
        Ok(Prepared {
            config: config.clone(),
            kind,
            metrics,
            tick_lock: tokio::sync::Mutex::new(()),
            store: engine.store().clone(),
            guard,
            gated,
        })
    }
}

/// What a tick produced.
pub(crate) struct TickOutcome {
    pub result: judge::CanaryJudgeResult,
    pub pairs: Vec<PairData>,
    /// `coalmine-seq-v1`: the run's sequential states after this tick.
    pub states: Option<BTreeMap<String, SequentialState>>,
    /// The traffic-split guard's state after this tick.
    pub split: Option<SplitState>,
}

/// Query, pair and judge one tick.
/// `cpu` bounds the judgments computed at once (`runs.judge-threads`); the queries have
/// their own bound (`query.concurrency`), so a slow query never holds a judging slot.
pub(crate) async fn judge_tick(
    p: &Prepared,
    run: &Run,
    tick_ms: i64,
    cpu: &tokio::sync::Semaphore,
) -> Result<TickOutcome, RunError> {
    let _one_at_a_time = p.tick_lock.lock().await;
    let sequential = p.kind.sequential();
    // The sequential judge takes each value once: only what arrived since the last tick.
    let (start, end) = if sequential.is_some() {
        run.spec
            .new_data_window(run.judgments.last().map(|j| j.window_end_ms), tick_ms)
    } else {
        run.spec.window_at(tick_ms)
    };
    let mut pairs = Vec::new();
    // metric → tag keys its query names that no point has yet (a config saved before its data)
    let mut missing_tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // metric → why its query was stopped (a limit)
    let mut limited: BTreeMap<String, String> = BTreeMap::new();
    for (name, control_q, experiment_q) in &p.metrics {
        let store = &p.store;
        let mut missing = control_q.missing_tags(store);
        missing.extend(experiment_q.missing_tags(store));
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            missing_tags.insert(name.clone(), missing);
        }
        // A query stopped by its limits leaves its metric without data, with the reason;
        // the other metrics and the run go on. Other query errors end the run.
        let (control, experiment) =
            match query_window(name, control_q, experiment_q, start, end).await? {
                Ok(sides) => sides,
                Err(why) => {
                    limited.insert(name.clone(), why);
                    (Vec::new(), Vec::new())
                }
            };
        let base = format!("{}-{}", &run.id[..8.min(run.id.len())], run.next_tick);
        pairs.extend(mix(name, &base, control, experiment));
    }
    // The guard takes each bucket once, as the sequential judges do: what arrived since the
    // last tick (a fixed-horizon judge's window slides over buckets already counted).
    let split = match &p.guard {
        None => None,
        Some(guard) => {
            let looks = if sequential.is_some() {
                guard.looks(&pairs)
            } else {
                let (from, to) = run
                    .spec
                    .new_data_window(run.judgments.last().map(|j| j.window_end_ms), tick_ms);
                guard_looks(p, guard, from, to).await?
            };
            let mut state = run
                .traffic_split
                .clone()
                .unwrap_or_else(|| SplitState::new(guard));
            state.observe(&looks);
            Some(state)
        }
    };
    let thresholds = Thresholds {
        pass: run.spec.pass,
        marginal: run.spec.marginal,
    };
    let config = p.config.clone();
    let kind = p.kind;
    let judged_pairs: Vec<MetricSetPair> =
        pairs.iter().map(|p: &PairData| p.pair.clone()).collect();
    // A sequential judge takes only the new values; the SLO gates judge the run's window.
    let window = match sequential {
        Some(_) if p.gated.iter().any(|g| *g) => {
            Some(window_pairs(p, run, run.spec.window_at(tick_ms)).await?)
        }
        _ => None,
    };
    let mut states = run.sequential.clone();
    let horizon = judge::sequential::Horizon::Looks(run.spec.judgments());
    let _judging = cpu
        .acquire()
        .await
        .expect("the judging semaphore is never closed");
    let (result, states) = tokio::task::spawn_blocking(move || {
        if let Some(version) = sequential {
            judge::sequential::judge_states_gated(
                version,
                &config,
                &judged_pairs,
                &mut states,
                thresholds,
                horizon,
                window.as_deref(),
            )
            .map(|r| (r, Some(states)))
        } else {
            judge::judge_pairs(
                kind,
                &config,
                &judged_pairs,
                thresholds,
                Parallelism::Sequential,
            )
            .map(|r| (r, None))
        }
    })
    .await??;
    let mut result = result;
    explain_missing_tags(&mut result, &missing_tags);
    explain_limited(&mut result, &limited);
    if let Some(state) = &split {
        judge::split::attach(&mut result, state);
    }
    Ok(TickOutcome {
        result,
        pairs,
        states,
        split,
    })
}

/// Every metric's pairs over `[from, to)` without judging them (the report's series): a
/// metric whose query a limit stopped has no pairs. Waits for a tick in progress (the
/// queries are rebound in place).
pub(crate) async fn series(
    p: &Prepared,
    run: &Run,
    (from, to): (i64, i64),
) -> Result<Vec<PairData>, RunError> {
    let _one_at_a_time = p.tick_lock.lock().await;
    let mut out = Vec::new();
    for (name, control_q, experiment_q) in &p.metrics {
        if let Ok((control, experiment)) =
            query_window(name, control_q, experiment_q, from, to).await?
        {
            out.extend(mix(name, &run.id, control, experiment));
        }
    }
    Ok(out)
}

/// The pairs of the metrics with SLO gates over `[from, to)` (a limit leaves a metric out:
/// its gates then see the tick's values).
async fn window_pairs(
    p: &Prepared,
    run: &Run,
    (from, to): (i64, i64),
) -> Result<Vec<MetricSetPair>, RunError> {
    let mut out = Vec::new();
    for ((name, control_q, experiment_q), _) in p.metrics.iter().zip(&p.gated).filter(|(_, g)| **g)
    {
        if let Ok((control, experiment)) =
            query_window(name, control_q, experiment_q, from, to).await?
        {
            out.extend(
                mix(name, &run.id, control, experiment)
                    .into_iter()
                    .map(|d| d.pair),
            );
        }
    }
    Ok(out)
}

/// A metric's control and experiment queries rebound to `[from, to)` and run: both sides'
/// series, or (inner `Err`) why a limit stopped one of them; any other query error is the
/// run's error.
async fn query_window(
    name: &str,
    control_q: &PreparedQuery,
    experiment_q: &PreparedQuery,
    from: i64,
    to: i64,
) -> Result<Result<(Vec<QuerySeries>, Vec<QuerySeries>), String>, RunError> {
    let mut sides = Vec::with_capacity(2);
    let mut limit = None;
    for (q, side) in [(control_q, "control"), (experiment_q, "experiment")] {
        q.rebind(Binding::new(q_tags(q), from, to));
        match q.series().await {
            Ok(series) => sides.push(series),
            Err(QueryError::Limit(why)) => {
                limit.get_or_insert(format!("{side}: {why}"));
                sides.push(Vec::new());
            }
            Err(source) => {
                return Err(RunError::Query {
                    metric: name.to_string(),
                    side,
                    source,
                })
            }
        }
    }
    if let Some(why) = limit {
        return Ok(Err(why));
    }
    let experiment = sides.pop().unwrap_or_default();
    let control = sides.pop().unwrap_or_default();
    Ok(Ok((control, experiment)))
}

/// The guard's metric over `[from, to)`: its queries rebound to the new data (a query
/// stopped by a limit counts nothing this tick; the guard goes on with the next).
async fn guard_looks(
    p: &Prepared,
    guard: &SplitGuard,
    from: i64,
    to: i64,
) -> Result<Looks, RunError> {
    let mut looks = Looks::default();
    let Some((name, control_q, experiment_q)) = p.metrics.iter().find(|m| m.0 == guard.metric)
    else {
        return Ok(looks);
    };
    // a side stopped by a limit: neither counts this tick (one side alone would bias the share)
    let Ok((control, experiment)) = query_window(name, control_q, experiment_q, from, to).await?
    else {
        return Ok(looks);
    };
    for s in &control {
        looks.add(&s.values, &[]);
    }
    for s in &experiment {
        looks.add(&[], &s.values);
    }
    Ok(looks)
}

/// A metric without data whose query names tags no point has yet says so.
fn explain_missing_tags(
    result: &mut judge::CanaryJudgeResult,
    missing: &BTreeMap<String, Vec<String>>,
) {
    for r in &mut result.results {
        let Some(tags) = missing.get(&r.name) else {
            continue;
        };
        if r.classification == "Nodata" || r.classification == "NodataFailMetric" {
            let list: Vec<String> = tags.iter().map(|t| format!("`{t}`")).collect();
            r.classification_reason = Some(format!(
                "Missing data for {}: no point in the store has the tag {} that its query uses (yet)",
                r.name,
                list.join(", ")
            ));
        }
    }
}

/// A metric whose query hit a limit says which, whatever the judge made of no data.
fn explain_limited(result: &mut judge::CanaryJudgeResult, limited: &BTreeMap<String, String>) {
    for r in &mut result.results {
        if let Some(why) = limited.get(&r.name) {
            r.classification_reason = Some(format!(
                "Missing data for {}: its query was stopped ({why})",
                r.name
            ));
        }
    }
}

fn q_tags(q: &PreparedQuery) -> BTreeMap<String, String> {
    q.binding().tags
}

/// Kayenta's mixer (`MetricSetMixerService`): pair control and experiment series by tags;
/// an untagged side is the template for every tagged series of the other; a missing partner
/// is all NaN (so the judge's NaN strategy decides: Nodata, or zeros with `replace`).
/// Timestamps travel along for the archive.
pub(crate) fn mix(
    name: &str,
    base_id: &str,
    control: Vec<QuerySeries>,
    experiment: Vec<QuerySeries>,
) -> Vec<PairData> {
    type Side = BTreeMap<BTreeMap<String, String>, (Vec<f64>, Vec<Option<i64>>)>;
    let untagged = |s: &Side| s.len() == 1 && s.keys().next().is_some_and(BTreeMap::is_empty);
    let mut c: Side = control
        .into_iter()
        .map(|s| (s.tags, (s.values, s.ts)))
        .collect();
    let mut e: Side = experiment
        .into_iter()
        .map(|s| (s.tags, (s.values, s.ts)))
        .collect();
    if untagged(&c) && !e.is_empty() && !untagged(&e) {
        let template = c.remove(&BTreeMap::new()).unwrap_or_default();
        c = e.keys().map(|k| (k.clone(), template.clone())).collect();
    } else if untagged(&e) && !c.is_empty() && !untagged(&c) {
        let template = e.remove(&BTreeMap::new()).unwrap_or_default();
        e = c.keys().map(|k| (k.clone(), template.clone())).collect();
    }
    let mut keys: Vec<BTreeMap<String, String>> = c.keys().chain(e.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        // neither side returned anything: one empty pair, judged Nodata
        keys.push(BTreeMap::new());
    }
    keys.into_iter()
        .enumerate()
        .map(|(i, tags)| {
            let cv = c.remove(&tags);
            let ev = e.remove(&tags);
            let len = cv
                .as_ref()
                .map_or(0, |v| v.0.len())
                .max(ev.as_ref().map_or(0, |v| v.0.len()))
                .max(1);
            let missing = || (vec![f64::NAN; len], vec![None; len]);
            let (control, control_ts) = cv.unwrap_or_else(missing);
            let (experiment, experiment_ts) = ev.unwrap_or_else(missing);
            PairData {
                pair: MetricSetPair {
                    name: name.to_string(),
                    id: format!("{base_id}-{}", slug(name, i)),
                    tags,
                    control,
                    experiment,
                    times: Some(crate::judge::PairTimes {
                        control: control_ts,
                        experiment: experiment_ts,
                    }),
                    histogram: None,
                },
            }
        })
        .collect()
}

fn slug(name: &str, i: usize) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{s}-{i}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(tags: &[(&str, &str)], values: &[f64]) -> QuerySeries {
        QuerySeries {
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ts: (0..values.len() as i64).map(Some).collect(),
            values: values.to_vec(),
        }
    }

    #[test]
    fn mixer_pairs_by_tags_and_pads_with_nan() {
        // Kayenta vector mixer-001: same tags on both sides
        let p: Vec<MetricSetPair> = mix(
            "cpu",
            "r",
            vec![s(&[("tagName", "tagValue")], &[1.0, 3.0, 5.0, 7.0])],
            vec![s(&[("tagName", "tagValue")], &[2.0, 4.0, 6.0, 8.0])],
        )
        .into_iter()
        .map(|d| d.pair)
        .collect();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].control.clone(), p[0].experiment.clone()),
            (vec![1.0, 3.0, 5.0, 7.0], vec![2.0, 4.0, 6.0, 8.0])
        );
        // a partner missing: all NaN of the same length
        let p: Vec<MetricSetPair> = mix(
            "m",
            "r",
            vec![s(&[("pod", "a")], &[1.0, 2.0])],
            vec![s(&[("pod", "b")], &[3.0])],
        )
        .into_iter()
        .map(|d| d.pair)
        .collect();
        assert_eq!(p.len(), 2);
        assert!(p[0].experiment.iter().all(|v| v.is_nan()) && p[0].experiment.len() == 2);
        assert!(p[1].control.iter().all(|v| v.is_nan()));
        // an untagged side is the template for every tagged series of the other
        let p: Vec<MetricSetPair> = mix(
            "m",
            "r",
            vec![s(&[], &[9.0])],
            vec![s(&[("pod", "a")], &[1.0]), s(&[("pod", "b")], &[2.0])],
        )
        .into_iter()
        .map(|d| d.pair)
        .collect();
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|x| x.control == vec![9.0]));
        // nothing at all: one pair with no data
        let p: Vec<MetricSetPair> = mix("m", "r", vec![], vec![])
            .into_iter()
            .map(|d| d.pair)
            .collect();
        assert_eq!(p.len(), 1);
        assert!(p[0].control.iter().all(|v| v.is_nan()));
    }
}
