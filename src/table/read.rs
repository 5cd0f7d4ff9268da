//! Read-side questions answered from metadata and coverage sidecars only: coverage per
//! entity, gaps, the last fully covered window, segments and history. No Parquet data is
//! read (unless a sidecar must be rebuilt).

use std::ops::Range;
use std::sync::Arc;

use super::snapshot::Snapshot;
use super::TimeSeriesTable;
use crate::coverage::{bucket_start, entity_metrics, expected_buckets, last_covered_window, BucketSet, Coverage};
use crate::error::{Error, Result};
use crate::metadata::{EntityKey, SegmentMeta, TimeBucket, Timestamp};
use crate::transaction_log::LogStore;

/// A half-open time range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    /// First instant in the range.
    pub start: Timestamp,
    /// First instant after the range.
    pub end: Timestamp,
}

impl TimeRange {
    /// A range; `start >= end` is [`Error::InvalidRange`].
    pub fn try_new(start: Timestamp, end: Timestamp) -> Result<Self> {
        if start >= end {
            return Err(Error::InvalidRange { start, end });
        }
        Ok(TimeRange { start, end })
    }

    /// A range from nanoseconds since the epoch.
    pub fn from_nanos(start: i64, end: i64) -> Result<Self> {
        Self::try_new(Timestamp::from_nanos(start), Timestamp::from_nanos(end))
    }

    /// Parses two RFC 3339 timestamps (or dates).
    pub fn parse(start: &str, end: &str) -> Result<Self> {
        Self::try_new(start.parse()?, end.parse()?)
    }

    /// The length of the range.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.end.as_nanos().abs_diff(self.start.as_nanos()))
    }
}

impl std::fmt::Display for TimeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// Coverage of one entity over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityCoverage {
    /// The entity (empty for a table without entity columns).
    pub entity: EntityKey,
    /// The window the counts are over.
    pub window: TimeRange,
    /// Buckets the window intersects.
    pub expected_buckets: u64,
    /// Of those, buckets holding at least one row of the entity.
    pub covered_buckets: u64,
    /// `expected_buckets - covered_buckets`.
    pub missing_buckets: u64,
    /// `covered_buckets / expected_buckets`.
    pub coverage_ratio: f64,
    /// Runs of missing buckets.
    pub gap_count: u64,
    /// The longest run of missing buckets.
    pub max_gap_buckets: u64,
    /// Start of the first covered bucket in the window.
    pub covered_from: Option<Timestamp>,
    /// End (exclusive) of the last covered bucket in the window.
    pub covered_until: Option<Timestamp>,
}

/// A run of missing buckets `[start, end)` for one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The entity the buckets are missing for.
    pub entity: EntityKey,
    /// Start of the first missing bucket.
    pub start: Timestamp,
    /// End of the last missing bucket (exclusive).
    pub end: Timestamp,
    /// How many buckets are missing.
    pub missing_buckets: u64,
}

/// One commit, as listed by `history()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The version the commit created.
    pub version: u64,
    /// When it was committed, by the writer's clock (millisecond precision).
    pub committed_at: Timestamp,
    /// What produced it: `create`, `append`, `insert`, ...
    pub operation: String,
    /// Segments that became live.
    pub segments_added: u64,
    /// Segments that stopped being live.
    pub segments_removed: u64,
    /// Rows added to the table (for a rewrite, the new rows only: a compaction adds none).
    pub rows_added: u64,
    /// Rows removed from the table (by `delete` or `replace`; a compaction removes none).
    pub rows_removed: u64,
}

impl TimeSeriesTable {
    /// Per-entity coverage over `window` (default: the table's covered extent), for the
    /// given entities (default: all).
    pub async fn coverage(
        &self,
        window: Option<TimeRange>,
        entities: Option<&[EntityKey]>,
    ) -> Result<Vec<EntityCoverage>> {
        self.snapshot().coverage_report(window, entities).await
    }

