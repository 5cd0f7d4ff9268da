//! Read-side coverage metrics for one entity over the expected bucket ids: how much is
//! covered, where the gaps are, and the latest fully covered stretch.
//!
//! Pure; no I/O. What is expected is a list of ascending, disjoint half-open ranges of
//! bucket ids: the whole window, or the buckets of each session of a schedule. A gap never
//! spans two ranges; an empty or reversed range expects nothing and reports nothing.

use std::borrow::Cow;
use std::ops::Range;

use super::bucket_set::BucketSet;

/// Coverage of one entity over a window of bucket ids.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityMetrics {
    /// Number of bucket ids in the window.
    pub expected: u64,
    /// Covered bucket ids in the window.
    pub covered: u64,
    /// `expected - covered`.
    pub missing: u64,
    /// `covered / expected`, or 0.0 for an empty window.
    pub ratio: f64,
    /// Maximal runs of missing bucket ids in the window, ascending (left empty by
    /// [`entity_summary`]).
    pub gaps: Vec<Range<i64>>,
    /// Number of those runs.
    pub gap_count: u64,
    /// Length in buckets of the longest gap, 0 if none.
    pub max_gap: u64,
    /// First covered bucket id in the window.
    pub covered_from: Option<i64>,
    /// One past the last covered bucket id in the window.
    pub covered_until: Option<i64>,
}

/// Length of a non-reversed id range; the difference of two `i64` always fits in `u64`.
fn span_len(range: &Range<i64>) -> u64 {
    if range.start < range.end {
        range.end.wrapping_sub(range.start) as u64
    } else {
        0
    }
}

/// Metrics of `set` over the `expected` ranges (ascending and disjoint), from one pass
/// over the set's runs from the first range to the last.
pub fn entity_metrics(set: &BucketSet, expected: &[Range<i64>]) -> EntityMetrics {
    metrics(set, expected, true)
}

/// [`entity_metrics`] without the list of gaps (their count and the longest are kept):
/// what a coverage report needs, without an allocation per gap.
pub fn entity_summary(set: &BucketSet, expected: &[Range<i64>]) -> EntityMetrics {
    metrics(set, expected, false)
}

/// The gaps met so far: counted, the longest kept, listed only when asked.
struct Gaps {
    list: Option<Vec<Range<i64>>>,
    count: u64,
    max: u64,
}

impl Gaps {
    fn push(&mut self, gap: Range<i64>) {
        self.count += 1;
        self.max = self.max.max(span_len(&gap));
        if let Some(list) = &mut self.list {
            list.push(gap);
        }
    }
}

fn metrics(set: &BucketSet, expected: &[Range<i64>], list_gaps: bool) -> EntityMetrics {
    // Empty or reversed ranges expect nothing; copied without them only when there are any.
    let ranges: Cow<'_, [Range<i64>]> = if expected.iter().all(|r| r.start < r.end) {
        Cow::Borrowed(expected)
    } else {
        Cow::Owned(expected.iter().filter(|r| r.start < r.end).cloned().collect())
    };
    let expected = ranges.iter().map(span_len).fold(0u64, u64::saturating_add);
    let mut covered = 0u64;
    let mut gaps = Gaps { list: list_gaps.then(Vec::new), count: 0, max: 0 };
    let mut covered_from = None;
    let mut covered_until = None;
    if let (Some(first), Some(last)) = (ranges.first(), ranges.last()) {
        // `ranges[i]` is the range being accounted for; `cursor..` of it is not yet.
        let mut i = 0;
        let mut cursor = first.start;
        let close = |i: &mut usize, cursor: &mut i64, gaps: &mut Gaps| {
            if *cursor < ranges[*i].end {
                gaps.push(*cursor..ranges[*i].end);
            }
            *i += 1;
            if let Some(next) = ranges.get(*i) {
                *cursor = next.start;
            }
        };
        set.for_each_run(first.start..last.end, |run| {
            while i < ranges.len() && ranges[i].start < run.end {
                let from = run.start.max(cursor);
                if from >= ranges[i].end {
                    // The run starts after this range: what is left of it is missing.
                    close(&mut i, &mut cursor, &mut gaps);
                    continue;
                }
                let to = run.end.min(ranges[i].end);
                if from > cursor {
                    gaps.push(cursor..from);
                }
                covered += span_len(&(from..to));
                covered_from.get_or_insert(from);
                covered_until = Some(to);
                cursor = to;
                if to < ranges[i].end {
                    // The run ends inside this range; the next run continues it.
                    break;
                }
                close(&mut i, &mut cursor, &mut gaps);
            }
        });
        while i < ranges.len() {
            close(&mut i, &mut cursor, &mut gaps);
        }
    }
    let ratio = if expected == 0 { 0.0 } else { covered as f64 / expected as f64 };
    EntityMetrics {
        expected,
        covered,
        missing: expected - covered,
        ratio,
        gaps: gaps.list.unwrap_or_default(),
        gap_count: gaps.count,
        max_gap: gaps.max,
        covered_from,
        covered_until,
    }
}

