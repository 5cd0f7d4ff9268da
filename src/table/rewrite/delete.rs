//! Deleting rows and replacing a time range: the segments holding matching rows are
//! dropped whole when every row matches, rewritten without the matching rows when some
//! do, and left alone (unread) when pruning shows none can.
//!
//! Does I/O: reads candidate segments (twice for a partial match: once to count, once to
//! rewrite) and writes the rewritten ones through the ingest path.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::{and, filter_record_batch, not};
use arrow::datatypes::{Schema, SchemaRef};
use futures::{stream, Stream, StreamExt};

use super::segment_rows::{read_segment, read_segments};
use super::{Rewrite, Rewritten, Selected};
use crate::error::{Error, Result};
use crate::formats::parquet::stats::timestamps_as_nanos;
use crate::metadata::entity::EntityReader;
use crate::metadata::{SegmentMeta, TimeSet, Timestamp};
use crate::table::append::MAX_COMMIT_ATTEMPTS;
use crate::table::ingest::Staged;
use crate::table::{key_matches, EntityFilter, Snapshot, TimeRange, TimeSeriesTable};
use crate::transaction_log::RowChange;

/// A test on whole batches (in the table schema): `true` where a row is selected; a null
/// counts as not selected, as in SQL's `WHERE`.
pub type RowMatcher = Arc<dyn Fn(&RecordBatch) -> Result<BooleanArray> + Send + Sync>;

/// Which rows a delete removes: those with a timestamp in `times`, an entity admitted by
/// `entities`, and, when a matcher is given, for which it holds. Time and entity decide
/// which segments are read at all; without a matcher, a segment lying wholly inside them
/// is dropped without being read.
#[derive(Clone)]
pub struct RowSelector {
    /// The timestamps of the rows to remove.
    pub times: TimeSet,
    /// The entities of the rows to remove (empty: any).
    pub entities: EntityFilter,
    /// A further test on the rows; `None` selects every row of the times and entities.
    pub matcher: Option<RowMatcher>,
}

impl std::fmt::Debug for RowSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowSelector")
            .field("times", &self.times)
            .field("entities", &self.entities)
            .field("matcher", &self.matcher.is_some())
            .finish()
    }
}

impl RowSelector {
    /// Every row with a timestamp in `range` and an entity admitted by `entities`.
    pub fn range(range: TimeRange, entities: EntityFilter) -> Self {
        RowSelector { times: TimeSet::range(range.start.as_nanos(), range.end.as_nanos()), entities, matcher: None }
    }

    /// Adds a row test (see [`RowMatcher`]).
    pub fn with_matcher(mut self, matcher: RowMatcher) -> Self {
        self.matcher = Some(matcher);
        self
    }

    /// How many rows of `segment` (read in `schema`) are selected.
    pub(super) async fn count_in(&self, snapshot: &Snapshot, segment: &SegmentMeta, schema: &SchemaRef) -> Result<u64> {
        let mut matched = 0;
        let mut rows = std::pin::pin!(read_segment(snapshot.location(), segment, Arc::clone(schema)).await?);
        while let Some(batch) = rows.next().await {
            matched += self.mask(&batch?, snapshot)?.true_count() as u64;
        }
        Ok(matched)
    }

