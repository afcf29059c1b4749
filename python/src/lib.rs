//! `coalmine._internal`: the pyo3 glue between the `coalmine` crate and the Python package.
//! Everything users see is in the typed Python wrappers (`python/coalmine/*.py`); this
//! module only converts values and maps errors: columns of numbers in `columns.rs` (Arrow
//! arrays through arrow-rs's `arrow-pyarrow`), judge requests given as dicts in `json.rs`
//! (through `pythonize`).

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::Value;

use coalmine::judge::json::parse_text;
use coalmine::judge::{self, JudgeError, JudgeRequest};
use coalmine::ErrorKind;

create_exception!(
    _internal,
    CoalmineError,
    PyException,
    "Base class of every coalmine error."
);
create_exception!(
    _internal,
    InvalidInputError,
    CoalmineError,
    "The input is not valid: the message says what and where."
);
create_exception!(
    _internal,
    NotFoundError,
    CoalmineError,
    "Something named (a file, a run, a config) does not exist."
);
create_exception!(
    _internal,
    UnavailableError,
    CoalmineError,
    "A resource is not available right now."
);
create_exception!(
    _internal,
    InternalError,
    CoalmineError,
    "A bug in coalmine: please report it."
);
create_exception!(
    _internal,
    CorruptArchiveError,
    InvalidInputError,
    "A file of an archive is damaged or not one of ours; the message names it."
);

mod columns;
mod data;
mod json;

pub(crate) use columns::f64_values;

pub(crate) fn to_py_err(kind: ErrorKind, message: String) -> PyErr {
    match kind {
        ErrorKind::InvalidInput => InvalidInputError::new_err(message),
        ErrorKind::NotFound => NotFoundError::new_err(message),
        ErrorKind::Unavailable => UnavailableError::new_err(message),
        ErrorKind::Internal => InternalError::new_err(message),
    }
}

/// `mann_whitney(experiment, control, confidence, exact, correct) -> dict`.
#[pyfunction]
#[pyo3(signature = (experiment, control, confidence = 0.95, exact = None, correct = true))]
fn mann_whitney<'py>(
    py: Python<'py>,
    experiment: &Bound<'py, PyAny>,
    control: &Bound<'py, PyAny>,
    confidence: f64,
    exact: Option<bool>,
    correct: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let x = f64_values(experiment, "experiment")?;
    let y = f64_values(control, "control")?;
    let r = py
        .detach(move || judge::mann_whitney(&x, &y, confidence, exact, correct))
        .map_err(|e| InvalidInputError::new_err(e.to_string()))?;
    let d = PyDict::new(py);
    d.set_item("lower", r.lower)?;
    d.set_item("upper", r.upper)?;
    d.set_item("estimate", r.estimate)?;
    d.set_item("p_value", r.p_value)?;
    d.set_item("statistic", r.statistic)?;
    d.set_item("method", r.method.as_str())?;
    d.set_item("corrected", r.corrected)?;
    d.set_item("confidence", r.confidence)?;
    d.set_item("achieved_confidence", r.achieved_confidence)?;
    d.set_item("n_experiment", r.n_experiment)?;
    d.set_item("n_control", r.n_control)?;
    d.set_item("warnings", r.warnings)?;
    Ok(d)
}

/// A remote-judge request given as a dict or JSON text, with `overrides` (JSON text) applied
/// to its `canaryConfig`.
fn request_value(request: &Bound<'_, PyAny>, overrides: Option<String>) -> PyResult<Value> {
    let mut value = if let Ok(text) = request.cast::<PyString>() {
        let text: String = text.extract()?;
        parse_text(&text, "the request").map_err(|e| InvalidInputError::new_err(e.message))?
    } else {
        json::to_json(request, "request")?
    };
    if let Some(o) = overrides {
        let o: Value = serde_json::from_str(&o)
            .map_err(|e| InvalidInputError::new_err(format!("overrides: {e}")))?;
        if let Some(cfg) = value.get("canaryConfig") {
            let patched = coalmine::archive::rejudge::apply_overrides(cfg, &o)
                .map_err(InvalidInputError::new_err)?;
            value["canaryConfig"] = patched;
        }
    }
    Ok(value)
}

