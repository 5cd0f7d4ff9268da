//! Rewrites: commits that remove live segments and add new ones in one step. Compaction,
//! delete, replace and update are planned in their own modules and all commit through
//! [`TimeSeriesTable::commit_rewrite`].
//!
//! Conflict rules (FORMAT.md, "Rewrites"): a rewrite rebases over commits that only added
//! segments or columns, since those leave its inputs alone, unless an added segment may
//! hold rows it selects (a delete, update or replace must see every row it selects at the
//! version it commits). When a commit meanwhile removed one of its inputs, or added such a
//! segment, the rewrite is planned again from the new version, and may find nothing left
//! to do; so of two rewrites of one segment, exactly one commits it, and every version is
//! the commits before it applied in order.
//!
//! Coverage stays exact: after the commit it is the table's coverage without the removed
//! segments' (kept where a live segment shares the bucket), plus the added segments'. Each
//! rewrite commit names a new table coverage snapshot, so readers do not fall back to
//! uniting every sidecar.
//!
//! Does I/O: reads segments and sidecars, writes new segments, a snapshot and the commit.

mod compact;
mod delete;
mod segment_rows;
mod update;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

pub use compact::{CompactOptions, CompactReport};
pub use delete::{DeleteReport, ReplaceReport, RowMatcher, RowSelector};
pub use update::{ColumnValues, UpdateReport};

use super::append::{backoff, MAX_COMMIT_ATTEMPTS};
use super::ingest::{write_own, Staged};
use super::snapshot::Snapshot;
use super::TimeSeriesTable;
use crate::coverage::{sidecar, Coverage};
use crate::error::{Error, Result};
use crate::metadata::{SegmentId, SegmentMeta, TimeSet};
use crate::table::{key_matches, EntityFilter};
use crate::transaction_log::{Commit, CommitOutcome, LogAction, RowChange};

/// One planned rewrite: what it removes and adds, committed together or not at all.
pub(crate) struct Rewrite {
    /// Recorded as the commit's operation.
    pub(crate) operation: &'static str,
    /// Live segments the commit removes.
    pub(crate) removed: Vec<Arc<SegmentMeta>>,
    /// The new segments (none when whole segments are only dropped).
    pub(crate) added: Staged,
    /// The table's row change.
    pub(crate) rows: RowChange,
    /// New data (a replace's) whose coverage must not meet the table's after the removal.
    pub(crate) new_data: Option<Arc<Coverage>>,
    /// The rows are only moved (compaction): the table coverage does not change.
    pub(crate) same_rows: bool,
    /// For a rewrite of selected rows: what it selected, and the segments it looked at.
    pub(crate) selected: Option<Selected>,
}

/// The rows a delete, update or replace selects, and the live segments that may have held
/// some when it was planned. A live segment outside that set that may hold selected rows
/// was added since: the plan did not see its rows.
pub(crate) struct Selected {
    times: TimeSet,
    entities: EntityFilter,
    planned_on: HashSet<SegmentId>,
}

impl Selected {
    /// What `selector` selects, planned on `snapshot`.
    pub(crate) fn planned_on(snapshot: &Snapshot, selector: &RowSelector) -> Self {
        let (times, entities) = (selector.times.clone(), selector.entities.clone());
        let planned_on = snapshot
            .state()
            .segments
            .values()
            .filter(|s| may_select(&times, &entities, s))
            .map(|s| s.id.clone())
            .collect();
        Selected { times, entities, planned_on }
    }

    /// Whether a segment of `snapshot` that the plan did not see may hold selected rows.
    fn missed_in(&self, snapshot: &Snapshot) -> bool {
        snapshot
            .state()
            .segments
            .values()
            .any(|s| !self.planned_on.contains(&s.id) && may_select(&self.times, &self.entities, s))
    }
}

/// Whether `segment` may hold rows with a time in `times` and an entity `entities` admits,
/// judged from the log alone.
fn may_select(times: &TimeSet, entities: &EntityFilter, segment: &SegmentMeta) -> bool {
    times.meets_closed(segment.ts_min, segment.ts_max)
        && (entities.is_empty()
            || segment.entities.as_ref().is_none_or(|keys| keys.iter().any(|k| key_matches(k, entities))))
}

/// How a rewrite's commit ended.
pub(crate) enum Rewritten {
    /// Committed as `version` after `attempts` tries.
    Committed { version: u64, attempts: u32 },
    /// Another commit removed one of its inputs, or added a segment that may hold rows it
    /// selects: plan again from the latest version. The staged files are left to the
    /// caller, which may reuse some of them.
    Stale,
}

