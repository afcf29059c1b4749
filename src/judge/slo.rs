//! SLO gates: an absolute objective on a metric, checked beside the comparative judgment.
//!
//! A canary that is no worse than its baseline can still be unacceptable: a p95 over its
//! objective fails the rollout whatever the baseline does. A metric's
//! `analysisConfigurations.canary.slo` names the objective and the statistic it applies to:
//!
//! ```json
//! "slo": {"max": 200, "statistic": "quantile:0.95", "confidence": 0.95}
//! ```
//!
//! * `max` or `min` (exactly one): the objective.
//! * `statistic`: `mean` (default), `quantile:q`, or `value` (the query returns one value per
//!   arm, e.g. an availability over the window).
//! * `confidence` (default 0.95): the one-sided confidence bound that must lie beyond the
//!   objective for the gate to be **breached**, so that a handful of values does not fail a
//!   canary on noise. An estimate beyond the objective whose bound is not is **uncertain**
//!   (reported, not failed).
//!
//! Bounds: the mean's is Student's t on the effective sample size of the series (its
//! long-run variance, [`crate::judge::lrv::long_run`]), so autocorrelated per-minute values
//! do not look more certain than they are; a quantile's is the distribution-free order
//! statistic whose binomial coverage reaches the confidence (values taken as independent);
//! `value` has no uncertainty. The gate is evaluated on both arms: a breached canary fails
//! the metric (`High` for `max`, `Low` for `min`; critical when the metric is), and the
//! baseline's value is reported too, so "the baseline is breaching as well" is said.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, StudentsT};

use super::json::{describe, JsonPath, ShapeError};
use super::lookup::get;

/// Which side of the objective is good.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Objective {
    /// The statistic must not exceed this.
    Max(f64),
    /// The statistic must not fall below this.
    Min(f64),
}

/// What the objective applies to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    Mean,
    Quantile(f64),
    Value,
}

impl Statistic {
    pub fn name(self) -> String {
        match self {
            Statistic::Mean => "mean".into(),
            Statistic::Quantile(q) => format!("quantile:{q}"),
            Statistic::Value => "value".into(),
        }
    }
}

/// A metric's SLO gate, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloGate {
    pub objective: Objective,
    pub statistic: Statistic,
    pub confidence: f64,
}

impl SloGate {
    /// A metric's `analysisConfigurations.canary.slo`, if any: `analysis` is the metric's
    /// `analysisConfigurations`, `metric_path` where the metric sits (for messages).
    pub fn from_analysis(
        analysis: &Value,
        metric_path: &JsonPath,
    ) -> Result<Option<SloGate>, ShapeError> {
        let Some(doc) = GateDoc::read(
            analysis,
            metric_path,
            "slo",
            &["max", "min", "statistic", "confidence"],
            None,
        )?
        else {
            return Ok(None);
        };
        let (o, path) = (&doc.o, &doc.path);
        let number = |key: &str| doc.number(key);
        let objective = match (number("max")?, number("min")?) {
            (Some(m), None) => Objective::Max(m),
            (None, Some(m)) => Objective::Min(m),
            _ => {
                return Err(ShapeError::new(
                    path,
                    "give exactly one of \"max\" and \"min\"",
                ))
            }
        };
        let statistic = match o.get("statistic") {
            None => Statistic::Mean,
            Some(Value::String(s)) => parse_statistic(s).ok_or_else(|| {
                ShapeError::new(
                    &path.key("statistic"),
                    format!(
                        "expected \"mean\", \"value\" or \"quantile:q\" with q in (0, 1), got {s:?}"
                    ),
                )
            })?,
            Some(v) => {
                return Err(ShapeError::new(
                    &path.key("statistic"),
                    format!("expected a string, found {}", describe(v)),
                ))
            }
        };
        let confidence = doc.confidence()?;
        Ok(Some(SloGate {
            objective,
            statistic,
            confidence,
        }))
    }

