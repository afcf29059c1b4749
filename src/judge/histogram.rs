//! Histogram metrics judged request by request.
//!
//! A latency histogram holds every request: per interval, how many fell at or below each
//! bucket bound `le`. A p99 per minute keeps one number of those thousands, and the judge then
//! compares a few dozen noisy p99s. A metric whose series carry an `le` tag (bucket counts per
//! interval, e.g. `increase()` of `_bucket` per `date_bin`) is instead folded into one
//! histogram pair per tag combination (the tags other than `le`) and judged on its requests:
//!
//! * `metricType: "histogram"` in `analysisConfigurations.canary` declares it; with no
//!   `metricType`, a metric all of whose series have an `le` tag is one (`coalmine-v2`).
//! * `histogram.quantile` (default 0.99) is the quantile of interest.
//!
//! # The test (`coalmine-v2`)
//! The pooled histogram of both arms picks the bounds: the one nearest the quantile (nearest
//! in log-odds of its cumulative share) splits *slow* from *fast* requests, and every bound
//! whose share is at least `1 − 10·(1 − q)` is *scored* (for p99, the upper decile): a
//! request scores the number of scored bounds it exceeds, so the test draws on the hundreds
//! of requests in the upper tail around the quantile rather than on the few beyond it.
//!
//! Each interval both arms measured is a stratum. Given its requests (each arm's number and
//! the pooled bucket counts), the canary's total score is a random draw without replacement
//! when the canary's latency distribution is the baseline's, whatever the load did to
//! latency in that interval — load both arms share cancels. Its expectation and variance
//! are exact (a linear permutation statistic); the sum over strata of score minus
//! expectation, over the root of the summed variances, is the Cochran–Mantel–Haenszel
//! statistic with scores. With one scored bound it is R's `mantelhaen.test(correct =
//! FALSE)` (checked against statsmodels).
//!
//! Slow requests come in bursts (a GC pause, a retry storm) that a random split does not
//! explain:
//! * one interval's departure counts as at most [`CAP`] standard deviations (of its own
//!   score, or of a typical interval's when its own variance is larger, as a burst makes
//!   it), so a burst weighs as an unusual interval, not as hundreds of requests;
//! * the variance is multiplied by the strata's Pearson dispersion around their median
//!   effect when it is above 1, and the p-value then comes from Student's t with `T − 1`
//!   degrees of freedom (quasi-likelihood).
//!
//! With fewer than [`MIN_SLOW`] slow requests in all, the metric is not judged.
//!
//! The effect gate (`effectSize.allowedIncrease`, …) compares the quantile ratio: each arm's
//! quantile from its pooled buckets, interpolated on the log-log scale of the survival
//! function ([`tail_quantile`]: PromQL's linear interpolation flattens a tail shift inside
//! a wide bucket); where the quantile lies beyond the highest finite bound in either arm,
//! the ratio of the slow shares instead.
//!
//! The sequential judges run the anytime-valid counterpart ([`super::sequential::tail`]).
//!
//! # References
//! 1. Mantel, N. & Haenszel, W. (1959). Statistical aspects of the analysis of data from
//!    retrospective studies of disease. *J. Natl. Cancer Inst.* 22, 719–748.
//! 2. McCullagh, P. & Nelder, J. A. (1989). *Generalized Linear Models*, 2nd ed., §4.5
//!    (quasi-likelihood, the Pearson dispersion estimate).
//! 3. Lindon, M., Sanden, C. & Shirikian, V. (2022). Rapid regression detection in software
//!    deployments through sequential testing. *KDD 2022* (request-level tests of latency).

use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use super::json::{describe, JsonPath, ShapeError};
use super::lookup::get;
pub use super::model::Buckets;
use super::model::{CanaryConfig, MetricConfig, MetricSetPair, PairTimes};
use super::JudgeError;
use crate::query::timeseries::parse_le;

/// The quantile of interest when `histogram.quantile` is not set.
pub const DEFAULT_QUANTILE: f64 = 0.99;

/// Below this many slow requests over all strata, a histogram metric is not judged (the
/// normal reference of the statistic needs them).
pub const MIN_SLOW: f64 = 10.0;

/// Whether a metric is a histogram, from its `metricType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Histogram,
    Auto,
    Other,
}

fn declared(metric: &MetricConfig) -> Declared {
    match get(&metric.analysis, &["canary", "metricType"]) {
        Some(Value::String(s)) if s == "histogram" => Declared::Histogram,
        None | Some(Value::Null) => Declared::Auto,
        Some(Value::String(s)) if s == "auto" => Declared::Auto,
        _ => Declared::Other,
    }
}

