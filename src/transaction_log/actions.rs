//! The commit file model: one JSON object per version holding a list of actions.
//!
//! Pure; no I/O. Parsing reads `format_version` before anything else, so a file written by a
//! newer format (which may hold actions this build does not know) is reported as
//! [`Error::UnsupportedFormat`], never as a corrupt log.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metadata::{SegmentId, SegmentMeta, TableMeta};

/// The newest format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;

/// One change to the table state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LogAction {
    /// A new immutable segment becomes live.
    AddSegment(SegmentMeta),
    /// A live segment stops being part of the table (its files stay for older versions).
    RemoveSegment {
        /// The id of a live segment.
        id: SegmentId,
    },
    /// Replaces the table metadata (the first commit always carries one).
    UpdateTableMeta(TableMeta),
    /// Points at the table coverage snapshot valid as of this commit.
    UpdateTableCoverage {
        /// The snapshot file, relative to the table root.
        path: String,
    },
}

/// The content of `_timeseries_log/<version>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// The format version of the writer (see [`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The version this commit creates; equals the number in the file name.
    pub version: u64,
    /// Milliseconds since the Unix epoch, as seen by the writer's clock.
    pub committed_at: i64,
    /// What produced the commit: `create`, `append`, `insert`, ...
    pub operation: String,
    /// Random id of the writing transaction; lets a writer recognise its own commit
    /// after a write whose response was lost.
    pub txn_id: String,
    /// The changes, applied in order.
    pub actions: Vec<LogAction>,
    /// Rows the commit added to and removed from the table, written by commits that
    /// rewrite segments (where the added segments' rows are not what was added). Absent
    /// on appends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowChange>,
}

/// The table's row count change made by one commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowChange {
    /// Rows that became part of the table.
    pub added: u64,
    /// Rows that stopped being part of the table.
    pub removed: u64,
}

/// What one commit changed, as listed by history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitSummary {
    /// Segments that became live.
    pub segments_added: u64,
    /// Segments that stopped being live.
    pub segments_removed: u64,
    /// Rows added to the table.
    pub rows_added: u64,
    /// Rows removed from the table.
    pub rows_removed: u64,
}

/// The one field every log file (commit or checkpoint) of every format version starts from.
#[derive(Deserialize)]
struct FormatHeader {
    format_version: u32,
}

/// The `format_version` of a log file, read without interpreting anything else (unknown
/// fields are skipped). Fails only when the bytes are not a JSON object with that field.
pub(crate) fn format_version_of(bytes: &[u8]) -> std::result::Result<u32, serde_json::Error> {
    serde_json::from_slice::<FormatHeader>(bytes).map(|h| h.format_version)
}

/// Parses the commit file of `version` found at `path` (named in errors): the format version
/// first, then the actions, then the version the file claims.
pub(crate) fn parse_commit(bytes: &[u8], version: u64, path: &str) -> Result<Commit> {
    let corrupt = |reason: String| Error::CorruptLog { path: path.to_string(), reason };
    let found = format_version_of(bytes).map_err(|e| corrupt(format!("not a valid commit: {e}")))?;
    if found > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat { path: path.to_string(), found, supported: FORMAT_VERSION });
    }
    let commit: Commit = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not a valid commit: {e}")))?;
    if commit.version != version {
        return Err(corrupt(format!("file holds version {} instead of {version}", commit.version)));
    }
    Ok(commit)
}

impl Commit {
    /// A commit for `version` stamped with the current time and a fresh transaction id.
    pub fn new(version: u64, operation: impl Into<String>, actions: Vec<LogAction>) -> Self {
        Commit {
            format_version: FORMAT_VERSION,
            version,
            committed_at: crate::environment::now().timestamp_millis(),
            operation: operation.into(),
            txn_id: crate::environment::random_id(),
            actions,
            rows: None,
        }
    }

    /// Segments and rows added and removed, for history listings. Without a recorded
    /// [`RowChange`], the rows added are the added segments' rows and none were removed.
    pub fn summary(&self) -> CommitSummary {
        let mut summary = CommitSummary::default();
        for action in &self.actions {
            match action {
                LogAction::AddSegment(s) => {
                    summary.segments_added += 1;
                    summary.rows_added += s.row_count;
                }
                LogAction::RemoveSegment { .. } => summary.segments_removed += 1,
                _ => {}
            }
        }
        if let Some(rows) = self.rows {
            summary.rows_added = rows.added;
            summary.rows_removed = rows.removed;
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit_json(format_version: u32, version: u64, action: &str) -> String {
        format!(
            r#"{{"format_version":{format_version},"version":{version},"committed_at":0,"operation":"x","txn_id":"t","actions":[{action}]}}"#
        )
    }

    #[test]
    fn a_newer_commit_is_unsupported_even_with_actions_this_build_does_not_know() {
        let text = commit_json(3, 7, r#"{"SetRetention":{"keep":"30d"}}"#);
        match parse_commit(text.as_bytes(), 7, "log/7.json") {
            Err(Error::UnsupportedFormat { path, found: 3, supported: 2 }) => assert_eq!(path, "log/7.json"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damage_within_a_known_version_is_corruption() {
        let unknown_action = commit_json(2, 7, r#"{"SetRetention":{"keep":"30d"}}"#);
        let wrong_version = commit_json(1, 8, r#"{"RemoveSegment":{"id":"a"}}"#);
        let no_version = r#"{"version":7,"actions":[]}"#.to_string();
        let torn = commit_json(1, 7, "")[..20].to_string();
        for text in [unknown_action, wrong_version, no_version, torn] {
            let err = parse_commit(text.as_bytes(), 7, "log/7.json").unwrap_err();
            assert!(matches!(&err, Error::CorruptLog { path, .. } if path == "log/7.json"), "{text}: {err}");
        }
        let ok = commit_json(1, 7, r#"{"RemoveSegment":{"id":"a"}}"#);
        assert_eq!(parse_commit(ok.as_bytes(), 7, "log/7.json").unwrap().actions.len(), 1);
    }
}