    /// Per row of `batch`: whether it is selected.
    pub(super) fn mask(&self, batch: &RecordBatch, snapshot: &Snapshot) -> Result<BooleanArray> {
        let spec = snapshot.spec();
        let time = batch
            .column_by_name(&spec.time_column)
            .ok_or_else(|| Error::invalid_input(format!("the segment has no time column '{}'", spec.time_column)))?;
        let times = timestamps_as_nanos(time, &spec.time_column)?;
        let columns = spec
            .entity_columns
            .iter()
            .map(|name| {
                batch
                    .column_by_name(name)
                    .map(|c| (name.as_str(), c))
                    .ok_or_else(|| Error::invalid_input(format!("the segment has no entity column '{name}'")))
            })
            .collect::<Result<Vec<_>>>()?;
        let reader = EntityReader::try_new(columns)?;
        let by_key: BooleanArray = (0..batch.num_rows())
            .map(|row| {
                Some(
                    self.times.contains(times[row])
                        && (self.entities.is_empty() || key_matches(&reader.key(row), &self.entities)),
                )
            })
            .collect();
        match &self.matcher {
            None => Ok(by_key),
            Some(matcher) => {
                let tested = matcher(batch)?;
                if tested.len() != batch.num_rows() {
                    return Err(Error::invalid_input("the row test returned a mask of the wrong length"));
                }
                // Null means "not selected": fill nulls with false before combining.
                let tested: BooleanArray = tested.iter().map(|v| Some(v == Some(true))).collect();
                Ok(and(&by_key, &tested)?)
            }
        }
    }
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DeleteReport {
    /// The version it committed; `None` when no row matched.
    pub version: Option<u64>,
    /// Rows removed.
    pub rows_deleted: u64,
    /// Segments read to find the matching rows.
    pub segments_read: usize,
    /// Segments removed whole (every row matched).
    pub segments_dropped: usize,
    /// Segments rewritten without their matching rows.
    pub segments_rewritten: usize,
    /// Bytes of the segments written in their place.
    pub bytes_written: u64,
    /// Commit attempts.
    pub attempts: u32,
}

/// What a replace did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplaceReport {
    /// The version it committed.
    pub version: u64,
    /// Rows of the range removed.
    pub rows_deleted: u64,
    /// Rows of the new data.
    pub rows_added: u64,
    /// Segments removed (dropped or rewritten).
    pub segments_removed: usize,
    /// Segments added (rewritten remainders and the new data).
    pub segments_added: usize,
    /// Commit attempts.
    pub attempts: u32,
}

/// The removal part of a delete or replace, as planned on one snapshot.
struct Removal {
    removed: Vec<Arc<SegmentMeta>>,
    /// The kept rows of the partly matching segments.
    kept: Staged,
    rows_deleted: u64,
    segments_read: usize,
    segments_dropped: usize,
    segments_rewritten: usize,
}

impl TimeSeriesTable {
    /// Removes the rows `selector` selects, in one `delete` commit. Coverage follows the
    /// rows: a bucket with no row left is no longer covered.
    ///
    /// Works on the latest version. Commits that land meanwhile are rebased over when they
    /// leave its plan whole; when another rewrite removed a segment it was rewriting, or an
    /// append added rows it selects, it plans again from the new version, so no selected
    /// row is left at the version it commits.
    #[tracing::instrument(skip_all, fields(location = %self.location()))]
    pub async fn delete(&mut self, selector: &RowSelector) -> Result<DeleteReport> {
        self.writable()?;
        for plans in 1.. {
            self.refresh().await?;
            let snapshot = self.snapshot();
            let removal = self.plan_removal(&snapshot, selector).await?;
            let mut report = DeleteReport {
                version: None,
                rows_deleted: removal.rows_deleted,
                segments_read: removal.segments_read,
                segments_dropped: removal.segments_dropped,
                segments_rewritten: removal.segments_rewritten,
                bytes_written: removal.kept.segments.iter().map(|s| s.size_bytes).sum(),
                attempts: 0,
            };
            if removal.removed.is_empty() {
                return Ok(report);
            }
            let rewrite = Rewrite {
                operation: "delete",
                removed: removal.removed,
                added: removal.kept,
                rows: RowChange { added: 0, removed: removal.rows_deleted },
                new_data: None,
                same_rows: false,
                selected: Some(Selected::planned_on(&snapshot, selector)),
            };
            if let Some((version, attempts)) = self.commit_or_replan(&rewrite, plans).await? {
                report.version = Some(version);
                report.attempts = attempts;
                return Ok(report);
            }
        }
        unreachable!("the loop returns")
    }