/// A metric's `histogram.quantile` (default [`DEFAULT_QUANTILE`]), checked.
pub fn quantile_of(metric: &MetricConfig) -> Result<f64, ShapeError> {
    let path = metric
        .path
        .key("analysisConfigurations")
        .key("canary")
        .key("histogram");
    match get(&metric.analysis, &["canary", "histogram"]) {
        None | Some(Value::Null) => Ok(DEFAULT_QUANTILE),
        Some(Value::Object(o)) => {
            if let Some(k) = o.keys().find(|k| k.as_str() != "quantile") {
                return Err(ShapeError::new(
                    &path.key(k),
                    "unknown key (known: quantile)",
                ));
            }
            match o.get("quantile") {
                None | Some(Value::Null) => Ok(DEFAULT_QUANTILE),
                Some(v) => match v.as_f64() {
                    Some(q) if q > 0.0 && q < 1.0 => Ok(q),
                    Some(q) => Err(ShapeError::new(
                        &path.key("quantile"),
                        format!("must be in (0, 1), got {q}"),
                    )),
                    None => Err(ShapeError::new(
                        &path.key("quantile"),
                        format!("expected a number such as 0.99, found {}", describe(v)),
                    )),
                },
            }
        }
        Some(other) => Err(ShapeError::new(
            &path,
            format!(
                "expected an object like {{\"quantile\": 0.99}}, found {}",
                describe(&other)
            ),
        )),
    }
}

/// Fold every histogram metric's `le` series into one pair per tag combination (the pair's
/// [`MetricSetPair::histogram`]); other pairs pass through. `None` when the judgment has no
/// histogram metric. A folded pair sits where its first bucket series was.
pub(crate) fn fold<'a, P: Borrow<MetricSetPair>>(
    config: &CanaryConfig,
    pairs: &'a [P],
) -> Result<Option<Vec<Cow<'a, MetricSetPair>>>, JudgeError> {
    let any_le = pairs.iter().any(|p| p.borrow().tags.contains_key("le"));
    let any_declared = config
        .metrics
        .iter()
        .any(|m| declared(m) == Declared::Histogram);
    if !any_le && !any_declared {
        return Ok(None);
    }
    let list = JsonPath::root().key("metricSetPairList");
    // which metric names are histograms: declared, or every series but the no-data
    // placeholder has `le` (and one does)
    let mut is_histogram: HashMap<&str, (bool, bool)> = HashMap::new(); // (all, any)
    for p in pairs.iter().map(Borrow::borrow) {
        let Some(metric) = config.metric(&p.name) else {
            continue; // the judge reports the missing config
        };
        let d = declared(metric);
        let entry = is_histogram
            .entry(p.name.as_str())
            .or_insert((d != Declared::Other, d == Declared::Histogram));
        if d == Declared::Histogram || no_data(p) {
            continue;
        }
        let has_le = p.tags.contains_key("le");
        entry.0 &= has_le;
        entry.1 |= has_le;
    }
    let is_histogram: HashMap<&str, bool> = is_histogram
        .into_iter()
        .map(|(k, (all, any))| (k, all && any))
        .collect();
    if !is_histogram.values().any(|&h| h) {
        return Ok(None);
    }
    // group the bucket series: (name, tags other than `le`) → pair indices
    let mut out: Vec<Cow<'a, MetricSetPair>> = Vec::with_capacity(pairs.len());
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new(); // (slot in `out`, pair indices)
    let mut group_of: HashMap<(&str, BTreeMap<&str, &str>), usize> = HashMap::new();
    for (i, p) in pairs.iter().map(Borrow::borrow).enumerate() {
        if !is_histogram.get(p.name.as_str()).copied().unwrap_or(false) {
            out.push(Cow::Borrowed(p));
            continue;
        }
        if !p.tags.contains_key("le") && no_data(p) {
            // a run's tick without data for the metric: a histogram without intervals
            let metric = config.metric(&p.name).expect("checked above");
            let mut empty = p.clone();
            empty.control.clear();
            empty.experiment.clear();
            empty.times = None;
            empty.histogram = Some(Arc::new(Buckets {
                quantile: quantile_of(metric)?,
                ..Buckets::default()
            }));
            out.push(Cow::Owned(empty));
            continue;
        }
        if !p.tags.contains_key("le") {
            return Err(ShapeError::new(
                &list.index(i).key("tags"),
                format!(
                    "{} has metricType \"histogram\": each of its series needs an `le` tag, the bucket's upper bound (a query returning le and value per interval)",
                    p.name
                ),
            )
            .into());
        }
        let key = (
            p.name.as_str(),
            p.tags
                .iter()
                .filter(|(k, _)| k.as_str() != "le")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        );
        match group_of.get(&key) {
            Some(&g) => groups[g].1.push(i),
            None => {
                group_of.insert(key, groups.len());
                groups.push((out.len(), vec![i]));
                out.push(Cow::Borrowed(p)); // replaced below
            }
        }
    }
    for (slot, members) in groups {
        let first = pairs[members[0]].borrow();
        let metric = config.metric(&first.name).expect("checked above");
        let quantile = quantile_of(metric)?;
        let series: Vec<(usize, &MetricSetPair)> =
            members.iter().map(|&i| (i, pairs[i].borrow())).collect();
        out[slot] = Cow::Owned(folded(&series, quantile, &list)?);
    }
    Ok(Some(out))
}

