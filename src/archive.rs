//! The archive of judgments: for every judgment of every run, the metric-set pairs it judged
//! (values with their timestamps and tags, both scopes), the config, the thresholds, the
//! judge and the result — so past canaries can be re-judged with other judges or settings.
//!
//! Layout (append-only; every file appears complete, via fsync + rename):
//!
//! ```text
//! <archive>/catalog.jsonl                 one line per judgment written (a summary)
//! <archive>/runs/<run-id>/run.json        the run: spec, config, status, message, label
//! <archive>/runs/<run-id>/000001.arrow    judgment 1: Arrow IPC, one row per value
//! ```
//!
//! A judgment file's table has the columns of [`pairs_schema`] (`metric`, `pair_id`, `tags`,
//! `scope` = control | experiment, `position`, `ts`, `value`); its schema metadata
//! `coalmine.judgment` holds the rest as JSON (`runId`, `index`, `tickMs`, window, `judge`,
//! `thresholds`, `config`, `result`). The archive is readable while the daemon writes it: a
//! reader sees only complete files. A run exports to one file ([`Archive::export_run`]) that
//! any Arrow reader opens, and imports back ([`import_run`]).

pub mod fixture;
pub mod rejudge;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, MapArray, MapBuilder, RecordBatch, StringArray, StringBuilder,
    StringDictionaryBuilder, TimestampMillisecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;

use crate::store::checksum::{self, Hashing};
use serde_json::{json, Value};

use crate::error::kind::{ErrorKind, IoError};
use crate::judge::MetricSetPair;
use crate::runs::{PairData, Run};

/// Errors of the archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: not a coalmine archive ({reason})", path.display())]
    NotAnArchive { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] IoError),
}

impl ArchiveError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::NotAnArchive { .. } | ArchiveError::NotFound(_) => ErrorKind::NotFound,
            ArchiveError::Corrupt { .. } => ErrorKind::InvalidInput,
            ArchiveError::Invalid(_) => ErrorKind::InvalidInput,
            ArchiveError::Io(e) => e.kind(),
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let context = context.into();
    move |source| ArchiveError::Io(IoError::new(context, source))
}

const META_KEY: &str = "coalmine.judgment";
const EXPORT_KEY: &str = "coalmine.run-export";

