//! Read-side questions answered from metadata and coverage sidecars only: coverage per
//! entity, gaps, the last fully covered window, segments and history. No Parquet data is
//! read (unless a sidecar must be rebuilt).

use std::ops::Range;
use std::sync::Arc;

use super::snapshot::Snapshot;
use super::TimeSeriesTable;
use arrow::array::timezone::Tz;

use crate::coverage::{entity_metrics, entity_summary, last_covered_window_in, BucketGrid, BucketSet, Coverage};
use crate::error::{Error, Result};
use crate::metadata::{EntityKey, Schedule, SegmentMeta, TimeBucket, Timestamp};
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

    /// Parses two RFC 3339 timestamps (or dates); without an offset they are UTC.
    pub fn parse(start: &str, end: &str) -> Result<Self> {
        Self::try_new(start.parse()?, end.parse()?)
    }

    /// Like [`TimeRange::parse`], reading times without an offset in `zone` (the table's
    /// time zone; see [`Timestamp::parse_in`]).
    pub fn parse_in(start: &str, end: &str, zone: Option<&str>) -> Result<Self> {
        Self::try_new(Timestamp::parse_in(start, zone)?, Timestamp::parse_in(end, zone)?)
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

/// Which buckets coverage is judged against: where data is expected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Expected {
    /// The table's schedule, or every bucket when it has none.
    #[default]
    TableSchedule,
    /// Every bucket, whatever the table's schedule.
    Always,
    /// This schedule instead of the table's, for one question.
    Schedule(Box<Schedule>),
}

impl Expected {
    /// Reads a per-query override: `always` (every bucket), `table` (the table's
    /// schedule) or a schedule's text.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "always" => Ok(Expected::Always),
            "table" => Ok(Expected::TableSchedule),
            _ => text.parse().map(|s| Expected::Schedule(Box::new(s))),
        }
    }
}

/// Coverage of one entity over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityCoverage {
    /// The entity (empty for a table without entity columns).
    pub entity: EntityKey,
    /// The window the counts are over.
    pub window: TimeRange,
    /// Buckets the window intersects (with a schedule: those that meet a session).
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

/// Whether a stretch of buckets became covered or stopped being covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Covered at the later version, not at the earlier.
    Added,
    /// Covered at the earlier version, not at the later (a delete or replace).
    Removed,
}

impl Change {
    /// `added` or `removed`, as SQL and the CLI print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
        }
    }
}

