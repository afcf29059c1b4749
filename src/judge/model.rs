//! The judge's input and output documents, in Kayenta's JSON shapes:
//! the remote-judge request `{canaryConfig, metricSetPairList, scoreThresholds}` and the
//! `CanaryJudgeResult`. Inputs are read from `serde_json::Value` by hand so that every
//! problem is reported with the JSON path of the offending value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::{describe, sample_list, JsonPath, ShapeError};
use super::score::Thresholds;
use super::stats::Summary;

/// A metric's configuration as the judge sees it (`CanaryMetricConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricConfig {
    pub name: String,
    pub groups: Vec<String>,
    /// `analysisConfigurations`, read with Kayenta's `MapUtils` semantics.
    pub analysis: Value,
    /// `scopeName` (runs use it to pick the scope; Kayenta's convention is "default").
    pub scope_name: Option<String>,
    /// Where this metric sits in the request, for error messages.
    pub path: JsonPath,
}

/// The parts of a `CanaryConfig` the judge uses; the document itself is kept in `raw`.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryConfig {
    pub name: Option<String>,
    pub judge_name: Option<String>,
    pub metrics: Vec<MetricConfig>,
    pub group_weights: BTreeMap<String, f64>,
    pub raw: Value,
    /// Where the document sits (`canaryConfig`, `config`), for messages.
    pub path: JsonPath,
}

/// One `MetricSetPair`: a metric's control and experiment series for one tag combination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSetPair {
    pub name: String,
    pub id: String,
    pub tags: BTreeMap<String, String>,
    #[serde(serialize_with = "super::json::f64_vec_kayenta")]
    pub control: Vec<f64>,
    #[serde(serialize_with = "super::json::f64_vec_kayenta")]
    pub experiment: Vec<f64>,
    /// When each value was measured, if known (a run's query results, or Kayenta's
    /// `scopes` with `startTimeMillis` and `stepMillis`): `coalmine-v2` compares the arms at
    /// the same instants when they line up.
    #[serde(skip)]
    pub times: Option<PairTimes>,
    /// A histogram metric's bucket counts, when the judge folded its `le` series into one
    /// pair (`judge::histogram`): `control`/`experiment` then hold each interval's
    /// estimated quantile.
    #[serde(skip)]
    pub histogram: Option<std::sync::Arc<Buckets>>,
}

/// A histogram metric-set pair's buckets, interval by interval.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Buckets {
    /// Upper bounds, ascending; the last is `+Inf` unless [`Buckets::problem`] says so.
    pub bounds: Vec<f64>,
    /// Intervals both arms measured completely: `[control, experiment]` cumulative counts per
    /// bound (made monotonic as PromQL does).
    pub strata: Vec<[Vec<f64>; 2]>,
    /// Intervals each arm measured completely, `[control, experiment]`.
    pub intervals: [usize; 2],
    /// The quantile of interest (`histogram.quantile`).
    pub quantile: f64,
    /// Why the buckets cannot be judged at all (no `+Inf` bucket, …).
    pub problem: Option<String>,
}

/// When each value of a pair was measured (`None`: unknown), index for index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PairTimes {
    pub control: Vec<Option<i64>>,
    pub experiment: Vec<Option<i64>>,
}

/// A Kayenta remote-judge request.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeRequest {
    pub canary_config: CanaryConfig,
    pub metric_set_pair_list: Vec<MetricSetPair>,
    pub score_thresholds: Thresholds,
}

fn obj<'a>(v: &'a Value, path: &JsonPath) -> Result<&'a Map<String, Value>, ShapeError> {
    v.as_object()
        .ok_or_else(|| ShapeError::new(path, format!("expected an object, found {}", describe(v))))
}

fn string(v: &Value, path: &JsonPath) -> Result<String, ShapeError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| ShapeError::new(path, format!("expected a string, found {}", describe(v))))
}

fn number(v: &Value, path: &JsonPath) -> Result<f64, ShapeError> {
    v.as_f64()
        .ok_or_else(|| ShapeError::new(path, format!("expected a number, found {}", describe(v))))
}