/// Columns of archived values.
pub fn pairs_schema() -> SchemaRef {
    let tags = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
        .finish()
        .data_type()
        .clone();
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    Arc::new(Schema::new(vec![
        Field::new("metric", dict.clone(), false),
        Field::new("pair_id", DataType::Utf8, false),
        Field::new("tags", tags, false),
        Field::new("scope", dict, false),
        Field::new("position", DataType::UInt32, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("value", DataType::Float64, false),
    ]))
}

/// One archived judgment, in memory.
#[derive(Debug, Clone)]
pub struct ArchivedJudgment {
    pub run_id: String,
    pub index: u64,
    /// `runId`, `index`, `tickMs`, `windowStartMs`, `windowEndMs`, `judge`, `thresholds`,
    /// `config`, `result`.
    pub meta: Value,
    pub pairs: Vec<PairData>,
    /// Judgments with the same id have equal configs (assigned by [`Archive::open`], so a
    /// re-judge parses each config once without comparing documents).
    pub config_id: usize,
}

impl ArchivedJudgment {
    pub fn config(&self) -> &Value {
        &self.meta["config"]
    }

    pub fn result(&self) -> &Value {
        &self.meta["result"]
    }

    pub fn thresholds(&self) -> crate::judge::Thresholds {
        crate::judge::Thresholds {
            pass: self.meta["thresholds"]["pass"].as_f64().unwrap_or(95.0),
            marginal: self.meta["thresholds"]["marginal"].as_f64().unwrap_or(75.0),
        }
    }

    /// The remote-judge request this judgment answered (Kayenta's shape).
    pub fn request(&self) -> Value {
        let pairs: Vec<Value> = self
            .pairs
            .iter()
            .map(|p| serde_json::to_value(pair_json(&p.pair)).expect("pairs serialise"))
            .collect();
        json!({"canaryConfig": self.config(), "metricSetPairList": pairs, "scoreThresholds": {"pass": self.thresholds().pass, "marginal": self.thresholds().marginal}})
    }
}

fn pair_json(p: &MetricSetPair) -> Value {
    let nums = |v: &[f64]| -> Vec<Value> {
        v.iter()
            .map(|x| {
                if x.is_finite() {
                    json!(x)
                } else {
                    json!("NaN")
                }
            })
            .collect()
    };
    json!({"name": p.name, "id": p.id, "tags": p.tags, "values": {"control": nums(&p.control), "experiment": nums(&p.experiment)}})
}

/// The table of one judgment's values.
pub fn pairs_batch(pairs: &[PairData]) -> RecordBatch {
    let mut metric = StringDictionaryBuilder::<Int32Type>::new();
    let mut pair_id = StringBuilder::new();
    let mut tags = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let mut scope = StringDictionaryBuilder::<Int32Type>::new();
    let (mut position, mut ts, mut value) = (Vec::new(), Vec::new(), Vec::new());
    for p in pairs {
        for (side, values, times) in [
            ("control", &p.pair.control, p.times(false)),
            ("experiment", &p.pair.experiment, p.times(true)),
        ] {
            for (i, v) in values.iter().enumerate() {
                metric.append_value(&p.pair.name);
                pair_id.append_value(&p.pair.id);
                for (k, val) in &p.pair.tags {
                    tags.keys().append_value(k);
                    tags.values().append_value(val);
                }
                tags.append(true).expect("map entries are balanced");
                scope.append_value(side);
                position.push(i as u32);
                ts.push(times.get(i).copied().flatten());
                value.push(*v);
            }
        }
    }
    RecordBatch::try_new(
        pairs_schema(),
        vec![
            Arc::new(metric.finish()) as ArrayRef,
            Arc::new(pair_id.finish()),
            Arc::new(tags.finish()),
            Arc::new(scope.finish()),
            Arc::new(UInt32Array::from(position)),
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(value)),
        ],
    )
    .expect("columns match the pairs schema")
}

