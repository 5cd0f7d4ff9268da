//! Arrow data across the Python boundary, through the Arrow PyCapsule interface: what
//! `Table.append` accepts, and the `pyarrow.Table`s and schemas the reads return.
//! No I/O; a stream taken from Python is read later, by the append.

use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::Mutex;

use arrow::array::{RecordBatch, RecordBatchIterator};
use arrow::datatypes::SchemaRef;
use arrow::ffi::FFI_ArrowSchema;
use arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyString};

use crate::errors::InvalidInputError;

const STREAM: &CStr = c"arrow_array_stream";
const SCHEMA: &CStr = c"arrow_schema";

/// What `Table.append` was given.
pub(crate) enum Input {
    /// A Parquet, CSV or JSON file, read by the table layer.
    File(PathBuf),
    /// Record batches, read one at a time as the append consumes them.
    Stream(ArrowArrayStreamReader),
}

/// Classifies `data`: a path (`str` or `os.PathLike`), an object with
/// `__arrow_c_stream__` (a pyarrow Table or RecordBatchReader, a polars DataFrame, a
/// recent pandas DataFrame), or a pandas DataFrame without it (converted by pyarrow).
pub(crate) fn input(data: &Bound<'_, PyAny>) -> PyResult<Input> {
    let py = data.py();
    if data.is_instance_of::<PyString>() || data.hasattr("__fspath__")? {
        let path: PathBuf = py.import("os")?.call_method1("fspath", (data,))?.extract()?;
        return Ok(Input::File(path));
    }
    let data = if !data.hasattr("__arrow_c_stream__")? && is_pandas(data)? {
        py.import("pyarrow")?.getattr("Table")?.call_method1("from_pandas", (data,))?
    } else {
        data.clone()
    };
    if !data.hasattr("__arrow_c_stream__")? {
        let type_name = data.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "append takes a pyarrow Table or RecordBatchReader, a polars or pandas DataFrame, any object with \
             __arrow_c_stream__, or a file path; got {type_name}"
        )));
    }
    let capsule = data.call_method0("__arrow_c_stream__")?.cast_into::<PyCapsule>()?;
    let pointer = capsule.pointer_checked(Some(STREAM))?.cast::<FFI_ArrowArrayStream>();
    // SAFETY: the capsule holds a valid stream; `from_raw` moves it out and leaves a
    // released one behind, which the capsule's destructor then ignores.
    let stream = unsafe { FFI_ArrowArrayStream::from_raw(pointer.as_ptr()) };
    let reader = ArrowArrayStreamReader::try_new(stream).map_err(|e| InvalidInputError::new_err(e.to_string()))?;
    Ok(Input::Stream(reader))
}

fn is_pandas(data: &Bound<'_, PyAny>) -> PyResult<bool> {
    let module: String = data.get_type().getattr("__module__")?.extract()?;
    Ok(module.starts_with("pandas"))
}

/// Record batches Python can take once through `__arrow_c_stream__`; the reads hand one
/// to `pyarrow.table`.
#[pyclass(module = "timeseries_table", frozen)]
pub(crate) struct ArrowStream {
    stream: Mutex<Option<FFI_ArrowArrayStream>>,
}

#[pymethods]
impl ArrowStream {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // Only the stream's own schema is offered, which the protocol allows.
        let _ = requested_schema;
        let stream = self.stream.lock().map_err(|_| PyRuntimeError::new_err("stream lock poisoned"))?.take();
        let stream = stream.ok_or_else(|| PyRuntimeError::new_err("this Arrow stream was already consumed"))?;
        PyCapsule::new_with_value(py, stream, STREAM)
    }
}

/// `batches` as a `pyarrow.Table`.
pub(crate) fn to_pyarrow_table<'py>(
    py: Python<'py>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> PyResult<Bound<'py, PyAny>> {
    let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
    let stream = ArrowStream { stream: Mutex::new(Some(FFI_ArrowArrayStream::new(Box::new(reader)))) };
    py.import("pyarrow")?.call_method1("table", (Bound::new(py, stream)?,))
}

/// An object with `__arrow_c_schema__`, for `pyarrow.schema`.
#[pyclass(module = "timeseries_table", frozen)]
pub(crate) struct ArrowSchema {
    schema: SchemaRef,
}

#[pymethods]
impl ArrowSchema {
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        let schema =
            FFI_ArrowSchema::try_from(self.schema.as_ref()).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        PyCapsule::new_with_value(py, schema, SCHEMA)
    }
}

/// `schema` as a `pyarrow.Schema`.
pub(crate) fn to_pyarrow_schema<'py>(py: Python<'py>, schema: SchemaRef) -> PyResult<Bound<'py, PyAny>> {
    py.import("pyarrow")?.call_method1("schema", (Bound::new(py, ArrowSchema { schema })?,))
}