/// The placeholder a run sends for a metric whose query returned nothing in either scope
/// (or a Kayenta pair without values): no tags, no value that is not NaN.
fn no_data(p: &MetricSetPair) -> bool {
    p.tags.is_empty() && p.control.iter().chain(&p.experiment).all(|v| v.is_nan())
}

/// [`fold`] into owned pairs, for callers that hold plain slices.
pub(crate) fn fold_owned(
    config: &CanaryConfig,
    pairs: &[MetricSetPair],
) -> Result<Option<Vec<MetricSetPair>>, JudgeError> {
    Ok(fold(config, pairs)?.map(|f| f.into_iter().map(Cow::into_owned).collect()))
}

/// Where an arm's value sits: the instant it was measured, or its index.
fn keys(times: Option<&Vec<Option<i64>>>, len: usize) -> Option<Vec<i64>> {
    match times {
        Some(t) if t.len() == len && t.iter().all(Option::is_some) => {
            Some(t.iter().map(|x| x.expect("checked")).collect())
        }
        _ => None,
    }
}

/// One histogram pair from its bucket series `(index in the list, pair)`.
fn folded(
    series: &[(usize, &MetricSetPair)],
    quantile: f64,
    list: &JsonPath,
) -> Result<MetricSetPair, JudgeError> {
    let first = series[0].1;
    let mut by_bound: Vec<(f64, &MetricSetPair)> = Vec::with_capacity(series.len());
    for &(i, p) in series {
        let le = &p.tags["le"];
        let bound = parse_le(le).filter(|b| !b.is_nan()).ok_or_else(|| {
            ShapeError::new(
                &list.index(i).key("tags").key("le"),
                format!("{le:?} is not a bucket bound (a number, or \"+Inf\")"),
            )
        })?;
        if let Some((_, other)) = by_bound.iter().find(|(b, _)| *b == bound) {
            return Err(ShapeError::new(
                &list.index(i).key("tags").key("le"),
                format!(
                    "{} has two series for the bucket le={le:?} ({} and {}): sum them in the query, e.g. GROUP BY le",
                    p.name, other.id, p.id
                ),
            )
            .into());
        }
        by_bound.push((bound, p));
    }
    by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bounds: Vec<f64> = by_bound.iter().map(|b| b.0).collect();
    let nb = bounds.len();
    // instants when every series of both arms has them, else indices
    let timed = by_bound.iter().all(|(_, p)| {
        p.times.as_ref().is_some_and(|t| {
            keys(Some(&t.control), p.control.len()).is_some()
                && keys(Some(&t.experiment), p.experiment.len()).is_some()
        })
    });
    let mut arms: [BTreeMap<i64, Vec<f64>>; 2] = [BTreeMap::new(), BTreeMap::new()];
    for (j, (_, p)) in by_bound.iter().enumerate() {
        for (arm, values) in [&p.control, &p.experiment].into_iter().enumerate() {
            let at = if timed {
                let t = p.times.as_ref().expect("timed");
                keys(
                    Some(if arm == 0 { &t.control } else { &t.experiment }),
                    values.len(),
                )
                .expect("timed")
            } else {
                (0..values.len() as i64).collect()
            };
            for (&k, &v) in at.iter().zip(values.iter()) {
                arms[arm].entry(k).or_insert_with(|| vec![f64::NAN; nb])[j] = v;
            }
        }
    }
    // complete intervals, made monotonic (PromQL's envelope); negative counts are not counts
    let mut complete: [BTreeMap<i64, Vec<f64>>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let mut negative = None;
    for (arm, intervals) in arms.into_iter().enumerate() {
        for (k, mut counts) in intervals {
            if counts.iter().any(|c| !c.is_finite()) {
                continue;
            }
            if let Some(c) = counts.iter().find(|c| **c < 0.0) {
                negative.get_or_insert(*c);
                continue;
            }
            for j in 1..nb {
                counts[j] = counts[j].max(counts[j - 1]);
            }
            complete[arm].insert(k, counts);
        }
    }
    let problem = if bounds.last() != Some(&f64::INFINITY) {
        Some(format!(
            "{} has no le=\"+Inf\" bucket: without it the number of requests is unknown",
            first.name
        ))
    } else if nb < 2 {
        Some(format!(
            "{} has only the +Inf bucket: no bound splits its requests",
            first.name
        ))
    } else {
        negative.map(|c| {
            format!(
                "{} has a negative bucket count ({c}): bucket values must be request counts per interval, e.g. increase() of a _bucket counter",
                first.name
            )
        })
    };
    let strata: Vec<[Vec<f64>; 2]> = complete[0]
        .iter()
        .filter_map(|(k, c)| Some([c.clone(), complete[1].get(k)?.clone()]))
        .collect();
    let per_interval = |arm: usize| -> (Vec<f64>, Vec<Option<i64>>) {
        complete[arm]
            .iter()
            .map(|(k, counts)| {
                // beyond the highest finite bound: that bound, as PromQL answers (the
                // interval must not vanish from summaries and gates as NaN would)
                let top = bounds.iter().rev().copied().find(|b| b.is_finite());
                let q = match tail_quantile(&bounds, counts, quantile) {
                    Some(q) => q,
                    None if counts.last().is_some_and(|&n| n > 0.0) => top.unwrap_or(f64::NAN),
                    None => f64::NAN,
                };
                (q, timed.then_some(*k))
            })
            .unzip()
    };
    let (control, control_ts) = per_interval(0);
    let (experiment, experiment_ts) = per_interval(1);
    let mut tags = first.tags.clone();
    tags.remove("le");
    Ok(MetricSetPair {
        name: first.name.clone(),
        id: first.id.clone(),
        tags,
        control,
        experiment,
        times: timed.then_some(PairTimes {
            control: control_ts,
            experiment: experiment_ts,
        }),
        histogram: Some(Arc::new(Buckets {
            bounds,
            intervals: [complete[0].len(), complete[1].len()],
            strata,
            quantile,
            problem,
        })),
    })
}

/// The stratified tail test's findings ([module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct TailTest {
    /// The bucket bound nearest the quantile: above it a request is slow (`slow`).
    pub bound: f64,
    /// The bounds whose exceedances the test scores (see [`tail_bounds`]).
    pub scored: Vec<f64>,
    /// Strata (intervals) that carried information.
    pub strata: usize,
    /// Slow requests (over the intervals with both slow and fast requests) and all requests
    /// (over every interval both arms measured), `[baseline, canary]`.
    pub slow: [f64; 2],
    pub requests: [f64; 2],
    /// The statistic with the dispersion applied.
    pub z: f64,
    /// The dispersion used (≥ 1) and the t reference's degrees of freedom when > 1.
    pub dispersion: f64,
    pub df: Option<f64>,
    /// One-sided p-values: canary slower, canary faster.
    pub p_greater: f64,
    pub p_less: f64,
    /// Mantel–Haenszel common odds ratio of being slow, canary over baseline.
    pub odds_ratio: f64,
    /// Canary's slow share over the baseline's.
    pub tail_ratio: f64,
    /// The quantile of each arm, `[baseline, canary]`, from its pooled buckets.
    pub quantiles: [f64; 2],
    /// Quantile ratio where both are interpolated, else the tail ratio: the effect gate.
    pub effect: f64,
    pub effect_is_quantile: bool,
}