impl TimeSeriesTable {
    /// The optimistic commit loop for rewrites. Commits that land meanwhile and leave the
    /// inputs live are rebased over (coverage and the overlap check are recomputed on top
    /// of them); otherwise [`Rewritten::Stale`] is returned. On an error the staged
    /// files are deleted (unless the commit's outcome is unknown).
    pub(crate) async fn commit_rewrite(&mut self, rewrite: &Rewrite) -> Result<Rewritten> {
        let location = self.location().clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let snapshot = self.snapshot();
            let live = &snapshot.state().segments;
            let inputs_gone = rewrite.removed.iter().any(|s| !live.contains_key(&s.id));
            if inputs_gone || rewrite.selected.as_ref().is_some_and(|s| s.missed_in(&snapshot)) {
                return Ok(Rewritten::Stale);
            }
            let after = self.coverage_after(&snapshot, rewrite).await;
            let after = self.or_discard(&rewrite.added, after).await?;
            let version = snapshot.version() + 1;
            let path = format!("_coverage/table/{version:010}-{}.roar", SegmentId::random());
            let encoded = {
                let after = Arc::clone(&after);
                crate::environment::compute(move || sidecar::encode(&after)).await
            };
            let encoded = self.or_discard(&rewrite.added, encoded).await?;
            let written = write_own(&location, &path, Bytes::from(encoded)).await;
            self.or_discard(&rewrite.added, written).await?;

            let mut actions: Vec<LogAction> =
                rewrite.removed.iter().map(|s| LogAction::RemoveSegment { id: s.id.clone() }).collect();
            actions.extend(rewrite.added.segments.iter().map(|s| LogAction::AddSegment(s.clone())));
            actions.push(LogAction::UpdateTableCoverage { path: path.clone() });
            let mut commit = Commit::new(version, rewrite.operation, actions);
            commit.rows = Some(rewrite.rows);

            let outcome = self.log.try_commit(&commit).await;
            match self.or_discard_unless_unknown(&rewrite.added, Some(&path), outcome).await? {
                CommitOutcome::Committed => {
                    self.adopt_commit(&snapshot, &commit, Some(after)).await?;
                    tracing::debug!(version, attempts = attempt, operation = rewrite.operation, "rewrite committed");
                    return Ok(Rewritten::Committed { version, attempts: attempt });
                }
                CommitOutcome::Conflict => {
                    let _ = location.delete(&path).await;
                    if attempt >= MAX_COMMIT_ATTEMPTS {
                        rewrite.added.discard(&location).await;
                        return Err(Error::Conflict { version, attempts: attempt });
                    }
                    tracing::debug!(version, attempt, "rewrite conflict; rebasing");
                    tokio::time::sleep(backoff(attempt)).await;
                    let refreshed = self.refresh().await;
                    self.or_discard(&rewrite.added, refreshed).await?;
                }
            }
        }
    }

    /// [`Self::commit_rewrite`] for a rewrite that is planned again from scratch when its
    /// plan is stale: `Some((version, attempts))` once committed, `None` (its files
    /// deleted) to plan again, and a conflict error after `plans` plans.
    pub(crate) async fn commit_or_replan(&mut self, rewrite: &Rewrite, plans: u32) -> Result<Option<(u64, u32)>> {
        match self.commit_rewrite(rewrite).await? {
            Rewritten::Committed { version, attempts } => Ok(Some((version, attempts))),
            Rewritten::Stale => {
                rewrite.added.discard(self.location()).await;
                if plans >= MAX_COMMIT_ATTEMPTS {
                    return Err(Error::Conflict { version: self.version() + 1, attempts: plans });
                }
                tracing::debug!(operation = rewrite.operation, "the table changed under the plan; planning again");
                Ok(None)
            }
        }
    }

    /// The table coverage once `rewrite` is applied on top of `snapshot`; for a replace,
    /// an overlap of its new data with what stays is an error.
    async fn coverage_after(&self, snapshot: &Snapshot, rewrite: &Rewrite) -> Result<Arc<Coverage>> {
        let table = snapshot.table_coverage().await?;
        if rewrite.same_rows {
            return Ok(table);
        }
        let mut removed = Coverage::new();
        for segment in &rewrite.removed {
            removed.union_with(&*snapshot.segment_coverage(segment).await?);
        }
        // A bucket of a removed segment stays covered when a kept segment has rows in it
        // too (the segments of one append share buckets at their edges).
        let removed_ids: HashSet<&SegmentId> = rewrite.removed.iter().map(|s| &s.id).collect();
        let grid = snapshot.grid();
        let index = snapshot.time_index();
        let mut seen = HashSet::new();
        let mut kept = Coverage::new();
        for segment in &rewrite.removed {
            let lo = grid.locate(segment.ts_min).1.start;
            let hi = grid.locate(segment.ts_max).1.end.saturating_sub(1);
            for neighbour in index.candidates(lo, hi).map(|i| &index.by_start[i]) {
                if removed_ids.contains(&neighbour.id)
                    || neighbour.ts_min > hi
                    || neighbour.ts_max < lo
                    || !seen.insert(neighbour.id.clone())
                {
                    continue;
                }
                kept.union_with(&snapshot.segment_coverage(neighbour).await?.intersection(&removed));
            }
        }
        let mut after = (*table).clone();
        after.subtract(&removed);
        after.union_with(&kept);
        if let Some(new_data) = &rewrite.new_data {
            if let Some(overlap) = after.first_overlap(new_data) {
                return Err(self.overlap_error(snapshot, overlap).await);
            }
        }
        after.union_with(&rewrite.added.coverage);
        Ok(Arc::new(after))
    }
}
