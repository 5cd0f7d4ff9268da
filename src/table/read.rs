//! Read-side questions answered from metadata and coverage sidecars only: coverage per
//! entity, gaps, the last fully covered window, segments and history. No Parquet data is
//! read (unless a sidecar must be rebuilt).

use std::ops::Range;
use std::sync::Arc;

use super::snapshot::Snapshot;
use super::TimeSeriesTable;
use crate::coverage::{
    bucket_end, bucket_start, entity_metrics, expected_buckets, last_covered_window, BucketSet, Coverage,
};
use crate::error::{Error, Result};
use crate::metadata::{format_nanos, EntityKey, SegmentMeta, TimeBucket};

/// A half-open time range `[start, end)` in nanoseconds since the epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: i64,
    pub end: i64,
}

impl TimeRange {
    /// A range; `start >= end` is [`Error::InvalidRange`].
    pub fn try_new(start: i64, end: i64) -> Result<Self> {
        if start >= end {
            return Err(Error::InvalidRange { start: format_nanos(start), end: format_nanos(end) });
        }
        Ok(TimeRange { start, end })
    }

    /// Parses two RFC 3339 timestamps (or dates).
    pub fn parse(start: &str, end: &str) -> Result<Self> {
        Self::try_new(crate::metadata::parse_timestamp(start)?, crate::metadata::parse_timestamp(end)?)
    }
}

/// Coverage of one entity over a window. Timestamps in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityCoverage {
    pub entity: EntityKey,
    pub window: TimeRange,
    pub expected_buckets: u64,
    pub covered_buckets: u64,
    pub missing_buckets: u64,
    pub coverage_ratio: f64,
    pub gap_count: u64,
    pub max_gap_buckets: u64,
    /// Start of the first covered bucket in the window.
    pub covered_from: Option<i64>,
    /// End of the last covered bucket in the window.
    pub covered_until: Option<i64>,
}

/// A run of missing buckets `[start, end)` for one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub entity: EntityKey,
    pub start: i64,
    pub end: i64,
    pub missing_buckets: u64,
}

/// One commit, as listed by `history()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub version: u64,
    /// Milliseconds since the epoch.
    pub committed_at: i64,
    pub operation: String,
    pub segments_added: u64,
    pub segments_removed: u64,
    pub rows_added: u64,
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

    /// Per entity, the latest fully covered window of `length_nanos` ending at or before
    /// `end` (default: the end of the covered extent). `length_nanos` must be a positive
    /// multiple of the bucket length.
    pub async fn last_covered_window(
        &self,
        length_nanos: i64,
        end: Option<i64>,
        entities: Option<&[EntityKey]>,
    ) -> Result<Vec<(EntityKey, TimeRange)>> {
        self.snapshot().last_covered_windows(length_nanos, end, entities).await
    }

    /// Live segments, ordered by start time.
    pub fn segments(&self) -> Vec<Arc<SegmentMeta>> {
        self.snapshot().segments()
    }

    /// Every commit up to this handle's version, oldest first.
    pub async fn history(&self) -> Result<Vec<CommitInfo>> {
        let commits = self.log.commits(self.version()).await?;
        Ok(commits
            .into_iter()
            .map(|c| {
                let (segments_added, segments_removed, rows_added) = c.summary();
                CommitInfo {
                    version: c.version,
                    committed_at: c.committed_at,
                    operation: c.operation,
                    segments_added,
                    segments_removed,
                    rows_added,
                }
            })
            .collect())
    }
}

impl Snapshot {
    /// The window to report on, as a time range and the bucket ids it intersects.
    /// `None` when the table covers nothing and no window was given.
    pub fn resolve_window(
        &self,
        coverage: &Coverage,
        window: Option<TimeRange>,
    ) -> Result<Option<(TimeRange, Range<i64>)>> {
        let bucket = self.spec().bucket;
        match window {
            Some(range) => Ok(Some((range, expected_buckets(range.start, range.end, &bucket)?))),
            None => match coverage.extent() {
                Some(ids) => {
                    let range = TimeRange::try_new(bucket_start(ids.start, &bucket)?, bucket_start(ids.end, &bucket)?)?;
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
                    covered_from: m.covered_from.map(|id| bucket_start(id, &bucket)).transpose()?,
                    covered_until: m.covered_until.map(|id| bucket_start(id, &bucket)).transpose()?,
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
                    start: bucket_start(run.start, &bucket)?,
                    end: bucket_start(run.end, &bucket)?,
                    missing_buckets: (run.end - run.start) as u64,
                });
            }
        }
        Ok(gaps)
    }

    /// See [`TimeSeriesTable::last_covered_window`].
    pub async fn last_covered_windows(
        &self,
        length_nanos: i64,
        end: Option<i64>,
        entities: Option<&[EntityKey]>,
    ) -> Result<Vec<(EntityKey, TimeRange)>> {
        let bucket = self.spec().bucket;
        let length = window_length_in_buckets(length_nanos, &bucket)?;
        let coverage = self.table_coverage().await?;
        let end_id = match end {
            Some(end) => end.div_euclid(bucket.nanos()),
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
                    TimeRange::try_new(bucket_start(ids.start, &bucket)?, bucket_end(ids.end - 1, &bucket)?)?,
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

fn window_length_in_buckets(length_nanos: i64, bucket: &TimeBucket) -> Result<u64> {
    if length_nanos <= 0 || length_nanos % bucket.nanos() != 0 {
        return Err(Error::invalid_input(format!(
            "window length {}s must be a positive multiple of the table's bucket {bucket}",
            length_nanos as f64 / 1e9
        )));
    }
    Ok((length_nanos / bucket.nanos()) as u64)
}
