//! `timeseries_table._native`, the compiled half of the Python package: the table API
//! ([`table::Table`]), the DataFusion FFI exports (the table provider and the SQL table
//! functions) and the exception types. The rules all live in `timeseries-table-core`;
//! this crate converts arguments and results and releases the GIL around blocking work,
//! which runs on one Tokio runtime.

use std::sync::OnceLock;

use pyo3::prelude::*;

mod arrow_io;
mod errors;
mod functions;
mod table;

/// The runtime every blocking call and every exported plan runs on. Tokio's context does
/// not cross the FFI boundary, so the exports carry its handle.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("timeseries-table")
            .enable_all()
            .build()
            .expect("cannot start the Tokio runtime")
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<table::Table>()?;
    m.add_class::<table::AppendResult>()?;
    m.add_class::<functions::TableFunction>()?;
    m.add_class::<arrow_io::ArrowStream>()?;
    m.add_function(wrap_pyfunction!(table::sql, m)?)?;
    m.add("FUNCTION_NAMES", functions::names())?;
    errors::register(m)?;
    Ok(())
}
