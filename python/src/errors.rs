//! The Python exception types and the mapping from the library's errors to them. The
//! message is the one line `tsq` prints for the same error.

use datafusion::error::DataFusionError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use timeseries_table_core::error::describe_query_error;
use timeseries_table_core::Error;

create_exception!(timeseries_table, TimeseriesTableError, PyException, "Base class of every error the package raises.");
create_exception!(timeseries_table, TableNotFoundError, TimeseriesTableError, "No table at the location.");
create_exception!(
    timeseries_table,
    TableExistsError,
    TimeseriesTableError,
    "`Table.create` found a table already there."
);
create_exception!(
    timeseries_table,
    VersionNotFoundError,
    TimeseriesTableError,
    "The requested version does not exist."
);
create_exception!(
    timeseries_table,
    InvalidInputError,
    TimeseriesTableError,
    "An argument or the appended data is not valid: a bad URI, bucket, time, or column type."
);
create_exception!(
    timeseries_table,
    SchemaMismatchError,
    InvalidInputError,
    "The appended data's schema differs from the table's."
);
create_exception!(
    timeseries_table,
    OverlapError,
    InvalidInputError,
    "The appended data covers time buckets an entity already has; nothing was committed."
);
create_exception!(
    timeseries_table,
    CommitConflictError,
    TimeseriesTableError,
    "Another writer kept winning the commit, or a commit's outcome is unknown."
);
create_exception!(timeseries_table, StorageError, TimeseriesTableError, "Reading or writing the store failed.");
create_exception!(
    timeseries_table,
    CorruptTableError,
    TimeseriesTableError,
    "The transaction log or a coverage sidecar is damaged."
);
create_exception!(timeseries_table, QueryError, TimeseriesTableError, "A SQL or query error.");

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TimeseriesTableError", py.get_type::<TimeseriesTableError>())?;
    m.add("TableNotFoundError", py.get_type::<TableNotFoundError>())?;
    m.add("TableExistsError", py.get_type::<TableExistsError>())?;
    m.add("VersionNotFoundError", py.get_type::<VersionNotFoundError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("SchemaMismatchError", py.get_type::<SchemaMismatchError>())?;
    m.add("OverlapError", py.get_type::<OverlapError>())?;
    m.add("CommitConflictError", py.get_type::<CommitConflictError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("CorruptTableError", py.get_type::<CorruptTableError>())?;
    m.add("QueryError", py.get_type::<QueryError>())?;
    Ok(())
}

/// The Python exception for a library error.
pub(crate) fn to_py(err: Error) -> PyErr {
    match err {
        Error::DataFusion(e) => query_to_py(e),
        other => exception_for(&other, other.describe()),
    }
}

/// The Python exception for a query error: the library error inside it decides the type.
pub(crate) fn query_to_py(err: DataFusionError) -> PyErr {
    let message = describe_query_error(&err);
    match Error::find_in(&err) {
        Some(cause) => exception_for(cause, message),
        None => QueryError::new_err(message),
    }
}

fn exception_for(err: &Error, message: String) -> PyErr {
    match err {
        Error::EmptyTable { .. } | Error::MissingLog { .. } => TableNotFoundError::new_err(message),
        Error::TableExists { .. } => TableExistsError::new_err(message),
        Error::VersionNotFound { .. } => VersionNotFoundError::new_err(message),
        Error::SchemaMismatch { .. } => SchemaMismatchError::new_err(message),
        Error::Overlap { .. } => OverlapError::new_err(message),
        Error::InvalidInput { .. }
        | Error::InvalidRange { .. }
        | Error::InvalidSchedule { .. }
        | Error::InvalidBucket { .. }
        | Error::InvalidSpec { .. }
        | Error::TimestampOutOfRange { .. }
        | Error::InvalidLocation { .. }
        | Error::UnsupportedFormat { .. }
        | Error::Arrow(_) => InvalidInputError::new_err(message),
        Error::Conflict { .. } | Error::CommitOutcomeUnknown { .. } => CommitConflictError::new_err(message),
        Error::Storage { .. }
        | Error::AccessDenied { .. }
        | Error::Io { .. }
        | Error::Parquet { .. }
        | Error::NoConditionalCreate { .. } => StorageError::new_err(message),
        Error::CorruptLog { .. } | Error::MissingCoverage { .. } => CorruptTableError::new_err(message),
        Error::DataFusion(_) => QueryError::new_err(message),
        _ => TimeseriesTableError::new_err(message),
    }
}
