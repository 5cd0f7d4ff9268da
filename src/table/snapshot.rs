//! `Snapshot`: one committed version of a table plus its lazily loaded coverage.
//!
//! Does I/O (sidecar reads through storage). Coverage comes from the table snapshot
//! sidecar; when that is missing or corrupt it is rebuilt from the segment sidecars, and a
//! segment sidecar from its Parquet file. Reads never write: repair is in memory only.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use std::sync::OnceLock;

use tokio::sync::OnceCell;

use crate::coverage::{sidecar, BucketGrid, Coverage};
use crate::error::{Error, Result};
use crate::formats::parquet::parquet_stats;
use crate::metadata::{SegmentId, SegmentMeta, TableMeta, TimeIndexSpec, Timestamp};
use crate::storage::TableLocation;
use crate::transaction_log::TableState;

/// Segment coverages are immutable, so one cache is shared by every snapshot of a table.
pub(crate) type SegmentCoverageCache = Arc<Mutex<CoverageCache>>;

/// How much segment coverage a table handle keeps in memory, by encoded size. Coverage
/// held in run form is small (a dense entity-year of minutes is tens of bytes), so this
/// holds hundreds of thousands of segments; past it, the oldest entries are dropped and
/// read again from their sidecars when needed.
const COVERAGE_CACHE_BYTES: usize = 64 << 20;

/// Decoded segment coverages, bounded by [`COVERAGE_CACHE_BYTES`], oldest out first.
#[derive(Debug, Default)]
pub(crate) struct CoverageCache {
    entries: HashMap<SegmentId, (Arc<Coverage>, usize)>,
    order: VecDeque<SegmentId>,
    bytes: usize,
    budget: usize,
}

impl CoverageCache {
    /// An empty cache holding up to `budget` bytes.
    pub(crate) fn with_budget(budget: usize) -> Self {
        CoverageCache { budget, ..Default::default() }
    }

    /// A new shared cache of the default size.
    pub(crate) fn shared() -> SegmentCoverageCache {
        Arc::new(Mutex::new(Self::with_budget(COVERAGE_CACHE_BYTES)))
    }

    fn get(&self, id: &SegmentId) -> Option<Arc<Coverage>> {
        self.entries.get(id).map(|(coverage, _)| Arc::clone(coverage))
    }

    fn insert(&mut self, id: SegmentId, coverage: Arc<Coverage>) {
        let size = coverage.entities().map(|(_, set)| 32 + set.serialized_size()).sum::<usize>();
        if size > self.budget || self.entries.contains_key(&id) {
            return;
        }
        while self.bytes + size > self.budget {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some((_, freed)) = self.entries.remove(&oldest) {
                self.bytes -= freed;
            }
        }
        self.bytes += size;
        self.order.push_back(id.clone());
        self.entries.insert(id, (coverage, size));
    }

    /// Number of coverages held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A table as of one committed version.
#[derive(Debug)]
pub struct Snapshot {
    location: TableLocation,
    state: TableState,
    table_coverage: OnceCell<Arc<Coverage>>,
    segment_coverage: SegmentCoverageCache,
    by_time: OnceLock<TimeIndex>,
    grid: OnceLock<BucketGrid>,
}

/// Live segments ordered by start time, for range lookups without a linear scan.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    pub by_start: Vec<Arc<SegmentMeta>>,
    /// The longest `ts_max - ts_min` (a `u64`: a segment may span the whole `i64` range):
    /// a segment meeting `[lo, hi]` starts at or after `lo - max_span`, which bounds the
    /// search from below.
    pub max_span: u64,
    /// Rows in all segments and the latest `ts_max`, so whole-table totals (`COUNT(*)`,
    /// `MAX(ts)`) cost nothing per query.
    pub rows: u64,
    pub last_time: Option<i64>,
}

