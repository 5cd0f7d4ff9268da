//! Appending: input validation, segment encoding or adoption, the overlap rule, and the
//! optimistic commit loop (reload, re-validate against the new state, retry with jittered
//! backoff). A rejected append leaves no commit and removes the files it wrote.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};

use super::snapshot::Snapshot;
use super::TimeRange;
use super::TimeSeriesTable;
use crate::coverage::{bucket_end, bucket_start, sidecar, Coverage, Overlap};
use crate::error::{Error, Result};
use crate::formats::parquet::{encode_segment, inspect_parquet, SegmentStats};
use crate::metadata::schema::{check_append_schema, conform_batch, describe_schema, storage_schema};
use crate::metadata::segment::MAX_LISTED_ENTITIES;
use crate::metadata::{SegmentId, SegmentMeta, TableMeta, Timestamp};
use crate::storage::{read_local_file, PutOutcome};
use crate::transaction_log::{Commit, CommitOutcome, LogAction};

/// How many times a commit is attempted before giving up with [`Error::Conflict`].
const MAX_COMMIT_ATTEMPTS: u32 = 12;
/// A new table coverage snapshot is written once this many segments are not in the last one.
pub const COVERAGE_SNAPSHOT_EVERY: usize = 32;

/// What a successful append produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// The version the append committed.
    pub version: u64,
    /// The new segment.
    pub segment_id: SegmentId,
    /// Rows appended.
    pub rows: u64,
    /// Commit attempts it took (more than one when other writers got there first).
    pub attempts: u32,
}

/// A segment whose files are written but not yet committed.
struct StagedSegment {
    meta: SegmentMeta,
    coverage: Arc<Coverage>,
    /// The schema this append would establish (first append only).
    schema: SchemaRef,
}

impl TimeSeriesTable {
    /// Appends record batches as one new segment, sorted by time.
    #[tracing::instrument(skip_all, fields(location = %self.location()))]
    pub async fn append(&mut self, batches: Vec<RecordBatch>) -> Result<AppendResult> {
        self.append_as(batches, "append").await
    }

    /// [`Self::append`] recording `operation` (e.g. `insert`) in the commit.
    pub async fn append_as(&mut self, batches: Vec<RecordBatch>, operation: &str) -> Result<AppendResult> {
        self.writable()?;
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let first = batches.first().ok_or_else(|| Error::invalid_input("the input has no rows; nothing to append"))?;
        let input_schema = first.schema();
        let schema = self.schema_for(&input_schema, |i| batches.iter().all(|b| b.column(i).null_count() == 0))?;
        for batch in &batches[1..] {
            let null_free: Vec<bool> = batch.columns().iter().map(|c| c.null_count() == 0).collect();
            check_append_schema(&schema, &batch.schema(), &null_free)?;
        }
        let batches = batches.iter().map(|b| conform_batch(b, &schema)).collect::<Result<Vec<_>>>()?;
        let spec = self.spec().clone();
        let encode_schema = Arc::clone(&schema);
        let options = self.writer_options().clone();
        let encoded = tokio::task::spawn_blocking(move || encode_segment(batches, &encode_schema, &spec, &options))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let staged = self.stage(encoded.bytes, encoded.stats, schema, true).await?;
        self.commit_staged(staged, operation).await
    }

    /// Appends a stream of record batches as one new segment.
    pub async fn append_stream<S, E>(&mut self, stream: S) -> Result<AppendResult>
    where
        S: Stream<Item = std::result::Result<RecordBatch, E>>,
        Error: From<E>,
    {
        let batches: Vec<RecordBatch> = stream.map_err(Error::from).try_collect().await?;
        self.append(batches).await
    }

    /// Appends an existing Parquet file as one segment, copied as-is (no re-encode).
    pub async fn append_parquet_file(&mut self, path: impl AsRef<std::path::Path>) -> Result<AppendResult> {
        let path = path.as_ref();
        let bytes = read_local_file(path).await?;
        self.append_parquet_bytes(bytes, &path.display().to_string()).await
    }