/// The most standard deviations one interval's score may differ from its expectation by:
/// beyond, a burst of slow requests in one interval (a GC pause) is counted as this many.
pub const CAP: f64 = 3.0;

/// The upper tail the test scores: bounds whose pooled share is at least
/// `1 − TAIL_WIDTH·(1 − q)`.
pub const TAIL_WIDTH: f64 = 10.0;

/// One interval's 2×2 table at a bound: canary slow, canary fast, baseline slow, baseline
/// fast.
pub(crate) type Table = (f64, f64, f64, f64);

/// The bound (index, never the last) whose share of the pooled cumulative counts is nearest
/// `q` in log-odds, among those that split the requests.
pub(crate) fn nearest_bound(pooled: &[f64], q: f64) -> Option<usize> {
    let total = *pooled.last()?;
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let d = |j: usize| (logit(pooled[j] / total) - logit(q)).abs();
    (0..pooled.len() - 1)
        .filter(|&j| pooled[j] > 0.0 && pooled[j] < total)
        .min_by(|&a, &b| d(a).total_cmp(&d(b)))
}

/// The nearest bound and the scored ones: every bound that splits the pooled requests with
/// a share of at least `1 − TAIL_WIDTH·(1 − q)`, and the nearest one in any case. A
/// request's score is the number of scored bounds it exceeds, so the test draws on the
/// upper tail around the quantile rather than on the few requests beyond it.
pub(crate) fn tail_bounds(pooled: &[f64], q: f64) -> Option<(usize, Vec<usize>)> {
    let nearest = nearest_bound(pooled, q)?;
    let total = pooled[pooled.len() - 1];
    let from = 1.0 - TAIL_WIDTH * (1.0 - q);
    let scored = (0..pooled.len() - 1)
        .filter(|&j| {
            j == nearest || (pooled[j] > 0.0 && pooled[j] < total && pooled[j] / total >= from)
        })
        .collect();
    Some((nearest, scored))
}

