//! Working with an archive: its contents as Arrow tables, SQL over them, and re-judging
//! every archived judgment with another judge or other settings.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder, UInt32Array, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::execution::context::{SessionConfig, SessionContext};
use serde_json::{Map, Value};

use super::{pairs_batch, Archive, ArchiveError, ArchivedJudgment};
use crate::judge::{self, CanaryConfig, JudgeKind, Parallelism};

/// Settings that change how judgments are made (keyword overrides in Python):
///
/// ```json
/// {"confidence": 0.95, "tolerance": 0.2, "direction": "increase", "nanStrategy": "replace",
///  "effectSize": {"allowedIncrease": 1.1}, "outliers": {"strategy": "remove"},
///  "critical": false, "exact": true, "continuityCorrection": false,
///  "metrics": {"latency p99": {"effectSize": {"allowedIncrease": 1.2}}},
///  "groupWeights": {"latency": 60, "errors": 40}}
/// ```
///
/// Everything but `metrics` and `groupWeights` is merged into every metric's
/// `analysisConfigurations.canary`; `metrics` patches one metric by name (applied last).
pub fn apply_overrides(config: &Value, overrides: &Value) -> Result<Value, String> {
    let Some(o) = overrides.as_object() else {
        return if overrides.is_null() {
            Ok(config.clone())
        } else {
            Err("overrides must be an object".into())
        };
    };
    let known = all_settings();
    let mut global = Map::new();
    for (k, v) in o {
        match k.as_str() {
            "metrics" | "groupWeights" => {}
            k if known.contains(&k) => {
                global.insert(k.to_string(), v.clone());
            }
            other => {
                return Err(format!(
                    "unknown override {other:?} (known: {}, metrics, groupWeights)",
                    known.join(", ")
                ))
            }
        }
    }
    let mut out = config.clone();
    let names: Vec<String> = out["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str().map(str::to_owned))
        .collect();
    if let Some(per) = o.get("metrics") {
        let per = per
            .as_object()
            .ok_or("overrides.metrics must map metric names to settings")?;
        for name in per.keys() {
            if !names.contains(name) {
                return Err(format!(
                    "overrides.metrics: no metric named {name:?} in the config (metrics: {})",
                    names.join(", ")
                ));
            }
        }
    }
    if let Some(metrics) = out.get_mut("metrics").and_then(Value::as_array_mut) {
        for m in metrics {
            let name = m["name"].as_str().unwrap_or_default().to_string();
            let canary = m
                .as_object_mut()
                .ok_or("a metric config is not an object")?
                .entry("analysisConfigurations")
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .ok_or("analysisConfigurations is not an object")?
                .entry("canary")
                .or_insert_with(|| Value::Object(Map::new()));
            merge(canary, &Value::Object(global.clone()));
            if let Some(patch) = o.get("metrics").and_then(|p| p.get(&name)) {
                merge(canary, patch);
            }
        }
    }
    if let Some(w) = o.get("groupWeights") {
        if !w.is_object() {
            return Err("overrides.groupWeights must be an object of numbers".into());
        }
        out.as_object_mut()
            .ok_or("the config is not an object")?
            .entry("classifier")
            .or_insert_with(|| Value::Object(Map::new()))["groupWeights"] = w.clone();
    }
    Ok(out)
}

/// JSON merge patch (RFC 7386), objects merged recursively.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// The per-metric settings (`analysisConfigurations.canary`) every judge reads.
const COMMON: [&str; 7] = [
    "direction",
    "nanStrategy",
    "effectSize",
    "outliers",
    "critical",
    "mustHaveData",
    "muted",
];

/// The per-metric settings a judge reads besides [`COMMON`].
fn own_settings(kind: JudgeKind) -> &'static [&'static str] {
    match kind {
        JudgeKind::NetflixAcaV1 => &[],
        JudgeKind::CoalmineV1 => &["confidence", "tolerance", "exact", "continuityCorrection"],
        JudgeKind::CoalmineV2 => &["confidence", "metricType"],
        JudgeKind::CoalmineSeqV1 => &[
            "metricType",
            "trafficShare",
            "concentration",
            "quantiles",
            "tOpt",
            "batchSize",
            "passMargin",
        ],
        JudgeKind::CoalmineSeqV2 => &[
            "metricType",
            "trafficShare",
            "concentration",
            "tOpt",
            "passMargin",
            "warmup",
            "tailQuantile",
        ],
    }
}

