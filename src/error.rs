//! The crate's one public error type.
//!
//! Every variant carries the context a user needs to act: the path, the entity, the
//! range. Storage and Parquet failures keep their source error and name the file.

use std::path::PathBuf;

use crate::metadata::{EntityKey, SegmentId, Timestamp};
use crate::table::TimeRange;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a table operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The table location holds no committed version.
    #[error("no table at {location}: the transaction log has no commits (create the table first)")]
    EmptyTable {
        /// The table location as the caller gave it.
        location: String,
    },

    /// `create` found a table already there.
    #[error("a table already exists at {location} (version {version}); open it instead")]
    TableExists {
        /// The table location as the caller gave it.
        location: String,
        /// The latest committed version found there.
        version: u64,
    },

    /// A requested version does not exist.
    #[error("version {requested} does not exist at {location} (latest is {latest})")]
    VersionNotFound {
        /// The table location as the caller gave it.
        location: String,
        /// The version asked for.
        requested: u64,
        /// The latest committed version.
        latest: u64,
    },

    /// A half-open range whose start is not before its end.
    #[error("invalid time range: start {start} must be before end {end}")]
    InvalidRange {
        /// The requested start.
        start: Timestamp,
        /// The requested (exclusive) end.
        end: Timestamp,
    },

    /// A coverage schedule that does not parse or contradicts itself.
    #[error("invalid schedule: {reason}")]
    InvalidSchedule {
        /// What is wrong, naming the bad part of the text.
        reason: String,
    },

    /// A bucket specification that does not parse or is out of range.
    #[error(
        "invalid bucket '{spec}': {reason} (expected <n><unit> with unit s, m, h or d, e.g. 30s, 1m, 15m, 1h, 1d)"
    )]
    InvalidBucket {
        /// The bucket text as given (e.g. `15m`).
        spec: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A timestamp (or bucket id) that does not fit the supported range.
    #[error("timestamp out of range: {detail}")]
    TimestampOutOfRange {
        /// The value and the range it falls outside.
        detail: String,
    },

    /// The table specification itself is invalid.
    #[error("invalid table specification: {reason}")]
    InvalidSpec {
        /// Why the specification was rejected.
        reason: String,
    },

    /// Input data is unusable (missing or null time column, empty input, ...).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// Why the input was rejected.
        reason: String,
    },

    /// Input schema differs from the table schema.
    #[error("schema mismatch: {detail}\n  table schema: {expected}\n  input schema: {found}")]
    SchemaMismatch {
        /// The table schema, rendered for messages.
        expected: String,
        /// The input schema, rendered for messages.
        found: String,
        /// The first difference found.
        detail: String,
    },

    /// The append covers (entity, bucket) pairs that are already covered.
    #[error(
        "overlap: entity {} already has data in {buckets} of the appended bucket(s), first at {first_bucket}, in segment {}; nothing was committed",
        entity.describe(entity_columns),
        segment.as_ref().map_or_else(|| "(unknown)".to_string(), |s| s.to_string())
    )]
    Overlap {
        /// The entity whose buckets collide.
        entity: EntityKey,
        /// The table's entity columns, naming the parts of `entity`.
        entity_columns: Vec<String>,
        /// The first colliding bucket.
        first_bucket: TimeRange,
        /// How many of the appended buckets collide.
        buckets: u64,
        /// A live segment holding the first colliding bucket, when it could be found.
        segment: Option<SegmentId>,
    },

    /// Coverage sidecars are missing or corrupt and could not be rebuilt.
    #[error("coverage unavailable: {detail} (missing or corrupt: {})", files.join(", "))]
    MissingCoverage {
        /// Full locations of the sidecar and the data file it would be rebuilt from.
        files: Vec<String>,
        /// Why the rebuild failed.
        detail: String,
    },

    /// A commit lost the race for its version too many times.
    #[error(
        "commit conflict: version {version} was taken by another writer and {attempts} attempt(s) did not succeed"
    )]
    Conflict {
        /// The version the last attempt tried to commit.
        version: u64,
        /// How many commit attempts were made.
        attempts: u32,
    },

    /// The commit write failed in a way that leaves its outcome unknown.
    #[error("commit outcome unknown for {path}: {source}; the data files were kept; reopen the table to see whether version {version} landed")]
    CommitOutcomeUnknown {
        /// Full location of the log file that was being written.
        path: String,
        /// The version being committed.
        version: u64,
        /// The store error from the write.
        #[source]
        source: object_store::Error,
    },

    /// The store cannot write a file only if it is absent, which every commit needs.
    #[error(
        "the store {store} cannot create a file only if it is absent ({reason}); a table commits through such \
         conditional creates, so it cannot live there; the table was not changed"
    )]
    NoConditionalCreate {
        /// `scheme://authority` of the store.
        store: String,
        /// What the store did.
        reason: String,
    },

    /// A log file that exists but cannot be parsed or violates the format.
    #[error("corrupt log file {path}: {reason}")]
    CorruptLog {
        /// The log file concerned.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A commit file missing from the middle of the log.
    #[error("missing log file {path}: versions must be contiguous")]
    MissingLog {
        /// Full location of the missing commit file.
        path: String,
    },

    /// The table uses a format version this build cannot read.
    #[error("unsupported format version {found} in {path} (this build reads up to {supported})")]
    UnsupportedFormat {
        /// The log file that declares the format version.
        path: String,
        /// The format version it declares.
        found: u32,
        /// The newest format version this build reads.
        supported: u32,
    },

    /// A table location string that cannot be resolved to a store.
    #[error("invalid table location '{location}': {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// Why it cannot be resolved.
        reason: String,
    },

    /// Object store failure, with the path it happened on.
    #[error("storage error at {path}: {source}")]
    Storage {
        /// Full location of the file or folder concerned.
        path: String,
        /// The store error.
        #[source]
        source: object_store::Error,
    },

    /// The store refused the request: wrong credentials, or no permission for the file.
    #[error(
        "access denied to {path}{reason}: check the credentials, and that they may read, write, list and \
         delete under the table's path"
    )]
    AccessDenied {
        /// Full location of the file or folder concerned.
        path: String,
        /// What the store said, e.g. ` (InvalidAccessKeyId: The AWS Access Key Id you
        /// provided does not exist in our records.)`, or the HTTP status.
        reason: String,
        /// The store error, with the whole response.
        #[source]
        source: object_store::Error,
    },

    /// Local file failure (input files given by path).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The local path that could not be read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Parquet encode/decode failure, with the file it concerns.
    #[error("parquet error in {path}: {source}")]
    Parquet {
        /// The file name, or `new segment` while encoding one.
        path: String,
        /// The Parquet error.
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// Arrow compute failure while preparing a segment.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// A query over the table failed inside DataFusion.
    #[cfg(feature = "sql")]
    #[error("query error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// No Ballista scheduler answers at the address a cluster session was given.
    #[cfg(feature = "ballista")]
    #[error("cannot reach a Ballista scheduler at {url} ({reason}): start one with `tsq cluster scheduler`, or check the address")]
    SchedulerUnreachable {
        /// The `df://host:port` address.
        url: String,
        /// Why the connection failed.
        reason: String,
    },

    /// A cluster process could not start or stopped with an error.
    #[cfg(feature = "ballista")]
    #[error("cluster error: {0}")]
    Cluster(String),

    /// A background task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl Error {
    /// The one line a person reads for this error, as `tsq` prints it: a query error is
    /// unwrapped to the library or DataFusion error at its root.
    pub fn describe(&self) -> String {
        match self {
            #[cfg(feature = "sql")]
            Error::DataFusion(e) => describe_query_error(e),
            other => other.to_string(),
        }
    }

    /// The library error inside a query error, if there is one (an append refused inside
    /// `INSERT`, say).
    #[cfg(feature = "sql")]
    pub fn find_in(err: &datafusion::error::DataFusionError) -> Option<&Error> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(lib) = e.downcast_ref::<Error>() {
                return Some(lib);
            }
            source = e.source();
        }
        None
    }

    /// A store error on `path`. A refusal becomes [`Error::AccessDenied`], one sentence
    /// instead of the store's response body.
    pub(crate) fn storage(path: impl std::fmt::Display, source: object_store::Error) -> Self {
        match source {
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                Error::AccessDenied { path: path.to_string(), reason: denial_reason(&source.to_string()), source }
            }
            source => Error::Storage { path: path.to_string(), source },
        }
    }

    /// A Parquet error on `path`; a store error inside it (an upload that failed) is
    /// reported as that store error, so a refusal reads the same on every path.
    pub(crate) fn parquet(path: impl std::fmt::Display, source: parquet::errors::ParquetError) -> Self {
        use parquet::errors::ParquetError;
        match source {
            ParquetError::External(inner) => match inner.downcast::<object_store::Error>() {
                Ok(store) => Error::storage(path, *store),
                Err(inner) => Error::Parquet { path: path.to_string(), source: ParquetError::External(inner) },
            },
            source => Error::Parquet { path: path.to_string(), source },
        }
    }

    pub(crate) fn invalid_input(reason: impl Into<String>) -> Self {
        Error::InvalidInput { reason: reason.into() }
    }

    pub(crate) fn invalid_spec(reason: impl Into<String>) -> Self {
        Error::InvalidSpec { reason: reason.into() }
    }
}

