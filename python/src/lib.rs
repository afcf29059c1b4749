//! `coalmine._internal`: the pyo3 glue between the `coalmine` crate and the Python package.
//! Everything users see is in the typed Python wrappers (`python/coalmine/*.py`); this
//! module only converts values and maps errors.

use std::ptr::NonNull;

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use arrow::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow::ffi_stream::FFI_ArrowArrayStream;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyCapsule, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

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

mod data;

pub(crate) fn to_py_err(kind: ErrorKind, message: String) -> PyErr {
    match kind {
        ErrorKind::InvalidInput => InvalidInputError::new_err(message),
        ErrorKind::NotFound => NotFoundError::new_err(message),
        ErrorKind::Unavailable => UnavailableError::new_err(message),
        ErrorKind::Internal => InternalError::new_err(message),
    }
}

/// A 1-D sequence of numbers as f64: an object with `__arrow_c_array__` (pyarrow, nanoarrow,
/// polars…) or `__arrow_c_stream__` (chunked arrays, Series), a float64 buffer (numpy), or
/// any sequence of numbers. Arrow nulls become NaN.
pub(crate) fn f64_values(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<f64>> {
    if obj.hasattr("__arrow_c_array__")? {
        let pair = obj.call_method0("__arrow_c_array__")?;
        let pair = pair.cast::<PyTuple>().map_err(|_| {
            InvalidInputError::new_err(format!("{what}: __arrow_c_array__ did not return a tuple"))
        })?;
        let schema_capsule = pair.get_item(0)?;
        let array_capsule = pair.get_item(1)?;
        let schema_capsule = schema_capsule.cast::<PyCapsule>()?;
        let array_capsule = array_capsule.cast::<PyCapsule>()?;
        let schema_ptr: NonNull<std::ffi::c_void> =
            schema_capsule.pointer_checked(Some(c"arrow_schema"))?;
        let array_ptr: NonNull<std::ffi::c_void> =
            array_capsule.pointer_checked(Some(c"arrow_array"))?;
        // SAFETY: the capsules hold an ArrowSchema / ArrowArray as the PyCapsule interface
        // specifies. The array is moved out (its release callback now belongs to us); the
        // schema stays owned by its capsule and is only borrowed.
        let data = unsafe {
            let array = FFI_ArrowArray::from_raw(array_ptr.as_ptr().cast());
            let schema = &*(schema_ptr.as_ptr() as *const FFI_ArrowSchema);
            from_ffi(array, schema)
        }
        .map_err(|e| {
            InvalidInputError::new_err(format!("{what}: cannot import Arrow array: {e}"))
        })?;
        return arrow_to_f64(arrow::array::make_array(data), what);
    }
    if obj.hasattr("__arrow_c_stream__")? {
        let capsule = obj.call_method0("__arrow_c_stream__")?;
        let capsule = capsule.cast::<PyCapsule>()?;
        let ptr = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
        // SAFETY: the capsule holds an ArrowArrayStream; from_raw moves it out and we own it.
        let mut stream = unsafe { FFI_ArrowArrayStream::from_raw(ptr.as_ptr().cast()) };
        let fail = |msg: String| {
            InvalidInputError::new_err(format!("{what}: cannot import Arrow stream: {msg}"))
        };
        let (get_schema, get_next) = match (stream.get_schema, stream.get_next) {
            (Some(s), Some(n)) => (s, n),
            _ => return Err(fail("the stream was already consumed".into())),
        };
        let mut schema = FFI_ArrowSchema::empty();
        // SAFETY: valid stream and output struct, per the C stream interface.
        if unsafe { get_schema(&mut stream, &mut schema) } != 0 {
            return Err(fail("get_schema failed".into()));
        }
        let mut out = Vec::new();
        loop {
            let mut array = FFI_ArrowArray::empty();
            // SAFETY: as above; a released array marks the end of the stream.
            if unsafe { get_next(&mut stream, &mut array) } != 0 {
                return Err(fail("get_next failed".into()));
            }
            if array.is_released() {
                break;
            }
            // SAFETY: the array was produced for this schema.
            let data = unsafe { from_ffi(array, &schema) }.map_err(|e| fail(e.to_string()))?;
            let array = arrow::array::make_array(data);
            let column = match array.as_any().downcast_ref::<arrow::array::StructArray>() {
                // a table-like stream (record batches): it must have one column
                Some(batch) if batch.num_columns() == 1 => batch.column(0).clone(),
                Some(batch) => {
                    return Err(InvalidInputError::new_err(format!(
                        "{what}: expected one column, the Arrow stream has {}",
                        batch.num_columns()
                    )))
                }
                None => array,
            };
            out.extend(arrow_to_f64(column, what)?);
        }
        return Ok(out);
    }
    if obj.hasattr("__array__")? && obj.hasattr("ndim")? {
        // numpy (the buffer protocol is not in the stable ABI before Python 3.11): one copy
        let ndim: usize = obj.getattr("ndim")?.extract()?;
        if ndim != 1 {
            return Err(InvalidInputError::new_err(format!(
                "{what}: expected a 1-D array, got {ndim} dimensions"
            )));
        }
        let as_f64 = obj.call_method1("astype", ("<f8",)).map_err(|e| {
            InvalidInputError::new_err(format!("{what}: cannot convert the array to float64: {e}"))
        })?;
        let bytes = as_f64.call_method0("tobytes")?;
        let bytes = bytes.cast::<PyBytes>()?.as_bytes();
        return Ok(bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect());
    }
    if obj.is_instance_of::<PyString>() {
        return Err(InvalidInputError::new_err(format!(
            "{what}: expected a sequence of numbers, got a string"
        )));
    }
    let mut out = Vec::new();
    for (i, item) in obj
        .try_iter()
        .map_err(|_| {
            InvalidInputError::new_err(format!(
                "{what}: expected a sequence of numbers, got {}",
                type_name(obj)
            ))
        })?
        .enumerate()
    {
        let item = item?;
        let v = if item.is_none() {
            f64::NAN
        } else {
            item.extract::<f64>().map_err(|_| {
                InvalidInputError::new_err(format!(
                    "{what}[{i}]: expected a number, got {}",
                    type_name(&item)
                ))
            })?
        };
        out.push(v);
    }
    Ok(out)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn arrow_to_f64(array: ArrayRef, what: &str) -> PyResult<Vec<f64>> {
    let cast = arrow::compute::cast(&array, &DataType::Float64).map_err(|e| {
        InvalidInputError::new_err(format!(
            "{what}: cannot use Arrow {} as numbers: {e}",
            array.data_type()
        ))
    })?;
    let values = cast
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("cast to Float64");
    Ok((0..values.len())
        .map(|i| {
            if values.is_null(i) {
                f64::NAN
            } else {
                values.value(i)
            }
        })
        .collect())
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

/// A Python object (dicts, lists, numbers, strings, numpy arrays via `tolist`) as JSON;
/// float NaN/±inf become Kayenta's strings.
fn to_json(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        return Ok(float_json(obj.extract::<f64>()?));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(float_json(obj.extract()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Value::String(obj.extract()?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            let key: String = k.extract().map_err(|_| {
                InvalidInputError::new_err(format!(
                    "{path}: dictionary keys must be strings, got {}",
                    type_name(&k)
                ))
            })?;
            let child = format!("{path}.{key}");
            m.insert(key, to_json(&v, &child)?);
        }
        return Ok(Value::Object(m));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            out.push(to_json(&item?, &format!("{path}[{i}]"))?);
        }
        return Ok(Value::Array(out));
    }
    if obj.hasattr("tolist")? {
        // numpy arrays and scalars, pandas Series
        return to_json(&obj.call_method0("tolist")?, path);
    }
    if let Ok(v) = obj.extract::<f64>() {
        return Ok(float_json(v));
    }
    Err(InvalidInputError::new_err(format!(
        "{path}: cannot convert {} to JSON",
        type_name(obj)
    )))
}

fn float_json(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String("NaN".into()),
        None if v > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
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
    let mut value = if let Ok(text) = request.cast::<PyString>() {
        let text: String = text.extract()?;
        parse_text(&text, "the request").map_err(|e| InvalidInputError::new_err(e.message))?
    } else {
        to_json(request, "request")?
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
    Ok(())
}
