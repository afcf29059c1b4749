//! The judge's settings: judge-wide (`canaryConfig.judge.judgeConfigurations`) and per
//! metric (`analysisConfigurations.canary`), resolved into each metric's
//! [`SequentialParams`].

use serde_json::Value;

use super::state::{Horizon, SeqVersion, SequentialParams};
use super::MetricType;
use crate::judge::classifier::{Direction, NanStrategy};
use crate::judge::effect::EffectMeasure;
use crate::judge::json::{describe, JsonPath, ShapeError};
use crate::judge::lookup::{check, get, Reader};
use crate::judge::model::{CanaryConfig, MetricConfig, MetricSetPair};
use crate::judge::transform::{remove_nans, replace_nans};

/// Judge-wide settings from `canaryConfig.judge.judgeConfigurations`.
#[derive(Debug, Clone)]
pub(super) struct JudgeSettings {
    pub(super) alpha: f64,
    pub(super) bonferroni: bool,
    pub(super) t_opt: Option<f64>,
    pub(super) concentration: f64,
    pub(super) traffic_share: f64,
    pub(super) quantiles: Vec<f64>,
    pub(super) batch_size: f64,
    pub(super) pass_margin: f64,
    pub(super) version: SeqVersion,
    pub(super) warmup: Option<f64>,
    pub(super) tail_quantile: f64,
    /// `coalmine-seq-v1`-only keys set judge-wide (a warning under v2).
    pub(super) v1_keys: Vec<&'static str>,
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

impl JudgeSettings {
    pub(super) fn from_config(
        config: &CanaryConfig,
        version: SeqVersion,
    ) -> Result<Self, ShapeError> {
        let r = config.judge_configurations();
        let (data, base) = (r.data, r.base_path.clone());
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
        let share = r.traffic_share()?;
        Ok(JudgeSettings {
            alpha,
            bonferroni: multiplicity == "bonferroni",
            t_opt: r.opt_f64(&["tOpt"])?,
            concentration: r.f64(&["concentration"], 100.0)?,
            traffic_share: share,
            quantiles: number_list(data, &["quantiles"], &base)?.unwrap_or_else(|| vec![0.5]),
            batch_size: r.f64(&["batchSize"], 1.0)?,
            pass_margin: r.f64(&["passMargin"], 0.1)?,
            version,
            warmup: r.opt_f64(&["warmup"])?,
            tail_quantile: r.f64(&["tailQuantile"], 0.9)?,
            v1_keys: ["batchSize", "quantiles"]
                .into_iter()
                .filter(|k| get(data, &[k]).is_some())
                .collect(),
        })
    }
}

/// A metric's resolved settings.
#[derive(Debug, Clone)]
pub(super) struct MetricSettings {
    pub(super) nan_strategy: NanStrategy,
    pub(super) critical: bool,
    pub(super) must_have_data: bool,
    pub(super) muted: bool,
    /// `(allowedDecrease, allowedIncrease)`, `(criticalDecrease, criticalIncrease)`.
    pub(super) allowed: (f64, f64),
    pub(super) critical_thresholds: (f64, f64),
    pub(super) metric_type: Option<MetricType>,
    /// `tOpt` as configured (judge-wide or per metric); `None`: from the horizon.
    pub(super) t_opt: Option<f64>,
    pub(super) params: SequentialParams,
    pub(super) warnings: Vec<String>,
    /// `warmup` as configured; `None`: from the run's length ([`auto_warmup`]).
    pub(super) warmup: Option<u32>,
}

/// `coalmine-seq-v2`'s warm-up when none is configured: a sixth of the run's looks, at
/// least 10 and at most [`super::state::DEFAULT_WARMUP`] (30) — 30 ticks of a 3 h run of 10 s
/// ticks, 10 of an hour of one-minute ticks.
pub fn auto_warmup(horizon_looks: f64) -> u32 {
    ((horizon_looks / 6.0).round() as u32).clamp(10, super::state::DEFAULT_WARMUP)
}

impl MetricSettings {
    /// The series as the summaries see it: NaNs removed, or replaced by 0.
    pub(super) fn clean(&self, s: &[f64]) -> Vec<f64> {
        match self.nan_strategy {
            NanStrategy::Remove => remove_nans(s),
            NanStrategy::Replace => replace_nans(s, 0.0),
        }
    }

    /// The parameters of `pair`'s state at per-metric level `alpha`: the configured metric
    /// type, or the one inferred from the pair's values; `tOpt` as configured, or the values
    /// per arm the test will have seen by the end of `horizon` (the pair's values, times the
    /// run's looks when they are its first tick's), in batches.
    pub(super) fn params_for(
        &self,
        pair: &MetricSetPair,
        alpha: f64,
        horizon: Horizon,
    ) -> SequentialParams {
        let mut params = self.params.clone();
        params.alpha = alpha;
        let (control, experiment) = (self.clean(&pair.control), self.clean(&pair.experiment));
        // a folded histogram is judged on its buckets
        params.metric_type = if pair.histogram.is_some() {
            MetricType::Histogram
        } else {
            self.metric_type
                .unwrap_or_else(|| MetricType::infer(&control, &experiment))
        };
        params.t_opt = self.t_opt.unwrap_or_else(|| {
            let per_look = control.len().max(experiment.len()).max(1) as f64;
            let looks = match horizon {
                Horizon::Looks(n) => n.max(1) as f64,
                Horizon::Complete | Horizon::Unknown => 1.0,
            };
            (per_look * looks / params.batch_size as f64).max(1.0)
        });
        // the paired test counts looks: a run's, or one per value of a plain judgment
        params.horizon_looks = match horizon {
            Horizon::Looks(n) => n.max(1) as f64,
            Horizon::Complete | Horizon::Unknown => {
                control.len().max(experiment.len()).max(1) as f64
            }
        };
        if self.warmup.is_none() {
            params.warmup = auto_warmup(params.horizon_looks);
        }
        params
    }

    pub(super) fn resolve(metric: &MetricConfig, js: &JudgeSettings) -> Result<Self, ShapeError> {
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
            warnings.push(format!(
                "outliers.strategy \"remove\" needs the whole sample and is ignored by {}",
                js.version.kind().name()
            ));
        }
        if js.version == SeqVersion::V2 {
            for key in ["batchSize", "quantiles"] {
                if get(&metric.analysis, &["canary", key]).is_some() || js.v1_keys.contains(&key) {
                    warnings.push(format!(
                        "{key} is a coalmine-seq-v1 setting: coalmine-seq-v2 compares the arms' means look by look, in batches it chooses from the warm-up (set warmup instead)"
                    ));
                }
            }
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
            Some(Value::String(s)) if s == "histogram" || s == "auto" => None,
            Some(other) => {
                return Err(ShapeError::new(
                    &cp.key("metricType"),
                    format!(
                        "expected \"count\", \"continuous\", \"histogram\" or \"auto\", found {}",
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
        let warmup = r.opt_f64(&["canary", "warmup"])?.or(js.warmup);
        if let Some(w) = warmup {
            check(
                (2.0..=10_000.0).contains(&w) && w.fract() == 0.0,
                &cp.key("warmup"),
                format!("warmup must be a whole number of looks from 2 to 10000, got {w}"),
            )?;
        }
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
            version: js.version,
            warmup: warmup.map_or(super::state::DEFAULT_WARMUP, |w| w as u32),
            horizon_looks: 0.0,
            tail_quantile: r.f64(&["canary", "tailQuantile"], js.tail_quantile)?,
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
            warmup: warmup.map(|w| w as u32),
        })
    }
}