/// Rebuild pairs from a table of [`pairs_schema`] rows (any order).
pub fn pairs_from_batch(batch: &RecordBatch, path: &Path) -> Result<Vec<PairData>, ArchiveError> {
    let corrupt = |r: &str| ArchiveError::Corrupt {
        path: path.to_path_buf(),
        reason: r.to_string(),
    };
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| corrupt(&format!("no `{name}` column")))
    };
    let metric = arrow::compute::cast(col("metric")?, &DataType::Utf8)
        .map_err(|e| corrupt(&e.to_string()))?;
    let metric = metric
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| corrupt("`metric` is not text"))?;
    let scope = arrow::compute::cast(col("scope")?, &DataType::Utf8)
        .map_err(|e| corrupt(&e.to_string()))?;
    let scope = scope
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| corrupt("`scope` is not text"))?;
    let pair_id = col("pair_id")?
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| corrupt("`pair_id` is not text"))?;
    let tags = col("tags")?
        .as_any()
        .downcast_ref::<MapArray>()
        .ok_or_else(|| corrupt("`tags` is not a map"))?;
    let position = col("position")?
        .as_any()
        .downcast_ref::<UInt32Array>()
        .ok_or_else(|| corrupt("`position` is not uint32"))?;
    let ts = col("ts")?
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| corrupt("`ts` is not a timestamp"))?;
    let value = col("value")?
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| corrupt("`value` is not float64"))?;
    let mut by_id: BTreeMap<String, (usize, PairData)> = BTreeMap::new();
    let mut order = 0usize;
    for r in 0..batch.num_rows() {
        let id = pair_id.value(r).to_string();
        let entry = by_id.entry(id.clone()).or_insert_with(|| {
            let t = tags.value(r);
            let keys = t.column(0).as_any().downcast_ref::<StringArray>().cloned();
            let vals = t.column(1).as_any().downcast_ref::<StringArray>().cloned();
            let mut tag_map = BTreeMap::new();
            if let (Some(k), Some(v)) = (keys, vals) {
                for i in 0..k.len() {
                    tag_map.insert(k.value(i).to_string(), v.value(i).to_string());
                }
            }
            order += 1;
            (
                order,
                PairData {
                    pair: MetricSetPair {
                        name: metric.value(r).to_string(),
                        id,
                        tags: tag_map,
                        control: Vec::new(),
                        experiment: Vec::new(),
                        times: Some(crate::judge::PairTimes::default()),
                        histogram: None,
                    },
                },
            )
        });
        let p = &mut entry.1;
        let pos = position.value(r) as usize;
        let t = (!ts.is_null(r)).then(|| ts.value(r));
        let all_times = p.pair.times.get_or_insert_with(Default::default);
        let (vals, times) = match scope.value(r) {
            "control" => (&mut p.pair.control, &mut all_times.control),
            "experiment" => (&mut p.pair.experiment, &mut all_times.experiment),
            other => return Err(corrupt(&format!("unknown scope {other:?}"))),
        };
        if vals.len() <= pos {
            vals.resize(pos + 1, f64::NAN);
            times.resize(pos + 1, None);
        }
        vals[pos] = value.value(r);
        times[pos] = t;
    }
    let mut out: Vec<(usize, PairData)> = by_id.into_values().collect();
    out.sort_by_key(|(o, _)| *o);
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

fn write_ipc(
    path: &Path,
    batch: &RecordBatch,
    key: &str,
    meta: &Value,
) -> Result<(), ArchiveError> {
    let mut md = std::collections::HashMap::new();
    md.insert(key.to_string(), meta.to_string());
    let schema = Arc::new(Schema::new_with_metadata(
        batch.schema().fields().clone(),
        md,
    ));
    let batch = batch
        .clone()
        .with_schema(schema.clone())
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f")
    ));
    let file =
        std::fs::File::create(&tmp).map_err(io(format!("cannot create {}", tmp.display())))?;
    let mut w = FileWriter::try_new(Hashing::new(std::io::BufWriter::new(file)), &schema)
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    w.write(&batch)
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    checksum::finish(&mut w).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    let buf = w
        .into_inner()
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?
        .into_inner();
    let file = buf.into_inner().map_err(|e| {
        ArchiveError::Io(IoError::new(
            format!("cannot write {}", tmp.display()),
            e.into_error(),
        ))
    })?;
    file.sync_all()
        .map_err(io(format!("cannot fsync {}", tmp.display())))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(format!("cannot rename into {}", path.display())))?;
    sync_dir(dir)
}

/// Make a rename in `dir` durable (`dir` empty: a bare file name, the working directory).
fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("cannot fsync {}", dir.display())))
}

fn read_ipc(path: &Path, key: &str) -> Result<(RecordBatch, Value), ArchiveError> {
    let corrupt = |r: String| ArchiveError::Corrupt {
        path: path.to_path_buf(),
        reason: r,
    };
    let bytes = std::fs::read(path).map_err(io(format!("cannot read {}", path.display())))?;
    let reader = FileReader::try_new(std::io::Cursor::new(&bytes[..]), None)
        .map_err(|e| corrupt(format!("not an Arrow IPC file: {e}")))?;
    checksum::verify(&bytes, reader.custom_metadata().get(checksum::KEY)).map_err(corrupt)?;
    let schema = reader.schema();
    let meta: Value = schema
        .metadata()
        .get(key)
        .ok_or_else(|| corrupt(format!("no {key} metadata")))
        .and_then(|m| serde_json::from_str(m).map_err(|e| corrupt(format!("bad metadata: {e}"))))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| corrupt(format!("unreadable record batch: {e}")))?);
    }
    let plain = Arc::new(Schema::new(schema.fields().clone()));
    let batch =
        arrow::compute::concat_batches(&plain, &batches).map_err(|e| corrupt(e.to_string()))?;
    Ok((batch, meta))
}