fn required<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &JsonPath,
) -> Result<&'a Value, ShapeError> {
    m.get(key)
        .filter(|v| !v.is_null())
        .ok_or_else(|| ShapeError::new(&path.key(key), "missing"))
}

fn optional<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

impl CanaryConfig {
    /// Read a `CanaryConfig` document at `path`.
    pub fn from_value(v: &Value, path: &JsonPath) -> Result<Self, ShapeError> {
        let m = obj(v, path)?;
        let name = optional(m, "name")
            .map(|n| string(n, &path.key("name")))
            .transpose()?;
        let judge_name = match optional(m, "judge") {
            Some(j) => {
                let jp = path.key("judge");
                let jm = obj(j, &jp)?;
                optional(jm, "name")
                    .map(|n| string(n, &jp.key("name")))
                    .transpose()?
            }
            None => None,
        };
        let mut metrics = Vec::new();
        if let Some(list) = optional(m, "metrics") {
            let lp = path.key("metrics");
            let arr = list.as_array().ok_or_else(|| {
                ShapeError::new(&lp, format!("expected an array, found {}", describe(list)))
            })?;
            let mut seen = std::collections::HashSet::new();
            for (i, metric) in arr.iter().enumerate() {
                let metric = MetricConfig::from_value(metric, &lp.index(i))?;
                if !seen.insert(metric.name.clone()) {
                    return Err(ShapeError::new(
                        &metric.path.key("name"),
                        format!(
                            "duplicate metric name '{}': each metric of a config needs its own name",
                            metric.name
                        ),
                    ));
                }
                metrics.push(metric);
            }
        }
        let mut group_weights = BTreeMap::new();
        if let Some(classifier) = optional(m, "classifier") {
            let cp = path.key("classifier");
            let cm = obj(classifier, &cp)?;
            if let Some(weights) = optional(cm, "groupWeights") {
                let wp = cp.key("groupWeights");
                for (group, w) in obj(weights, &wp)? {
                    group_weights.insert(group.clone(), number(w, &wp.key(group))?);
                }
            }
        }
        Ok(CanaryConfig {
            name,
            judge_name,
            metrics,
            group_weights,
            raw: v.clone(),
            path: path.clone(),
        })
    }

    /// `judge.judgeConfigurations` (a judge's judge-wide settings), read with their JSON
    /// paths for messages.
    pub(crate) fn judge_configurations(&self) -> super::lookup::Reader<'_> {
        static NONE: Value = Value::Null;
        super::lookup::Reader {
            data: self
                .raw
                .get("judge")
                .and_then(|j| j.get("judgeConfigurations"))
                .unwrap_or(&NONE),
            base_path: JsonPath::root()
                .key("canaryConfig")
                .key("judge")
                .key("judgeConfigurations"),
        }
    }

    /// The first metric config with this name (Kayenta matches pairs to configs by name).
    pub fn metric(&self, name: &str) -> Option<&MetricConfig> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

impl MetricConfig {
    fn from_value(v: &Value, path: &JsonPath) -> Result<Self, ShapeError> {
        let m = obj(v, path)?;
        let name = string(required(m, "name", path)?, &path.key("name"))?;
        let mut groups = Vec::new();
        if let Some(g) = optional(m, "groups") {
            let gp = path.key("groups");
            let arr = g.as_array().ok_or_else(|| {
                ShapeError::new(
                    &gp,
                    format!("expected an array of strings, found {}", describe(g)),
                )
            })?;
            for (i, item) in arr.iter().enumerate() {
                groups.push(string(item, &gp.index(i))?);
            }
        }
        let analysis = match optional(m, "analysisConfigurations") {
            Some(a) => {
                obj(a, &path.key("analysisConfigurations"))?;
                a.clone()
            }
            None => Value::Object(Map::new()),
        };
        let scope_name = optional(m, "scopeName")
            .map(|s| string(s, &path.key("scopeName")))
            .transpose()?;
        Ok(MetricConfig {
            name,
            groups,
            analysis,
            scope_name,
            path: path.clone(),
        })
    }
}

