//! Arrow tables, archives, the read-only store and sequential tests for Python.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ffi_stream::FFI_ArrowArrayStream;
use arrow::record_batch::RecordBatchIterator;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};
use serde_json::Value;

use coalmine::archive::{self, Archive, ArchivedJudgment};
use coalmine::judge::sequential::{
    Alternative, MetricType, SeqVersion, SequentialParams, SequentialState,
};
use coalmine::judge::StatsError;
use coalmine::query::{Binding, Engine};
use coalmine::store::Store;

use crate::{f64_values, to_py_err, InvalidInputError};

/// One tokio runtime for the process (DataFusion's async execution).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fn archive_err(e: archive::ArchiveError) -> PyErr {
    let kind = e.kind();
    let msg = e.to_string();
    if let archive::ArchiveError::Corrupt { .. } | archive::ArchiveError::NotAnArchive { .. } = e {
        return crate::CorruptArchiveError::new_err(msg);
    }
    to_py_err(kind, msg)
}

/// An immutable table of Arrow record batches, exported zero-copy through the Arrow
/// PyCapsule interface.
#[pyclass(frozen, module = "coalmine._internal")]
pub struct Table {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Table {
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Table {
        let batches = batches.into_iter().map(unique_dictionaries).collect();
        Table { schema, batches }
    }

    pub fn from_batch(b: RecordBatch) -> Table {
        Table {
            schema: b.schema(),
            batches: vec![unique_dictionaries(b)],
        }
    }
}

/// `b` with every text dictionary holding each value once. Concatenated batches and the
/// store's scans (one entry per run of a series) repeat entries, which Arrow allows but
/// pandas does not (`Categorical categories must be unique`); only such columns are rebuilt.
fn unique_dictionaries(b: RecordBatch) -> RecordBatch {
    use arrow::array::AsArray;
    use arrow::datatypes::DataType;
    let mut cols = b.columns().to_vec();
    let mut changed = false;
    for col in cols.iter_mut() {
        let DataType::Dictionary(_, value_type) = col.data_type() else {
            continue;
        };
        let Some(dict) = col.as_any_dictionary_opt() else {
            continue;
        };
        let Some(values) = dict.values().as_string_opt::<i32>() else {
            continue;
        };
        let distinct: std::collections::HashSet<Option<&str>> = values.iter().collect();
        if distinct.len() == arrow::array::Array::len(values) {
            continue;
        }
        let rebuilt = arrow::compute::cast(col, value_type)
            .and_then(|plain| arrow::compute::cast(&plain, col.data_type()));
        if let Ok(rebuilt) = rebuilt {
            *col = rebuilt;
            changed = true;
        }
    }
    if !changed {
        return b;
    }
    RecordBatch::try_new(b.schema(), cols).unwrap_or(b)
}

#[pymethods]
impl Table {
    /// `__arrow_c_stream__(requested_schema=None)`: the batches as an ArrowArrayStream.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema; // the schema is what it is; consumers cast if they need to
        let reader = RecordBatchIterator::new(
            self.batches.clone().into_iter().map(Ok),
            self.schema.clone(),
        );
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    #[getter]
    fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// `[(name, type), ...]` as text.
    #[getter]
    fn schema_fields(&self) -> Vec<(String, String)> {
        self.schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect()
    }

    /// The first `n` rows as lists of display strings (for HTML without pyarrow).
    fn preview(&self, n: usize) -> Vec<Vec<String>> {
        use arrow::util::display::{ArrayFormatter, FormatOptions};
        let opts = FormatOptions::default().with_null("");
        let mut rows = Vec::new();
        for b in &self.batches {
            let fmts: Vec<ArrayFormatter<'_>> = b
                .columns()
                .iter()
                .filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).ok())
                .collect();
            for r in 0..b.num_rows() {
                if rows.len() >= n {
                    return rows;
                }
                rows.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
            }
        }
        rows
    }
}

/// An archive read into memory.
#[pyclass(frozen, module = "coalmine._internal")]
pub struct ArchiveHandle {
    inner: Arc<Archive>,
}

impl ArchiveHandle {
    /// Judgment `index` of run `run_id`, or `NotFoundError`.
    fn judgment(&self, run_id: &str, index: u64) -> PyResult<&ArchivedJudgment> {
        self.inner.judgment(run_id, index).ok_or_else(|| {
            crate::NotFoundError::new_err(format!(
                "no judgment {index} of run '{run_id}' in the archive"
            ))
        })
    }
}