/// A run of consecutive buckets one entity gained or lost between two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageChange {
    /// The entity the buckets belong to.
    pub entity: EntityKey,
    /// Gained or lost.
    pub change: Change,
    /// Start of the first bucket of the run.
    pub start: Timestamp,
    /// End of the last bucket of the run (exclusive).
    pub end: Timestamp,
    /// How many buckets the run holds.
    pub buckets: u64,
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
    /// given entities (default: all), judged against the table's schedule if it has one.
    pub async fn coverage(
        &self,
        window: Option<TimeRange>,
        entities: Option<&[EntityKey]>,
    ) -> Result<Vec<EntityCoverage>> {
        self.snapshot().coverage_report(window, entities, &Expected::TableSchedule).await
    }

    /// Missing runs per entity over `window` (default: the table's covered extent); with
    /// a schedule, only scheduled buckets, and a run never spans a pause between sessions.
    pub async fn gaps(&self, window: Option<TimeRange>, entities: Option<&[EntityKey]>) -> Result<Vec<Gap>> {
        self.snapshot().gaps(window, entities, &Expected::TableSchedule).await
    }

    /// Per entity, the latest fully covered window of `length` ending at or before `end`
    /// (default: the end of the covered extent). `length` must be a positive multiple of
    /// the bucket length; with a schedule it counts scheduled buckets only, so a window can
    /// reach across a night.
    pub async fn last_covered_window(
        &self,
        length: std::time::Duration,
        end: Option<Timestamp>,
        entities: Option<&[EntityKey]>,
    ) -> Result<Vec<(EntityKey, TimeRange)>> {
        self.snapshot().last_covered_windows(length, end, entities, &Expected::TableSchedule).await
    }

    /// Which buckets became covered (or stopped being covered) from `from_version` to
    /// `to_version` (default: this handle's version), per entity, as runs in entity then
    /// time order. Version 0 is the table before its first commit.
    pub async fn coverage_changes(&self, from_version: u64, to_version: Option<u64>) -> Result<Vec<CoverageChange>> {
        self.snapshot().coverage_changes(from_version, to_version).await
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
        let grid = self.grid();
        match window {
            Some(range) => Ok(Some((range, grid.buckets_touching(range.start.as_nanos(), range.end.as_nanos())?))),
            None => match coverage.extent() {
                Some(ids) => {
                    let range = TimeRange::try_new(bucket_time(ids.start, grid)?, bucket_time(ids.end, grid)?)?;
                    Ok(Some((range, ids)))
                }
                None => Ok(None),
            },
        }
    }

    /// The schedule coverage is judged against, if any.
    pub fn schedule_for<'a>(&'a self, expected: &'a Expected) -> Option<&'a Schedule> {
        match expected {
            Expected::TableSchedule => self.meta().schedule.as_ref(),
            Expected::Always => None,
            Expected::Schedule(schedule) => Some(schedule),
        }
    }

    /// The expected bucket ids inside `ids`, as ascending, disjoint ranges: `ids` itself
    /// without a schedule, else one range per stretch of sessions. Ranges that only touch
    /// stay apart, so a run of missing buckets is never reported across a pause.
    pub fn expected_ranges(&self, ids: Range<i64>, expected: &Expected) -> Vec<Range<i64>> {
        let Some(schedule) = self.schedule_for(expected) else {
            return if ids.start < ids.end { vec![ids] } else { Vec::new() };
        };
        let grid = self.grid();
        let zone = self.spec().timezone.as_deref().and_then(|tz| tz.parse::<Tz>().ok());
        let zone = zone.unwrap_or_else(|| "UTC".parse().expect("UTC is a zone"));
        let (start, end) = (grid.start_or_clamp(ids.start), grid.start_or_clamp(ids.end));
        let mut ranges: Vec<Range<i64>> = Vec::new();
        for session in schedule.sessions_between(start, end, &zone) {
            let first = grid.bucket_of(session.start).max(ids.start);
            let stop = grid.bucket_of(session.end - 1).saturating_add(1).min(ids.end);
            if first >= stop {
                continue;
            }
            match ranges.last_mut() {
                // Sessions inside one bucket (a lunch break in a day bucket) share it.
                Some(last) if first < last.end => last.end = last.end.max(stop),
                _ => ranges.push(first..stop),
            }
        }
        ranges
    }

    /// See [`TimeSeriesTable::coverage_changes`]; the default `to_version` is this one.
    pub async fn coverage_changes(&self, from_version: u64, to_version: Option<u64>) -> Result<Vec<CoverageChange>> {
        let to_version = to_version.unwrap_or(self.version());
        if from_version > to_version {
            // A version past the latest is reported as missing, not as out of order.
            self.other_version(from_version).await?;
            return Err(Error::invalid_input(format!(
                "from_version {from_version} is after to_version {to_version}: give the earlier version first"
            )));
        }
        let later = self.other_version(to_version).await?;
        let earlier = self.other_version(from_version).await?;
        let earlier = if from_version == 0 { None } else { Some(earlier.as_deref().unwrap_or(self)) };
        match to_version {
            0 => Ok(Vec::new()),
            _ => later.as_deref().unwrap_or(self).coverage_changes_since(earlier).await,
        }
    }

    /// Another version of this table, `None` for this one or version 0.
    async fn other_version(&self, version: u64) -> Result<Option<Arc<Snapshot>>> {
        if version == 0 || version == self.version() {
            return Ok(None);
        }
        Ok(Some(TimeSeriesTable::open_at(self.location().clone(), version).await?.snapshot()))
    }

    /// The coverage this version has and `earlier` had not, and the reverse, as runs per
    /// entity (entities in key order, runs in time order). `None` is the empty table.
    pub async fn coverage_changes_since(&self, earlier: Option<&Snapshot>) -> Result<Vec<CoverageChange>> {
        let after = self.table_coverage().await?;
        let before = match earlier {
            Some(snapshot) => snapshot.table_coverage().await?,
            None => Arc::new(Coverage::new()),
        };
        let grid = self.grid();
        let keys: std::collections::BTreeSet<&EntityKey> =
            after.entities().map(|(k, _)| k).chain(before.entities().map(|(k, _)| k)).collect();
        let empty = BucketSet::new();
        let mut changes = Vec::new();
        for key in keys {
            let (now, then) = (after.entity(key).unwrap_or(&empty), before.entity(key).unwrap_or(&empty));
            if now == then {
                continue;
            }
            let mut runs = Vec::new();
            for (change, from, minus) in [(Change::Added, now, then), (Change::Removed, then, now)] {
                let mut only = from.clone();
                only.difference_with(minus);
                runs.extend(only.runs_in(i64::MIN..i64::MAX).into_iter().map(|run| (run, change)));
            }
            runs.sort_by_key(|(run, _)| run.start);
            for (run, change) in runs {
                changes.push(CoverageChange {
                    entity: key.clone(),
                    change,
                    start: bucket_time(run.start, grid)?,
                    end: bucket_time(run.end, grid)?,
                    buckets: run.end.abs_diff(run.start),
                });
            }
        }
        Ok(changes)
    }

    /// The table coverage, the window to report on, and the bucket ids expected in it;
    /// `None` when the table covers nothing and no window was given.
    async fn judged_window(
        &self,
        window: Option<TimeRange>,
        expected: &Expected,
    ) -> Result<Option<(Arc<Coverage>, TimeRange, Vec<Range<i64>>)>> {
        let coverage = self.table_coverage().await?;
        let Some((range, ids)) = self.resolve_window(&coverage, window)? else {
            return Ok(None);
        };
        let expected = self.expected_ranges(ids, expected);
        Ok(Some((coverage, range, expected)))
    }

    /// See [`TimeSeriesTable::coverage`].
    pub async fn coverage_report(
        &self,
        window: Option<TimeRange>,
        entities: Option<&[EntityKey]>,
        expected: &Expected,
    ) -> Result<Vec<EntityCoverage>> {
        let Some((coverage, range, expected)) = self.judged_window(window, expected).await? else {
            return Ok(Vec::new());
        };
        let grid = self.grid();
        selected(&coverage, entities)
            .map(|(entity, set)| {
                let m = entity_summary(set, &expected);
                Ok(EntityCoverage {
                    entity: entity.clone(),
                    window: range,
                    expected_buckets: m.expected,
                    covered_buckets: m.covered,
                    missing_buckets: m.missing,
                    coverage_ratio: m.ratio,
                    gap_count: m.gap_count,
                    max_gap_buckets: m.max_gap,
                    covered_from: m.covered_from.map(|id| bucket_time(id, grid)).transpose()?,
                    covered_until: m.covered_until.map(|id| bucket_time(id, grid)).transpose()?,
                })
            })
            .collect()
    }

    /// See [`TimeSeriesTable::gaps`].
    pub async fn gaps(
        &self,
        window: Option<TimeRange>,
        entities: Option<&[EntityKey]>,
        expected: &Expected,
    ) -> Result<Vec<Gap>> {
        let Some((coverage, _, expected)) = self.judged_window(window, expected).await? else {
            return Ok(Vec::new());
        };
        let grid = self.grid();
        let mut gaps = Vec::new();
        for (entity, set) in selected(&coverage, entities) {
            for run in entity_metrics(set, &expected).gaps {
                gaps.push(Gap {
                    entity: entity.clone(),
                    start: bucket_time(run.start, grid)?,
                    end: bucket_time(run.end, grid)?,
                    missing_buckets: run.end.abs_diff(run.start),
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
        expected: &Expected,
    ) -> Result<Vec<(EntityKey, TimeRange)>> {
        let grid = self.grid();
        let length = window_length_in_buckets(length, &grid.bucket())?;
        let coverage = self.table_coverage().await?;
        let end_id = match end {
            // The last instant is the (clamped) end of the top bucket, as reported.
            Some(end) if end == Timestamp::MAX => grid.bucket_of(i64::MAX) + 1,
            Some(end) => grid.bucket_of(end.as_nanos()),
            None => match coverage.extent() {
                Some(ids) => ids.end,
                None => return Ok(Vec::new()),
            },
        };
        // Without a schedule every bucket counts; with one, only scheduled buckets from the
        // first covered one on (a window cannot start before the data does).
        let expected = match (self.schedule_for(expected), coverage.extent()) {
            (None, _) => std::iter::once(i64::MIN..end_id).collect(),
            (Some(_), Some(extent)) => self.expected_ranges(extent.start.min(end_id)..end_id, expected),
            (Some(_), None) => Vec::new(),
        };
        let mut windows = Vec::new();
        for (entity, set) in selected(&coverage, entities) {
            if let Some(ids) = last_covered_window_in(set, length, &expected) {
                windows.push((
                    entity.clone(),
                    TimeRange::try_new(bucket_time(ids.start, grid)?, bucket_time(ids.end, grid)?)?,
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
fn bucket_time(id: i64, grid: &BucketGrid) -> Result<Timestamp> {
    if let Ok(start) = grid.bucket_start(id) {
        return Ok(Timestamp::from_nanos(start));
    }
    // Only the buckets just past either end of the range are clamped.
    if id.checked_add(1).is_some_and(|next| grid.bucket_start(next).is_ok()) {
        Ok(Timestamp::MIN)
    } else if id.checked_sub(1).is_some_and(|prev| grid.bucket_start(prev).is_ok()) {
        Ok(Timestamp::MAX)
    } else {
        grid.bucket_start(id).map(Timestamp::from_nanos)
    }
}