    /// Appends the bytes of a Parquet file as one segment; `name` is used in messages.
    #[tracing::instrument(skip_all, fields(location = %self.location(), file = name))]
    pub async fn append_parquet_bytes(&mut self, bytes: Bytes, name: &str) -> Result<AppendResult> {
        self.writable()?;
        let spec = self.spec().clone();
        let owned_name = name.to_string();
        let inspect_bytes = bytes.clone();
        let inspected = tokio::task::spawn_blocking(move || inspect_parquet(inspect_bytes, &spec, &owned_name))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let schema = self.schema_for(&inspected.schema, |i| inspected.null_free.get(i).copied().unwrap_or(false))?;
        // The file is adopted byte for byte, so its columns must already have the table's
        // types; converting them means re-encoding, which batches (`append`) do.
        if let Some((want, got)) =
            schema.fields().iter().zip(inspected.schema.fields()).find(|(w, g)| w.data_type() != g.data_type())
        {
            return Err(Error::SchemaMismatch {
                expected: describe_schema(&schema),
                found: describe_schema(&inspected.schema),
                detail: format!(
                    "column '{}' is {} in the file but {} in the table; a Parquet file is stored as it is, so \
                     its types must match (append its rows as record batches to have them converted)",
                    want.name(),
                    got.data_type(),
                    want.data_type()
                ),
            });
        }
        let sorted = inspected.stats.sorted;
        let staged = self.stage(bytes, inspected.stats, schema, sorted).await?;
        self.commit_staged(staged, "append").await
    }

    fn writable(&self) -> Result<()> {
        if self.pinned {
            return Err(Error::invalid_input(format!(
                "this handle is opened at version {} (time travel) and is read-only; open the latest version to append",
                self.version()
            )));
        }
        Ok(())
    }

    /// The schema an input must be written with: the table's, or (first append) the
    /// input's own, adopted.
    fn schema_for(&self, input: &SchemaRef, null_free: impl Fn(usize) -> bool) -> Result<SchemaRef> {
        // Views and dictionaries of strings are stored as plain strings.
        let stored = storage_schema(input);
        // The time/entity rules first: their messages say more than a column diff.
        self.spec().validate_schema(&stored)?;
        match self.schema() {
            Some(table) => {
                let null_free: Vec<bool> = (0..input.fields().len()).map(null_free).collect();
                check_append_schema(&table, input, &null_free)?;
                Ok(table)
            }
            None => self.spec().adopt_schema(&stored),
        }
    }

    /// Writes the data file and segment sidecar under a fresh segment id.
    async fn stage(&self, bytes: Bytes, stats: SegmentStats, schema: SchemaRef, sorted: bool) -> Result<StagedSegment> {
        let (ts_min, ts_max) =
            stats.ts_range.ok_or_else(|| Error::invalid_input("the input has no rows; nothing to append"))?;
        let id = SegmentId::random();
        let path = format!("data/{id}.parquet");
        let coverage_path = format!("_coverage/segments/{id}.roar");
        let location = self.location();
        let size_bytes = bytes.len() as u64;
        let keys: Vec<_> = stats.coverage.entities().map(|(k, _)| k.clone()).collect();
        let entity_count = keys.len() as u64;
        let entities = (keys.len() <= MAX_LISTED_ENTITIES).then_some(keys);
        let sidecar_bytes = Bytes::from(sidecar::encode(&stats.coverage));

        write_own(location, &path, bytes).await?;
        if let Err(e) = write_own(location, &coverage_path, sidecar_bytes).await {
            let _ = location.delete(&path).await;
            return Err(e);
        }
        let meta = SegmentMeta {
            id,
            path,
            coverage_path,
            ts_min,
            ts_max,
            row_count: stats.row_count,
            size_bytes,
            sorted,
            entity_count,
            entities,
            added_in_version: 0,
        };
        Ok(StagedSegment { meta, coverage: Arc::new(stats.coverage), schema })
    }

    async fn discard(&self, staged: &StagedSegment) {
        let _ = self.location().delete(&staged.meta.path).await;
        let _ = self.location().delete(&staged.meta.coverage_path).await;
    }

