//! `resultMetadata.test` of `coalmine-seq-v1`: the statistics a metric's state reports.

use serde::{Deserialize, Serialize};

use super::quantile::{quantile_bounds, QuantileBounds};
use super::state::{SeqTest, SequentialState};
use super::{Alternative, MetricType, Tail};

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
    /// `coalmine-seq-v2`, continuous: the paired test's statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<PairedReport>,
    /// `coalmine-seq-v2`, counts: φ̂ = X²/(L − 1), the per-look overdispersion, and the
    /// upper bound the counts were divided by (absent before 3 looks with events, when the
    /// counts carry no evidence yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispersion_upper: Option<f64>,
    /// Histogram metrics: the slow/fast split and each arm's quantile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<HistogramReport>,
}

/// A histogram metric's test (see [`super::tail`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistogramReport {
    pub quantile: f64,
    /// The bucket bound above which a request is slow (absent until enough requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
    /// All requests of the looks at the bound, `[baseline, canary]` (the slow ones are
    /// `eventsControl`/`eventsExperiment`).
    pub requests: [f64; 2],
    /// Intervals both arms measured with scored requests (the looks of the test).
    pub intervals: usize,
    /// The bounds whose exceedances score a request.
    pub scored: Vec<f64>,
    /// Each arm's quantile from all its buckets, `[baseline, canary]` (null: none yet).
    pub quantiles: [Option<f64>; 2],
    /// What `effectSize` compares: `"quantile:q"`, or `"tail share"` when a quantile lies
    /// beyond the highest finite bound.
    pub effect_measure: String,
}

/// The paired test of `coalmine-seq-v2` (see [`super::paired`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedReport {
    /// `"logRatio"` or `"difference"`; absent before the first paired look.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<super::paired::PairedScale>,
    pub warmup: u32,
    /// The warm-up's lag-1 autocorrelation (bias-corrected) and the upper bound that chose
    /// the batch size; absent during the warm-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_ar1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_ar1_upper: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    pub batches: u64,
    pub paired_looks: u64,
    pub skipped_looks: u64,
    /// The mixture's prior variance of the standardised effect.
    pub g: f64,
    /// The location (paired mean) e-value, as the metric counts it, and the tail test's;
    /// the metric's is `0.8·location + 0.2·tail`.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub location_e_value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_e_value: Option<f64>,
    pub tail_quantile: f64,
    /// Look means per batch of the tail test (absent during the warm-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_batch_size: Option<u32>,
    /// The batch means' mean and standard deviation (the paired scale).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub mean: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub sd: f64,
}

impl SequentialState {
    pub(super) fn quantile_reports(&self, sub_ln_e: &[f64]) -> Vec<QuantileReport> {
        let (q, quantiles, t_opt) = match &self.test {
            SeqTest::Continuous(q) => (q, self.params.quantiles.clone(), self.params.t_opt),
            SeqTest::Paired(p) => match &p.tail {
                Some(q) => (
                    q,
                    vec![p.tail_quantile],
                    (p.horizon_looks / q.batch_size as f64).max(1.0),
                ),
                None => return Vec::new(),
            },
            SeqTest::Count(_) | SeqTest::Histogram(_) => return Vec::new(),
        };
        let nq = quantiles.len() as f64;
        let arm_alpha = self.params.alpha / (2.0 * nq);
        quantiles
            .iter()
            .map(|&p| {
                let c = quantile_bounds(&q.control, p, arm_alpha, t_opt);
                let e = quantile_bounds(&q.experiment, p, arm_alpha, t_opt);
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
            paired: None,
            dispersion: None,
            dispersion_upper: None,
            histogram: None,
        };
        match &self.test {
            SeqTest::Count(c) => {
                r.kind = "sequential-count".into();
                r.method = if c.dispersion.is_some() {
                    "beta-mixture e-process on dispersion-scaled counts (Lindon & Malek 2022; quasi-Poisson)".into()
                } else {
                    "beta-mixture e-process, Poisson counting processes (Lindon & Malek 2022)"
                        .into()
                };
                let finite = |x: f64| x.is_finite().then_some(x);
                r.dispersion = c.dispersion.and_then(|d| finite(d.estimate()));
                r.dispersion_upper = c.dispersion.and_then(|d| finite(d.phi()));
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
            SeqTest::Histogram(h) => {
                r.kind = "sequential-histogram".into();
                r.method = "mixture of conditional likelihood ratios on the slow requests, interval by interval, dispersion-tempered".into();
                let finite = |x: f64| x.is_finite().then_some(x);
                r.dispersion = finite(h.dispersion());
                r.dispersion_upper = finite(h.phi);
                r.events_control = Some(h.slow[0]);
                r.events_experiment = Some(h.slow[1]);
                let (quantiles, effect, is_quantile) = h.effect();
                r.effect_size = effect;
                r.histogram = Some(HistogramReport {
                    quantile: h.quantile,
                    bound: h.bound.map(|j| h.bounds[j]),
                    requests: h.requests,
                    intervals: h.looks.len(),
                    scored: h.scored.iter().map(|&j| h.bounds[j]).collect(),
                    quantiles: quantiles.map(finite),
                    effect_measure: if is_quantile {
                        format!("quantile:{}", h.quantile)
                    } else {
                        "tail share".into()
                    },
                });
            }
            SeqTest::Paired(pt) => {
                r.kind = "sequential-paired".into();
                r.method = "paired looks, batch means sized from the warm-up, t-mixture e-process (Rouder et al. 2009; Pérez-Ortiz et al. 2024)".into();
                r.t_opt = Some(pt.horizon_looks);
                r.batch_size = pt.batch_size;
                r.effect_size = self.mean_ratio();
                let (mean, sd) = pt.mean_sd().unwrap_or((f64::NAN, f64::NAN));
                let (location, tail) = pt.components();
                r.quantiles = self.quantile_reports(
                    &pt.tail
                        .as_ref()
                        .map(|q| q.sub_test_ln_e())
                        .unwrap_or_default(),
                );
                r.paired = Some(PairedReport {
                    scale: pt.scale,
                    warmup: pt.warmup,
                    warmup_ar1: pt.warmup_ar1,
                    warmup_ar1_upper: pt.warmup_ar1_upper,
                    batch_size: pt.batch_size,
                    batches: pt.batches,
                    paired_looks: pt.paired_looks,
                    skipped_looks: pt.skipped_looks,
                    g: pt.g(),
                    location_e_value: location.exp(),
                    tail_e_value: tail.map(f64::exp),
                    tail_quantile: pt.tail_quantile,
                    tail_batch_size: pt.tail.as_ref().map(|q| q.batch_size),
                    mean,
                    sd,
                });
                if pt.skipped_looks > 0 {
                    r.warnings.push(format!(
                        "{} looks were skipped: a mean that is not positive cannot be compared on the log scale the first paired look chose",
                        pt.skipped_looks
                    ));
                }
                r.confidence_sequence =
                    self.paired_ratio_cs()
                        .map(|(lower, estimate, upper)| ConfidenceSequence {
                            parameter: match pt.scale {
                                Some(super::paired::PairedScale::Difference) => {
                                    "pairedRelativeDifference".into()
                                }
                                _ => "pairedRatio".into(),
                            },
                            lower,
                            upper,
                            estimate,
                            level: 1.0 - p.alpha,
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
