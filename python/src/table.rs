//! `Table`: a time-series table handle for Python. Every call goes through the table layer
//! of `timeseries-table-core` (validation, overlap checks, commits) and blocks with the GIL
//! released. Reads that return rows run the same SQL table functions as `tsq sql`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion_ffi::table_provider::FFI_TableProvider;
use futures::stream;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyString};
use timeseries_table_core::datafusion::{register_opened, session_context, ExportedProvider, TimeSeriesProvider};
use timeseries_table_core::{Error, Schedule, TableBuilder, TableMeta, TimeIndexSpec, TimeSeriesTable};

use crate::arrow_io::{self, Input};
use crate::errors::{query_to_py, to_py, InvalidInputError};
use crate::functions::logical_codec;
use crate::runtime;

/// A time-series table: Parquet segments, a transaction log and per-entity coverage of
/// time buckets, at a path or URL.
#[pyclass(module = "timeseries_table", frozen)]
pub(crate) struct Table {
    // Locked only with the GIL released: an append reading a Python stream takes the GIL
    // for each batch, so waiting for this lock while holding the GIL could deadlock.
    handle: Mutex<TimeSeriesTable>,
}

/// What an append committed.
#[pyclass(module = "timeseries_table", frozen, get_all)]
pub(crate) struct AppendResult {
    /// The version the append committed.
    version: u64,
    /// Rows appended.
    rows: u64,
    /// The new segments' ids.
    segments: Vec<String>,
    /// Commit attempts (more than one when another writer committed first).
    attempts: u32,
}

#[pymethods]
impl AppendResult {
    fn __repr__(&self) -> String {
        format!(
            "AppendResult(version={}, rows={}, segments={}, attempts={})",
            self.version,
            self.rows,
            self.segments.len(),
            self.attempts
        )
    }
}

/// Runs `work` on the runtime with the GIL released.
fn block_on<T: Send, F: Future<Output = T> + Send>(py: Python<'_>, work: F) -> T {
    py.detach(|| runtime().block_on(work))
}

fn builder(uri: &str, storage_options: Option<HashMap<String, String>>) -> TableBuilder {
    let mut options: Vec<(String, String)> = storage_options.unwrap_or_default().into_iter().collect();
    options.sort();
    options.into_iter().fold(TableBuilder::new(uri), |b, (key, value)| b.with_storage_option(key, value))
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, TimeSeriesTable> {
        self.handle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the handle, taken with the GIL released.
    fn handle(&self, py: Python<'_>) -> TimeSeriesTable {
        py.detach(|| self.lock().clone())
    }

    /// Runs the SQL table function call `call` (its first argument is the table, named
    /// `t`) and returns its rows as a `pyarrow.Table`.
    fn metadata<'py>(&self, py: Python<'py>, call: String) -> PyResult<Bound<'py, PyAny>> {
        let tables = vec![("t".to_string(), self.handle(py))];
        let (schema, batches) = block_on(py, run_query(tables, format!("SELECT * FROM {call}")))?;
        arrow_io::to_pyarrow_table(py, schema, batches)
    }
}

/// Runs one SQL statement in this package's own DataFusion (the engine of `tsq sql`, with
/// all its rules and functions), with `tables` registered under their keyword names, and
/// returns the result as a `pyarrow.Table`.
#[pyfunction]
#[pyo3(signature = (query, **tables))]
pub(crate) fn sql<'py>(
    py: Python<'py>,
    query: &str,
    tables: Option<HashMap<String, Py<Table>>>,
) -> PyResult<Bound<'py, PyAny>> {
    let tables: Vec<(String, TimeSeriesTable)> =
        tables.unwrap_or_default().into_iter().map(|(name, table)| (name, table.get().handle(py))).collect();
    let (schema, batches) = block_on(py, run_query(tables, query.to_string()))?;
    arrow_io::to_pyarrow_table(py, schema, batches)
}

async fn run_query(tables: Vec<(String, TimeSeriesTable)>, sql: String) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    let ctx = session_context();
    for (name, table) in tables {
        register_opened(&ctx, &name, table).map_err(to_py)?;
    }
    let run = async {
        let frame = ctx.sql(&sql).await?;
        let schema = Arc::clone(frame.schema().inner());
        Ok::<_, DataFusionError>((schema, frame.collect().await?))
    };
    run.await.map_err(query_to_py)
}

/// A SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A time argument: a string (read in the table's time zone when it has no offset) or an
/// object with `isoformat()` (`datetime`, `date`, `pandas.Timestamp`).
fn time_text(value: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_string());
    }
    if value.hasattr("isoformat")? {
        return value.call_method0("isoformat")?.extract();
    }
    Err(PyTypeError::new_err(format!("{what} must be a string or a datetime, got {}", value.get_type().name()?)))
}

/// `coverage`/`gaps` arguments after the table: `start, end` and the schedule, each
/// optional, as SQL.
fn window_args(
    function: &str,
    start: Option<&Bound<'_, PyAny>>,
    end: Option<&Bound<'_, PyAny>>,
    schedule: Option<&str>,
) -> PyResult<String> {
    let mut args = vec![quote("t")];
    match (start, end) {
        (Some(start), Some(end)) => {
            args.push(quote(&time_text(start, "start")?));
            args.push(quote(&time_text(end, "end")?));
        }
        (None, None) => {}
        _ => {
            return Err(InvalidInputError::new_err(format!(
                "{function} takes both start and end, or neither (the table's whole time range)"
            )))
        }
    }
    if let Some(schedule) = schedule {
        args.push(quote(schedule));
    }
    Ok(format!("{function}({})", args.join(", ")))
}