    /// The gate on one arm's (clean) values.
    pub fn evaluate(&self, values: &[f64]) -> ArmSlo {
        let values: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = values.len();
        let (estimate, lower, upper) = match self.statistic {
            Statistic::Mean => mean_bounds(&values, self.confidence),
            Statistic::Quantile(q) => quantile_bounds(&values, q, self.confidence),
            Statistic::Value => match values.as_slice() {
                [v] => (*v, *v, *v),
                _ => (f64::NAN, f64::NAN, f64::NAN),
            },
        };
        // the bound on the side that would show a breach
        let (bound, beyond, bound_beyond) = match self.objective {
            Objective::Max(m) => (lower, estimate > m, lower > m),
            Objective::Min(m) => (upper, estimate < m, upper < m),
        };
        let state = if estimate.is_nan() {
            SloState::NoData
        } else if bound_beyond {
            SloState::Breached
        } else if beyond {
            SloState::Uncertain
        } else {
            SloState::Met
        };
        ArmSlo {
            n,
            estimate,
            bound,
            state,
        }
    }

    /// The objective in words: `mean ≤ 200`, `quantile:0.95 ≥ 0.995`.
    pub fn describe(&self) -> String {
        match self.objective {
            Objective::Max(m) => format!("{} ≤ {}", self.statistic.name(), fmt(m)),
            Objective::Min(m) => format!("{} ≥ {}", self.statistic.name(), fmt(m)),
        }
    }
}

/// A gate's object at `analysisConfigurations.canary.<key>`, its keys checked against the
/// ones the gate knows: what [`SloGate`] and [`BurnGate`] read their settings from.
struct GateDoc {
    path: JsonPath,
    o: serde_json::Map<String, Value>,
}

impl GateDoc {
    /// `None` when the metric has no such gate; `example` shows the expected shape in the
    /// message for a value that is not an object.
    fn read(
        analysis: &Value,
        metric_path: &JsonPath,
        key: &str,
        known: &[&str],
        example: Option<&str>,
    ) -> Result<Option<GateDoc>, ShapeError> {
        let path = metric_path
            .key("analysisConfigurations")
            .key("canary")
            .key(key);
        let Some(v) = get(analysis, &["canary", key]) else {
            return Ok(None);
        };
        let Value::Object(o) = v else {
            let like = example.map_or(String::new(), |e| format!(" like {e}"));
            return Err(ShapeError::new(
                &path,
                format!("expected an object{like}, found {}", describe(&v)),
            ));
        };
        if let Some(k) = o.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ShapeError::new(
                &path.key(k),
                format!("unknown key (known: {})", known.join(", ")),
            ));
        }
        Ok(Some(GateDoc { path, o }))
    }

    /// An optional finite number.
    fn number(&self, key: &str) -> Result<Option<f64>, ShapeError> {
        match self.o.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| {
                    ShapeError::new(
                        &self.path.key(key),
                        format!("expected a number, found {}", describe(v)),
                    )
                }),
        }
    }

    /// `confidence`: 0.95 unless given, in (0.5, 1).
    fn confidence(&self) -> Result<f64, ShapeError> {
        let confidence = self.number("confidence")?.unwrap_or(0.95);
        if !(confidence > 0.5 && confidence < 1.0) {
            return Err(ShapeError::new(
                &self.path.key("confidence"),
                format!("confidence must be in (0.5, 1), got {confidence}"),
            ));
        }
        Ok(confidence)
    }
}

/// A metric's gates, each optional: its SLO gate and its error-budget gate.
pub fn gates(
    analysis: &Value,
    metric_path: &JsonPath,
) -> Result<(Option<SloGate>, Option<BurnGate>), ShapeError> {
    Ok((
        SloGate::from_analysis(analysis, metric_path)?,
        BurnGate::from_analysis(analysis, metric_path)?,
    ))
}