/// The one line a person reads for a DataFusion error: the library error inside it if
/// there is one, else the innermost DataFusion error without backtrace (and a parser
/// error without its debug wrapper).
#[cfg(feature = "sql")]
pub fn describe_query_error(err: &datafusion::error::DataFusionError) -> String {
    use datafusion::error::DataFusionError;
    if let Some(lib) = Error::find_in(err) {
        return lib.describe();
    }
    match err.find_root() {
        DataFusionError::SQL(parser, _) => {
            format!("SQL syntax error: {}", parser.to_string().trim_start_matches("sql parser error: "))
        }
        root => root.strip_backtrace(),
    }
}

/// The code and message of an S3-style XML error body (`<Code>`, `<Message>`), as
/// ` (Code: message)`; else the HTTP status (` (403 Forbidden)`), else nothing.
fn denial_reason(response: &str) -> String {
    let element = |name: &str| {
        let start = response.find(&format!("<{name}>"))? + name.len() + 2;
        let end = response[start..].find(&format!("</{name}>"))? + start;
        Some(response[start..end].trim().to_string())
    };
    match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => format!(" ({code}: {message})"),
        (Some(code), None) => format!(" ({code})"),
        (None, Some(message)) => format!(" ({message})"),
        (None, None) => {
            let status = response.split_once("status code: ").map(|(_, rest)| rest.split(':').next().unwrap_or(rest));
            status.map(|s| format!(" ({})", s.trim())).unwrap_or_default()
        }
    }
}