#[pymethods]
impl Table {
    /// Creates a table at `uri` (a local path, `file://`, `memory://` or `s3://` URL).
    #[staticmethod]
    #[pyo3(signature = (uri, *, time_column, bucket, entity_columns=None, timezone=None, schedule=None, storage_options=None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        uri: &str,
        time_column: &str,
        bucket: &str,
        entity_columns: Option<Vec<String>>,
        timezone: Option<String>,
        schedule: Option<&str>,
        storage_options: Option<HashMap<String, String>>,
    ) -> PyResult<Self> {
        let prepared = || -> Result<(TableMeta, TableBuilder), Error> {
            let mut spec = TimeIndexSpec::new(time_column, bucket.parse()?)
                .with_entity_columns(entity_columns.unwrap_or_default());
            if let Some(zone) = timezone {
                spec = spec.with_timezone(zone);
            }
            let schedule = schedule.map(str::parse::<Schedule>).transpose()?;
            Ok((TableMeta::try_new(spec)?.with_schedule(schedule), builder(uri, storage_options)))
        };
        let (meta, builder) = prepared().map_err(to_py)?;
        let table = block_on(py, builder.create_with_meta(meta)).map_err(to_py)?;
        Ok(Table { handle: Mutex::new(table) })
    }

    /// Opens the table at `uri`: the latest version, or `version` (read-only, time travel).
    #[staticmethod]
    #[pyo3(signature = (uri, version=None, *, storage_options=None))]
    fn open(
        py: Python<'_>,
        uri: &str,
        version: Option<u64>,
        storage_options: Option<HashMap<String, String>>,
    ) -> PyResult<Self> {
        let mut builder = builder(uri, storage_options);
        if let Some(version) = version {
            builder = builder.at_version(version);
        }
        let table = block_on(py, builder.open()).map_err(to_py)?;
        Ok(Table { handle: Mutex::new(table) })
    }

    /// Appends `data` in one commit: a pyarrow Table or RecordBatchReader (read batch by
    /// batch), a polars or pandas DataFrame, any object with `__arrow_c_stream__`, or the
    /// path of a Parquet, CSV or JSON file.
    fn append(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<AppendResult> {
        let input = arrow_io::input(data)?;
        let result = py
            .detach(|| {
                let mut table = self.lock();
                runtime().block_on(async {
                    match input {
                        Input::File(path) => table.append_file(&path).await,
                        Input::Stream(reader) => table.append_stream(stream::iter(reader)).await,
                    }
                })
            })
            .map_err(to_py)?;
        Ok(AppendResult {
            version: result.version,
            rows: result.rows,
            segments: result.segments.iter().map(|s| s.to_string()).collect(),
            attempts: result.attempts,
        })
    }

    /// Coverage per entity over `[start, end)` (default: the table's time range), against
    /// `schedule` (default: the table's): one row per entity, as a `pyarrow.Table`.
    #[pyo3(signature = (start=None, end=None, *, schedule=None))]
    fn coverage<'py>(
        &self,
        py: Python<'py>,
        start: Option<Bound<'py, PyAny>>,
        end: Option<Bound<'py, PyAny>>,
        schedule: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = window_args("coverage", start.as_ref(), end.as_ref(), schedule)?;
        self.metadata(py, call)
    }

    /// Runs of missing buckets per entity over `[start, end)`, as a `pyarrow.Table`.
    #[pyo3(signature = (start=None, end=None, *, schedule=None))]
    fn gaps<'py>(
        &self,
        py: Python<'py>,
        start: Option<Bound<'py, PyAny>>,
        end: Option<Bound<'py, PyAny>>,
        schedule: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = window_args("gaps", start.as_ref(), end.as_ref(), schedule)?;
        self.metadata(py, call)
    }

    /// The live segments, as a `pyarrow.Table`.
    fn segments<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.metadata(py, "segments('t')".to_string())
    }

    /// One row per commit, as a `pyarrow.Table`.
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.metadata(py, "history('t')".to_string())
    }

    /// The version this handle reads.
    #[getter]
    fn version(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.lock().version())
    }

    /// The table's schema as a `pyarrow.Schema`, or `None` before the first append.
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match py.detach(|| self.lock().schema()) {
            Some(schema) => Ok(Some(arrow_io::to_pyarrow_schema(py, schema)?)),
            None => Ok(None),
        }
    }

    /// Where the table lives, as given to `create` or `open`.
    #[getter]
    fn uri(&self, py: Python<'_>) -> String {
        py.detach(|| self.lock().location().to_string())
    }

    /// Catches up with commits made since the handle was opened; `True` if there were any.
    fn refresh(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| {
            let mut table = self.lock();
            runtime().block_on(table.refresh())
        })
        .map_err(to_py)
    }

    /// The table as a DataFusion table provider: `SessionContext.register_table(name,
    /// table)` in the `datafusion` package calls this.
    fn __datafusion_table_provider__<'py>(
        &self,
        py: Python<'py>,
        session: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let provider = TimeSeriesProvider::try_new(self.handle(py)).map_err(to_py)?;
        let handle = runtime().handle().clone();
        let exported = ExportedProvider::new(Arc::new(provider), handle.clone());
        let codec = logical_codec(&session)?;
        let provider = FFI_TableProvider::new_with_ffi_codec(Arc::new(exported), true, Some(handle), codec);
        PyCapsule::new_with_value(py, provider, c"datafusion_table_provider")
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        py.detach(|| {
            let table = self.lock();
            format!("Table('{}', version={})", table.location(), table.version())
        })
    }
}
