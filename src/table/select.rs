//! Choosing the segments a read must open: by time extent, by entity, by coverage.
//!
//! Does I/O: sidecar reads for coverage pruning.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use super::snapshot::Snapshot;
use crate::coverage::BucketGrid;
use crate::error::Result;
use crate::metadata::{EntityKey, EntityValue, SegmentMeta, TimeSet};

/// Per entity column (by position), the values a row must take.
pub type EntityFilter = HashMap<usize, BTreeSet<EntityValue>>;

/// The segments a read must open and what pruning removed.
#[derive(Debug, Default)]
pub struct SegmentSelection {
    /// The segments to open, ordered by start time.
    pub segments: Vec<Arc<SegmentMeta>>,
    /// Live segments before pruning.
    pub total: usize,
    /// Segments whose `[ts_min, ts_max]` misses the requested times.
    pub pruned_by_time: usize,
    /// Segments left after time pruning whose listed entities all fail the filter.
    pub pruned_by_entity: usize,
    /// Segments left after entity pruning with no matching covered bucket in the times.
    pub pruned_by_coverage: usize,
}

/// Whether `key` is admitted by `filter` (every constrained column takes an allowed value).
pub fn key_matches(key: &EntityKey, filter: &EntityFilter) -> bool {
    filter.iter().all(|(&i, values)| key.0.get(i).is_some_and(|v| values.contains(v)))
}

/// Bucket-id ranges that the (closed) intervals of `times` intersect.
fn bucket_ranges(times: &TimeSet, grid: &BucketGrid) -> Vec<Range<i64>> {
    times.intervals().iter().map(|&(lo, hi)| grid.bucket_of(lo)..grid.bucket_of(hi).saturating_add(1)).collect()
}

impl Snapshot {
    /// Live segments (ordered by start time) that may hold rows with a timestamp in
    /// `times` and an entity admitted by `entities`.
    #[tracing::instrument(skip_all, fields(version = self.version()))]
    pub async fn select_segments(&self, times: &TimeSet, entities: &EntityFilter) -> Result<SegmentSelection> {
        let index = self.time_index();
        let mut selection = SegmentSelection { total: index.by_start.len(), ..Default::default() };
        let ranges = bucket_ranges(times, self.grid());
        // Candidate positions from the time index, merged across the (sorted) intervals.
        let mut positions: Vec<std::ops::Range<usize>> = Vec::new();
        for &(lo, hi) in times.intervals() {
            let next = index.candidates(lo, hi);
            match positions.last_mut() {
                Some(last) if next.start <= last.end => last.end = last.end.max(next.end),
                _ => positions.push(next),
            }
        }
        let mut time_survivors = 0;
        for segment in positions.into_iter().flatten().map(|i| &index.by_start[i]) {
            if !times.meets_closed(segment.ts_min, segment.ts_max) {
                continue;
            }
            time_survivors += 1;
            if let (false, Some(keys)) = (entities.is_empty(), &segment.entities) {
                if !keys.iter().any(|k| key_matches(k, entities)) {
                    selection.pruned_by_entity += 1;
                    continue;
                }
            }
            // Coverage can only prune when time or entity is constrained.
            if !(times.is_all() && entities.is_empty()) {
                let coverage = self.segment_coverage(segment).await?;
                let hit = coverage
                    .entities()
                    .any(|(key, set)| key_matches(key, entities) && ranges.iter().any(|r| set.any_in(r.clone())));
                if !hit {
                    selection.pruned_by_coverage += 1;
                    continue;
                }
            }
            selection.segments.push(Arc::clone(segment));
        }
        selection.pruned_by_time = selection.total - time_survivors;
        Ok(selection)
    }
}
