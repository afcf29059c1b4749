//! The traffic-split guard: a sequential sample-ratio-mismatch (SRM) test on request counts.
//!
//! A comparison is only as good as its samples. When the canary does not get the share of
//! traffic it should (a router misconfiguration, sticky sessions, a cohort rule), every
//! per-request metric compares biased samples, and neither a pass nor a fail means anything.
//! The guard names a request-count metric of the config and the canary's expected share of
//! its events; it tests, look after look, whether the canary's share is that share:
//!
//! ```json
//! "trafficSplit": {"metric": "requests", "canaryShare": 0.5, "alpha": 0.001}
//! ```
//!
//! * `metric`: a metric of the config whose values are event counts per bucket (requests
//!   served), one series or several per arm (summed bucket by bucket).
//! * `canaryShare` (optional): the expected share ρ; otherwise it is derived as
//!   `coalmine-seq-v1` derives it from `judge.judgeConfigurations` (`trafficShare`, else
//!   `canaryInstances / (canaryInstances + baselineInstances)`, else 0.5).
//! * `alpha` (default 0.001): the guard's false-alarm probability over the whole run.
//!
//! # Test
//! Each bucket (the metric's values, index by index) is a look with `c` baseline and `e`
//! canary events. Conditionally on the totals, the canary's events out of all are
//! Binomial(N, ρ) under "the split is right", whatever the load does over time; the guard is
//! the two-sided Dirichlet–multinomial e-process of Lindon & Malek (2022) on the running
//! counts (savvi's `Multinomial` with two categories, prior concentration 100), the count
//! test of the sequential judges ([`super::sequential::CountTest`]). Request counts from
//! sticky sessions or retries come in clusters, which a binomial test takes for a broken
//! split; so the counts are divided by their overdispersion at its 90 % upper bound, as
//! `coalmine-seq-v2` does for count metrics ([`super::sequential::count::Dispersion`]), and
//! no evidence is taken before 3 looks with events. The split is **mismatched** once the
//! e-value reaches `1/alpha` (and stays so: a sample once biased stays biased); the observed
//! share comes with its confidence sequence at `1 − alpha`.
//!
//! A run carries the guard's state from tick to tick ([`SplitState`]) and ends
//! `inconclusive` at the tick the mismatch is found; a single judgment reports it and says
//! so in its classification reason.
//!
//! # References
//! 1. Lindon, M. & Malek, A. (2022). Anytime-valid inference for multinomial count data.
//!    *NeurIPS 2022*.
//! 2. Fabijan, A. et al. (2019). Diagnosing sample ratio mismatch in online controlled
//!    experiments. *KDD 2019*.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json::{describe, JsonPath, ShapeError};
use super::model::{CanaryConfig, MetricSetPair};

pub mod state;
pub use state::{
    Looks, SplitGuard, SplitReport, SplitState, SplitStatus, CONCENTRATION, DEFAULT_ALPHA,
};

/// `trafficSplit` as written (in a canary config or a run request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitSpec {
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_share: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
}

impl SplitSpec {
    /// Parse `trafficSplit` at `path`, checking keys, types and ranges.
    pub fn parse(v: &Value, path: &JsonPath) -> Result<SplitSpec, ShapeError> {
        let Value::Object(o) = v else {
            return Err(ShapeError::new(
                path,
                format!(
                    "expected an object like {{\"metric\": \"requests\", \"canaryShare\": 0.5}}, found {}",
                    describe(v)
                ),
            ));
        };
        for key in o.keys() {
            if !matches!(key.as_str(), "metric" | "canaryShare" | "alpha") {
                return Err(ShapeError::new(
                    &path.key(key),
                    "unknown key (known: metric, canaryShare, alpha)",
                ));
            }
        }
        let metric = match o.get("metric") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(other) => {
                return Err(ShapeError::new(
                    &path.key("metric"),
                    format!(
                        "expected the name of a request-count metric, found {}",
                        describe(other)
                    ),
                ))
            }
            None => {
                return Err(ShapeError::new(
                    &path.key("metric"),
                    "missing: the request-count metric whose split is checked",
                ))
            }
        };
        let number = |key: &str, ok: fn(f64) -> bool, range: &str| match o.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if ok(x) => Ok(Some(x)),
                Some(x) => Err(ShapeError::new(
                    &path.key(key),
                    format!("must be in {range}, got {x}"),
                )),
                None => Err(ShapeError::new(
                    &path.key(key),
                    format!("expected a number, found {}", describe(v)),
                )),
            },
        };
        Ok(SplitSpec {
            metric,
            canary_share: number("canaryShare", |x| x > 0.0 && x < 1.0, "(0, 1)")?,
            alpha: number("alpha", |x| x > 0.0 && x < 0.5, "(0, 0.5)")?,
        })
    }
}