    /// Passes `result` through, discarding the staged files first when it is an error
    /// raised before any commit of them was attempted (so none can have landed).
    async fn or_discard<T>(&self, staged: &StagedSegment, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.discard(staged).await;
        }
        result
    }

    /// The optimistic commit loop. Overlap and schema are checked against the snapshot
    /// being committed on top of, so a lost race is re-validated against the winner.
    async fn commit_staged(&mut self, staged: StagedSegment, operation: &str) -> Result<AppendResult> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let snapshot = self.snapshot();
            if let Err(e) = self.validate_against(&snapshot, &staged).await {
                self.discard(&staged).await;
                return Err(e);
            }
            let table_coverage = self.or_discard(&staged, snapshot.table_coverage().await).await?;
            let segment_coverage = Arc::clone(&staged.coverage);
            // The table snapshot is rewritten only every few segments: readers union the
            // sidecars of the segments added since, which keeps appends cheap.
            let write_snapshot = snapshot.state().segments_after_snapshot().count() + 1 >= COVERAGE_SNAPSHOT_EVERY;
            let merged = tokio::task::spawn_blocking(move || {
                let mut merged = (*table_coverage).clone();
                merged.union_with(&segment_coverage);
                let bytes = if write_snapshot { sidecar::encode(&merged) } else { Vec::new() };
                (Arc::new(merged), bytes)
            })
            .await
            .map_err(|e| Error::Task(e.to_string()));
            let (merged, merged_bytes) = self.or_discard(&staged, merged).await?;
            let version = snapshot.version() + 1;
            let snapshot_path = if write_snapshot {
                let path = format!("_coverage/table/{version:010}-{}.roar", staged.meta.id);
                let written = write_own(self.location(), &path, Bytes::from(merged_bytes)).await;
                self.or_discard(&staged, written).await?;
                Some(path)
            } else {
                None
            };

            let mut actions = Vec::new();
            if snapshot.state().meta.schema.is_none() {
                let meta = TableMeta { time_index: snapshot.spec().clone(), schema: Some(Arc::clone(&staged.schema)) };
                actions.push(LogAction::UpdateTableMeta(meta));
            }
            actions.push(LogAction::AddSegment(staged.meta.clone()));
            if let Some(path) = &snapshot_path {
                actions.push(LogAction::UpdateTableCoverage { path: path.clone() });
            }
            let commit = Commit::new(version, operation, actions);

            match self.log.try_commit(&commit).await? {
                CommitOutcome::Committed => {
                    let mut state = snapshot.state().clone();
                    state.apply(&commit, &self.location().describe(&crate::transaction_log::commit_path(version)))?;
                    self.log.checkpoint_if_due(&state).await;
                    self.snapshot = Arc::new(Snapshot::with_coverage(
                        self.location().clone(),
                        state,
                        snapshot.segment_cache(),
                        merged,
                    ));
                    tracing::debug!(version, attempts = attempt, "append committed");
                    return Ok(AppendResult {
                        version,
                        segment_id: staged.meta.id.clone(),
                        rows: staged.meta.row_count,
                        attempts: attempt,
                    });
                }
                CommitOutcome::Conflict => {
                    if let Some(path) = &snapshot_path {
                        let _ = self.location().delete(path).await;
                    }
                    if attempt >= MAX_COMMIT_ATTEMPTS {
                        self.discard(&staged).await;
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

    /// Schema and overlap rules against `snapshot`.
    async fn validate_against(&self, snapshot: &Snapshot, staged: &StagedSegment) -> Result<()> {
        if let Some(table) = &snapshot.state().meta.schema {
            let null_free: Vec<bool> = staged.schema.fields().iter().map(|f| !f.is_nullable()).collect();
            check_append_schema(table, &staged.schema, &null_free)?;
        }
        let table_coverage = snapshot.table_coverage().await?;
        let Some(overlap) = table_coverage.first_overlap(&staged.coverage) else {
            return Ok(());
        };
        Err(self.overlap_error(snapshot, overlap).await)
    }

    async fn overlap_error(&self, snapshot: &Snapshot, overlap: Overlap) -> Error {
        let bucket = snapshot.spec().bucket;
        let start = bucket_start(overlap.first_bucket, &bucket).unwrap_or(i64::MIN);
        let end = bucket_end(overlap.first_bucket, &bucket).unwrap_or(i64::MAX);
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

/// Creates a file that must not exist yet (fresh random names make a clash a bug).
async fn write_new(location: &crate::storage::TableLocation, path: &str, bytes: Bytes) -> Result<()> {
    match location.put_if_absent(path, bytes).await {
        Ok(PutOutcome::Created) => Ok(()),
        Ok(PutOutcome::AlreadyExists) => Err(Error::storage(
            location.describe(path),
            object_store::Error::AlreadyExists { path: path.to_string(), source: "refusing to overwrite".into() },
        )),
        Err(e) => Err(Error::storage(location.describe(path), e)),
    }
}

/// [`write_new`], removing the file again if the write failed: a write whose response
/// was lost may have landed, and the (fresh, random) name is this append's alone.
async fn write_own(location: &crate::storage::TableLocation, path: &str, bytes: Bytes) -> Result<()> {
    let result = write_new(location, path, bytes).await;
    if let Err(Error::Storage { source, .. }) = &result {
        if !matches!(source, object_store::Error::AlreadyExists { .. }) {
            let _ = location.delete(path).await;
        }
    }
    result
}

/// Exponential backoff with full jitter, capped near one second.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 5u64 << attempt.min(8);
    let jitter = (uuid::Uuid::new_v4().as_u128() % u128::from(ceiling_ms.max(1))) as u64;
    Duration::from_millis(ceiling_ms / 2 + jitter / 2)
}