impl MetricSetPair {
    pub fn from_value(v: &Value, path: &JsonPath) -> Result<Self, ShapeError> {
        let m = obj(v, path)?;
        let name = string(required(m, "name", path)?, &path.key("name"))?;
        let id = match optional(m, "id") {
            Some(id) => string(id, &path.key("id"))?,
            None => String::new(),
        };
        let mut tags = BTreeMap::new();
        if let Some(t) = optional(m, "tags") {
            let tp = path.key("tags");
            for (k, val) in obj(t, &tp)? {
                tags.insert(k.clone(), string(val, &tp.key(k))?);
            }
        }
        let vp = path.key("values");
        let values = obj(required(m, "values", path)?, &vp)?;
        let control = sample_list(required(values, "control", &vp)?, &vp.key("control"))?;
        let experiment = sample_list(required(values, "experiment", &vp)?, &vp.key("experiment"))?;
        let times = match optional(m, "scopes") {
            Some(scopes) => {
                scope_times(scopes, &path.key("scopes"), control.len(), experiment.len())?
            }
            None => None,
        };
        Ok(MetricSetPair {
            name,
            id,
            tags,
            control,
            experiment,
            times,
            histogram: None,
        })
    }
}

/// Kayenta's `MetricSetPair.scopes`: each arm's `startTimeMillis` and `stepMillis` give the
/// instant of every value. Absent or partial scopes give no times.
fn scope_times(
    scopes: &Value,
    path: &JsonPath,
    n_control: usize,
    n_experiment: usize,
) -> Result<Option<PairTimes>, ShapeError> {
    let m = obj(scopes, path)?;
    let arm = |name: &str, n: usize| -> Result<Option<Vec<Option<i64>>>, ShapeError> {
        let Some(scope) = optional(m, name) else {
            return Ok(None);
        };
        let sp = path.key(name);
        let s = obj(scope, &sp)?;
        let (Some(start), Some(step)) = (optional(s, "startTimeMillis"), optional(s, "stepMillis"))
        else {
            return Ok(None);
        };
        let start = number(start, &sp.key("startTimeMillis"))?;
        let step = number(step, &sp.key("stepMillis"))?;
        if !(step > 0.0 && step.is_finite() && start.is_finite()) {
            return Err(ShapeError::new(
                &sp.key("stepMillis"),
                format!("stepMillis must be a positive number, got {step}"),
            ));
        }
        Ok(Some(
            (0..n)
                .map(|i| Some((start + step * i as f64) as i64))
                .collect(),
        ))
    };
    Ok(
        match (arm("control", n_control)?, arm("experiment", n_experiment)?) {
            (Some(control), Some(experiment)) => Some(PairTimes {
                control,
                experiment,
            }),
            _ => None,
        },
    )
}

impl JudgeRequest {
    /// Read a remote-judge request document. Unknown top-level fields are rejected (they are
    /// almost always a misspelt `scoreThresholds` or `metricSetPairList`).
    pub fn from_value(v: &Value) -> Result<Self, ShapeError> {
        let root = JsonPath::root();
        let m = obj(v, &root)?;
        for key in m.keys() {
            if !matches!(
                key.as_str(),
                "canaryConfig" | "metricSetPairList" | "scoreThresholds"
            ) {
                return Err(ShapeError::new(
                    &root.key(key),
                    "unknown field (expected canaryConfig, metricSetPairList, scoreThresholds)",
                ));
            }
        }
        let canary_config = CanaryConfig::from_value(
            required(m, "canaryConfig", &root)?,
            &root.key("canaryConfig"),
        )?;
        let lp = root.key("metricSetPairList");
        let list = required(m, "metricSetPairList", &root)?;
        let arr = list.as_array().ok_or_else(|| {
            ShapeError::new(&lp, format!("expected an array, found {}", describe(list)))
        })?;
        let metric_set_pair_list = arr
            .iter()
            .enumerate()
            .map(|(i, p)| MetricSetPair::from_value(p, &lp.index(i)))
            .collect::<Result<_, _>>()?;
        let tp = root.key("scoreThresholds");
        let t = obj(required(m, "scoreThresholds", &root)?, &tp)?;
        let score_thresholds = Thresholds {
            pass: number(required(t, "pass", &tp)?, &tp.key("pass"))?,
            marginal: number(required(t, "marginal", &tp)?, &tp.key("marginal"))?,
        };
        Ok(JudgeRequest {
            canary_config,
            metric_set_pair_list,
            score_thresholds,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Output

/// `CanaryJudgeResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryJudgeResult {
    pub judge_name: String,
    pub score: ScoreResult,
    pub group_scores: Vec<GroupScoreResult>,
    pub results: Vec<AnalysisResult>,
    /// The traffic-split guard, when the config or the run has one ([`super::split`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split: Option<crate::judge::split::state::SplitReport>,
}

/// `CanaryJudgeScore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreResult {
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub score: f64,
    pub classification: String,
    pub classification_reason: String,
}

/// `CanaryJudgeGroupScore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupScoreResult {
    pub name: String,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub score: f64,
    pub classification: String,
    pub classification_reason: String,
}

/// `{ "stats": {...} }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesMetadata {
    pub stats: Summary,
}

