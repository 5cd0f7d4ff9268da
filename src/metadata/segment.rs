//! `SegmentMeta`: everything the log records about one immutable Parquet segment, enough
//! to prune it without opening it.
//!
//! Pure; no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::EntityKey;

/// Above this many distinct entities a segment does not list them in the log; it is then
/// treated as possibly holding any entity.
pub const MAX_LISTED_ENTITIES: usize = 10_000;

/// Identifier of a segment, unique within a table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SegmentId(pub String);

impl SegmentId {
    /// A fresh random identifier.
    pub fn random() -> Self {
        SegmentId(crate::environment::random_id())
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One live (or once live) segment of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// The segment's identifier; its file names derive from it.
    pub id: SegmentId,
    /// Parquet file, relative to the table root.
    pub path: String,
    /// Coverage sidecar, relative to the table root.
    pub coverage_path: String,
    /// Smallest timestamp in the segment, nanoseconds since the epoch (inclusive).
    pub ts_min: i64,
    /// Largest timestamp in the segment, nanoseconds since the epoch (inclusive).
    pub ts_max: i64,
    /// Number of rows in the Parquet file.
    pub row_count: u64,
    /// Size of the Parquet file in bytes.
    pub size_bytes: u64,
    /// Whether rows are in non-decreasing time order.
    pub sorted: bool,
    /// Number of distinct entities in the segment, listed or not.
    pub entity_count: u64,
    /// The segment's entities, when at most [`MAX_LISTED_ENTITIES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<Vec<EntityKey>>,
    /// Version that added the segment (set on replay, not trusted from the wire).
    #[serde(default, skip_serializing)]
    pub added_in_version: u64,
}

impl SegmentMeta {
    /// Whether `[ts_min, ts_max]` meets the half-open nanosecond range `[start, end)`.
    pub fn overlaps_time(&self, start: i64, end: i64) -> bool {
        self.ts_min < end && self.ts_max >= start
    }

    /// Whether the segment may hold any of `entities` (true when it does not list them).
    pub fn may_hold_any(&self, entities: &[EntityKey]) -> bool {
        match &self.entities {
            Some(own) => entities.iter().any(|e| own.binary_search(e).is_ok()),
            None => true,
        }
    }
}
