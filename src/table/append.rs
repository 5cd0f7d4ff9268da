//! Appending: the public entry points for batches and streams, the schema rule, the
//! overlap rule, and the optimistic commit loop (reload, re-validate against the new state,
//! retry with jittered backoff) that commits every segment of one append together. A
//! rejected append leaves no commit and removes the files it wrote.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};

use super::ingest::{write_own, Reencoded, Staged};
use super::snapshot::Snapshot;
use super::TimeRange;
use super::TimeSeriesTable;
use crate::coverage::{sidecar, Coverage, Overlap};
use crate::error::{Error, Result};
use crate::metadata::schema::{check_append_schema, check_staged_schema, storage_schema, widen_schema};
use crate::metadata::{SegmentId, TableMeta, Timestamp};
use crate::transaction_log::{Commit, CommitOutcome, LogAction};

/// How many times a commit is attempted before giving up with [`Error::Conflict`].
pub(crate) const MAX_COMMIT_ATTEMPTS: u32 = 12;
/// A new table coverage snapshot is written once this many segments are not in the last one.
pub const COVERAGE_SNAPSHOT_EVERY: usize = 32;

/// What a successful append produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendResult {
    /// The version the append committed.
    pub version: u64,
    /// The new segments, in the order they were written.
    pub segments: Vec<SegmentId>,
    /// The first new segment, `segments[0]`.
    #[deprecated(note = "an append may write several segments: use `segments`")]
    pub segment_id: SegmentId,
    /// Rows appended.
    pub rows: u64,
    /// Commit attempts it took (more than one when other writers got there first).
    pub attempts: u32,
    /// For a Parquet file: why it was re-encoded rather than stored as it is.
    pub reencoded: Option<Reencoded>,
}

impl TimeSeriesTable {
    /// Appends record batches, in any order, as segments sorted by time.
    #[tracing::instrument(skip_all, fields(location = %self.location()))]
    pub async fn append(&mut self, batches: Vec<RecordBatch>) -> Result<AppendResult> {
        self.append_as(futures::stream::iter(batches.into_iter().map(Ok)), "append").await
    }

    /// Appends a stream of record batches of any size and order, holding at most the
    /// memory limit of [`WriterOptions`](crate::WriterOptions): rows are written as they
    /// arrive, sorted (on disk beyond the limit) when they are out of time order, and
    /// split into segments of the target size, all committed in one commit.
    pub async fn append_stream<S, E>(&mut self, stream: S) -> Result<AppendResult>
    where
        S: Stream<Item = std::result::Result<RecordBatch, E>> + Send,
        Error: From<E>,
    {
        self.append_as(stream.map_err(Error::from), "append").await
    }