/// The latest `length` expected bucket ids in a row that are all covered, skipping what is
/// not expected (a window can reach across a night), as `first..last + 1`. `expected` is
/// ascending and disjoint. `None` when there is no such stretch or `length` is 0.
pub fn last_covered_window_in(set: &BucketSet, length: u64, expected: &[Range<i64>]) -> Option<Range<i64>> {
    if length == 0 {
        return None;
    }
    if let [only] = expected {
        // One range: the run search jumps straight to the answer.
        return last_covered_window(set, length, only.end).filter(|w| w.start >= only.start);
    }
    // Walking back from the end: `streak` covered expected ids end at `streak_end`.
    let mut streak = 0u64;
    let mut streak_end = 0i64;
    for range in expected.iter().rev() {
        if range.start >= range.end {
            continue;
        }
        let runs = set.runs_in(range.clone());
        let mut cursor = range.end;
        for run in runs.iter().rev() {
            if run.end < cursor {
                streak = 0;
            }
            if streak == 0 {
                streak_end = run.end;
            }
            let need = length - streak;
            if span_len(run) >= need {
                return Some(run.end.checked_sub_unsigned(need)?..streak_end);
            }
            streak += span_len(run);
            cursor = run.start;
        }
        if cursor > range.start {
            streak = 0;
        }
    }
    None
}

/// The latest window of `length` consecutive covered bucket ids ending at or before `end`
/// (exclusive): `(e - length)..e` for the largest such `e <= end`. `None` when there is no
/// such run or `length` is 0.
pub fn last_covered_window(set: &BucketSet, length: u64, end: i64) -> Option<Range<i64>> {
    if length == 0 {
        return None;
    }
    let mut before = end;
    // Each step moves to the run before the current one, so a long tail of short runs is
    // walked once; each step costs a logarithmic number of range checks.
    loop {
        let run = set.last_run_before(before)?;
        if span_len(&run) >= length {
            let start = run.end.checked_sub_unsigned(length)?;
            return Some(start..run.end);
        }
        before = run.start;
    }
}