/// Every per-metric setting some judge reads, in a stable order.
fn all_settings() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = COMMON.to_vec();
    for kind in JudgeKind::ALL {
        for k in own_settings(kind) {
            if !all.contains(k) {
                all.push(k);
            }
        }
    }
    all
}

/// The first override that `kind` would silently ignore, globally or in a metric's patch: a
/// setting only other judges read (the Mann–Whitney settings only `coalmine-v1` reads,
/// `warmup` only `coalmine-seq-v2`, …).
fn ignored_setting(kind: JudgeKind, overrides: &Value) -> Option<&'static str> {
    let own = own_settings(kind);
    let patches = overrides["metrics"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values());
    all_settings()
        .into_iter()
        .filter(|k| !COMMON.contains(k) && !own.contains(k))
        .find(|k| overrides.get(k).is_some() || patches.clone().any(|p| p.get(k).is_some()))
}

/// A parsed config, kept while consecutive judgments archive the same one (a run's
/// judgments all do): parsing and overriding it is most of a small judgment's cost.
struct ConfigCache {
    config_id: usize,
    config: CanaryConfig,
}

/// Judge one archived judgment again, reusing `cache` while the archived config repeats.
fn rejudge_cached(
    j: &ArchivedJudgment,
    judge: Option<&str>,
    overrides: &Value,
    cache: &mut Option<ConfigCache>,
) -> Result<judge::CanaryJudgeResult, String> {
    let config = match cache {
        Some(c) if c.config_id == j.config_id => &c.config,
        _ => {
            let doc = apply_overrides(j.config(), overrides)?;
            let config =
                CanaryConfig::from_value(&doc, &judge::json::JsonPath::root().key("config"))
                    .map_err(|e| e.to_string())?;
            &cache
                .insert(ConfigCache {
                    config_id: j.config_id,
                    config,
                })
                .config
        }
    };
    let kind = JudgeKind::resolve(judge.or(j.meta["judge"].as_str()), config)
        .map_err(|e| e.to_string())?;
    if let Some(key) = ignored_setting(kind, overrides) {
        let readers: Vec<&str> = JudgeKind::ALL
            .into_iter()
            .filter(|k| own_settings(*k).contains(&key))
            .map(JudgeKind::name)
            .collect();
        let kayenta = if kind == JudgeKind::NetflixAcaV1 {
            "; NetflixACAJudge-v1.0 fixes confidence 0.98 and tolerance 0.25 as Kayenta does"
        } else {
            ""
        };
        return Err(format!(
            "{}#{}: overrides: `{key}` has no effect on {} ({} read{} it{kayenta}): re-judge with {}",
            j.run_id,
            j.index,
            kind.name(),
            readers.join(" and "),
            if readers.len() == 1 { "s" } else { "" },
            readers.first().copied().unwrap_or("another judge"),
        ));
    }
    judge::run_with(
        kind,
        config,
        &j.pairs,
        j.thresholds(),
        Parallelism::Sequential,
    )
    .map_err(|e| format!("{}#{}: {e}", j.run_id, j.index))
}

/// Old vs new, per judgment and per metric.
pub struct Comparison {
    pub judgments: RecordBatch,
    pub metrics: RecordBatch,
}

