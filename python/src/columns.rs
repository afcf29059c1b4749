//! Columns of numbers from Python: Arrow arrays and streams (the Arrow PyCapsule interface),
//! numpy arrays, sequences of numbers.
//!
//! Arrow arrays (`__arrow_c_array__`) are imported by arrow-rs's `arrow-pyarrow` crate. Arrow
//! *streams* (`__arrow_c_stream__`) are read by [`ArrayStream`] below: arrow-pyarrow 59.3.2
//! imports a stream only as an `ArrowArrayStreamReader` of record batches, which requires a
//! struct schema, while `pyarrow.ChunkedArray`, `polars.Series` and nanoarrow's array streams
//! export their own type (float64, int64…) and would be refused.

use std::ffi::CStr;

use arrow::array::{make_array, Array, ArrayRef, Float64Array, StructArray};
use arrow::datatypes::DataType;
use arrow::ffi::{from_ffi_and_data_type, FFI_ArrowArray, FFI_ArrowSchema};
use arrow::ffi_stream::FFI_ArrowArrayStream;
use arrow_pyarrow::FromPyArrow;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyString};

use crate::InvalidInputError;

/// A 1-D sequence of numbers as f64: an object with `__arrow_c_array__` (pyarrow, nanoarrow,
/// polars…) or `__arrow_c_stream__` (chunked arrays, Series, one-column tables), a numpy array,
/// or any sequence of numbers. Arrow nulls and `None` become NaN.
pub(crate) fn f64_values(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<f64>> {
    if obj.hasattr("__arrow_c_array__")? {
        let data = arrow::array::ArrayData::from_pyarrow_bound(obj).map_err(|e| {
            InvalidInputError::new_err(format!(
                "{what}: cannot import the Arrow array: {}",
                arrow_import_error(obj.py(), e)
            ))
        })?;
        return arrow_to_f64(make_array(data), what);
    }
    if obj.hasattr("__arrow_c_stream__")? {
        let fail = |msg: String| {
            InvalidInputError::new_err(format!("{what}: cannot import the Arrow stream: {msg}"))
        };
        let mut out = Vec::new();
        for array in ArrayStream::from_python(obj, what)? {
            out.extend(arrow_to_f64(array.map_err(fail)?, what)?);
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
    let items = obj.try_iter().map_err(|_| {
        InvalidInputError::new_err(format!(
            "{what}: expected a sequence of numbers, got {}",
            type_name(obj)
        ))
    })?;
    for (i, item) in items.enumerate() {
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

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The message of an error from arrow-pyarrow. It reports Arrow's own errors as
/// `pyarrow.ArrowException`, a type pyo3 imports from pyarrow when the error is first looked
/// at, and panics if it cannot: a polars or nanoarrow user need not have pyarrow.
fn arrow_import_error(py: Python<'_>, e: PyErr) -> String {
    if py.import("pyarrow").is_err() {
        return "the producer's array is not valid Arrow data (install pyarrow for the details)"
            .into();
    }
    e.to_string()
}

/// An Arrow array as f64 (NaN for nulls); a struct array (a record batch) must have one
/// column, which is used.
fn arrow_to_f64(array: ArrayRef, what: &str) -> PyResult<Vec<f64>> {
    let array = match array.as_any().downcast_ref::<StructArray>() {
        Some(batch) if batch.num_columns() == 1 => batch.column(0).clone(),
        Some(batch) => {
            return Err(InvalidInputError::new_err(format!(
                "{what}: expected one column, the Arrow data has {}",
                batch.num_columns()
            )))
        }
        None => array,
    };
    // not "safe": text that is not a number is an error, not a null
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast =
        arrow::compute::cast_with_options(&array, &DataType::Float64, &options).map_err(|e| {
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

/// An Arrow C stream (`ArrowArrayStream`) of arrays of any one type, taken from a Python
/// object's `__arrow_c_stream__` capsule; the stream is released when this is dropped
/// (`FFI_ArrowArrayStream`'s `Drop`).
///
/// Invariants behind the `unsafe` blocks: `stream` was moved out of a capsule named
/// `arrow_array_stream` (the PyCapsule interface's promise: a valid, initialised
/// `ArrowArrayStream`), so its callbacks are the producer's and follow the C stream
/// interface; `data_type` is the type `get_schema` reported, which every array of the stream
/// has; once a callback has failed, only `get_last_error` and `release` are called.
struct ArrayStream {
    stream: FFI_ArrowArrayStream,
    data_type: DataType,
    failed: bool,
}

impl ArrayStream {
    fn from_python(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<ArrayStream> {
        let fail = |msg: &str| {
            InvalidInputError::new_err(format!("{what}: cannot import the Arrow stream: {msg}"))
        };
        let capsule = obj.call_method0("__arrow_c_stream__")?;
        let capsule = capsule
            .cast::<PyCapsule>()
            .map_err(|_| fail("__arrow_c_stream__ did not return a capsule"))?;
        let ptr = capsule
            .pointer_checked(Some(c"arrow_array_stream"))
            .map_err(|_| fail("__arrow_c_stream__ did not return an arrow_array_stream capsule"))?;
        // SAFETY: the capsule's name was checked: it holds a valid, aligned ArrowArrayStream
        // (PyCapsule interface). `from_raw` moves it out and leaves a released stream behind,
        // which the capsule's destructor then leaves alone (the interface's "move" semantics).
        let stream = unsafe { FFI_ArrowArrayStream::from_raw(ptr.as_ptr().cast()) };
        if stream.release.is_none() {
            return Err(fail("the stream was already consumed"));
        }
        let mut s = ArrayStream {
            stream,
            data_type: DataType::Null,
            failed: false,
        };
        let Some(get_schema) = s.stream.get_schema else {
            return Err(fail("the stream has no get_schema callback"));
        };
        let mut schema = FFI_ArrowSchema::empty();
        // SAFETY: a live stream (release is set) and an empty schema to write into, as the C
        // stream interface requires; on success the schema is ours (released by its Drop).
        let rc = unsafe { get_schema(&mut s.stream, &mut schema) };
        if rc != 0 {
            s.failed = true;
            return Err(fail(&s.last_error(rc)));
        }
        s.data_type = DataType::try_from(&schema).map_err(|e| fail(&e.to_string()))?;
        Ok(s)
    }

    /// The producer's message for the failed call that returned `rc` (an errno).
    fn last_error(&mut self, rc: i32) -> String {
        let message = self.stream.get_last_error.and_then(|get_last_error| {
            // SAFETY: a live stream; the returned string (if any) stays valid until the next
            // call on the stream, and is copied at once.
            let ptr = unsafe { get_last_error(&mut self.stream) };
            // SAFETY: a null-terminated string owned by the stream, per the interface.
            (!ptr.is_null()).then(|| {
                unsafe { CStr::from_ptr(ptr) }
                    .to_string_lossy()
                    .into_owned()
            })
        });
        message.unwrap_or_else(|| format!("the producer failed with error code {rc}"))
    }
}

impl Iterator for ArrayStream {
    type Item = Result<ArrayRef, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let Some(get_next) = self.stream.get_next else {
            self.failed = true;
            return Some(Err("the stream has no get_next callback".into()));
        };
        let mut array = FFI_ArrowArray::empty();
        // SAFETY: a live stream that has not failed, and an empty array to write into.
        let rc = unsafe { get_next(&mut self.stream, &mut array) };
        if rc != 0 {
            self.failed = true;
            return Some(Err(self.last_error(rc)));
        }
        if array.is_released() {
            return None; // the end of the stream
        }
        // SAFETY: the array came from this stream, so it has the stream's type; it is moved
        // in (its buffers are released with the imported data).
        let data = unsafe { from_ffi_and_data_type(array, self.data_type.clone()) };
        Some(data.map(make_array).map_err(|e| e.to_string()))
    }
}
