//! `TableState`: the table as of one version, built by folding commits in order.
//!
//! Pure; no I/O. Replay checks the log's own invariants (contiguous versions, a first
//! commit that defines the table, no duplicate or unknown segments) so a damaged log is
//! reported instead of silently misread.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::actions::{Commit, LogAction, FORMAT_VERSION};
use crate::error::{Error, Result};
use crate::metadata::{SegmentId, SegmentMeta, TableMeta};

/// The committed state of a table at `version`.
#[derive(Debug, Clone)]
pub struct TableState {
    /// The version this state is as of.
    pub version: u64,
    /// The time index and, once the first append fixed it, the schema.
    pub meta: TableMeta,
    /// Live segments, by id.
    pub segments: BTreeMap<SegmentId, Arc<SegmentMeta>>,
    /// The latest table coverage snapshot still usable: its path (relative to the table
    /// root) and the version that wrote it. Segments added after that version are not in
    /// it; a removal since makes it unusable (`None`).
    pub coverage_snapshot: Option<CoverageSnapshotRef>,
}

/// A table coverage snapshot named by the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageSnapshotRef {
    /// The snapshot file, relative to the table root.
    pub path: String,
    /// The version whose commit named it.
    pub version: u64,
}

impl TableState {
    /// The state after the first commit.
    pub fn from_first_commit(commit: &Commit, path: &str) -> Result<Self> {
        if commit.version != 1 {
            return Err(corrupt(path, format!("the first commit has version {}", commit.version)));
        }
        let meta = commit
            .actions
            .iter()
            .find_map(|a| match a {
                LogAction::UpdateTableMeta(meta) => Some(meta.clone()),
                _ => None,
            })
            .ok_or_else(|| corrupt(path, "the first commit does not define the table (no UpdateTableMeta)".into()))?;
        let mut state = TableState { version: 0, meta, segments: BTreeMap::new(), coverage_snapshot: None };
        state.apply(commit, path)?;
        Ok(state)
    }

    /// Applies the next commit in place.
    pub fn apply(&mut self, commit: &Commit, path: &str) -> Result<()> {
        self.apply_actions(commit.format_version, commit.version, commit.actions.iter().cloned(), path)
    }

    /// [`Self::apply`] for a commit read only to be applied: its segments move into the
    /// state instead of being copied (a commit can add tens of thousands).
    pub fn apply_owned(&mut self, commit: Commit, path: &str) -> Result<()> {
        self.apply_actions(commit.format_version, commit.version, commit.actions.into_iter(), path)
    }

    fn apply_actions(
        &mut self,
        format_version: u32,
        version: u64,
        actions: impl Iterator<Item = LogAction>,
        path: &str,
    ) -> Result<()> {
        if format_version > FORMAT_VERSION {
            return Err(Error::UnsupportedFormat { path: path.to_string(), found: format_version, supported: FORMAT_VERSION });
        }
        if version != self.version + 1 {
            return Err(corrupt(path, format!("expected version {}, found {}", self.version + 1, version)));
        }
        for action in actions {
            match action {
                LogAction::AddSegment(mut segment) => {
                    segment.added_in_version = version;
                    if self.segments.insert(segment.id.clone(), Arc::new(segment)).is_some() {
                        return Err(corrupt(path, "a segment is added twice".into()));
                    }
                }
                LogAction::RemoveSegment { id } => {
                    if self.segments.remove(&id).is_none() {
                        return Err(corrupt(path, format!("removes unknown segment {id}")));
                    }
                    // A union cannot forget a segment: the snapshot no longer applies.
                    self.coverage_snapshot = None;
                }
                LogAction::UpdateTableMeta(meta) => self.meta = meta,
                LogAction::UpdateTableCoverage { path } => {
                    self.coverage_snapshot = Some(CoverageSnapshotRef { path, version });
                }
            }
        }
        self.version = version;
        Ok(())
    }

    /// Live segments added after the coverage snapshot (all of them without one).
    pub fn segments_after_snapshot(&self) -> impl Iterator<Item = &Arc<SegmentMeta>> {
        let since = self.coverage_snapshot.as_ref().map_or(0, |s| s.version);
        self.segments.values().filter(move |s| s.added_in_version > since)
    }

    /// Total rows over the live segments.
    pub fn row_count(&self) -> u64 {
        self.segments.values().map(|s| s.row_count).sum()
    }
}

fn corrupt(path: &str, reason: String) -> Error {
    Error::CorruptLog { path: path.to_string(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::TimeIndexSpec;

    fn segment(id: &str, rows: u64) -> SegmentMeta {
        SegmentMeta {
            id: SegmentId(id.into()),
            path: format!("data/{id}.parquet"),
            coverage_path: format!("_coverage/segments/{id}.roar"),
            ts_min: 0,
            ts_max: 10,
            row_count: rows,
            size_bytes: 100,
            sorted: true,
            entity_count: 1,
            entities: None,
            added_in_version: 0,
        }
    }

    fn create() -> Commit {
        let meta = TableMeta::try_new(TimeIndexSpec::new("ts", "1m".parse().unwrap())).unwrap();
        Commit::new(1, "create", vec![LogAction::UpdateTableMeta(meta)])
    }

    #[test]
    fn replay_is_a_fold_over_versions() {
        let mut state = TableState::from_first_commit(&create(), "1.json").unwrap();
        state.apply(&Commit::new(2, "append", vec![LogAction::AddSegment(segment("a", 5))]), "2.json").unwrap();
        state.apply(&Commit::new(3, "append", vec![LogAction::AddSegment(segment("b", 7))]), "3.json").unwrap();
        assert_eq!((state.version, state.row_count(), state.segments.len()), (3, 12, 2));
        assert_eq!(state.segments[&SegmentId("b".into())].added_in_version, 3);
        let remove = Commit::new(4, "remove", vec![LogAction::RemoveSegment { id: SegmentId("a".into()) }]);
        state.apply(&remove, "4.json").unwrap();
        assert_eq!(state.row_count(), 7);
    }

    #[test]
    fn replay_rejects_damaged_logs() {
        let mut state = TableState::from_first_commit(&create(), "1.json").unwrap();
        let skip = Commit::new(3, "append", vec![]);
        assert!(matches!(state.apply(&skip, "3.json"), Err(Error::CorruptLog { .. })));
        let unknown = Commit::new(2, "remove", vec![LogAction::RemoveSegment { id: SegmentId("zz".into()) }]);
        assert!(state.apply(&unknown, "2.json").unwrap_err().to_string().contains("2.json"));
        let mut future = Commit::new(2, "append", vec![]);
        future.format_version = 99;
        assert!(matches!(state.apply(&future, "2.json"), Err(Error::UnsupportedFormat { .. })));
        let no_meta = Commit::new(1, "create", vec![]);
        assert!(TableState::from_first_commit(&no_meta, "1.json").is_err());
    }
}