fn parse_statistic(s: &str) -> Option<Statistic> {
    match s {
        "mean" => Some(Statistic::Mean),
        "value" => Some(Statistic::Value),
        _ => {
            let q: f64 = s.strip_prefix("quantile:")?.parse().ok()?;
            (q > 0.0 && q < 1.0).then_some(Statistic::Quantile(q))
        }
    }
}

/// The mean and its one-sided bounds at `confidence`: Student's t on the effective sample
/// size (long-run variance). NaN without values; infinite bounds below 3 values.
fn mean_bounds(x: &[f64], confidence: f64) -> (f64, f64, f64) {
    let n = x.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let lr = super::lrv::long_run(x);
    let se = (lr.variance / n as f64).sqrt();
    let df = (lr.effective_n - 1.0).max(0.0);
    if !(se.is_finite() && df >= 1.0) {
        return (mean, f64::NEG_INFINITY, f64::INFINITY);
    }
    let t = StudentsT::new(0.0, 1.0, df).map_or(f64::INFINITY, |d| d.inverse_cdf(confidence));
    (mean, mean - t * se, mean + t * se)
}

/// The empirical `q`-quantile and distribution-free one-sided bounds at `confidence`: the
/// `k`-th smallest value is below the true quantile with probability `P(Bin(n, q) ≥ k)`, so
/// the lower bound is the largest such order statistic with that probability at least the
/// confidence (−∞ when even the smallest value does not reach it); the upper bound likewise.
fn quantile_bounds(x: &[f64], q: f64, confidence: f64) -> (f64, f64, f64) {
    let n = x.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    // type 7 (R's default) estimate
    let h = (n - 1) as f64 * q;
    let (lo, frac) = (h.floor() as usize, h - h.floor());
    let estimate = s[lo] + frac * (s[(lo + 1).min(n - 1)] - s[lo]);
    let Ok(b) = Binomial::new(q, n as u64) else {
        return (estimate, f64::NEG_INFINITY, f64::INFINITY);
    };
    // P(Bin ≥ k) = 1 − cdf(k − 1); the largest k (1-based) with it ≥ confidence
    let lower = (1..=n as u64)
        .rev()
        .find(|&k| 1.0 - b.cdf(k - 1) >= confidence)
        .map_or(f64::NEG_INFINITY, |k| s[k as usize - 1]);
    // the m-th smallest is above the quantile with probability P(Bin ≤ m − 1); the smallest
    // m with it ≥ confidence
    let upper = (1..=n as u64)
        .find(|&m| b.cdf(m - 1) >= confidence)
        .map_or(f64::INFINITY, |m| s[m as usize - 1]);
    (estimate, lower, upper)
}

/// Four significant digits, no trailing zeros (`229.3`, `0.9902`, `200`).
fn fmt(v: f64) -> String {
    super::stats::significant(v, 4)
}

/// What the gate says of one arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SloState {
    /// The estimate is on the good side.
    Met,
    /// The estimate is beyond the objective, its confidence bound is not.
    Uncertain,
    /// The confidence bound is beyond the objective.
    Breached,
    /// No value (or, for `value`, not exactly one).
    NoData,
}

/// The gate on one arm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmSlo {
    pub n: usize,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub estimate: f64,
    /// The one-sided confidence bound on the side of a breach (lower for `max`).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub bound: f64,
    pub state: SloState,
}

/// `slo` of a metric result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SloReport {
    /// `"max"` or `"min"`.
    pub objective: String,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub threshold: f64,
    pub statistic: String,
    pub confidence: f64,
    pub canary: ArmSlo,
    pub baseline: ArmSlo,
}

impl SloReport {
    pub fn new(gate: &SloGate, control: &[f64], experiment: &[f64]) -> SloReport {
        let (objective, threshold) = match gate.objective {
            Objective::Max(m) => ("max", m),
            Objective::Min(m) => ("min", m),
        };
        SloReport {
            objective: objective.into(),
            threshold,
            statistic: gate.statistic.name(),
            confidence: gate.confidence,
            canary: gate.evaluate(experiment),
            baseline: gate.evaluate(control),
        }
    }

