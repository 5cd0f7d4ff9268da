//! `TimeSeriesTable`: the one place where the table's rules live. Creating, opening,
//! appending (validation, overlap check, optimistic commit with retry), and the read-side
//! questions (coverage, gaps, windows, segments, history). Every surface (Rust, SQL, CLI)
//! goes through it.
//!
//! Does I/O through `storage` and `transaction_log`.

mod alter;
mod append;
mod ingest;
mod read;
mod rewrite;
mod select;
mod snapshot;
mod vacuum;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

pub use append::AppendResult;
pub use ingest::{InputFormat, Reencoded};
pub use read::{Change, CommitInfo, CoverageChange, EntityCoverage, Expected, Gap, TimeRange};
pub use rewrite::{
    ColumnValues, CompactOptions, CompactReport, DeleteReport, ReplaceReport, RowMatcher, RowSelector, UpdateReport,
};
pub use select::{key_matches, EntityFilter, FirstRows, SegmentSelection};
pub use snapshot::Snapshot;
pub use vacuum::{OrphanFile, OrphanStatus, VacuumOptions, VacuumReport};

use crate::error::{Error, Result};
use crate::formats::parquet::WriterOptions;
use crate::metadata::{TableMeta, TimeIndexSpec, Timestamp};
use crate::storage::TableLocation;
use crate::transaction_log::{Commit, CommitOutcome, LogAction, LogStore, TableState};

/// A handle on one table: its location and the snapshot it currently sees.
#[derive(Debug, Clone)]
pub struct TimeSeriesTable {
    log: LogStore,
    snapshot: Arc<Snapshot>,
    /// Opened at a fixed version (time travel): never moves, never appends.
    pinned: bool,
    writer: WriterOptions,
    /// Counts the input rows appends consume, for progress displays.
    rows_read: Option<Arc<AtomicU64>>,
}

impl TimeSeriesTable {
    /// Creates a table at `location`. Fails if a table is already there.
    #[tracing::instrument(skip_all, fields(location = %location))]
    pub async fn create(location: TableLocation, meta: TableMeta) -> Result<Self> {
        meta.time_index.validate()?;
        let log = LogStore::new(location.clone());
        let latest = log.latest_version().await?;
        if latest > 0 {
            return Err(Error::TableExists { location: location.to_string(), version: latest });
        }
        location.check_conditional_create().await?;
        let commit = Commit::new(1, "create", vec![LogAction::UpdateTableMeta(meta)]);
        match log.try_commit(&commit).await? {
            CommitOutcome::Committed => {}
            CommitOutcome::Conflict => {
                return Err(Error::TableExists { location: location.to_string(), version: 1 });
            }
        }
        let state =
            TableState::from_first_commit(&commit, &location.describe(&crate::transaction_log::commit_path(1)))?;
        Ok(Self::from_state(log, state, false))
    }

    /// Creates a table with just a time index (schema fixed by the first append).
    pub async fn create_with_spec(location: TableLocation, spec: TimeIndexSpec) -> Result<Self> {
        Self::create(location, TableMeta::try_new(spec)?).await
    }

    /// Opens the latest version. An empty or absent log is [`Error::EmptyTable`].
    #[tracing::instrument(skip_all, fields(location = %location))]
    pub async fn open(location: TableLocation) -> Result<Self> {
        let log = LogStore::new(location);
        let state = log.load(None).await?;
        Ok(Self::from_state(log, state, false))
    }

    /// Opens the table as of `version` (time travel); the handle is read-only.
    pub async fn open_at(location: TableLocation, version: u64) -> Result<Self> {
        let log = LogStore::new(location);
        let state = log.load(Some(version)).await?;
        Ok(Self::from_state(log, state, true))
    }

    /// Opens the table as it was at `at` (time travel by commit time); see
    /// [`TimeSeriesTable::as_of`].
    pub async fn open_as_of(location: TableLocation, at: Timestamp) -> Result<Self> {
        Self::open(location).await?.as_of(at).await
    }

    /// This table as it was at `at`: the latest version up to this handle's whose commit
    /// time, by its writer's clock, is at or before `at`. Read-only. Commits are read from
    /// this version back, one read per commit made after `at`.
    pub async fn as_of(&self, at: Timestamp) -> Result<Self> {
        let at_millis = at.as_nanos().div_euclid(1_000_000);
        let mut first_commit = 0;
        for version in (1..=self.version()).rev() {
            let committed_at = self.log.read_commit(version).await?.committed_at;
            if committed_at <= at_millis {
                if version == self.version() {
                    return Ok(self.frozen());
                }
                return Self::open_at(self.location().clone(), version).await;
            }
            first_commit = committed_at;
        }
        let first = Timestamp::from_nanos(first_commit.saturating_mul(1_000_000));
        Err(Error::invalid_input(format!(
            "the table at {} did not exist at {at}: its first commit was at {first}",
            self.location()
        )))
    }

    fn from_state(log: LogStore, state: TableState, pinned: bool) -> Self {
        let cache = snapshot::CoverageCache::shared();
        let snapshot = Arc::new(Snapshot::new(log.location().clone(), state, cache));
        TimeSeriesTable { log, snapshot, pinned, writer: WriterOptions::default(), rows_read: None }
    }

    /// Uses `options` for the segments this handle writes.
    pub fn with_writer_options(mut self, options: WriterOptions) -> Self {
        self.writer = options;
        self
    }

    /// Adds the number of input rows each append consumes to `counter` as it goes, so a
    /// progress display can follow a long append.
    pub fn with_rows_read_counter(mut self, counter: Arc<AtomicU64>) -> Self {
        self.rows_read = Some(counter);
        self
    }

    /// How this handle writes segments.
    pub fn writer_options(&self) -> &WriterOptions {
        &self.writer
    }

    /// Catches up with commits made by others; returns whether anything changed.
    /// Reads only the commits this handle has not seen.
    pub async fn refresh(&mut self) -> Result<bool> {
        if self.pinned {
            return Ok(false);
        }
        let Some(state) = self.log.catch_up(self.snapshot.state()).await? else {
            return Ok(false);
        };
        self.snapshot = Arc::new(Snapshot::new(self.location().clone(), state, self.snapshot.segment_cache()));
        Ok(true)
    }

    /// Whether this handle stays at its version (a past version, or a frozen copy).
    #[cfg(feature = "ballista")]
    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned
    }

    /// A read-only copy that stays at this handle's version.
    pub(crate) fn frozen(&self) -> Self {
        TimeSeriesTable { pinned: true, ..self.clone() }
    }

    /// The snapshot this handle currently sees.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot)
    }

    /// Where the table lives.
    pub fn location(&self) -> &TableLocation {
        self.log.location()
    }

    /// The version this handle sees.
    pub fn version(&self) -> u64 {
        self.snapshot.version()
    }

    /// The table metadata (time index and schema).
    pub fn meta(&self) -> &TableMeta {
        &self.snapshot.state().meta
    }

    /// The time index: time column, bucket, zone, entity columns.
    pub fn spec(&self) -> &TimeIndexSpec {
        &self.meta().time_index
    }

    /// The table schema, once the first append has fixed it.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.meta().schema.clone()
    }
}
