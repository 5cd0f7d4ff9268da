//! `Snapshot`: one committed version of a table plus its lazily loaded coverage.
//!
//! Does I/O (sidecar reads through storage). Coverage comes from the table snapshot
//! sidecar; when that is missing or corrupt it is rebuilt from the segment sidecars, and a
//! segment sidecar from its Parquet file. Reads never write: repair is in memory only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::coverage::{sidecar, Coverage};
use crate::error::{Error, Result};
use crate::formats::parquet::inspect_parquet;
use crate::metadata::{SegmentId, SegmentMeta, TimeIndexSpec};
use crate::storage::TableLocation;
use crate::transaction_log::TableState;

/// Segment coverages are immutable, so one cache is shared by every snapshot of a table.
pub(crate) type SegmentCoverageCache = Arc<Mutex<HashMap<SegmentId, Arc<Coverage>>>>;

/// A table as of one committed version.
#[derive(Debug)]
pub struct Snapshot {
    location: TableLocation,
    state: TableState,
    table_coverage: OnceCell<Arc<Coverage>>,
    segment_coverage: SegmentCoverageCache,
}

impl Snapshot {
    pub(crate) fn new(location: TableLocation, state: TableState, cache: SegmentCoverageCache) -> Self {
        Snapshot { location, state, table_coverage: OnceCell::new(), segment_coverage: cache }
    }

    /// A snapshot whose table coverage is already known (right after our own commit).
    pub(crate) fn with_coverage(
        location: TableLocation,
        state: TableState,
        cache: SegmentCoverageCache,
        coverage: Arc<Coverage>,
    ) -> Self {
        Snapshot { location, state, table_coverage: OnceCell::new_with(Some(coverage)), segment_coverage: cache }
    }

    pub fn state(&self) -> &TableState {
        &self.state
    }

    pub fn version(&self) -> u64 {
        self.state.version
    }

    pub fn spec(&self) -> &TimeIndexSpec {
        &self.state.meta.time_index
    }

    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    pub(crate) fn segment_cache(&self) -> SegmentCoverageCache {
        Arc::clone(&self.segment_coverage)
    }

    /// Live segments ordered by `ts_min` (ties by id).
    pub fn segments(&self) -> Vec<Arc<SegmentMeta>> {
        let mut segments: Vec<_> = self.state.segments.values().cloned().collect();
        segments.sort_by(|a, b| (a.ts_min, &a.id).cmp(&(b.ts_min, &b.id)));
        segments
    }

    /// The union of all live segments' coverage.
    pub async fn table_coverage(&self) -> Result<Arc<Coverage>> {
        self.table_coverage.get_or_try_init(|| self.load_table_coverage()).await.cloned()
    }

    async fn load_table_coverage(&self) -> Result<Arc<Coverage>> {
        if let Some(path) = &self.state.coverage_snapshot {
            if let Some(bytes) = self.location.get(path).await? {
                if let Ok(coverage) = sidecar::decode(&bytes) {
                    return Ok(Arc::new(coverage));
                }
            }
            tracing::warn!(path = %path, "table coverage snapshot missing or corrupt; rebuilding from segment sidecars");
        }
        let mut union = Coverage::new();
        for segment in self.state.segments.values() {
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
        self.segment_coverage.lock().ok()?.get(id).cloned()
    }

    async fn coverage_from_parquet(&self, segment: &SegmentMeta) -> Result<Coverage> {
        let missing = |detail: String| Error::MissingCoverage {
            files: vec![self.location.describe(&segment.coverage_path), self.location.describe(&segment.path)],
            detail,
        };
        tracing::warn!(segment = %segment.id, "segment coverage sidecar missing or corrupt; recomputing from Parquet");
        let bytes = self
            .location
            .get(&segment.path)
            .await?
            .ok_or_else(|| missing(format!("segment {} has neither a readable sidecar nor its data file", segment.id)))?;
        let spec = self.spec().clone();
        let name = self.location.describe(&segment.path);
        let inspected = tokio::task::spawn_blocking(move || inspect_parquet(bytes, &spec, &name))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(|e| missing(format!("segment {} sidecar is unreadable and its data file failed: {e}", segment.id)))?;
        Ok(inspected.stats.coverage)
    }
}