/// Re-judge every judgment of `archive` on `threads` threads. `stop` cancels (the result is
/// then `Err` "interrupted"); `done` counts finished judgments (progress).
pub fn rejudge(
    archive: &Archive,
    judge: Option<&str>,
    overrides: &Value,
    threads: usize,
    stop: &AtomicBool,
    done: &AtomicUsize,
) -> Result<Comparison, ArchiveError> {
    if let Some(j) = judge {
        JudgeKind::from_name(j).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    }
    if let Some(first) = archive.judgments.first() {
        apply_overrides(first.config(), overrides).map_err(ArchiveError::Invalid)?;
    }
    type Done = Result<(judge::CanaryJudgeResult, Vec<MetricRow>), String>;
    // Judgments in chunks of 16 on a pool of `threads`, each worker with its parsed-config
    // cache; the results come back in archive order.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("coalmine-rejudge-{i}"))
        .build()
        .map_err(|e| ArchiveError::Invalid(format!("cannot start the re-judge threads: {e}")))?;
    let results: Vec<Option<Done>> = pool.install(|| {
        use rayon::prelude::*;
        archive
            .judgments
            .par_chunks(16)
            .map_init(
                || None,
                |cache, chunk| {
                    chunk
                        .iter()
                        .map(|j| {
                            if stop.load(Ordering::Relaxed) {
                                return None;
                            }
                            let r = rejudge_cached(j, judge, overrides, cache).map(|new| {
                                // the metric rows are built here, in parallel, too
                                let rows = new.results.iter().map(MetricRow::of).collect();
                                (new, rows)
                            });
                            done.fetch_add(1, Ordering::Relaxed);
                            Some(r)
                        })
                        .collect::<Vec<_>>()
                },
            )
            .flatten_iter()
            .collect()
    });
    if stop.load(Ordering::Relaxed) {
        return Err(ArchiveError::Invalid("interrupted".into()));
    }
    let mut jt = JudgmentTable::default();
    let mut mt = MetricTable::default();
    for (j, r) in archive.judgments.iter().zip(results) {
        let (new, rows) = r
            .expect("every judgment done")
            .map_err(ArchiveError::Invalid)?;
        let old = j.result();
        let label = archive
            .runs
            .get(&j.run_id)
            .and_then(|r| r.get("label"))
            .cloned()
            .unwrap_or(Value::Null);
        jt.push(j, old, &new, &label);
        let old_results = old["results"].as_array();
        for (k, row) in rows.into_iter().enumerate() {
            let or = old_results.and_then(|a| a.get(k)).unwrap_or(&Value::Null);
            mt.push(j, or["classification"].as_str(), row);
        }
    }
    Ok(Comparison {
        judgments: jt.finish(),
        metrics: mt.finish(),
    })
}

#[derive(Default)]
struct JudgmentTable {
    run: StringBuilder,
    index: UInt64Builder,
    old_judge: StringBuilder,
    new_judge: StringBuilder,
    old_score: Float64Builder,
    new_score: Float64Builder,
    old_class: StringBuilder,
    new_class: StringBuilder,
    changed: BooleanBuilder,
    regressed: BooleanBuilder,
    kind: StringBuilder,
}

impl JudgmentTable {
    fn push(
        &mut self,
        j: &ArchivedJudgment,
        old: &Value,
        new: &judge::CanaryJudgeResult,
        label: &Value,
    ) {
        self.run.append_value(&j.run_id);
        self.index.append_value(j.index);
        self.old_judge.append_option(old["judgeName"].as_str());
        self.new_judge.append_value(&new.judge_name);
        self.old_score.append_option(old["score"]["score"].as_f64());
        self.new_score.append_value(new.score.score);
        let oc = old["score"]["classification"].as_str();
        self.old_class.append_option(oc);
        self.new_class.append_value(&new.score.classification);
        self.changed
            .append_value(oc != Some(new.score.classification.as_str()));
        self.regressed.append_option(label["regressed"].as_bool());
        self.kind.append_option(label["kind"].as_str());
    }

    fn finish(mut self) -> RecordBatch {
        let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
        let schema = Schema::new(vec![
            f("run_id", DataType::Utf8, false),
            f("judgment", DataType::UInt64, false),
            f("old_judge", DataType::Utf8, true),
            f("new_judge", DataType::Utf8, false),
            f("old_score", DataType::Float64, true),
            f("new_score", DataType::Float64, false),
            f("old_classification", DataType::Utf8, true),
            f("new_classification", DataType::Utf8, false),
            f("changed", DataType::Boolean, false),
            f("label_regressed", DataType::Boolean, true),
            f("label_kind", DataType::Utf8, true),
        ]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.run.finish()),
            Arc::new(self.index.finish()),
            Arc::new(self.old_judge.finish()),
            Arc::new(self.new_judge.finish()),
            Arc::new(self.old_score.finish()),
            Arc::new(self.new_score.finish()),
            Arc::new(self.old_class.finish()),
            Arc::new(self.new_class.finish()),
            Arc::new(self.changed.finish()),
            Arc::new(self.regressed.finish()),
            Arc::new(self.kind.finish()),
        ];
        RecordBatch::try_new(Arc::new(schema), cols).expect("judgment comparison columns")
    }
}

