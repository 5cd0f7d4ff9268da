//! The SQL table functions (`coverage`, `gaps`, ... and `snapshot`) exported through
//! DataFusion's FFI, for `timeseries_table.register_functions(ctx)`. No I/O here; the
//! functions do theirs when a query plans and runs them.

use std::ptr::NonNull;
use std::sync::Arc;

use datafusion::catalog::TableFunctionImpl;
use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::udtf::FFI_TableFunction;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use timeseries_table_core::datafusion::{ExportedFunction, MetadataFunction, MetadataKind, SnapshotFunction};

use crate::runtime;

/// Every function name, in the order `register_functions` registers them.
pub(crate) fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = MetadataKind::ALL.iter().map(|kind| kind.name()).collect();
    names.push(SnapshotFunction::NAME);
    names
}

/// One of the table functions, exportable to DataFusion in Python.
#[pyclass(module = "timeseries_table", frozen)]
pub(crate) struct TableFunction {
    name: &'static str,
    function: Arc<dyn TableFunctionImpl>,
}

#[pymethods]
impl TableFunction {
    #[new]
    fn new(name: &str) -> PyResult<Self> {
        let Some(name) = names().into_iter().find(|known| *known == name) else {
            return Err(PyValueError::new_err(format!(
                "unknown table function '{name}'; the functions are {}",
                names().join(", ")
            )));
        };
        let function: Arc<dyn TableFunctionImpl> = match MetadataKind::ALL.into_iter().find(|k| k.name() == name) {
            Some(kind) => Arc::new(MetadataFunction::new(kind)),
            None => Arc::new(SnapshotFunction),
        };
        Ok(TableFunction { name, function })
    }

    #[getter]
    fn name(&self) -> &'static str {
        self.name
    }

    fn __datafusion_table_function__<'py>(
        &self,
        py: Python<'py>,
        session: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let codec = logical_codec(&session)?;
        let handle = runtime().handle().clone();
        let exported = ExportedFunction::new(Arc::clone(&self.function), handle.clone());
        let function = FFI_TableFunction::new_with_ffi_codec(Arc::new(exported), Some(handle), codec);
        PyCapsule::new_with_value(py, function, c"datafusion_table_function")
    }

    fn __repr__(&self) -> String {
        format!("TableFunction({})", self.name)
    }
}

/// The logical codec of the calling DataFusion session (Python's `SessionContext` hands
/// it out as a capsule), which the FFI exports need to exchange expressions.
pub(crate) fn logical_codec(session: &Bound<'_, PyAny>) -> PyResult<FFI_LogicalExtensionCodec> {
    const METHOD: &str = "__datafusion_logical_extension_codec__";
    let capsule = if session.hasattr(METHOD)? { session.call_method0(METHOD)? } else { session.clone() };
    let capsule = capsule.cast_into::<PyCapsule>()?;
    let pointer: NonNull<FFI_LogicalExtensionCodec> =
        capsule.pointer_checked(Some(c"datafusion_logical_extension_codec"))?.cast();
    // SAFETY: a capsule with this name holds a codec that lives as long as the capsule,
    // which is alive for this call; the clone is owned.
    Ok(unsafe { pointer.as_ref() }.clone())
}