/// Errors enter DataFusion as `External`, so callers can downcast back to [`Error`].
#[cfg(feature = "sql")]
impl From<Error> for datafusion::error::DataFusionError {
    fn from(error: Error) -> Self {
        datafusion::error::DataFusionError::External(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_one_sentence_with_the_stores_code() {
        let body = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\n<Error><Code>\
                    InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our \
                    records.</Message></Error>";
        let source = object_store::Error::PermissionDenied { path: "t/x".into(), source: body.into() };
        let message = Error::storage("s3://b/t/x", source).to_string();
        assert_eq!(
            message,
            "access denied to s3://b/t/x (InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in \
             our records.): check the credentials, and that they may read, write, list and delete under the \
             table's path"
        );
        let body = "Error performing HEAD http://h/b/t/x - Server returned non-2xx status code: 403 Forbidden: ";
        let source = object_store::Error::PermissionDenied { path: "t/x".into(), source: body.into() };
        let message = Error::storage("s3://b/t/x", source).to_string();
        assert!(message.starts_with("access denied to s3://b/t/x (403 Forbidden): check"), "{message}");
        let source = object_store::Error::Unauthenticated { path: "t/x".into(), source: "401".into() };
        assert!(Error::storage("gs://b/t/x", source).to_string().starts_with("access denied to gs://b/t/x: check"));
    }
}