    /// The gate this report was made with.
    pub fn gate(&self) -> SloGate {
        SloGate {
            objective: if self.objective == "max" {
                Objective::Max(self.threshold)
            } else {
                Objective::Min(self.threshold)
            },
            statistic: parse_statistic(&self.statistic).unwrap_or(Statistic::Mean),
            confidence: self.confidence,
        }
    }

    /// One sentence on the gate: what was observed on each arm against the objective.
    pub fn sentence(&self, gate: &SloGate, metric: &str) -> String {
        let bound_side = if self.objective == "max" {
            "lower"
        } else {
            "upper"
        };
        let arm = |a: &ArmSlo| match a.state {
            SloState::NoData => "no value to judge".to_string(),
            _ if gate.statistic == Statistic::Value => fmt(a.estimate),
            _ => format!(
                "{} ({:.0} % {bound_side} bound {}, n = {})",
                fmt(a.estimate),
                self.confidence * 100.0,
                fmt(a.bound),
                a.n
            ),
        };
        let needs = format!("{metric} needs {}", gate.describe());
        let head = match self.canary.state {
            SloState::Breached => format!("SLO breached: {needs}"),
            SloState::Uncertain => format!(
                "SLO uncertain: {needs}; the canary's estimate is beyond it, its {:.0} % bound is not",
                self.confidence * 100.0
            ),
            SloState::Met => format!("SLO met: {needs}"),
            SloState::NoData => format!("SLO not judged: {needs}"),
        };
        let mut s = format!(
            "{head}; canary {}, baseline {}",
            arm(&self.canary),
            arm(&self.baseline)
        );
        if self.baseline.state == SloState::Breached {
            s.push_str("; the baseline is breaching as well");
        }
        s
    }
}

/// A metric's error-budget burn gate (`analysisConfigurations.canary.errorBudget`), on a
/// ratio metric (bad/total):
///
/// ```json
/// "errorBudget": {"objective": 0.999, "maxBurnRate": 10, "statistic": "mean", "confidence": 0.95}
/// ```
///
/// The budget is `1 − objective` (0.1 % of requests may fail); the burn rate over the
/// window is the observed error ratio over the budget (an error ratio of 0.5 % burns a 0.1 %
/// budget at 5×: a 30-day budget gone in 6 days). The gate is the SLO gate
/// `error ratio ≤ maxBurnRate · (1 − objective)` ([`SloGate`], `mean` of the per-bucket
/// ratios or the query's single `value`), reported in burn-rate units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnGate {
    pub objective: f64,
    pub max_burn_rate: f64,
    pub gate: SloGate,
}

impl BurnGate {
    /// A metric's `analysisConfigurations.canary.errorBudget`, if any.
    pub fn from_analysis(
        analysis: &Value,
        metric_path: &JsonPath,
    ) -> Result<Option<BurnGate>, ShapeError> {
        let Some(doc) = GateDoc::read(
            analysis,
            metric_path,
            "errorBudget",
            &["objective", "maxBurnRate", "statistic", "confidence"],
            Some("{\"objective\": 0.999, \"maxBurnRate\": 10}"),
        )?
        else {
            return Ok(None);
        };
        let (o, path) = (&doc.o, &doc.path);
        let number = |key: &str, hint: &str| -> Result<f64, ShapeError> {
            doc.number(key)?
                .ok_or_else(|| ShapeError::new(&path.key(key), format!("missing ({hint})")))
        };
        let objective = number("objective", "the SLO as a ratio, e.g. 0.999")?;
        if !(objective > 0.0 && objective < 1.0) {
            return Err(ShapeError::new(
                &path.key("objective"),
                format!("the objective is a ratio in (0, 1) (99.9 % is 0.999), got {objective}"),
            ));
        }
        let max_burn_rate = number(
            "maxBurnRate",
            "how many times the sustainable rate, e.g. 10",
        )?;
        if max_burn_rate <= 0.0 {
            return Err(ShapeError::new(
                &path.key("maxBurnRate"),
                format!("must be above 0, got {max_burn_rate}"),
            ));
        }
        let statistic = match o.get("statistic") {
            None => Statistic::Mean,
            Some(Value::String(s)) if s == "mean" => Statistic::Mean,
            Some(Value::String(s)) if s == "value" => Statistic::Value,
            Some(other) => {
                return Err(ShapeError::new(
                    &path.key("statistic"),
                    format!(
                        "expected \"mean\" (of the per-bucket error ratios) or \"value\" (the query returns the window's ratio), found {}",
                        describe(other)
                    ),
                ))
            }
        };
        let confidence = doc.confidence()?;
        Ok(Some(BurnGate {
            objective,
            max_burn_rate,
            gate: SloGate {
                objective: Objective::Max(max_burn_rate * (1.0 - objective)),
                statistic,
                confidence,
            },
        }))
    }