/// `CanaryAnalysisResult`: one metric-set pair's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisResult {
    pub name: String,
    pub id: String,
    pub tags: BTreeMap<String, String>,
    pub classification: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_reason: Option<String>,
    pub groups: Vec<String>,
    pub experiment_metadata: SeriesMetadata,
    pub control_metadata: SeriesMetadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_metadata: Option<ResultMetadata>,
    pub critical: bool,
    pub muted: bool,
    /// coalmine judges: why the metric could not be judged at the configured level (it is
    /// then `Pass` with this as its reason): too little data for the test to reach the level,
    /// a change that is not significant, a sequential test that cannot cross `1/α`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_judged: Option<String>,
    /// `coalmine-v2`: the data could not reach the configured level (too few values, too
    /// few effective values, too few events). The metric is then `Nodata`, with the reason
    /// in `notJudged`, and a run resting on it is `inconclusive`, not passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inconclusive: bool,
    /// The metric's SLO gate, when its config has one ([`super::slo`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<super::slo::SloReport>,
    /// The metric's error-budget burn gate, when its config has one ([`super::slo`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_budget: Option<super::slo::BurnReport>,
}

/// `resultMetadata`: Kayenta's `ratio`, plus (coalmine judges) the test behind the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultMetadata {
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub ratio: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestDetails>,
}

/// `resultMetadata.test`: the statistics of the judge that classified the metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TestDetails {
    /// `coalmine-v2` (`"kind": "coalmine-v2"`).
    V2(Box<super::v2::V2Report>),
    /// `coalmine-v1` (`"kind": "mann-whitney"`).
    MannWhitney(TestReport),
    /// `coalmine-seq-v1` (`"kind": "sequential-count" | "sequential-quantile"`).
    Sequential(Box<super::sequential::SequentialReport>),
}

impl TestDetails {
    pub fn mann_whitney(&self) -> Option<&TestReport> {
        match self {
            TestDetails::MannWhitney(t) => Some(t),
            _ => None,
        }
    }

    pub fn sequential(&self) -> Option<&super::sequential::SequentialReport> {
        match self {
            TestDetails::Sequential(t) => Some(t),
            _ => None,
        }
    }

    pub fn v2(&self) -> Option<&super::v2::V2Report> {
        match self {
            TestDetails::V2(t) => Some(t),
            _ => None,
        }
    }
}

/// The statistics behind a coalmine judge's classification, so a verdict explains itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    /// `"mann-whitney"`.
    pub kind: String,
    /// `"exact"` or `"asymptotic"`.
    pub method: String,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub lower: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub upper: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub estimate: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub p_value: f64,
    pub confidence: f64,
    pub achieved_confidence: f64,
    /// The smallest p-value any data of these sample sizes could give: at or above
    /// `1 − confidence` the metric cannot be judged.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub min_p_value: f64,
    pub n_experiment: usize,
    pub n_control: usize,
    /// The no-change band `tolerance · |estimate|` the interval was compared against.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub bound: f64,
    pub effect_size: EffectReport,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectReport {
    pub measure: super::effect::EffectMeasure,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub value: f64,
}