#[pymethods]
impl ArchiveHandle {
    #[staticmethod]
    fn open(py: Python<'_>, path: std::path::PathBuf) -> PyResult<ArchiveHandle> {
        let a = py
            .detach(move || Archive::open(&path))
            .map_err(archive_err)?;
        Ok(ArchiveHandle { inner: Arc::new(a) })
    }

    #[getter]
    fn path(&self) -> String {
        self.inner.root.display().to_string()
    }

    #[getter]
    fn num_runs(&self) -> usize {
        self.inner.runs.len()
    }

    #[getter]
    fn num_judgments(&self) -> usize {
        self.inner.judgments.len()
    }

    fn runs(&self) -> Table {
        Table::from_batch(self.inner.runs_table())
    }

    fn judgments(&self) -> Table {
        Table::from_batch(self.inner.judgments_table())
    }

    fn results(&self) -> Table {
        Table::from_batch(self.inner.results_table())
    }

    #[pyo3(signature = (run_id = None, metric = None))]
    fn pairs(&self, run_id: Option<String>, metric: Option<String>) -> PyResult<Table> {
        self.inner
            .pairs_table(run_id.as_deref(), metric.as_deref())
            .map(Table::from_batch)
            .map_err(archive_err)
    }

    fn sql(&self, py: Python<'_>, query: String) -> PyResult<Table> {
        let a = self.inner.clone();
        let batches = py
            .detach(move || runtime().block_on(a.sql(&query)))
            .map_err(archive_err)?;
        Ok(table_of(batches))
    }

    /// The remote-judge request of one judgment (JSON text).
    fn request(&self, run_id: &str, index: u64) -> PyResult<String> {
        Ok(self.judgment(run_id, index)?.request().to_string())
    }

    /// The archived `CanaryJudgeResult` (JSON text).
    fn result(&self, run_id: &str, index: u64) -> PyResult<String> {
        Ok(self.judgment(run_id, index)?.result().to_string())
    }

    fn run(&self, run_id: &str) -> PyResult<String> {
        self.inner
            .runs
            .get(run_id)
            .map(Value::to_string)
            .ok_or_else(|| {
                crate::NotFoundError::new_err(format!("run '{run_id}' is not in the archive"))
            })
    }

    /// The HTML report of an archived run (a page, or a fragment for a notebook cell).
    #[pyo3(signature = (run_id, fragment = false))]
    fn report_html(&self, py: Python<'_>, run_id: String, fragment: bool) -> PyResult<String> {
        let a = self.inner.clone();
        py.detach(move || coalmine::report::archived_run_html(&a, &run_id, crate::form(fragment)))
            .map_err(archive_err)
    }

    fn run_ids(&self) -> Vec<String> {
        self.inner.runs.keys().cloned().collect()
    }

    fn export_run(
        &self,
        py: Python<'_>,
        run_id: String,
        path: std::path::PathBuf,
    ) -> PyResult<usize> {
        let a = self.inner.clone();
        py.detach(move || a.export_run(&run_id, &path))
            .map_err(archive_err)
    }

    /// Re-judge every judgment on `threads` threads, the GIL released; Ctrl-C stops it.
    /// `progress(done, total)` is called about ten times a second when given.
    #[pyo3(signature = (judge = None, overrides = None, threads = 0, progress = None))]
    fn rejudge(
        &self,
        py: Python<'_>,
        judge: Option<String>,
        overrides: Option<String>,
        threads: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(Table, Table)> {
        let overrides: Value = match overrides {
            Some(o) => serde_json::from_str(&o)
                .map_err(|e| InvalidInputError::new_err(format!("overrides: {e}")))?,
            None => Value::Null,
        };
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let a = self.inner.clone();
        let total = a.judgments.len();
        let stop = AtomicBool::new(false);
        let done = AtomicUsize::new(0);
        let finished = AtomicBool::new(false);
        let mut interrupted: Option<PyErr> = None;
        let result = py.detach(|| {
            std::thread::scope(|s| {
                let worker = s.spawn(|| {
                    let r = archive::rejudge::rejudge(
                        &a,
                        judge.as_deref(),
                        &overrides,
                        threads,
                        &stop,
                        &done,
                    );
                    finished.store(true, Ordering::Release);
                    r
                });
                while !finished.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                    let cb = Python::attach(|py| -> PyResult<()> {
                        py.check_signals()?;
                        if let Some(p) = &progress {
                            p.call1(py, (done.load(Ordering::Relaxed), total))?;
                        }
                        Ok(())
                    });
                    if let Err(e) = cb {
                        stop.store(true, Ordering::Relaxed);
                        interrupted = Some(e);
                        break;
                    }
                }
                worker.join().expect("rejudge worker")
            })
        });
        if let Some(e) = interrupted {
            return Err(e);
        }
        if let Some(p) = &progress {
            p.call1(py, (total, total))?;
        }
        let c = result.map_err(archive_err)?;
        Ok((Table::from_batch(c.judgments), Table::from_batch(c.metrics)))
    }
}