/// One interval's scored statistic: the canary's total score `a`, its expectation and its
/// variance when the interval's requests were split between the arms at random (a linear
/// permutation statistic: sampling without replacement), or `None` when it carries no
/// information (an arm without requests, or every request with the same score).
pub(crate) fn score_stratum(
    control: &[f64],
    experiment: &[f64],
    scored: &[usize],
) -> Option<(f64, f64, f64)> {
    let last = control.len() - 1;
    let (nc, ne) = (control[last], experiment[last]);
    let n = nc + ne;
    if nc <= 0.0 || ne <= 0.0 || n <= 1.0 {
        return None;
    }
    let (mut a, mut sum, mut sum2) = (0.0, 0.0, 0.0);
    let mut score = 0.0;
    for b in 0..=last {
        // a request in bucket b exceeds the scored bounds below b
        if b > 0 && scored.contains(&(b - 1)) {
            score += 1.0;
        }
        let prev = |arm: &[f64]| if b == 0 { 0.0 } else { arm[b - 1] };
        let (ce, cc) = (experiment[b] - prev(experiment), control[b] - prev(control));
        a += score * ce;
        sum += score * (ce + cc);
        sum2 += score * score * (ce + cc);
    }
    let variance = ne * nc / (n * (n - 1.0)) * (sum2 - sum * sum / n);
    (variance > 0.0).then_some((a, ne / n * sum, variance))
}

/// `u` capped at [`CAP`] standard deviations of the interval's score, or of a typical
/// interval's (`v_ref`, the median variance) when smaller: a burst of slow requests makes an
/// interval's own variance large, and would otherwise weigh as much as it departs.
pub(crate) fn cap(u: f64, v: f64, v_ref: f64) -> f64 {
    let c = CAP * v.min(v_ref).sqrt();
    u.clamp(-c, c)
}

/// The median (R's type 7, as every judge's percentiles).
pub(crate) fn median(xs: &[f64]) -> f64 {
    super::stats::percentile(xs, 50.0)
}

/// The interval's table at bound `j` from both arms' cumulative counts, when it has slow
/// and fast requests and both arms served some.
pub(crate) fn table(control: &[f64], experiment: &[f64], j: usize) -> Option<Table> {
    let last = control.len() - 1;
    let (nc, ne) = (control[last], experiment[last]);
    let (c, a) = (nc - control[j], ne - experiment[j]);
    let (n, k) = (nc + ne, a + c);
    (nc > 0.0 && ne > 0.0 && k > 0.0 && k < n && n > 1.0).then_some((a, ne - a, c, nc - c))
}

/// The Mantel–Haenszel common odds ratio of being slow, canary over baseline.
pub(crate) fn mantel_haenszel(tables: &[Table]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for &(a, b, c, d) in tables {
        let n = a + b + c + d;
        num += a * d / n;
        den += b * c / n;
    }
    num / den
}

/// Pearson's X² of the strata `(u, v)` (canary score minus its expectation, variance)
/// around a common shift `s·v`, `s` the variance-weighted median of `u/v`: a burst of slow
/// requests in a few intervals moves the median little, so their residuals count in full.
/// Each residual is standardised by the smaller of its variance and `v_ref` (a typical
/// interval's), as [`cap`] bounds it.
pub(crate) fn robust_x2(strata: &[(f64, f64)], v_ref: f64) -> f64 {
    let mut ratios: Vec<(f64, f64)> = strata.iter().map(|&(u, v)| (u / v, v)).collect();
    ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = strata.iter().map(|s| s.1).sum::<f64>() / 2.0;
    let mut acc = 0.0;
    let mut shift = 0.0;
    for (r, v) in ratios {
        acc += v;
        if acc >= half {
            shift = r;
            break;
        }
    }
    strata
        .iter()
        .map(|&(u, v)| (u - shift * v).powi(2) / v.min(v_ref))
        .sum()
}