    /// The error budget, `1 − objective`.
    pub fn budget(&self) -> f64 {
        1.0 - self.objective
    }
}

/// `errorBudget` of a metric result: burn rates (error ratio over the budget) on both arms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BurnReport {
    pub objective: f64,
    pub max_burn_rate: f64,
    pub statistic: String,
    pub confidence: f64,
    /// `estimate` and `bound` in burn-rate units.
    pub canary: ArmSlo,
    pub baseline: ArmSlo,
    /// Why the values are not taken for error ratios (some outside [0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl BurnReport {
    pub fn new(gate: &BurnGate, control: &[f64], experiment: &[f64]) -> BurnReport {
        let budget = gate.budget();
        let arm = |values: &[f64]| {
            if values.iter().any(|v| *v < 0.0 || *v > 1.0) {
                return (
                    ArmSlo {
                        n: values.iter().filter(|v| v.is_finite()).count(),
                        estimate: f64::NAN,
                        bound: f64::NAN,
                        state: SloState::NoData,
                    },
                    true,
                );
            }
            let a = gate.gate.evaluate(values);
            (
                ArmSlo {
                    estimate: a.estimate / budget,
                    bound: a.bound / budget,
                    ..a
                },
                false,
            )
        };
        let (canary, c_bad) = arm(experiment);
        let (baseline, b_bad) = arm(control);
        BurnReport {
            objective: gate.objective,
            max_burn_rate: gate.max_burn_rate,
            statistic: gate.gate.statistic.name(),
            confidence: gate.gate.confidence,
            canary,
            baseline,
            note: (c_bad || b_bad).then(|| {
                "values outside [0, 1]: the error budget needs the metric as a ratio bad/total (0.002, not 0.2 %)".to_string()
            }),
        }
    }

    /// One sentence: both arms' burn rates against the maximum.
    pub fn sentence(&self, metric: &str) -> String {
        let arm = |a: &ArmSlo| match a.state {
            SloState::NoData => "no value to judge".to_string(),
            _ if self.statistic == "value" => format!("{}×", fmt(a.estimate)),
            _ => format!(
                "{}× ({:.0} % lower bound {}×, n = {})",
                fmt(a.estimate),
                self.confidence * 100.0,
                fmt(a.bound),
                a.n
            ),
        };
        let needs = format!(
            "{metric} may burn its error budget (objective {} %, so {} % errors) at most {}× as fast as sustainable",
            fmt(self.objective * 100.0),
            fmt((1.0 - self.objective) * 100.0),
            fmt(self.max_burn_rate)
        );
        let head = match self.canary.state {
            SloState::Breached => format!("Error budget burning too fast: {needs}"),
            SloState::Uncertain => format!(
                "Error budget burn uncertain: {needs}; the canary's estimate is above it, its {:.0} % bound is not",
                self.confidence * 100.0
            ),
            SloState::Met => format!("Error budget burn within limits: {needs}"),
            SloState::NoData => format!("Error budget not judged: {needs}"),
        };
        let mut s = format!(
            "{head}; canary burns {}, baseline {}",
            arm(&self.canary),
            arm(&self.baseline)
        );
        if self.baseline.state == SloState::Breached {
            s.push_str("; the baseline is burning too fast as well");
        }
        if let Some(note) = &self.note {
            s.push_str("; ");
            s.push_str(note);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_rate_is_the_error_ratio_over_the_budget() {
        // objective 99.9 %: a 0.1 % budget. Errors 0.5 %, 0.6 %, 0.4 % → mean 0.5 % → 5×
        // (hand: 0.005 / 0.001); 2 %, 2.2 %, 1.8 % → 20×, over a maximum of 10×.
        let gate = BurnGate::from_analysis(
            &serde_json::json!({"canary": {"errorBudget": {"objective": 0.999, "maxBurnRate": 10}}}),
            &JsonPath::root(),
        )
        .unwrap()
        .unwrap();
        assert!((gate.budget() - 0.001).abs() < 1e-15);
        let r = BurnReport::new(&gate, &[0.005, 0.006, 0.004], &[0.02, 0.022, 0.018]);
        assert!((r.baseline.estimate - 5.0).abs() < 1e-9, "{r:?}");
        assert!((r.canary.estimate - 20.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.baseline.state, SloState::Met);
        // the bound is the SLO gate's on the ratio (error ratio ≤ 1 %), in burn units
        let (_, lower, _) = mean_bounds(&[0.02, 0.022, 0.018], 0.95);
        assert!((r.canary.bound - lower / 0.001).abs() < 1e-9, "{r:?}");
        assert!(r.canary.bound > 10.0);
        assert_eq!(r.canary.state, SloState::Breached, "{r:?}");
        // the window's ratio as one value (Σbad/Σtotal by the query): exact, no bound.
        // 25 errors in 2,000 requests = 1.25 % → 12.5× > 10×; 16 in 2,000 = 0.8 % → 8×
        let value = BurnGate::from_analysis(
            &serde_json::json!({"canary": {"errorBudget": {"objective": 0.999, "maxBurnRate": 10, "statistic": "value"}}}),
            &JsonPath::root(),
        )
        .unwrap()
        .unwrap();
        let r = BurnReport::new(&value, &[16.0 / 2000.0], &[25.0 / 2000.0]);
        assert!(
            (r.canary.estimate - 12.5).abs() < 1e-9 && (r.baseline.estimate - 8.0).abs() < 1e-9
        );
        assert_eq!(
            (r.canary.state, r.baseline.state),
            (SloState::Breached, SloState::Met)
        );
        assert!(r
            .sentence("errors")
            .starts_with("Error budget burning too fast"));
        // percentages instead of ratios are refused with the reason
        let r = BurnReport::new(&gate, &[0.5], &[2.0, 2.2]);
        assert_eq!(r.canary.state, SloState::NoData);
        assert!(r.note.is_some());
    }

    #[test]
    fn quantile_bounds_are_order_statistics_with_binomial_coverage() {
        // n = 20, q = 0.5, 95 %: P(Bin(20, .5) ≥ 6) = 0.9793, ≥ 7: 0.9423, so the lower
        // bound is the 6th smallest; the upper the 15th (P(Bin ≤ 14) = 0.9793)
        let x: Vec<f64> = (1..=20).map(f64::from).collect();
        let (est, lo, hi) = quantile_bounds(&x, 0.5, 0.95);
        assert_eq!((est, lo, hi), (10.5, 6.0, 15.0));
        // too few values for 95 %: unbounded
        let (_, lo, _) = quantile_bounds(&[1.0, 2.0, 3.0], 0.95, 0.95);
        assert_eq!(lo, 2.0);
        let (_, _, hi) = quantile_bounds(&[1.0, 2.0, 3.0], 0.95, 0.95);
        assert!(hi.is_infinite());
    }
}