fn table_of(batches: Vec<RecordBatch>) -> Table {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
    Table::new(schema, batches)
}

/// `import_run(file, archive, force) -> run id`
#[pyfunction]
pub fn import_run(
    py: Python<'_>,
    file: std::path::PathBuf,
    archive: std::path::PathBuf,
    force: bool,
) -> PyResult<String> {
    py.detach(move || archive::import_run(&file, &archive, force))
        .map_err(archive_err)
}

/// `write_fixture(path, runs, judgments, metrics, seed, judge) -> judgments written`
#[pyfunction]
#[pyo3(signature = (path, runs = 200, judgments = 5, metrics = 6, seed = 42, judge = None))]
pub fn write_fixture(
    py: Python<'_>,
    path: std::path::PathBuf,
    runs: usize,
    judgments: usize,
    metrics: usize,
    seed: u64,
    judge: Option<String>,
) -> PyResult<usize> {
    let opts = archive::fixture::FixtureOptions {
        runs,
        judgments,
        metrics,
        seed,
        judge: judge.unwrap_or_else(|| coalmine::judge::JudgeKind::NetflixAcaV1.name().into()),
    };
    py.detach(move || archive::fixture::generate(&path, &opts))
        .map_err(archive_err)
}

/// A daemon's data directory, read-only (safe beside a running daemon).
#[pyclass(frozen, module = "coalmine._internal")]
pub struct StoreHandle {
    engine: Engine,
}

#[pymethods]
impl StoreHandle {
    #[staticmethod]
    fn open(py: Python<'_>, data_dir: std::path::PathBuf) -> PyResult<StoreHandle> {
        let store = py
            .detach(move || Store::open_read_only(&data_dir))
            .map_err(|e| to_py_err(e.kind(), e.to_string()))?;
        Ok(StoreHandle {
            engine: Engine::new(store),
        })
    }

    /// One read-only SELECT over `metrics` (every series, all time).
    fn sql(&self, py: Python<'_>, query: String) -> PyResult<Table> {
        let engine = self.engine.clone();
        let batches = py
            .detach(move || runtime().block_on(engine.sql(&query, Binding::all())))
            .map_err(|e| to_py_err(e.kind(), e.to_string()))?;
        Ok(table_of(batches))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.engine.store().stats();
        let d = PyDict::new(py);
        d.set_item("series", s.series)?;
        d.set_item("segments", s.segments)?;
        d.set_item("points", s.segment_points)?;
        d.set_item("disk_bytes", s.disk_bytes)?;
        Ok(d)
    }
}

/// One metric's anytime-valid sequential test (`coalmine-seq-v1` or `-v2`), fed batch by batch.
#[pyclass(module = "coalmine._internal")]
pub struct SequentialTest {
    state: SequentialState,
}