    /// Replaces the rows of `range` (for the entities `entities` admits; every entity when
    /// empty) with the rows of `data`, in one `replace` commit: readers see the old rows or
    /// the new, never neither. The range must start and end on bucket boundaries, and
    /// every row of `data` must lie inside it (and belong to an admitted entity).
    #[tracing::instrument(skip_all, fields(location = %self.location()))]
    pub async fn replace<S>(&mut self, range: TimeRange, entities: EntityFilter, data: S) -> Result<ReplaceReport>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        self.writable()?;
        self.refresh().await?;
        if self.schema().is_none() {
            return Err(Error::invalid_input("the table has no rows yet: append the data instead of replacing"));
        }
        let snapshot = self.snapshot();
        let grid = snapshot.grid();
        for edge in [range.start, range.end] {
            // On a local-day grid the boundaries are local midnights, not multiples of 24 h.
            if grid.locate(edge.as_nanos()).1.start != edge.as_nanos() {
                return Err(Error::invalid_input(format!(
                    "the replaced range {range} must start and end on a bucket boundary (the table's buckets are {}): {edge} is inside a bucket",
                    grid.bucket()
                )));
            }
        }
        let new_data = self.stage_unfenced(data).await?;
        if let Err(e) = check_inside(&new_data, range, &entities, self.spec().entity_columns.as_slice()) {
            new_data.discard(self.location()).await;
            return Err(e);
        }
        let selector = RowSelector::range(range, entities);
        for plans in 1.. {
            let snapshot = self.snapshot();
            let removal = match self.plan_removal(&snapshot, &selector).await {
                Ok(removal) => removal,
                Err(e) => {
                    new_data.discard(self.location()).await;
                    return Err(e);
                }
            };
            let kept_segments = removal.kept.segments.clone();
            let mut added = removal.kept;
            added.segments.extend(new_data.segments.iter().cloned());
            let mut coverage = (*added.coverage).clone();
            coverage.union_with(&new_data.coverage);
            added.coverage = Arc::new(coverage);
            let rewrite = Rewrite {
                operation: "replace",
                removed: removal.removed,
                added,
                rows: RowChange { added: new_data.rows(), removed: removal.rows_deleted },
                new_data: Some(Arc::clone(&new_data.coverage)),
                same_rows: false,
                selected: Some(Selected::planned_on(&snapshot, &selector)),
            };
            let committed = self.commit_rewrite(&rewrite).await;
            match committed {
                Ok(Rewritten::Committed { version, attempts }) => {
                    return Ok(ReplaceReport {
                        version,
                        rows_deleted: removal.rows_deleted,
                        rows_added: new_data.rows(),
                        segments_removed: rewrite.removed.len(),
                        segments_added: rewrite.added.segments.len(),
                        attempts,
                    });
                }
                // Only the rewritten remainders were planned on the old version; the new
                // data stays staged for the next plan.
                Ok(Rewritten::Stale) if plans < MAX_COMMIT_ATTEMPTS => {
                    Staged { segments: kept_segments, ..Staged::empty(Arc::clone(&new_data.schema)) }
                        .discard(self.location())
                        .await;
                    let refreshed = self.refresh().await;
                    self.or_discard(&new_data, refreshed).await?;
                }
                Ok(Rewritten::Stale) => {
                    rewrite.added.discard(self.location()).await;
                    return Err(Error::Conflict { version: snapshot.version() + 1, attempts: plans });
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    /// Appendable rows of any order staged as segments, without the overlap fence.
    async fn stage_unfenced<S>(&self, data: S) -> Result<Staged>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        let mut data = std::pin::pin!(data);
        let mut first = None;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            if batch.num_rows() > 0 {
                first = Some(batch);
                break;
            }
        }
        let first = first.ok_or_else(|| Error::invalid_input("the replacement data has no rows"))?;
        let schema = self.schema_for(&first.schema(), |i| first.column(i).null_count() == 0)?;
        let options = self.writer_options().clone();
        self.stage_rows(stream::iter([Ok(first)]).chain(data), schema, &options, false).await
    }

    /// Finds the selected rows in `snapshot`: segments to drop whole, and segments to
    /// rewrite without them (staged here).
    async fn plan_removal(&self, snapshot: &Snapshot, selector: &RowSelector) -> Result<Removal> {
        let schema = snapshot.meta().schema.clone().unwrap_or_else(|| Arc::new(Schema::empty()));
        let mut removal = Removal {
            removed: Vec::new(),
            kept: Staged::empty(Arc::clone(&schema)),
            rows_deleted: 0,
            segments_read: 0,
            segments_dropped: 0,
            segments_rewritten: 0,
        };
        if snapshot.meta().schema.is_none() {
            return Ok(removal);
        }
        let selection = snapshot.select_segments(&selector.times, &selector.entities).await?;
        let mut partial = Vec::new();
        for segment in selection.segments {
            if selector.matcher.is_none()
                && selector.times.contains_closed(segment.ts_min, segment.ts_max)
                && self.all_entities_selected(snapshot, &segment, &selector.entities).await?
            {
                removal.rows_deleted += segment.row_count;
                removal.segments_dropped += 1;
                removal.removed.push(segment);
                continue;
            }
            removal.segments_read += 1;
            let matched = selector.count_in(snapshot, &segment, &schema).await?;
            if matched == 0 {
                continue;
            }
            removal.rows_deleted += matched;
            if matched == segment.row_count {
                removal.segments_dropped += 1;
            } else {
                removal.segments_rewritten += 1;
                partial.push(Arc::clone(&segment));
            }
            removal.removed.push(segment);
        }
        if !partial.is_empty() {
            let kept_rows = read_segments(self.location().clone(), partial, Arc::clone(&schema)).map(|batch| {
                let batch = batch?;
                let keep = not(&selector.mask(&batch, snapshot)?)?;
                Ok(filter_record_batch(&batch, &keep)?)
            });
            let options = self.writer_options().clone();
            removal.kept = self.stage_rows(kept_rows, schema, &options, false).await?;
        }
        Ok(removal)
    }

    /// Whether every entity of `segment` is admitted by `entities`.
    async fn all_entities_selected(
        &self,
        snapshot: &Snapshot,
        segment: &SegmentMeta,
        entities: &EntityFilter,
    ) -> Result<bool> {
        if entities.is_empty() {
            return Ok(true);
        }
        if let Some(keys) = &segment.entities {
            return Ok(keys.iter().all(|k| key_matches(k, entities)));
        }
        Ok(snapshot.segment_coverage(segment).await?.entities().all(|(k, _)| key_matches(k, entities)))
    }
}

/// Checks that the staged replacement rows lie inside `range` and belong to admitted
/// entities, naming the first that does not.
fn check_inside(data: &Staged, range: TimeRange, entities: &EntityFilter, entity_columns: &[String]) -> Result<()> {
    let (start, end) = (range.start.as_nanos(), range.end.as_nanos());
    let outside = data
        .segments
        .iter()
        .flat_map(|s| [s.ts_min, s.ts_max])
        .filter(|&t| t < start || t >= end)
        .min_by_key(|&t| if t < start { (0, t) } else { (1, t) });
    if let Some(t) = outside {
        return Err(Error::invalid_input(format!(
            "the replacement data has a row at {}, outside the replaced range {range}; nothing was replaced",
            Timestamp::from_nanos(t)
        )));
    }
    if !entities.is_empty() {
        if let Some((key, _)) = data.coverage.entities().find(|(k, _)| !key_matches(k, entities)) {
            return Err(Error::invalid_input(format!(
                "the replacement data has rows of {}, which is not among the replaced entities; nothing was replaced",
                key.describe(entity_columns)
            )));
        }
    }
    Ok(())
}