#[cfg(test)]
// A window is written as a list holding one range of expected ids.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn set(ids: impl IntoIterator<Item = i64>) -> BucketSet {
        ids.into_iter().collect()
    }

    #[test]
    fn metrics_on_a_hand_example() {
        // Covered: 0..3, 5, 8..10 ; window -2..12.
        let s = set((0..3).chain([5]).chain(8..10));
        let m = entity_metrics(&s, &[-2..12]);
        assert_eq!(m.expected, 14);
        assert_eq!(m.covered, 6);
        assert_eq!(m.missing, 8);
        assert!((m.ratio - 6.0 / 14.0).abs() < 1e-12);
        assert_eq!(m.gaps, vec![-2..0, 3..5, 6..8, 10..12]);
        assert_eq!(m.max_gap, 2);
        assert_eq!(m.covered_from, Some(0));
        assert_eq!(m.covered_until, Some(10));

        let inner = entity_metrics(&s, &[1..9]);
        assert_eq!(inner.gaps, vec![3..5, 6..8]);
        assert_eq!((inner.covered_from, inner.covered_until), (Some(1), Some(9)));
    }

    #[test]
    fn empty_window_and_empty_set() {
        let m = entity_metrics(&set([1, 2]), &[5..5]);
        assert_eq!((m.expected, m.covered, m.missing, m.max_gap), (0, 0, 0, 0));
        assert_eq!(m.ratio, 0.0);
        assert!(m.gaps.is_empty());
        assert_eq!(m.covered_from, None);
        let m = entity_metrics(&BucketSet::new(), &[-3..3]);
        assert_eq!((m.expected, m.covered, m.missing, m.max_gap), (6, 0, 6, 6));
        assert_eq!(m.gaps, vec![-3..3]);
        assert_eq!(m.covered_until, None);
        let full = entity_metrics(&set(-3..3), &[-3..3]);
        assert_eq!(full.ratio, 1.0);
        assert!(full.gaps.is_empty());
    }

    #[test]
    fn whole_id_space_window_does_not_overflow() {
        let s = set([i64::MIN, -1, 0, i64::MAX - 1]);
        let m = entity_metrics(&s, &[i64::MIN..i64::MAX]);
        assert_eq!(m.expected, u64::MAX);
        assert_eq!(m.covered, 4);
        assert_eq!(m.gaps.len(), 2);
        assert_eq!(m.max_gap, (1u64 << 63) - 2);
        assert_eq!(m.covered_until, Some(i64::MAX));
    }

    #[test]
    fn last_covered_window_examples() {
        let s = set((0..3).chain(5..9).chain(20..22));
        assert_eq!(last_covered_window(&s, 2, 100), Some(20..22));
        assert_eq!(last_covered_window(&s, 3, 100), Some(6..9));
        assert_eq!(last_covered_window(&s, 3, 8), Some(5..8));
        assert_eq!(last_covered_window(&s, 4, 100), Some(5..9));
        assert_eq!(last_covered_window(&s, 5, 100), None);
        assert_eq!(last_covered_window(&s, 1, 0), None);
        assert_eq!(last_covered_window(&s, 1, 1), Some(0..1));
        assert_eq!(last_covered_window(&s, 0, 100), None);
        assert_eq!(last_covered_window(&set([i64::MIN, i64::MIN + 1]), 2, i64::MIN + 5), Some(i64::MIN..i64::MIN + 2));
    }

    #[test]
    fn expected_ranges_split_gaps_and_windows_skip_the_pauses() {
        // Two sessions of 5 buckets with a pause between them: 0..5 and 10..15.
        let sessions = [0..5, 10..15];
        let s = set([0, 1, 3, 4, 10, 11, 12]);
        let m = entity_metrics(&s, &sessions);
        assert_eq!((m.expected, m.covered, m.missing), (10, 7, 3));
        assert_eq!(m.gaps, vec![2..3, 13..15], "nothing reported in the pause 5..10");
        assert_eq!((m.covered_from, m.covered_until), (Some(0), Some(13)));
        // The last 3 covered expected buckets: 10..13. The last 5 reach back over the pause.
        assert_eq!(last_covered_window_in(&s, 3, &sessions), Some(10..13));
        assert_eq!(last_covered_window_in(&set([3, 4, 10, 11, 12]), 5, &sessions), Some(3..13));
        assert_eq!(last_covered_window_in(&s, 6, &sessions), None, "bucket 2 is missing");
        // A missing bucket at the end of the first session breaks the streak too.
        assert_eq!(last_covered_window_in(&set([0, 1, 2, 3, 10, 11]), 3, &sessions), Some(1..4));
        assert_eq!(last_covered_window_in(&s, 2, &[0..5]), Some(3..5));
        assert_eq!(last_covered_window_in(&s, 1, &[]), None);
    }
}
