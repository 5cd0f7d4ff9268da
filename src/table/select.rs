//! Choosing the segments a read must open: by time extent, by entity, by coverage.
//!
//! Does I/O: sidecar reads for coverage pruning.

use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use super::snapshot::Snapshot;
use crate::coverage::BucketGrid;
use crate::error::Result;
use crate::metadata::{EntityKey, EntityValue, SegmentMeta, TimeSet};

/// Segment coverage sidecars read at once while selecting.
const COVERAGE_READS: usize = 16;

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
    /// Segments left after time pruning that cannot hold any of the first rows asked for
    /// ([`Snapshot::select_first_segments`]); counted before entity and coverage pruning.
    pub pruned_by_limit: usize,
}

/// The first rows of a read in time order, all that a sort on time with a limit keeps
/// of a read that keeps every row its filter admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstRows {
    /// How many (a limit plus its offset).
    pub rows: usize,
    /// The latest rows, not the earliest.
    pub latest: bool,
}

/// `candidates` without the segments that cannot hold any of the `first` rows matching
/// `times` and `entities` in time order; returns how many it left out. Row counts and
/// time ranges are exact: segments taken from the end that time order starts at, until
/// they surely hold `first.rows` matching rows ([`surely_matching_rows`]), have all those
/// rows at or past the earliest (latest) start among them, so a segment wholly before
/// (after) that time has no row among the first rows, whatever the other sort keys; ties
/// at that time are kept. O(segments), and the entities of the few taken are all it
/// looks at.
fn keep_first_rows(
    candidates: &mut Vec<&Arc<SegmentMeta>>,
    first: FirstRows,
    times: &TimeSet,
    entities: &EntityFilter,
) -> usize {
    let latest = first.latest;
    // Segments by the end time order starts at (the order reversed for the earliest
    // first), from a heap built in linear time; only the few that hold the rows are
    // popped.
    let key = |s: &SegmentMeta| if latest { s.ts_max } else { s.ts_min.saturating_neg() };
    let mut heap: BinaryHeap<(i64, usize)> = candidates.iter().enumerate().map(|(i, s)| (key(s), i)).collect();
    let (mut held, mut reach) = (0u64, None::<i64>);
    while held < first.rows as u64 {
        let Some((_, i)) = heap.pop() else { break };
        let segment = candidates[i];
        let sure = surely_matching_rows(segment, times, entities);
        if sure == 0 {
            continue; // it may hold some, but they bound nothing
        }
        held += sure;
        let far = if latest { segment.ts_min } else { segment.ts_max };
        reach = Some(reach.map_or(far, |r| if latest { r.min(far) } else { r.max(far) }));
    }
    let (Some(reach), true) = (reach, held >= first.rows as u64) else { return 0 };
    let before = candidates.len();
    candidates.retain(|s| if latest { s.ts_max >= reach } else { s.ts_min <= reach });
    before - candidates.len()
}