/// The `q` quantile of one arm's cumulative counts, interpolated inside its bucket on the
/// log-log scale of the survival function (a Pareto tail between two bounds), or linearly
/// from 0 in the lowest bucket and where a share is 0; `None` beyond the highest finite
/// bound. PromQL's `histogram_quantile` interpolates the CDF linearly, which in a wide
/// bucket flattens the difference between two arms: with Prometheus's default bounds a
/// log-normal latency 10 % slower moves its linearly interpolated p99 by 3 %, its log-log
/// one by 10 %.
pub(crate) fn tail_quantile(bounds: &[f64], cumulative: &[f64], q: f64) -> Option<f64> {
    let n = *cumulative.last()?;
    if n <= 0.0 {
        return None;
    }
    let rank = q * n;
    let j = cumulative.iter().position(|&c| c >= rank)?;
    if j + 1 >= bounds.len() || !bounds[j].is_finite() {
        return None; // in the +Inf bucket
    }
    if j == 0 && bounds[0] <= 0.0 {
        return Some(bounds[0]); // as PromQL: a non-positive lowest bound is returned as is
    }
    let (lo, hi) = if j == 0 {
        (0.0, bounds[0])
    } else {
        (bounds[j - 1], bounds[j])
    };
    let (c_lo, c_hi) = (if j == 0 { 0.0 } else { cumulative[j - 1] }, cumulative[j]);
    // the share above the bucket, at least half a request: an empty tail above must not
    // switch the arm to another interpolation than an arm with one request there
    let (s_lo, s_hi, s) = ((n - c_lo) / n, ((n - c_hi) / n).max(0.5 / n), 1.0 - q);
    if j > 0 && lo > 0.0 && lo.is_finite() && s_lo > s_hi {
        Some(lo * ((s / s_lo).ln() / (s_hi / s_lo).ln() * (hi / lo).ln()).exp())
    } else if c_hi > c_lo && lo.is_finite() {
        Some(lo + (hi - lo) * (rank - c_lo) / (c_hi - c_lo))
    } else {
        Some(hi)
    }
}

/// Each arm's `q` quantile from its pooled cumulative counts, `[baseline, canary]`
/// ([`tail_quantile`]; NaN beyond the highest finite bound), and the effect the gate
/// compares: their ratio where both are inside a finite bucket, else `tail_ratio` (`false`).
pub(crate) fn effect(
    bounds: &[f64],
    arms: [&[f64]; 2],
    q: f64,
    tail_ratio: f64,
) -> ([f64; 2], f64, bool) {
    let quantiles = arms.map(|counts| tail_quantile(bounds, counts, q).unwrap_or(f64::NAN));
    let is_quantile = quantiles.iter().all(|v| v.is_finite()) && quantiles[0] > 0.0;
    let effect = if is_quantile {
        quantiles[1] / quantiles[0]
    } else {
        tail_ratio
    };
    (quantiles, effect, is_quantile)
}