impl SplitGuard {
    /// The guard for judgments of `config`: `run` (a run request's `trafficSplit`) when
    /// given, else the config's own `trafficSplit`, else none. The metric must be one of the
    /// config's; the share falls back to the judge-wide `trafficShare` / instance counts.
    pub fn resolve(
        config: &CanaryConfig,
        run: Option<&SplitSpec>,
    ) -> Result<Option<SplitGuard>, ShapeError> {
        let path = config.path.key("trafficSplit");
        let spec = match run {
            Some(s) => s.clone(),
            None => match config.raw.get("trafficSplit") {
                None | Some(Value::Null) => return Ok(None),
                Some(v) => SplitSpec::parse(v, &path)?,
            },
        };
        let path = if run.is_some() {
            JsonPath::root().key("trafficSplit")
        } else {
            path
        };
        if config.metric(&spec.metric).is_none() {
            let names: Vec<&str> = config.metrics.iter().map(|m| m.name.as_str()).collect();
            return Err(ShapeError::new(
                &path.key("metric"),
                format!(
                    "the config has no metric named {:?} (its metrics: {})",
                    spec.metric,
                    names.join(", ")
                ),
            ));
        }
        let share = match spec.canary_share {
            Some(s) => s,
            None => config.judge_configurations().traffic_share()?,
        };
        Ok(Some(SplitGuard {
            metric: spec.metric,
            share,
            alpha: spec.alpha.unwrap_or(DEFAULT_ALPHA),
        }))
    }

    /// The guard's metric's events per bucket over `pairs`, each arm summed over its series
    /// bucket by bucket (NaN, a bucket without data, counts nothing); the shorter arm is
    /// padded with zeros.
    pub fn looks<P: std::borrow::Borrow<MetricSetPair>>(&self, pairs: &[P]) -> Looks {
        let mut looks = Looks::default();
        for p in pairs.iter().map(std::borrow::Borrow::borrow) {
            if p.name == self.metric {
                looks.add(&p.control, &p.experiment);
            }
        }
        looks
    }
}

/// A single judgment's guard: every look of `pairs` at once. The report goes into the
/// result; a mismatch makes its classification reason say that the verdict is inconclusive.
pub fn guard_judgment<P: std::borrow::Borrow<MetricSetPair>>(
    config: &CanaryConfig,
    pairs: &[P],
    result: &mut super::CanaryJudgeResult,
) -> Result<(), ShapeError> {
    let Some(guard) = SplitGuard::resolve(config, None)? else {
        return Ok(());
    };
    let mut state = SplitState::new(&guard);
    state.observe(&guard.looks(pairs));
    attach(result, &state);
    Ok(())
}

/// Put the guard's report into `result` (a mismatch also into the classification reason).
pub fn attach(result: &mut super::CanaryJudgeResult, state: &SplitState) {
    let report = state.report();
    if report.state == SplitStatus::Mismatch {
        let before = std::mem::take(&mut result.score.classification_reason);
        result.score.classification_reason = if before.is_empty() {
            format!("Inconclusive: {}", report.reason)
        } else {
            format!("Inconclusive: {}. {before}", report.reason)
        };
    }
    result.traffic_split = Some(report);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(share: f64) -> SplitGuard {
        SplitGuard {
            metric: "requests".into(),
            share,
            alpha: 0.001,
        }
    }

    #[test]
    fn a_clean_split_is_consistent_and_a_skewed_one_is_caught() {
        // 1,000 requests per look, exactly on the share: never a mismatch
        let mut s = SplitState::new(&guard(0.5));
        let looks = Looks {
            control: vec![500.0; 50],
            experiment: vec![500.0; 50],
        };
        s.observe(&looks);
        let r = s.report();
        assert_eq!(r.state, SplitStatus::Consistent, "{}", r.reason);
        assert!(r.lower < 0.5 && 0.5 < r.upper);
        // 45/55: caught within a few looks after the 3 the dispersion estimate needs
        let mut s = SplitState::new(&guard(0.5));
        let looks = Looks {
            control: (0..50).map(|i| 550.0 + (i % 3) as f64).collect(),
            experiment: (0..50).map(|i| 450.0 - (i % 3) as f64).collect(),
        };
        s.observe(&looks);
        let r = s.report();
        assert_eq!(r.state, SplitStatus::Mismatch, "{}", r.reason);
        assert!(r.mismatch_at.unwrap() <= 10, "{r:?}");
        assert!(r.upper < 0.5 && r.lower < 0.45 && 0.45 < r.upper, "{r:?}");
        assert!(r.reason.contains("Traffic split mismatch on requests"));
    }

    #[test]
    fn negative_counts_stop_the_guard_with_the_look() {
        let mut s = SplitState::new(&guard(0.5));
        s.observe(&Looks {
            control: vec![10.0, -1.0, 10.0],
            experiment: vec![10.0, 10.0, 10.0],
        });
        let r = s.report();
        assert_eq!(r.state, SplitStatus::Invalid);
        assert!(r.reason.contains("at look 2"), "{}", r.reason);
    }
}