    /// Missing runs per entity over `window` (default: the table's covered extent).
    pub async fn gaps(&self, window: Option<TimeRange>, entities: Option<&[EntityKey]>) -> Result<Vec<Gap>> {
        self.snapshot().gaps(window, entities).await
    }

    /// Per entity, the latest fully covered window of `length` ending at or before `end`
    /// (default: the end of the covered extent). `length` must be a positive multiple of
    /// the bucket length.
    pub async fn last_covered_window(
        &self,
        length: std::time::Duration,
        end: Option<Timestamp>,
        entities: Option<&[EntityKey]>,
    ) -> Result<Vec<(EntityKey, TimeRange)>> {
        self.snapshot().last_covered_windows(length, end, entities).await
    }

    /// Live segments, ordered by start time.
    pub fn segments(&self) -> Vec<Arc<SegmentMeta>> {
        self.snapshot().segments()
    }

    /// Every commit up to this handle's version, oldest first.
    pub async fn history(&self) -> Result<Vec<CommitInfo>> {
        self.snapshot().history().await
    }

    /// The last `n` commits up to this handle's version, oldest first (reads only those).
    pub async fn recent_history(&self, n: u64) -> Result<Vec<CommitInfo>> {
        let version = self.version();
        let log = LogStore::new(self.location().clone());
        let mut infos = Vec::new();
        for v in version.saturating_sub(n) + 1..=version {
            infos.push(commit_info(log.read_commit(v).await?));
        }
        Ok(infos)
    }
}

fn commit_info(c: crate::transaction_log::Commit) -> CommitInfo {
    let summary = c.summary();
    CommitInfo {
        version: c.version,
        committed_at: Timestamp::from_nanos(c.committed_at.saturating_mul(1_000_000)),
        operation: c.operation,
        segments_added: summary.segments_added,
        segments_removed: summary.segments_removed,
        rows_added: summary.rows_added,
        rows_removed: summary.rows_removed,
    }
}

impl Snapshot {
    /// See [`TimeSeriesTable::history`].
    pub async fn history(&self) -> Result<Vec<CommitInfo>> {
        let commits = LogStore::new(self.location().clone()).commits(self.version()).await?;
        Ok(commits.into_iter().map(commit_info).collect())
    }

    /// The window to report on, as a time range and the bucket ids it intersects.
    /// `None` when the table covers nothing and no window was given.
    pub fn resolve_window(
        &self,
        coverage: &Coverage,
        window: Option<TimeRange>,
    ) -> Result<Option<(TimeRange, Range<i64>)>> {
        let bucket = self.spec().bucket;
        match window {
            Some(range) => Ok(Some((range, expected_buckets(range.start.as_nanos(), range.end.as_nanos(), &bucket)?))),
            None => match coverage.extent() {
                Some(ids) => {
                    let range = TimeRange::try_new(bucket_time(ids.start, &bucket)?, bucket_time(ids.end, &bucket)?)?;
                    Ok(Some((range, ids)))
                }
                None => Ok(None),
            },
        }
    }

    /// See [`TimeSeriesTable::coverage`].
    pub async fn coverage_report(
        &self,
        window: Option<TimeRange>,
        entities: Option<&[EntityKey]>,
    ) -> Result<Vec<EntityCoverage>> {
        let coverage = self.table_coverage().await?;
        let Some((range, ids)) = self.resolve_window(&coverage, window)? else {
            return Ok(Vec::new());
        };
        let bucket = self.spec().bucket;
        selected(&coverage, entities)
            .map(|(entity, set)| {
                let m = entity_metrics(set, ids.clone());
                Ok(EntityCoverage {
                    entity: entity.clone(),
                    window: range,
                    expected_buckets: m.expected,
                    covered_buckets: m.covered,
                    missing_buckets: m.missing,
                    coverage_ratio: m.ratio,
                    gap_count: m.gaps.len() as u64,
                    max_gap_buckets: m.max_gap,
                    covered_from: m.covered_from.map(|id| bucket_time(id, &bucket)).transpose()?,
                    covered_until: m.covered_until.map(|id| bucket_time(id, &bucket)).transpose()?,
                })
            })
            .collect()
    }