    /// [`Self::append_stream`] recording `operation` (e.g. `insert`) in the commit.
    pub(crate) async fn append_as<S>(&mut self, stream: S, operation: &str) -> Result<AppendResult>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        self.writable()?;
        let staged = self.stage_stream(stream).await?;
        self.commit_staged(staged, operation, None).await
    }

    pub(crate) fn writable(&self) -> Result<()> {
        if self.pinned {
            return Err(Error::invalid_input(format!(
                "this handle is opened at version {} (time travel) and is read-only; open the latest version to change the table",
                self.version()
            )));
        }
        Ok(())
    }

    /// The schema an input must be written with: the table's, or (first append) the
    /// input's own, adopted.
    pub(crate) fn schema_for(&self, input: &SchemaRef, null_free: impl Fn(usize) -> bool) -> Result<SchemaRef> {
        // Views and dictionaries of strings are stored as plain strings.
        let stored = storage_schema(input);
        // The time/entity rules first: their messages say more than a column diff.
        self.spec().validate_schema(&stored)?;
        let null_free: Vec<bool> = (0..input.fields().len()).map(null_free).collect();
        match self.schema() {
            Some(table) if self.writer.evolve_schema && input.fields().len() > table.fields().len() => {
                let shared: Vec<usize> = (0..table.fields().len()).collect();
                check_append_schema(&table, &input.project(&shared)?, &null_free)?;
                Ok(Arc::new(widen_schema(&table, input)?))
            }
            Some(table) => {
                check_append_schema(&table, input, &null_free)?;
                Ok(table)
            }
            None => self.spec().adopt_schema(&stored),
        }
    }

    /// Passes `result` through, discarding the staged files first when it is an error
    /// raised before any commit of them was attempted (so none can have landed).
    pub(crate) async fn or_discard<T>(&self, staged: &Staged, result: Result<T>) -> Result<T> {
        if result.is_err() {
            staged.discard(self.location()).await;
        }
        result
    }

    /// `result` of a commit attempt, discarding the staged files and the table snapshot
    /// written for the attempt when it failed, unless its outcome is unknown (then the
    /// commit may have landed with them).
    pub(crate) async fn or_discard_unless_unknown<T>(
        &self,
        staged: &Staged,
        snapshot_path: Option<&str>,
        result: Result<T>,
    ) -> Result<T> {
        if let Err(e) = &result {
            if !matches!(e, Error::CommitOutcomeUnknown { .. }) {
                if let Some(path) = snapshot_path {
                    let _ = self.location().delete(path).await;
                }
                staged.discard(self.location()).await;
            }
        }
        result
    }

    /// The optimistic commit loop: every staged segment in one commit, or none. Overlap
    /// and schema are checked against the snapshot being committed on top of, so a lost
    /// race is re-validated against the winner.
    pub(crate) async fn commit_staged(
        &mut self,
        staged: Staged,
        operation: &str,
        reencoded: Option<Reencoded>,
    ) -> Result<AppendResult> {
        if staged.segments.is_empty() {
            return Err(Error::invalid_input("the input has no rows; nothing to append"));
        }
        let appended = Arc::clone(&staged.coverage);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let snapshot = self.snapshot();
            if let Err(e) = self.validate_against(&snapshot, &staged, &appended).await {
                staged.discard(self.location()).await;
                return Err(e);
            }
            let table_coverage = self.or_discard(&staged, snapshot.table_coverage().await).await?;
            let added = Arc::clone(&appended);
            // The table snapshot is rewritten only every few segments: readers union the
            // sidecars of the segments added since, which keeps appends cheap.
            let write_snapshot =
                snapshot.state().segments_after_snapshot().count() + staged.segments.len() >= COVERAGE_SNAPSHOT_EVERY;
            let merged = crate::environment::compute(move || {
                let mut merged = (*table_coverage).clone();
                merged.union_with(&added);
                let bytes = if write_snapshot { sidecar::encode(&merged) } else { Vec::new() };
                (Arc::new(merged), bytes)
            })
            .await;
            let (merged, merged_bytes) = self.or_discard(&staged, merged).await?;
            let version = snapshot.version() + 1;
            let snapshot_path = if write_snapshot {
                let path = format!("_coverage/table/{version:010}-{}.roar", staged.segments[0].id);
                let written = write_own(self.location(), &path, Bytes::from(merged_bytes)).await;
                self.or_discard(&staged, written).await?;
                Some(path)
            } else {
                None
            };

            let mut actions = Vec::new();
            // The first append fixes the schema; an append with new columns widens it.
            let widens =
                snapshot.state().meta.schema.as_ref().is_none_or(|s| s.fields().len() < staged.schema.fields().len());
            if widens {
                let meta = TableMeta { schema: Some(Arc::clone(&staged.schema)), ..snapshot.meta().clone() };
                actions.push(LogAction::UpdateTableMeta(meta));
            }
            actions.extend(staged.segments.iter().map(|s| LogAction::AddSegment(s.clone())));
            if let Some(path) = &snapshot_path {
                actions.push(LogAction::UpdateTableCoverage { path: path.clone() });
            }
            let commit = Commit::new(version, operation, actions);

            let outcome = self.log.try_commit(&commit).await;
            match self.or_discard_unless_unknown(&staged, snapshot_path.as_deref(), outcome).await? {
                CommitOutcome::Committed => {
                    self.adopt_commit(&snapshot, &commit, Some(merged)).await?;
                    tracing::debug!(version, attempts = attempt, segments = staged.segments.len(), "append committed");
                    #[allow(deprecated)]
                    return Ok(AppendResult {
                        version,
                        segment_id: staged.segments[0].id.clone(),
                        segments: staged.segments.iter().map(|s| s.id.clone()).collect(),
                        rows: staged.rows(),
                        attempts: attempt,
                        reencoded,
                    });
                }
                CommitOutcome::Conflict => {
                    if let Some(path) = &snapshot_path {
                        let _ = self.location().delete(path).await;
                    }
                    if attempt >= MAX_COMMIT_ATTEMPTS {
                        staged.discard(self.location()).await;
                        return Err(Error::Conflict { version, attempts: attempt });
                    }
                    tracing::debug!(version, attempt, "commit conflict; reloading and retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    let refreshed = self.refresh().await;
                    self.or_discard(&staged, refreshed).await?;
                }
            }
        }
    }

    /// Makes our just-committed `commit` (made on top of `snapshot`) this handle's state,
    /// with its table coverage when the writer computed it (loaded on demand otherwise).
    pub(crate) async fn adopt_commit(
        &mut self,
        snapshot: &Snapshot,
        commit: &Commit,
        coverage: Option<Arc<Coverage>>,
    ) -> Result<()> {
        let mut state = snapshot.state().clone();
        state.apply(commit, &self.location().describe(&crate::transaction_log::commit_path(commit.version)))?;
        self.log.checkpoint_if_due(&state).await;
        let (location, cache) = (self.location().clone(), snapshot.segment_cache());
        self.snapshot = Arc::new(match coverage {
            Some(coverage) => Snapshot::with_coverage(location, state, cache, coverage),
            None => Snapshot::new(location, state, cache),
        });
        Ok(())
    }

    /// Schema and overlap rules against `snapshot`.
    async fn validate_against(&self, snapshot: &Snapshot, staged: &Staged, appended: &Coverage) -> Result<()> {
        if let Some(table) = &snapshot.state().meta.schema {
            check_staged_schema(table, &staged.schema)?;
        }
        let table_coverage = snapshot.table_coverage().await?;
        let Some(overlap) = table_coverage.first_overlap(appended) else {
            return Ok(());
        };
        Err(self.overlap_error(snapshot, overlap).await)
    }

    pub(crate) async fn overlap_error(&self, snapshot: &Snapshot, overlap: Overlap) -> Error {
        let grid = snapshot.grid();
        let start = grid.start_or_clamp(overlap.first_bucket);
        let end = grid.start_or_clamp(overlap.first_bucket.saturating_add(1));
        let mut colliding = None;
        for segment in snapshot.segments() {
            if !segment.overlaps_time(start, end) || !segment.may_hold_any(std::slice::from_ref(&overlap.entity)) {
                continue;
            }
            if let Ok(coverage) = snapshot.segment_coverage(&segment).await {
                if coverage.entity(&overlap.entity).is_some_and(|s| s.contains(overlap.first_bucket)) {
                    colliding = Some(segment.id.clone());
                    break;
                }
            }
        }
        Error::Overlap {
            entity: overlap.entity,
            entity_columns: snapshot.spec().entity_columns.clone(),
            first_bucket: TimeRange { start: Timestamp::from_nanos(start), end: Timestamp::from_nanos(end) },
            buckets: overlap.buckets,
            segment: colliding,
        }
    }
}

/// Exponential backoff with full jitter, capped near one second.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 5u64 << attempt.min(8);
    let jitter = (crate::environment::random_u128() % u128::from(ceiling_ms.max(1))) as u64;
    Duration::from_millis(ceiling_ms / 2 + jitter / 2)
}