impl TimeIndex {
    fn new(state: &TableState) -> Self {
        // The map iterates in id order, so a stable sort by start alone orders ties by id
        // (without comparing ids: a million segments sort several times faster).
        let mut by_start: Vec<_> = state.segments.values().cloned().collect();
        by_start.sort_by_key(|s| s.ts_min);
        let max_span = by_start.iter().map(|s| s.ts_max.abs_diff(s.ts_min)).max().unwrap_or(0);
        let rows = by_start.iter().map(|s| s.row_count).sum();
        let last_time = by_start.iter().map(|s| s.ts_max).max();
        TimeIndex { by_start, max_span, rows, last_time }
    }

    /// The first and last timestamps of all rows, in nanoseconds (`None` when empty).
    pub fn time_extent(&self) -> Option<(i64, i64)> {
        Some((self.by_start.first()?.ts_min, self.last_time?))
    }

    /// Positions of the segments that may meet the closed range `[lo, hi]`: those
    /// starting in `[lo - max_span, hi]`.
    pub fn candidates(&self, lo: i64, hi: i64) -> std::ops::Range<usize> {
        let earliest = (i128::from(lo) - i128::from(self.max_span)).max(i128::from(i64::MIN));
        let first = self.by_start.partition_point(|s| i128::from(s.ts_min) < earliest);
        let end = self.by_start.partition_point(|s| s.ts_min <= hi);
        first..end.max(first)
    }
}

impl Snapshot {
    pub(crate) fn new(location: TableLocation, state: TableState, cache: SegmentCoverageCache) -> Self {
        Snapshot {
            location,
            state,
            table_coverage: OnceCell::new(),
            segment_coverage: cache,
            by_time: OnceLock::new(),
            grid: OnceLock::new(),
        }
    }

    /// A snapshot whose table coverage is already known (right after our own commit).
    pub(crate) fn with_coverage(
        location: TableLocation,
        state: TableState,
        cache: SegmentCoverageCache,
        coverage: Arc<Coverage>,
    ) -> Self {
        Snapshot {
            location,
            state,
            table_coverage: OnceCell::new_with(Some(coverage)),
            segment_coverage: cache,
            by_time: OnceLock::new(),
            grid: OnceLock::new(),
        }
    }

    internal_api! {
        /// The replayed log state.
        pub fn state(&self) -> &TableState {
            &self.state
        }
    }

    /// The committed version this snapshot is.
    pub fn version(&self) -> u64 {
        self.state.version
    }

    /// The table metadata (time index and schema) at this version.
    pub fn meta(&self) -> &TableMeta {
        &self.state.meta
    }

    /// The time index: time column, bucket, zone, entity columns.
    pub fn spec(&self) -> &TimeIndexSpec {
        &self.state.meta.time_index
    }

    /// How timestamps map to bucket ids in this table, built once per snapshot.
    pub fn grid(&self) -> &BucketGrid {
        self.grid.get_or_init(|| BucketGrid::of(self.spec()))
    }

    /// Where the table lives.
    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    /// Rows in the live segments (kept by the time index, made once per snapshot).
    pub fn row_count(&self) -> u64 {
        self.time_index().rows
    }

    /// Bytes of the live segments' data files.
    pub fn size_bytes(&self) -> u64 {
        self.state.segments.values().map(|s| s.size_bytes).sum()
    }

    /// The first and last row's timestamps, or `None` for an empty table.
    pub fn time_extent(&self) -> Option<(Timestamp, Timestamp)> {
        self.time_index().time_extent().map(|(min, max)| (Timestamp::from_nanos(min), Timestamp::from_nanos(max)))
    }

    pub(crate) fn segment_cache(&self) -> SegmentCoverageCache {
        Arc::clone(&self.segment_coverage)
    }

    /// Live segments ordered by `ts_min` (ties by id).
    pub fn segments(&self) -> Vec<Arc<SegmentMeta>> {
        self.time_index().by_start.clone()
    }

    /// The time index, built once per snapshot.
    pub(crate) fn time_index(&self) -> &TimeIndex {
        self.by_time.get_or_init(|| TimeIndex::new(&self.state))
    }

    /// The table coverage, if it has been loaded already.
    pub(crate) fn loaded_coverage(&self) -> Option<Arc<Coverage>> {
        self.table_coverage.get().cloned()
    }

    /// The union of all live segments' coverage.
    pub async fn table_coverage(&self) -> Result<Arc<Coverage>> {
        self.table_coverage.get_or_try_init(|| self.load_table_coverage()).await.cloned()
    }