    /// See [`TimeSeriesTable::gaps`].
    pub async fn gaps(&self, window: Option<TimeRange>, entities: Option<&[EntityKey]>) -> Result<Vec<Gap>> {
        let coverage = self.table_coverage().await?;
        let Some((_, ids)) = self.resolve_window(&coverage, window)? else {
            return Ok(Vec::new());
        };
        let bucket = self.spec().bucket;
        let mut gaps = Vec::new();
        for (entity, set) in selected(&coverage, entities) {
            for run in set.missing_runs_in(ids.clone()) {
                gaps.push(Gap {
                    entity: entity.clone(),
                    start: bucket_time(run.start, &bucket)?,
                    end: bucket_time(run.end, &bucket)?,
                    missing_buckets: (run.end - run.start) as u64,
                });
            }
        }
        Ok(gaps)
    }

    /// See [`TimeSeriesTable::last_covered_window`].
    pub async fn last_covered_windows(
        &self,
        length: std::time::Duration,
        end: Option<Timestamp>,
        entities: Option<&[EntityKey]>,
    ) -> Result<Vec<(EntityKey, TimeRange)>> {
        let bucket = self.spec().bucket;
        let length = window_length_in_buckets(length, &bucket)?;
        let coverage = self.table_coverage().await?;
        let end_id = match end {
            // The last instant is the (clamped) end of the top bucket, as reported.
            Some(end) if end == Timestamp::MAX => i64::MAX.div_euclid(bucket.nanos()) + 1,
            Some(end) => end.as_nanos().div_euclid(bucket.nanos()),
            None => match coverage.extent() {
                Some(ids) => ids.end,
                None => return Ok(Vec::new()),
            },
        };
        let mut windows = Vec::new();
        for (entity, set) in selected(&coverage, entities) {
            if let Some(ids) = last_covered_window(set, length, end_id) {
                windows.push((
                    entity.clone(),
                    TimeRange::try_new(bucket_time(ids.start, &bucket)?, bucket_time(ids.end, &bucket)?)?,
                ));
            }
        }
        Ok(windows)
    }
}

/// The entities to report on: all, or those asked for that the table has.
fn selected<'a>(
    coverage: &'a Coverage,
    entities: Option<&'a [EntityKey]>,
) -> Box<dyn Iterator<Item = (&'a EntityKey, &'a BucketSet)> + 'a> {
    match entities {
        None => Box::new(coverage.entities()),
        Some(keys) => Box::new(keys.iter().filter_map(|k| coverage.entity(k).map(|s| (k, s)))),
    }
}

fn window_length_in_buckets(length: std::time::Duration, bucket: &TimeBucket) -> Result<u64> {
    let nanos = length.as_nanos();
    let per = bucket.nanos() as u128;
    if nanos == 0 || nanos % per != 0 {
        return Err(Error::invalid_input(format!(
            "window length {}s must be a positive multiple of the table's bucket {bucket}",
            length.as_secs_f64()
        )));
    }
    u64::try_from(nanos / per).map_err(|_| Error::invalid_input(format!("window length {length:?} is too long")))
}

/// The start of bucket `id` as a timestamp. The first and last buckets of the `i64`
/// range stick out of it (bucket ids are floor-divided); their edges are clamped to
/// [`Timestamp::MIN`] and [`Timestamp::MAX`], so a table holding rows at the very first
/// or last instant still reports its coverage. Further out is an error.
fn bucket_time(id: i64, bucket: &TimeBucket) -> Result<Timestamp> {
    let len = i128::from(bucket.nanos());
    let nanos = i128::from(id) * len;
    let (min, max) = (i128::from(i64::MIN), i128::from(i64::MAX));
    if nanos < min && nanos + len > min {
        Ok(Timestamp::MIN)
    } else if nanos > max && nanos - len <= max {
        Ok(Timestamp::MAX)
    } else {
        bucket_start(id, bucket).map(Timestamp::from_nanos)
    }
}