/// Write one judgment (and refresh `run.json`).
pub fn write_judgment(
    root: &Path,
    run: &Run,
    pairs: &[PairData],
    label: Option<&Value>,
) -> Result<PathBuf, ArchiveError> {
    let j = run
        .judgments
        .last()
        .ok_or_else(|| ArchiveError::Invalid("the run has no judgment yet".into()))?;
    let dir = root.join("runs").join(&run.id);
    std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let judge = j.result.judge_name.clone();
    let meta = json!({
        "runId": run.id, "index": j.index, "tickMs": j.tick_ms, "windowStartMs": j.window_start_ms,
        "windowEndMs": j.window_end_ms, "judge": judge,
        "thresholds": {"pass": run.spec.pass, "marginal": run.spec.marginal},
        "config": run.config, "result": j.result,
    });
    let path = dir.join(format!("{:06}.arrow", j.index));
    write_ipc(&path, &pairs_batch(pairs), META_KEY, &meta)?;
    write_run(root, run, label)?;
    let line = json!({"runId": run.id, "index": j.index, "file": format!("runs/{}/{:06}.arrow", run.id, j.index),
                      "tickMs": j.tick_ms, "score": j.score, "classification": j.classification});
    let mut cat = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("catalog.jsonl"))
        .map_err(io(format!(
            "cannot open {}",
            root.join("catalog.jsonl").display()
        )))?;
    writeln!(cat, "{line}")
        .and_then(|_| cat.sync_data())
        .map_err(io("cannot append to catalog.jsonl"))?;
    Ok(path)
}

/// Write `run.json` (without the judgments' full results: those are in the judgment files).
pub fn write_run(root: &Path, run: &Run, label: Option<&Value>) -> Result<(), ArchiveError> {
    let dir = root.join("runs").join(&run.id);
    std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let mut v = serde_json::to_value(run).expect("runs serialise");
    if let Some(js) = v.get_mut("judgments").and_then(Value::as_array_mut) {
        for j in js {
            if let Some(o) = j.as_object_mut() {
                o.remove("result");
            }
        }
    }
    if let Some(l) = label {
        v["label"] = l.clone();
    }
    crate::store::write_atomically(&dir.join("run.json"), v.to_string().as_bytes())
        .map_err(io(format!("cannot write {}/run.json", dir.display())))
}

/// An archive read into memory.
pub struct Archive {
    pub root: PathBuf,
    /// `run.json` of every run, by id.
    pub runs: BTreeMap<String, Value>,
    /// Every judgment, ordered by run id then index.
    pub judgments: Vec<ArchivedJudgment>,
}

