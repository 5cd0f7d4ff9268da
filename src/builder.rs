//! The front door: open or create a table from a path or URL, with storage and writer
//! options. Does I/O (through the table layer).

use crate::error::Result;
use crate::formats::parquet::WriterOptions;
use crate::metadata::{TableMeta, TimeIndexSpec};
use crate::storage::TableLocation;
use crate::table::TimeSeriesTable;

/// Opens the latest version of the table at `uri` (a local path, `file://`, `memory://`,
/// or a cloud URL when its feature is on).
pub async fn open(uri: &str) -> Result<TimeSeriesTable> {
    TableBuilder::new(uri).open().await
}

/// Creates a table at `uri` with the time index `spec`; the first append fixes the schema.
pub async fn create(uri: &str, spec: TimeIndexSpec) -> Result<TimeSeriesTable> {
    TableBuilder::new(uri).create(spec).await
}

/// Opens or creates a table with explicit storage and writer options.
///
/// ```no_run
/// # async fn run() -> timeseries_table_core::Result<()> {
/// use timeseries_table_core::{SegmentCompression, TableBuilder, WriterOptions};
///
/// let table = TableBuilder::new("s3://bucket/prices")
///     .with_storage_option("aws.region", "eu-west-1")
///     .with_writer_options(WriterOptions::default().with_compression(SegmentCompression::Zstd(3)))
///     .open()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TableBuilder {
    uri: String,
    storage_options: Vec<(String, String)>,
    writer: WriterOptions,
    version: Option<u64>,
}

impl TableBuilder {
    /// A builder for the table at `uri`.
    pub fn new(uri: impl Into<String>) -> Self {
        TableBuilder { uri: uri.into(), storage_options: Vec::new(), writer: WriterOptions::default(), version: None }
    }

    /// Adds a storage option for a cloud store, e.g. `aws.region` or `aws.endpoint`
    /// (the `aws.`/`gcp.`/`azure.` prefix with a dot, as in `datafusion-cli`, or
    /// object_store's own key). Unknown keys are an error when the table is opened.
    pub fn with_storage_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.storage_options.push((key.into(), value.into()));
        self
    }

    /// Sets how new segments are written.
    pub fn with_writer_options(mut self, options: WriterOptions) -> Self {
        self.writer = options;
        self
    }

    /// Opens the table as of `version` (time travel); the handle is read-only.
    pub fn at_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }

    fn location(&self) -> Result<TableLocation> {
        TableLocation::parse_with_options(&self.uri, &self.storage_options)
    }

    /// Opens the table (at the version given by [`Self::at_version`], else the latest).
    pub async fn open(self) -> Result<TimeSeriesTable> {
        let location = self.location()?;
        let table = match self.version {
            Some(version) => TimeSeriesTable::open_at(location, version).await?,
            None => TimeSeriesTable::open(location).await?,
        };
        Ok(table.with_writer_options(self.writer))
    }

    /// Creates the table with the time index `spec`; the first append fixes the schema.
    pub async fn create(self, spec: TimeIndexSpec) -> Result<TimeSeriesTable> {
        self.create_with_meta(TableMeta::try_new(spec)?).await
    }

    /// Creates the table with full metadata (a time index and, optionally, a schema).
    pub async fn create_with_meta(self, meta: TableMeta) -> Result<TimeSeriesTable> {
        let location = self.location()?;
        Ok(TimeSeriesTable::create(location, meta).await?.with_writer_options(self.writer))
    }
}
