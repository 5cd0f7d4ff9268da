//! The commit file model: one JSON object per version holding a list of actions.
//!
//! Pure; no I/O.

use serde::{Deserialize, Serialize};

use crate::metadata::{SegmentId, SegmentMeta, TableMeta};

/// The newest format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One change to the table state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LogAction {
    /// A new immutable segment becomes live.
    AddSegment(SegmentMeta),
    /// A live segment stops being part of the table (its files stay for older versions).
    RemoveSegment { id: SegmentId },
    /// Replaces the table metadata (the first commit always carries one).
    UpdateTableMeta(TableMeta),
    /// Points at the table coverage snapshot valid as of this commit.
    UpdateTableCoverage { path: String },
}

/// The content of `_timeseries_log/<version>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    pub format_version: u32,
    pub version: u64,
    /// Milliseconds since the Unix epoch, as seen by the writer's clock.
    pub committed_at: i64,
    /// What produced the commit: `create`, `append`, `insert`, ...
    pub operation: String,
    /// Random id of the writing transaction; lets a writer recognise its own commit
    /// after a write whose response was lost.
    pub txn_id: String,
    pub actions: Vec<LogAction>,
}

impl Commit {
    /// A commit for `version` stamped with the current time and a fresh transaction id.
    pub fn new(version: u64, operation: impl Into<String>, actions: Vec<LogAction>) -> Self {
        Commit {
            format_version: FORMAT_VERSION,
            version,
            committed_at: chrono::Utc::now().timestamp_millis(),
            operation: operation.into(),
            txn_id: uuid::Uuid::new_v4().simple().to_string(),
            actions,
        }
    }

    /// Segments added and removed, and rows added, for history listings.
    pub fn summary(&self) -> (u64, u64, u64) {
        self.actions.iter().fold((0, 0, 0), |(added, removed, rows), action| match action {
            LogAction::AddSegment(s) => (added + 1, removed, rows + s.row_count),
            LogAction::RemoveSegment { .. } => (added, removed + 1, rows),
            _ => (added, removed, rows),
        })
    }
}