    /// The snapshot named by the log plus the segments added after it; when the snapshot
    /// is missing or corrupt, the union of every segment's coverage.
    async fn load_table_coverage(&self) -> Result<Arc<Coverage>> {
        let mut union = Coverage::new();
        let mut pending: Vec<&Arc<SegmentMeta>> = self.state.segments_after_snapshot().collect();
        if let Some(snapshot) = &self.state.coverage_snapshot {
            match self.location.get(&snapshot.path).await?.map(|bytes| sidecar::decode(&bytes)) {
                Some(Ok(coverage)) => union = coverage,
                _ => {
                    tracing::warn!(path = %snapshot.path, "table coverage snapshot missing or corrupt; rebuilding from segment sidecars");
                    pending = self.state.segments.values().collect();
                }
            }
        }
        for segment in pending {
            union.union_with(&*self.segment_coverage(segment).await?);
        }
        Ok(Arc::new(union))
    }

    /// The coverage of one segment, from its sidecar or, failing that, its Parquet file.
    pub async fn segment_coverage(&self, segment: &SegmentMeta) -> Result<Arc<Coverage>> {
        if let Some(hit) = self.cached(&segment.id) {
            return Ok(hit);
        }
        let decoded = match self.location.get(&segment.coverage_path).await? {
            Some(bytes) => sidecar::decode(&bytes).ok(),
            None => None,
        };
        let coverage = match decoded {
            Some(coverage) => coverage,
            None => self.coverage_from_parquet(segment).await?,
        };
        let coverage = Arc::new(coverage);
        if let Ok(mut cache) = self.segment_coverage.lock() {
            cache.insert(segment.id.clone(), Arc::clone(&coverage));
        }
        Ok(coverage)
    }

    fn cached(&self, id: &SegmentId) -> Option<Arc<Coverage>> {
        self.segment_coverage.lock().ok()?.get(id)
    }

    async fn coverage_from_parquet(&self, segment: &SegmentMeta) -> Result<Coverage> {
        let missing = |detail: String| Error::MissingCoverage {
            files: vec![self.location.describe(&segment.coverage_path), self.location.describe(&segment.path)],
            detail,
        };
        tracing::warn!(segment = %segment.id, "segment coverage sidecar missing or corrupt; recomputing from Parquet");
        let bytes = self.location.get(&segment.path).await?.ok_or_else(|| {
            missing(format!("segment {} has neither a readable sidecar nor its data file", segment.id))
        })?;
        let reader = std::io::Cursor::new(bytes);
        let name = self.location.describe(&segment.path);
        let stats = parquet_stats(reader, self.spec(), &name, false).await.map_err(|e| {
            missing(format!("segment {} sidecar is unreadable and its data file failed: {e}", segment.id))
        })?;
        let stats = stats.ok_or_else(|| missing(format!("segment {} data file gave no statistics", segment.id)))?;
        Ok(stats.coverage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::EntityKey;

    fn coverage(buckets: i64) -> Arc<Coverage> {
        let mut c = Coverage::new();
        // Every other bucket, so the set stays an array of `buckets` values.
        c.insert_set(EntityKey::implicit(), (0..buckets).map(|b| b * 2).collect());
        Arc::new(c)
    }

    #[test]
    fn coverage_cache_stays_within_its_budget_oldest_out_first() {
        let mut cache = CoverageCache::with_budget(10_000);
        let ids: Vec<SegmentId> = (0..10).map(|_| SegmentId::random()).collect();
        for id in &ids {
            cache.insert(id.clone(), coverage(1_000));
        }
        assert!(cache.bytes <= 10_000, "{} bytes", cache.bytes);
        assert_eq!(cache.len(), 4, "each entry is about 2 KB");
        assert!(cache.get(&ids[0]).is_none(), "the oldest went first");
        assert!(cache.get(&ids[9]).is_some());
        // An entry larger than the whole budget is not kept, and evicts nothing.
        cache.insert(SegmentId::random(), coverage(60_000));
        assert_eq!(cache.len(), 4);
    }
}