impl Archive {
    /// Read an archive directory (while a daemon may be writing it: only complete files).
    pub fn open(root: &Path) -> Result<Archive, ArchiveError> {
        if !root.exists() {
            return Err(ArchiveError::NotFound(format!(
                "{}: no such archive",
                root.display()
            )));
        }
        let runs_dir = root.join("runs");
        if !runs_dir.is_dir() {
            return Err(ArchiveError::NotAnArchive {
                path: root.to_path_buf(),
                reason: "no runs/ directory".into(),
            });
        }
        let mut run_dirs: Vec<PathBuf> = std::fs::read_dir(&runs_dir)
            .map_err(io(format!("cannot list {}", runs_dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            // `.import-*` / `.replaced-*`: an import in progress or interrupted
            .filter(|p| {
                p.is_dir()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        run_dirs.sort();
        // read the files of many runs in parallel: thousands of small files
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let chunks: Vec<&[PathBuf]> = run_dirs
            .chunks(run_dirs.len().div_ceil(threads).max(1))
            .collect();
        let loaded: Vec<Result<Vec<LoadedRun>, ArchiveError>> = std::thread::scope(|s| {
            let hs: Vec<_> = chunks
                .iter()
                .map(|c| {
                    s.spawn(move || {
                        c.iter()
                            .map(|d| read_run_dir(d))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("archive reader thread"))
                .collect()
        });
        let mut runs = BTreeMap::new();
        let mut judgments: Vec<ArchivedJudgment> = Vec::new();
        let mut next_id = 0;
        for chunk in loaded {
            for (id, run, mut js) in chunk? {
                runs.insert(id, run);
                // Run-local config ids to archive-wide ones; a run whose first config equals
                // the last run's last one (the usual case) shares its id.
                let mut last_local = None;
                for j in &mut js {
                    let local = j.config_id;
                    if last_local != Some(local) {
                        let same = last_local.is_none()
                            && judgments.last().is_some_and(|p| p.config() == j.config());
                        if !same {
                            next_id += 1;
                        }
                        last_local = Some(local);
                    }
                    j.config_id = next_id;
                }
                judgments.extend(js);
            }
        }
        Ok(Archive {
            root: root.to_path_buf(),
            runs,
            judgments,
        })
    }

    pub fn judgment(&self, run_id: &str, index: u64) -> Option<&ArchivedJudgment> {
        self.judgments
            .iter()
            .find(|j| j.run_id == run_id && j.index == index)
    }

    /// An archived run with the results of its archived judgments, and the series a report
    /// draws with a sentence saying what they cover: the last judgment's pairs, or for a
    /// sequential judge (each judgment saw only new values) every judgment's pairs joined per
    /// series.
    pub fn run_report_data(
        &self,
        run_id: &str,
    ) -> Result<(Run, Vec<MetricSetPair>, String), ArchiveError> {
        let doc = self.runs.get(run_id).ok_or_else(|| {
            ArchiveError::NotFound(format!("run '{run_id}' is not in the archive"))
        })?;
        let js: BTreeMap<u64, &ArchivedJudgment> = self
            .judgments
            .iter()
            .filter(|j| j.run_id == run_id)
            .map(|j| (j.index, j))
            .collect();
        let mut v = doc.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("label");
        }
        // run.json keeps the judgments without their results: those are in the judgment
        // files (a judgment whose file is missing is left out)
        if let Some(list) = v.get_mut("judgments").and_then(Value::as_array_mut) {
            list.retain_mut(|j| {
                match j
                    .get("index")
                    .and_then(Value::as_u64)
                    .and_then(|i| js.get(&i))
                {
                    Some(a) => {
                        j["result"] = a.result().clone();
                        true
                    }
                    None => false,
                }
            });
        }
        let path = self.root.join("runs").join(run_id).join("run.json");
        let run: Run = serde_json::from_value(v).map_err(|e| ArchiveError::Corrupt {
            path: path.clone(),
            reason: format!("not a run with its judgments: {e}"),
        })?;
        let sequential = run.judgments.last().is_some_and(|j| {
            crate::judge::JudgeKind::from_name(&j.result.judge_name)
                .is_ok_and(|k| k.sequential().is_some())
        });
        let Some(last) = js.values().next_back() else {
            return Ok((run, Vec::new(), String::new()));
        };
        let when = |a: i64, b: i64| {
            format!(
                "{} to {}",
                crate::runs::utc_text(a),
                crate::runs::utc_text(b)
            )
        };
        let window =
            |j: &ArchivedJudgment, k: &str| j.meta.get(k).and_then(Value::as_i64).unwrap_or(0);
        if !sequential {
            let note = format!(
                "the last judgment's window, {}, as archived",
                when(window(last, "windowStartMs"), window(last, "windowEndMs"))
            );
            return Ok((
                run,
                last.pairs.iter().map(|p| p.pair.clone()).collect(),
                note,
            ));
        }
        let mut joined: Vec<MetricSetPair> = Vec::new();
        let mut at: HashMap<(String, BTreeMap<String, String>), usize> = HashMap::new();
        for j in js.values() {
            for p in &j.pairs {
                let p = &p.pair;
                let key = (p.name.clone(), p.tags.clone());
                match at.get(&key) {
                    None => {
                        at.insert(key, joined.len());
                        joined.push(p.clone());
                    }
                    Some(&i) => {
                        let into = &mut joined[i];
                        match (&mut into.times, &p.times) {
                            (Some(a), Some(b)) => {
                                a.control.extend_from_slice(&b.control);
                                a.experiment.extend_from_slice(&b.experiment);
                            }
                            (t, _) => *t = None,
                        }
                        into.control.extend_from_slice(&p.control);
                        into.experiment.extend_from_slice(&p.experiment);
                    }
                }
            }
        }
        let first = js.values().next().map_or(0, |j| window(j, "windowStartMs"));
        let note = format!(
            "every value judged, {}, as archived",
            when(first, window(last, "windowEndMs"))
        );
        Ok((run, joined, note))
    }

    /// Export one run (its `run.json` and every judgment) to a single Arrow IPC file.
    pub fn export_run(&self, run_id: &str, path: &Path) -> Result<usize, ArchiveError> {
        let run = self.runs.get(run_id).ok_or_else(|| {
            ArchiveError::NotFound(format!("run '{run_id}' is not in the archive"))
        })?;
        let js: Vec<&ArchivedJudgment> = self
            .judgments
            .iter()
            .filter(|j| j.run_id == run_id)
            .collect();
        let mut batches = Vec::new();
        let mut metas = Vec::new();
        let schema = pairs_schema();
        let mut judgment_col = Vec::new();
        for j in &js {
            let b = pairs_batch(&j.pairs);
            judgment_col.extend(std::iter::repeat_n(j.index as u32, b.num_rows()));
            batches.push(b);
            metas.push(j.meta.clone());
        }
        let all = arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        let mut fields: Vec<Arc<Field>> =
            vec![Arc::new(Field::new("judgment", DataType::UInt32, false))];
        fields.extend(schema.fields().iter().cloned());
        let mut cols: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from(judgment_col))];
        cols.extend(all.columns().iter().cloned());
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        write_ipc(
            path,
            &batch,
            EXPORT_KEY,
            &json!({"run": run, "judgments": metas}),
        )?;
        Ok(js.len())
    }
}

/// A run directory read back: id, `run.json`, judgments.
type LoadedRun = (String, Value, Vec<ArchivedJudgment>);

fn read_run_dir(dir: &Path) -> Result<LoadedRun, ArchiveError> {
    let run_path = dir.join("run.json");
    let text = std::fs::read_to_string(&run_path)
        .map_err(io(format!("cannot read {}", run_path.display())))?;
    let run: Value = serde_json::from_str(&text).map_err(|e| ArchiveError::Corrupt {
        path: run_path.clone(),
        reason: format!("invalid JSON: {e}"),
    })?;
    let id = run["id"]
        .as_str()
        .ok_or_else(|| ArchiveError::Corrupt {
            path: run_path.clone(),
            reason: "no run id".into(),
        })?
        .to_string();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(format!("cannot list {}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "arrow")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    let mut js: Vec<ArchivedJudgment> = Vec::with_capacity(files.len());
    for f in files {
        let (batch, meta) = read_ipc(&f, META_KEY)?;
        let index = meta["index"]
            .as_u64()
            .ok_or_else(|| ArchiveError::Corrupt {
                path: f.clone(),
                reason: "no judgment index".into(),
            })?;
        // numbered within the run here (in the reader threads); Archive::open renumbers
        let config_id = match js.last() {
            Some(prev) if prev.config() == &meta["config"] => prev.config_id,
            Some(prev) => prev.config_id + 1,
            None => 0,
        };
        js.push(ArchivedJudgment {
            run_id: id.clone(),
            index,
            pairs: pairs_from_batch(&batch, &f)?,
            meta,
            config_id,
        });
    }
    Ok((id, run, js))
}

/// Whether `id` can name a run directory: 1 to 128 ASCII letters, digits, `-` and `_`
/// (run ids are UUIDs; nothing that could be a path).
pub fn valid_run_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Unpack a file written by [`Archive::export_run`] into `archive` (created if needed).
/// Returns the run id. A run already in the archive is replaced only with `force`; the
/// run is unpacked beside the archive's runs and renamed into place, so a failed import
/// leaves nothing behind.
pub fn import_run(file: &Path, archive: &Path, force: bool) -> Result<String, ArchiveError> {
    let corrupt = |reason: String| ArchiveError::Corrupt {
        path: file.to_path_buf(),
        reason,
    };
    let (batch, meta) = read_ipc(file, EXPORT_KEY)?;
    let run = meta["run"].clone();
    let id = run["id"]
        .as_str()
        .ok_or_else(|| corrupt("no run id".into()))?
        .to_string();
    if !valid_run_id(&id) {
        return Err(corrupt(format!(
            "run id {:?} is not a run id (1 to 128 letters, digits, '-' or '_')",
            id.chars().take(200).collect::<String>()
        )));
    }
    let runs = archive.join("runs");
    let dir = runs.join(&id);
    if dir.exists() && !force {
        return Err(ArchiveError::Invalid(format!(
            "run {id} is already in {} (import with --force to replace it)",
            archive.display()
        )));
    }
    let judgment = batch
        .column_by_name("judgment")
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>().cloned())
        .ok_or_else(|| corrupt("no judgment column".into()))?;
    let pairs_only = batch
        .project(&(1..batch.num_columns()).collect::<Vec<_>>())
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    let pairs_only = pairs_only
        .with_schema(pairs_schema())
        .map_err(|e| corrupt(e.to_string()))?;
    let mut parts = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, m) in meta["judgments"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let index = m["index"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| corrupt(format!("judgments[{i}]: no judgment index")))?;
        if !seen.insert(index) {
            return Err(corrupt(format!("judgments[{i}]: judgment {index} twice")));
        }
        let mask = arrow::array::BooleanArray::from(
            (0..judgment.len())
                .map(|i| judgment.value(i) == index)
                .collect::<Vec<_>>(),
        );
        let part = arrow::compute::filter_record_batch(&pairs_only, &mask)
            .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        parts.push((index, part, m));
    }
    std::fs::create_dir_all(&runs).map_err(io(format!("cannot create {}", runs.display())))?;
    let staging = runs.join(format!(".import-{id}-{}", std::process::id()));
    let unpack = || -> Result<(), ArchiveError> {
        std::fs::create_dir_all(&staging)
            .map_err(io(format!("cannot create {}", staging.display())))?;
        for (index, part, m) in &parts {
            write_ipc(
                &staging.join(format!("{index:06}.arrow")),
                part,
                META_KEY,
                m,
            )?;
        }
        crate::store::write_atomically(&staging.join("run.json"), run.to_string().as_bytes())
            .map_err(io(format!("cannot write {}/run.json", staging.display())))?;
        let replaced = runs.join(format!(".replaced-{id}-{}", std::process::id()));
        if dir.exists() {
            std::fs::rename(&dir, &replaced)
                .map_err(io(format!("cannot move {} aside", dir.display())))?;
        }
        std::fs::rename(&staging, &dir)
            .map_err(io(format!("cannot rename into {}", dir.display())))?;
        sync_dir(&runs)?;
        if replaced.exists() {
            std::fs::remove_dir_all(&replaced)
                .map_err(io(format!("cannot remove {}", replaced.display())))?;
        }
        Ok(())
    };
    unpack().inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&staging);
    })?;
    Ok(id)
}