#[derive(Default)]
struct MetricTable {
    run: StringBuilder,
    index: UInt64Builder,
    metric: StringBuilder,
    pair: StringBuilder,
    tags: StringBuilder,
    old_class: StringBuilder,
    new_class: StringBuilder,
    changed: BooleanBuilder,
    ratio: Float64Builder,
    p: Float64Builder,
    lower: Float64Builder,
    upper: Float64Builder,
    estimate: Float64Builder,
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "NaN" => Some(f64::NAN),
        _ => None,
    }
}

/// One metric result as the comparison tables show it.
struct MetricRow {
    metric: Option<String>,
    pair: Option<String>,
    tags: String,
    classification: Option<String>,
    /// `ratio`, and the test's `pValue`, `lower`, `upper`, `estimate`.
    numbers: [Option<f64>; 5],
}

impl MetricRow {
    fn of(r: &judge::model::AnalysisResult) -> MetricRow {
        // the JSON the result shows (NaN as "NaN", sequential reports as `test` too)
        let meta = r.result_metadata.as_ref().map_or(Value::Null, |m| {
            serde_json::to_value(m).expect("results serialise")
        });
        MetricRow {
            metric: Some(r.name.clone()),
            pair: Some(r.id.clone()),
            tags: serde_json::to_string(&r.tags).expect("tags serialise"),
            classification: Some(r.classification.clone()),
            numbers: Self::numbers(&meta),
        }
    }

    fn from_json(r: &Value) -> MetricRow {
        MetricRow {
            metric: r["name"].as_str().map(str::to_string),
            pair: r["id"].as_str().map(str::to_string),
            tags: r["tags"].to_string(),
            classification: r["classification"].as_str().map(str::to_string),
            numbers: Self::numbers(&r["resultMetadata"]),
        }
    }

    fn numbers(meta: &Value) -> [Option<f64>; 5] {
        let t = &meta["test"];
        [
            num(&meta["ratio"]),
            num(&t["pValue"]),
            num(&t["lower"]),
            num(&t["upper"]),
            num(&t["estimate"]),
        ]
    }
}

impl MetricTable {
    /// A metric's row, `old_class` being its archived classification.
    fn push(&mut self, j: &ArchivedJudgment, old_class: Option<&str>, row: MetricRow) {
        self.run.append_value(&j.run_id);
        self.index.append_value(j.index);
        self.metric.append_option(row.metric);
        self.pair.append_option(row.pair);
        self.tags.append_value(row.tags);
        let nc = row.classification.as_deref();
        self.old_class.append_option(old_class);
        self.new_class.append_option(nc);
        self.changed.append_value(old_class != nc);
        let [ratio, p, lower, upper, estimate] = row.numbers;
        self.ratio.append_option(ratio);
        self.p.append_option(p);
        self.lower.append_option(lower);
        self.upper.append_option(upper);
        self.estimate.append_option(estimate);
    }

    fn finish(mut self) -> RecordBatch {
        let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
        let schema = Schema::new(vec![
            f("run_id", DataType::Utf8, false),
            f("judgment", DataType::UInt64, false),
            f("metric", DataType::Utf8, true),
            f("pair_id", DataType::Utf8, true),
            f("tags", DataType::Utf8, false),
            f("old_classification", DataType::Utf8, true),
            f("new_classification", DataType::Utf8, true),
            f("changed", DataType::Boolean, false),
            f("new_ratio", DataType::Float64, true),
            f("new_p_value", DataType::Float64, true),
            f("new_lower", DataType::Float64, true),
            f("new_upper", DataType::Float64, true),
            f("new_estimate", DataType::Float64, true),
        ]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.run.finish()),
            Arc::new(self.index.finish()),
            Arc::new(self.metric.finish()),
            Arc::new(self.pair.finish()),
            Arc::new(self.tags.finish()),
            Arc::new(self.old_class.finish()),
            Arc::new(self.new_class.finish()),
            Arc::new(self.changed.finish()),
            Arc::new(self.ratio.finish()),
            Arc::new(self.p.finish()),
            Arc::new(self.lower.finish()),
            Arc::new(self.upper.finish()),
            Arc::new(self.estimate.finish()),
        ];
        RecordBatch::try_new(Arc::new(schema), cols).expect("metric comparison columns")
    }
}

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        true,
    )
}