#[pymethods]
impl SequentialTest {
    #[new]
    #[pyo3(signature = (metric_type = "continuous", alternative = "increase", alpha = 0.01, quantiles = vec![0.5], traffic_share = 0.5, t_opt = 1000.0, concentration = 100.0, batch_size = 1, nan_as_zero = false, *, judge = "coalmine-seq-v1", warmup = 30, tail_quantile = 0.9))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        metric_type: &str,
        alternative: &str,
        alpha: f64,
        quantiles: Vec<f64>,
        traffic_share: f64,
        t_opt: f64,
        concentration: f64,
        batch_size: u32,
        nan_as_zero: bool,
        judge: &str,
        warmup: u32,
        tail_quantile: f64,
    ) -> PyResult<SequentialTest> {
        let version = match judge {
            "coalmine-seq-v1" => SeqVersion::V1,
            "coalmine-seq-v2" => SeqVersion::V2,
            other => {
                return Err(InvalidInputError::new_err(format!(
                    "judge: {other:?} (coalmine-seq-v1 | coalmine-seq-v2)"
                )))
            }
        };
        let metric_type = match metric_type {
            "count" => MetricType::Count,
            "continuous" => MetricType::Continuous,
            other => {
                return Err(InvalidInputError::new_err(format!(
                    "metric_type: {other:?} (count | continuous)"
                )))
            }
        };
        let alternative = match alternative {
            "increase" => Alternative::Increase,
            "decrease" => Alternative::Decrease,
            "either" => Alternative::Either,
            other => {
                return Err(InvalidInputError::new_err(format!(
                    "alternative: {other:?} (increase | decrease | either)"
                )))
            }
        };
        let p = SequentialParams {
            alternative,
            alpha,
            quantiles,
            traffic_share,
            t_opt,
            concentration,
            batch_size,
            nan_as_zero,
            version,
            warmup,
            horizon_looks: t_opt,
            tail_quantile,
            ..SequentialParams::new(metric_type)
        };
        let state =
            SequentialState::new(p).map_err(|e| InvalidInputError::new_err(e.to_string()))?;
        Ok(SequentialTest { state })
    }

    /// One look: the new experiment and control values since the last one (keyword-only, as
    /// everywhere in the Python API the experiment comes first).
    #[pyo3(signature = (*, experiment, control))]
    fn update(
        &mut self,
        py: Python<'_>,
        experiment: &Bound<'_, PyAny>,
        control: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let e = f64_values(experiment, "experiment")?;
        let c = f64_values(control, "control")?;
        let st = &mut self.state;
        py.detach(|| st.update(&c, &e))
            .map_err(|e| InvalidInputError::new_err(e.to_string()))
    }

    /// The decision now (JSON text).
    fn decision(&self) -> String {
        serde_json::to_string(&self.state.decision()).expect("decisions serialise")
    }

    /// The full report, as in `resultMetadata.test` (JSON text).
    fn report(&self) -> String {
        serde_json::to_string(&self.state.report()).expect("reports serialise")
    }

    /// The state, to persist and resume (JSON text).
    fn to_json(&self) -> String {
        serde_json::to_string(&self.state).expect("states serialise")
    }

    #[staticmethod]
    fn from_json(text: &str) -> PyResult<SequentialTest> {
        let state: SequentialState = serde_json::from_str(text)
            .map_err(|e| InvalidInputError::new_err(format!("not a sequential state: {e}")))?;
        Ok(SequentialTest { state })
    }
}

/// The e-value and the anytime-valid p-value after every look, and the look that crossed.
type Path = (Vec<f64>, Vec<f64>, Option<u64>);

/// `sequential_path(test, *, experiment, control, look_size) -> (e_values, p_values, crossed_at)`:
/// feed `test` both series, `look_size` values per arm per look, and record the e-value and
/// the anytime-valid p-value after every look (vectorised, for simulations).
#[pyfunction]
#[pyo3(signature = (test, *, experiment, control, look_size = 1))]
pub fn sequential_path(
    py: Python<'_>,
    mut test: PyRefMut<'_, SequentialTest>,
    experiment: &Bound<'_, PyAny>,
    control: &Bound<'_, PyAny>,
    look_size: usize,
) -> PyResult<Path> {
    let e = f64_values(experiment, "experiment")?;
    let c = f64_values(control, "control")?;
    let st = &mut test.state;
    let step = look_size.max(1);
    py.detach(move || -> Result<Path, StatsError> {
        let looks = c.len().max(e.len()).div_ceil(step);
        let (mut ev, mut pv) = (Vec::with_capacity(looks), Vec::with_capacity(looks));
        for k in 0..looks {
            let cs = &c[(k * step).min(c.len())..((k + 1) * step).min(c.len())];
            let es = &e[(k * step).min(e.len())..((k + 1) * step).min(e.len())];
            st.update(cs, es)?;
            let d = st.decision();
            ev.push(d.e_value);
            pv.push(d.p_value);
        }
        Ok((ev, pv, st.decision().crossed_at_look))
    })
    .map_err(|e| InvalidInputError::new_err(e.to_string()))
}

/// The HTML page (or fragment) of a re-judge comparison: its judgments and metrics tables.
#[pyfunction]
#[pyo3(signature = (judgments, metrics, seconds, pass_threshold = 95.0, marginal_threshold = 75.0, fragment = false))]
pub fn comparison_report_html(
    judgments: PyRef<'_, Table>,
    metrics: PyRef<'_, Table>,
    seconds: f64,
    pass_threshold: f64,
    marginal_threshold: f64,
    fragment: bool,
) -> PyResult<String> {
    let concat = |t: &Table| {
        arrow::compute::concat_batches(&t.schema, &t.batches)
            .map_err(|e| InvalidInputError::new_err(format!("not a comparison table: {e}")))
    };
    Ok(coalmine::report::html::comparison(
        &concat(&judgments)?,
        &concat(&metrics)?,
        seconds,
        coalmine::judge::Thresholds {
            pass: pass_threshold,
            marginal: marginal_threshold,
        },
        crate::form(fragment),
    ))
}