/// `judge_request(request, judge) -> str`: `request` is a dict or JSON text; returns the
/// `CanaryJudgeResult` as JSON text (exactly what `coalmine judge` prints, compact).
#[pyfunction]
#[pyo3(signature = (request, judge = None, overrides = None))]
fn judge_request(
    py: Python<'_>,
    request: &Bound<'_, PyAny>,
    judge: Option<String>,
    overrides: Option<String>,
) -> PyResult<String> {
    let value = request_value(request, overrides)?;
    py.detach(move || -> Result<String, JudgeError> {
        let request = JudgeRequest::from_value(&value)?;
        let result = judge::judge_request(&request, judge.as_deref())?;
        Ok(serde_json::to_string(&result).expect("results serialise"))
    })
    .map_err(|e| {
        let err = coalmine::Error::from(e);
        to_py_err(err.kind(), err.to_string())
    })
}

/// `judgment_report_html(request, result, overrides, fragment) -> str`: the HTML report of
/// one judgment. `request` as for `judge_request` (the same `overrides` applied), `result`
/// the `CanaryJudgeResult` JSON text.
#[pyfunction]
#[pyo3(signature = (request, result, overrides = None, fragment = false))]
fn judgment_report_html(
    py: Python<'_>,
    request: &Bound<'_, PyAny>,
    result: String,
    overrides: Option<String>,
    fragment: bool,
) -> PyResult<String> {
    let value = request_value(request, overrides)?;
    py.detach(move || -> PyResult<String> {
        let request = JudgeRequest::from_value(&value).map_err(|e| {
            let err = coalmine::Error::from(JudgeError::from(e));
            to_py_err(err.kind(), err.to_string())
        })?;
        let result: judge::CanaryJudgeResult = serde_json::from_str(&result).map_err(|e| {
            InvalidInputError::new_err(format!("result: not a CanaryJudgeResult: {e}"))
        })?;
        Ok(coalmine::report::judgment_html(
            &request,
            &result,
            form(fragment),
        ))
    })
}

/// A page, or a fragment for a notebook cell.
fn form(fragment: bool) -> coalmine::report::Form {
    if fragment {
        coalmine::report::Form::Fragment
    } else {
        coalmine::report::Form::Page
    }
}

/// The judges this build knows, default first.
#[pyfunction]
fn judges() -> Vec<&'static str> {
    judge::JudgeKind::ALL.iter().map(|j| j.name()).collect()
}

#[pymodule]
fn _internal(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "__build__",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    m.add("CoalmineError", py.get_type::<CoalmineError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("UnavailableError", py.get_type::<UnavailableError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add("CorruptArchiveError", py.get_type::<CorruptArchiveError>())?;
    m.add_class::<data::Table>()?;
    m.add_class::<data::ArchiveHandle>()?;
    m.add_class::<data::StoreHandle>()?;
    m.add_class::<data::SequentialTest>()?;
    m.add_function(wrap_pyfunction!(data::import_run, m)?)?;
    m.add_function(wrap_pyfunction!(data::write_fixture, m)?)?;
    m.add_function(wrap_pyfunction!(data::sequential_path, m)?)?;
    m.add_function(wrap_pyfunction!(mann_whitney, m)?)?;
    m.add_function(wrap_pyfunction!(judge_request, m)?)?;
    m.add_function(wrap_pyfunction!(judges, m)?)?;
    m.add_function(wrap_pyfunction!(judgment_report_html, m)?)?;
    m.add_function(wrap_pyfunction!(data::comparison_report_html, m)?)?;
    Ok(())
}