/// How many rows of `segment` surely have a time in `times` and an entity admitted by
/// `entities`: all of them when it lies wholly inside the times and nothing or all of
/// its listed entities are asked for, one per listed entity asked for (each listed
/// entity has a row), none when the range cuts it or its entities are not listed.
fn surely_matching_rows(segment: &SegmentMeta, times: &TimeSet, entities: &EntityFilter) -> u64 {
    if !times.contains_closed(segment.ts_min, segment.ts_max) {
        return 0;
    }
    if entities.is_empty() {
        return segment.row_count;
    }
    match &segment.entities {
        Some(keys) => {
            let matching = keys.iter().filter(|k| key_matches(k, entities)).count();
            if matching == keys.len() {
                segment.row_count
            } else {
                matching as u64
            }
        }
        None => 0,
    }
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
    pub async fn select_segments(&self, times: &TimeSet, entities: &EntityFilter) -> Result<SegmentSelection> {
        self.select_first_segments(times, entities, None).await
    }

    /// [`Snapshot::select_segments`], and with `first`, only those that can hold one of
    /// the first rows in time order, for a read whose filter admits exactly the rows with
    /// a time in `times` and an entity admitted by `entities`. The entity lists and
    /// coverage of the segments `first` leaves out are not looked at.
    #[tracing::instrument(skip_all, fields(version = self.version()))]
    pub async fn select_first_segments(
        &self,
        times: &TimeSet,
        entities: &EntityFilter,
        first: Option<FirstRows>,
    ) -> Result<SegmentSelection> {
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
        let mut in_time: Vec<&Arc<SegmentMeta>> = positions
            .into_iter()
            .flatten()
            .map(|i| &index.by_start[i])
            .filter(|segment| times.meets_closed(segment.ts_min, segment.ts_max))
            .collect();
        selection.pruned_by_time = selection.total - in_time.len();
        if let Some(first) = first {
            selection.pruned_by_limit = keep_first_rows(&mut in_time, first, times, entities);
        }
        // Segments past entity pruning, and whether their coverage must be read to know
        // they hold a matching row.
        let mut candidates = Vec::new();
        for segment in in_time {
            if let (false, Some(keys)) = (entities.is_empty(), &segment.entities) {
                if !keys.iter().any(|k| key_matches(k, entities)) {
                    selection.pruned_by_entity += 1;
                    continue;
                }
            }
            // A segment wholly inside the times, with a listed entity asked for (it
            // passed just above) or none asked for, surely holds a matching row: its
            // coverage would only say so again, at a read per segment.
            let sure = times.contains_closed(segment.ts_min, segment.ts_max)
                && (entities.is_empty() || segment.entities.is_some());
            candidates.push((Arc::clone(segment), sure));
        }
        // Coverage is read for the others, several at a time, in start order.
        let ranges = &ranges;
        let checked = futures::stream::iter(candidates)
            .map(|(segment, sure)| async move {
                if sure {
                    return Ok((segment, true));
                }
                let coverage = self.segment_coverage(&segment).await?;
                let hit = coverage
                    .entities()
                    .any(|(key, set)| key_matches(key, entities) && ranges.iter().any(|r| set.any_in(r.clone())));
                Ok::<_, crate::error::Error>((segment, hit))
            })
            .buffered(COVERAGE_READS);
        futures::pin_mut!(checked);
        while let Some((segment, hit)) = checked.try_next().await? {
            if hit {
                selection.segments.push(segment);
            } else {
                selection.pruned_by_coverage += 1;
            }
        }
        Ok(selection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::SegmentId;

    /// Segments `(ts_min, ts_max, rows)` in start order, as the time index holds them.
    fn segments(extents: &[(i64, i64, u64)]) -> Vec<Arc<SegmentMeta>> {
        extents
            .iter()
            .enumerate()
            .map(|(i, &(ts_min, ts_max, row_count))| {
                Arc::new(SegmentMeta {
                    id: SegmentId(format!("s{i}")),
                    path: format!("data/s{i}.parquet"),
                    coverage_path: format!("_coverage/segments/s{i}.roar"),
                    ts_min,
                    ts_max,
                    row_count,
                    size_bytes: 1000,
                    sorted: true,
                    entity_count: 1,
                    entities: None,
                    added_in_version: 0,
                })
            })
            .collect()
    }

    fn kept(extents: &[(i64, i64, u64)], rows: usize, latest: bool) -> (Vec<String>, usize) {
        let segments = segments(extents);
        let mut candidates: Vec<_> = segments.iter().collect();
        let pruned =
            keep_first_rows(&mut candidates, FirstRows { rows, latest }, &TimeSet::all(), &EntityFilter::new());
        (candidates.iter().map(|s| s.id.0.clone()).collect(), pruned)
    }

    #[test]
    fn only_segments_that_can_hold_the_first_rows_are_kept() {
        let extents = [(0, 10, 5), (5, 20, 3), (15, 30, 4), (25, 40, 10), (40, 40, 1)];
        // The latest 3: s4 and s3 hold 11 rows at or after 25; s2 reaches 30, so it stays.
        assert_eq!(kept(&extents, 3, true), (vec!["s2".into(), "s3".into(), "s4".into()], 2));
        // The latest 12: s4, s3 and s2 hold 15 rows at or after 15; s1 ends at 20.
        assert_eq!(kept(&extents, 12, true), (vec!["s1".into(), "s2".into(), "s3".into(), "s4".into()], 1));
        // A segment ending exactly where the held rows start stays (its rows may tie).
        assert_eq!(kept(&[(0, 9, 4), (0, 10, 1), (10, 20, 5)], 5, true).0, vec!["s1", "s2"]);
        // The earliest 3: s0 holds 5 rows at or before 10; s1 starts at 5.
        assert_eq!(kept(&extents, 3, false), (vec!["s0".into(), "s1".into()], 3));
        // More rows than the segments hold: every one stays.
        assert_eq!(kept(&extents, 24, true).1, 0);
        assert_eq!(kept(&extents, 23, false).1, 0);
        assert_eq!(kept(&[], 5, true).1, 0);
    }

    #[test]
    fn a_filter_counts_only_the_rows_it_surely_keeps() {
        let key = |s: &str| EntityKey(vec![EntityValue::Str(s.into())]);
        let mut segments = segments(&[(0, 10, 50), (20, 30, 50), (40, 50, 50), (60, 70, 50), (80, 90, 50)]);
        let listed = [Some(vec![key("A"), key("B")]), Some(vec![key("A")]), Some(vec![key("A"), key("B")]), None, None];
        for (segment, entities) in segments.iter_mut().zip(listed) {
            Arc::get_mut(segment).unwrap().entities = entities;
        }
        let only_a: EntityFilter = [(0, [EntityValue::Str("A".into())].into())].into();
        let times = TimeSet::closed(5, 100);
        let sure: Vec<u64> = segments.iter().map(|s| surely_matching_rows(s, &times, &only_a)).collect();
        // s0 is cut by the range; s1 lists A alone (all its rows); s2 lists A among two (at
        // least one row); s3 and s4 list no entities.
        assert_eq!(sure, vec![0, 50, 1, 0, 0]);
        assert_eq!(surely_matching_rows(&segments[3], &times, &EntityFilter::new()), 50);
        // The latest 2 rows of A: s4 and s3 may hold some but bound nothing; s2 holds one,
        // s1 fifty, from 20 on: s0, ending at 10, is left out.
        let mut candidates: Vec<_> = segments.iter().collect();
        let pruned = keep_first_rows(&mut candidates, FirstRows { rows: 2, latest: true }, &times, &only_a);
        assert_eq!(candidates.iter().map(|s| s.id.0.as_str()).collect::<Vec<_>>(), ["s1", "s2", "s3", "s4"]);
        assert_eq!(pruned, 1);
    }
}