/// Run the stratified tail test on `b`, or say why it cannot be run.
pub fn tail_test(b: &Buckets) -> Result<TailTest, String> {
    if let Some(p) = &b.problem {
        return Err(p.clone());
    }
    let nb = b.bounds.len();
    let last = nb - 1;
    // pooled cumulative counts over the strata
    let mut arm_pooled = [vec![0.0; nb], vec![0.0; nb]];
    for s in &b.strata {
        for arm in 0..2 {
            for j in 0..nb {
                arm_pooled[arm][j] += s[arm][j];
            }
        }
    }
    let pooled: Vec<f64> = (0..nb)
        .map(|j| arm_pooled[0][j] + arm_pooled[1][j])
        .collect();
    let total = pooled[last];
    if b.strata.is_empty() || total <= 0.0 {
        return Err(format!(
            "no interval in which both arms counted requests ({} baseline and {} canary intervals)",
            b.intervals[0], b.intervals[1]
        ));
    }
    let Some((j, scored)) = tail_bounds(&pooled, b.quantile) else {
        return Err(format!(
            "all {total} requests fall in one bucket: no bound splits slow from fast"
        ));
    };
    let tables: Vec<Table> = b
        .strata
        .iter()
        .filter_map(|s| table(&s[0], &s[1], j))
        .collect();
    let slow = [
        tables.iter().map(|t| t.2).sum::<f64>(),
        tables.iter().map(|t| t.0).sum::<f64>(),
    ];
    let requests = [
        b.strata.iter().map(|s| s[0][last]).sum::<f64>(),
        b.strata.iter().map(|s| s[1][last]).sum::<f64>(),
    ];
    if tables.is_empty() || slow[0] + slow[1] < MIN_SLOW {
        return Err(format!(
            "too few slow requests to judge: {} in the baseline and {} in the canary above le={} (at least {MIN_SLOW} needed)",
            fmt(slow[0]),
            fmt(slow[1]),
            b.bounds[j]
        ));
    }
    // the permutation statistic summed over the strata (Cochran–Mantel–Haenszel's, with
    // scores)
    let raw: Vec<(f64, f64)> = b
        .strata
        .iter()
        .filter_map(|s| score_stratum(&s[0], &s[1], &scored))
        .map(|(a, e, v)| (a - e, v))
        .collect();
    let v_ref = median(&raw.iter().map(|s| s.1).collect::<Vec<_>>());
    let strata: Vec<(f64, f64)> = raw.iter().map(|&(u, v)| (cap(u, v, v_ref), v)).collect();
    let (u, v): (f64, f64) = strata
        .iter()
        .fold((0.0, 0.0), |acc, s| (acc.0 + s.0, acc.1 + s.1));
    let t = strata.len();
    let dispersion = if t >= 2 {
        (robust_x2(&strata, v_ref) / (t - 1) as f64).max(1.0)
    } else {
        1.0
    };
    let z = if v > 0.0 {
        u / (dispersion * v).sqrt()
    } else {
        0.0
    };
    let df = (dispersion > 1.0).then_some((t - 1) as f64);
    let cdf = |x: f64| match df {
        Some(df) => StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |d| d.cdf(x)),
        None => Normal::new(0.0, 1.0).map_or(f64::NAN, |d| d.cdf(x)),
    };
    // slow shares over the intervals the slow requests were counted in
    let counted = [
        tables.iter().map(|t| t.2 + t.3).sum::<f64>(),
        tables.iter().map(|t| t.0 + t.1).sum::<f64>(),
    ];
    let tail_ratio = (slow[1] / counted[1]) / (slow[0] / counted[0]);
    let (quantiles, effect, effect_is_quantile) = effect(
        &b.bounds,
        [&arm_pooled[0], &arm_pooled[1]],
        b.quantile,
        tail_ratio,
    );
    Ok(TailTest {
        bound: b.bounds[j],
        scored: scored.iter().map(|&i| b.bounds[i]).collect(),
        strata: t,
        slow,
        requests,
        z,
        dispersion,
        df,
        // the upper tail as the lower tail of −z: no cancellation for tiny p-values
        p_greater: cdf(-z),
        p_less: cdf(z),
        odds_ratio: mantel_haenszel(&tables),
        tail_ratio,
        quantiles,
        effect,
        effect_is_quantile,
    })
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strata of `(canary slow, canary fast, baseline slow, baseline fast)` as buckets with
    /// one finite bound at 1 and +Inf.
    fn buckets(tables: &[(f64, f64, f64, f64)]) -> Buckets {
        Buckets {
            bounds: vec![1.0, f64::INFINITY],
            strata: tables
                .iter()
                .map(|&(a, b, c, d)| [vec![d, c + d], vec![b, a + b]])
                .collect(),
            intervals: [tables.len(), tables.len()],
            quantile: 0.5,
            problem: None,
        }
    }

    #[test]
    fn cmh_statistic_matches_statsmodels() {
        // statsmodels 0.15.0 (scipy 1.17.1):
        //   tabs = [[[12, 88], [5, 95]], [[20, 180], [14, 186]], [[9, 41], [3, 47]]]
        //   (rows canary/baseline, columns slow/fast, one table per stratum)
        //   st = StratifiedTable([np.array(t) for t in tabs])
        //   st.test_null_odds(correction=False) → statistic 6.279592971021049,
        //     p-value 0.012213614965483899 (two-sided); st.oddsratio_pooled 1.9763617677286742
        // The same test as R's mantelhaen.test(correct = FALSE).
        let b = buckets(&[
            (12.0, 88.0, 5.0, 95.0),
            (20.0, 180.0, 14.0, 186.0),
            (9.0, 41.0, 3.0, 47.0),
        ]);
        let t = tail_test(&b).unwrap();
        // one bound: the scored statistic is the CMH one; the dispersion around the median
        // stratum's effect (1.24 here) divides it
        let raw = t.z * t.z * t.dispersion;
        assert!((raw - 6.279592971021049).abs() < 1e-9, "{raw}");
        assert!(t.dispersion > 1.0 && t.df == Some(2.0), "{t:?}");
        assert!((t.odds_ratio - 1.9763617677286742).abs() < 1e-12);
        // without overdispersion the p-value is statsmodels': the first stratum four times
        // (their effects agree, X² = 0) gives statistic 12.537447765991644, two-sided
        // p-value 0.0003988767469753629
        let same = tail_test(&buckets(&[(12.0, 88.0, 5.0, 95.0); 4])).unwrap();
        assert!(same.dispersion == 1.0 && same.df.is_none());
        assert!((same.z * same.z - 12.537447765991644).abs() < 1e-9);
        assert!((2.0 * same.p_greater - 0.0003988767469753629).abs() < 1e-12);
        assert_eq!((t.slow, t.requests), ([22.0, 41.0], [350.0, 350.0]));
    }

    #[test]
    fn the_scored_statistic_has_the_permutation_mean_and_variance() {
        // bounds 1, 2, 3, +Inf, scored 1 and 2: scores 0, 1, 2, 2 by bucket. Baseline: one
        // request in each bucket; canary: two in the first, one in the third.
        let control = [1.0, 2.0, 3.0, 4.0];
        let experiment = [2.0, 2.0, 3.0, 3.0];
        let (a, mean, var) = score_stratum(&control, &experiment, &[0, 1]).unwrap();
        // every way to give 3 of the 7 requests (scores 0,1,2,2 and 0,0,2) to the canary
        let scores = [0.0, 1.0, 2.0, 2.0, 0.0, 0.0, 2.0];
        let mut sums = Vec::new();
        for i in 0..7 {
            for j in i + 1..7 {
                for k in j + 1..7 {
                    sums.push(scores[i] + scores[j] + scores[k]);
                }
            }
        }
        let m = sums.iter().sum::<f64>() / sums.len() as f64;
        let v = sums.iter().map(|s| (s - m).powi(2)).sum::<f64>() / sums.len() as f64;
        assert_eq!(a, 2.0);
        assert!(
            (mean - m).abs() < 1e-12 && (var - v).abs() < 1e-12,
            "{mean} {var} vs {m} {v}"
        );
    }

    use crate::query::timeseries::bucket_quantile;

    #[test]
    fn tail_quantiles_follow_a_log_normal_shift_where_linear_interpolation_flattens_it() {
        // log-normal latency, median 100 ms, log-sd 0.6, and the same 10 % slower: the
        // exact CDF at Prometheus's default bounds (statrs' normal CDF)
        use statrs::distribution::{ContinuousCDF, Normal};
        let bounds = [
            0.005,
            0.01,
            0.025,
            0.05,
            0.1,
            0.25,
            0.5,
            1.0,
            2.5,
            5.0,
            10.0,
            f64::INFINITY,
        ];
        let z = Normal::new(0.0, 1.0).unwrap();
        let cdf = |f: f64| -> Vec<f64> {
            bounds
                .iter()
                .map(|b| 1e6 * z.cdf((b / (0.1 * f)).ln() / 0.6))
                .collect()
        };
        let (base, slow) = (cdf(1.0), cdf(1.1));
        let p99 = |c: &[f64]| tail_quantile(&bounds, c, 0.99).unwrap();
        // true p99s: 0.1·e^{0.6·2.3263} = 0.4036 and 0.4440
        assert!((p99(&base) / 0.4036 - 1.0).abs() < 0.05, "{}", p99(&base));
        assert!((p99(&slow) / p99(&base) - 1.1).abs() < 0.02);
        let linear = |c: &[f64]| {
            let mut b: Vec<(f64, f64)> = bounds.iter().copied().zip(c.iter().copied()).collect();
            bucket_quantile(0.99, &mut b)
        };
        assert!(
            linear(&slow) / linear(&base) < 1.05,
            "PromQL's interpolation flattens it"
        );
        // an empty bucket above the quantile's switches neither arm to another rule: with
        // 2 % of requests in (0.5, 1], none above 1 in one arm and 0.01 % in the other, the
        // p99s stay close (linear in one arm, log-log in the other would read 0.75 vs 0.55)
        let b = [0.5, 1.0, f64::INFINITY];
        let none_above = tail_quantile(&b, &[98_000.0, 100_000.0, 100_000.0], 0.99).unwrap();
        let some_above = tail_quantile(&b, &[98_000.0, 99_990.0, 100_000.0], 0.99).unwrap();
        assert!(
            (none_above / some_above - 1.0).abs() < 0.1,
            "{none_above} {some_above}"
        );
        // the lowest bucket and the +Inf bucket
        assert_eq!(
            tail_quantile(&[1.0, f64::INFINITY], &[10.0, 10.0], 0.5),
            Some(0.5)
        );
        assert_eq!(
            tail_quantile(&[1.0, f64::INFINITY], &[1.0, 10.0], 0.99),
            None
        );
    }

    #[test]
    fn bursts_of_slow_requests_widen_the_test() {
        // the same totals, but the canary's slow requests all in one stratum of three
        let calm = tail_test(&buckets(&[(10.0, 90.0, 5.0, 95.0); 3])).unwrap();
        let bursty = tail_test(&buckets(&[
            (30.0, 70.0, 5.0, 95.0),
            (0.0, 100.0, 5.0, 95.0),
            (0.0, 100.0, 5.0, 95.0),
        ]))
        .unwrap();
        assert_eq!(calm.dispersion, 1.0);
        assert!(bursty.dispersion > 5.0, "{bursty:?}");
        assert_eq!(bursty.df, Some(2.0));
        assert!(
            calm.p_greater < 0.05 && bursty.p_greater > 0.1,
            "{calm:?} {bursty:?}"
        );
    }

    #[test]
    fn too_few_slow_requests_or_no_inf_bucket_are_not_judged() {
        let few = tail_test(&buckets(&[(2.0, 98.0, 1.0, 99.0); 3])).unwrap_err();
        assert!(few.contains("too few slow requests"), "{few}");
        let mut b = buckets(&[(10.0, 90.0, 5.0, 95.0)]);
        b.problem = Some("x has no le=\"+Inf\" bucket".into());
        assert!(tail_test(&b).unwrap_err().contains("+Inf"));
    }
}