impl Archive {
    /// One row per run.
    pub fn runs_table(&self) -> RecordBatch {
        let (mut id, mut cfg, mut status, mut msg, mut label) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let (mut n, mut score) = (UInt64Builder::new(), Float64Builder::new());
        let (mut start, mut end) = (
            TimestampMillisecondBuilder::new().with_timezone("UTC"),
            TimestampMillisecondBuilder::new().with_timezone("UTC"),
        );
        let (mut regressed, mut kind) = (BooleanBuilder::new(), StringBuilder::new());
        for (rid, r) in &self.runs {
            id.append_value(rid);
            cfg.append_option(r["config"]["name"].as_str());
            status.append_option(r["status"].as_str());
            let js = r["judgments"].as_array();
            n.append_value(js.map_or(0, |a| a.len() as u64));
            score.append_option(js.and_then(|a| a.last()).and_then(|j| j["score"].as_f64()));
            start.append_option(r["spec"]["start_ms"].as_i64());
            end.append_option(
                r["spec"]["start_ms"]
                    .as_i64()
                    .zip(r["spec"]["lifetime_ms"].as_i64())
                    .map(|(s, l)| s + l),
            );
            msg.append_option(r["message"].as_str());
            label.append_option(r.get("label").map(|l| l.to_string()));
            regressed.append_option(r["label"]["regressed"].as_bool());
            kind.append_option(r["label"]["kind"].as_str());
        }
        let schema = Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("config", DataType::Utf8, true),
            Field::new("status", DataType::Utf8, true),
            Field::new("judgments", DataType::UInt64, false),
            Field::new("score", DataType::Float64, true),
            ts_field("start"),
            ts_field("end"),
            Field::new("message", DataType::Utf8, true),
            Field::new("label", DataType::Utf8, true),
            Field::new("label_regressed", DataType::Boolean, true),
            Field::new("label_kind", DataType::Utf8, true),
        ]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(cfg.finish()),
            Arc::new(status.finish()),
            Arc::new(n.finish()),
            Arc::new(score.finish()),
            Arc::new(start.finish()),
            Arc::new(end.finish()),
            Arc::new(msg.finish()),
            Arc::new(label.finish()),
            Arc::new(regressed.finish()),
            Arc::new(kind.finish()),
        ];
        RecordBatch::try_new(Arc::new(schema), cols).expect("runs columns")
    }

    /// One row per judgment.
    pub fn judgments_table(&self) -> RecordBatch {
        let (mut id, mut judge, mut class, mut reason) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let (mut idx, mut score) = (UInt64Builder::new(), Float64Builder::new());
        let mut ts: Vec<TimestampMillisecondBuilder> = (0..3)
            .map(|_| TimestampMillisecondBuilder::new().with_timezone("UTC"))
            .collect();
        for j in &self.judgments {
            id.append_value(&j.run_id);
            idx.append_value(j.index);
            ts[0].append_option(j.meta["tickMs"].as_i64());
            ts[1].append_option(j.meta["windowStartMs"].as_i64());
            ts[2].append_option(j.meta["windowEndMs"].as_i64());
            judge.append_option(j.meta["judge"].as_str());
            score.append_option(j.result()["score"]["score"].as_f64());
            class.append_option(j.result()["score"]["classification"].as_str());
            reason.append_option(j.result()["score"]["classificationReason"].as_str());
        }
        let schema = Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("judgment", DataType::UInt64, false),
            ts_field("tick"),
            ts_field("window_start"),
            ts_field("window_end"),
            Field::new("judge", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("classification", DataType::Utf8, true),
            Field::new("reason", DataType::Utf8, true),
        ]);
        let mut cols: Vec<ArrayRef> = vec![Arc::new(id.finish()), Arc::new(idx.finish())];
        for b in ts.iter_mut() {
            cols.push(Arc::new(b.finish()));
        }
        cols.extend([
            Arc::new(judge.finish()) as ArrayRef,
            Arc::new(score.finish()),
            Arc::new(class.finish()),
            Arc::new(reason.finish()),
        ]);
        RecordBatch::try_new(Arc::new(schema), cols).expect("judgments columns")
    }

    /// One row per metric result of every judgment.
    pub fn results_table(&self) -> RecordBatch {
        let mut t = MetricTable::default();
        for j in &self.judgments {
            for r in j.result()["results"].as_array().into_iter().flatten() {
                let row = MetricRow::from_json(r);
                t.push(j, row.classification.clone().as_deref(), row);
            }
        }
        let b = t.finish();
        // as stored: one classification, the test's numbers
        let keep = [0usize, 1, 2, 3, 4, 6, 8, 9, 10, 11, 12];
        let b = b.project(&keep).expect("projection in range");
        let names = [
            "run_id",
            "judgment",
            "metric",
            "pair_id",
            "tags",
            "classification",
            "ratio",
            "p_value",
            "lower",
            "upper",
            "estimate",
        ];
        let fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .zip(names)
            .map(|(f, n)| Field::new(n, f.data_type().clone(), f.is_nullable()))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), b.columns().to_vec())
            .expect("results columns")
    }

    /// The archived values: one row per value, with `run_id` and `judgment`; optionally one
    /// run and/or one metric.
    pub fn pairs_table(
        &self,
        run_id: Option<&str>,
        metric: Option<&str>,
    ) -> Result<RecordBatch, ArchiveError> {
        let mut batches = Vec::new();
        let mut run_col = StringBuilder::new();
        let mut idx_col = Vec::new();
        for j in self
            .judgments
            .iter()
            .filter(|j| run_id.is_none_or(|r| r == j.run_id))
        {
            let pairs: Vec<_> = j
                .pairs
                .iter()
                .filter(|p| metric.is_none_or(|m| m == p.pair.name))
                .cloned()
                .collect();
            let b = pairs_batch(&pairs);
            for _ in 0..b.num_rows() {
                run_col.append_value(&j.run_id);
            }
            idx_col.extend(std::iter::repeat_n(j.index as u32, b.num_rows()));
            batches.push(b);
        }
        if let Some(r) = run_id {
            if !self.runs.contains_key(r) {
                return Err(ArchiveError::NotFound(format!(
                    "run '{r}' is not in the archive"
                )));
            }
        }
        let schema = super::pairs_schema();
        let all = arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        let mut fields = vec![
            Arc::new(Field::new("run_id", DataType::Utf8, false)),
            Arc::new(Field::new("judgment", DataType::UInt32, false)),
        ];
        fields.extend(schema.fields().iter().cloned());
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(run_col.finish()),
            Arc::new(UInt32Array::from(idx_col)),
        ];
        cols.extend(all.columns().iter().cloned());
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .map_err(|e| ArchiveError::Invalid(e.to_string()))
    }

    /// A DataFusion session with the archive's tables: `runs`, `judgments`, `results`,
    /// `pairs`.
    pub fn session(&self) -> Result<SessionContext, ArchiveError> {
        let ctx =
            SessionContext::new_with_config(SessionConfig::new().with_information_schema(false));
        for f in crate::query::timeseries::functions() {
            ctx.register_udaf(f);
        }
        let tables = [
            ("runs", self.runs_table()),
            ("judgments", self.judgments_table()),
            ("results", self.results_table()),
            ("pairs", self.pairs_table(None, None)?),
        ];
        for (name, batch) in tables {
            let t = MemTable::try_new(batch.schema(), vec![vec![batch]])
                .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
            ctx.register_table(name, Arc::new(t))
                .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        }
        Ok(ctx)
    }

    /// Run one read-only SELECT over the archive's tables.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>, ArchiveError> {
        crate::query::check_statement(query).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        let ctx = self.session()?;
        let df = ctx
            .sql_with_options(query, crate::query::read_only())
            .await
            .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        df.collect()
            .await
            .map_err(|e| ArchiveError::Invalid(e.to_string()))
    }
}
