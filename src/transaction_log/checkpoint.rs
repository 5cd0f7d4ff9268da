//! Checkpoints: the full `TableState` at a version, so opening a long log reads one file
//! plus the commits after it instead of every commit.
//!
//! Pure; no I/O. A checkpoint carries a CRC-32 of its own content: a torn or damaged
//! checkpoint fails to decode and readers fall back to the commits, never trusting it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::actions::FORMAT_VERSION;
use super::state::{CoverageSnapshotRef, TableState};
use crate::metadata::{SegmentMeta, TableMeta};

/// A checkpoint is written after every commit whose version is a multiple of this.
pub const CHECKPOINT_INTERVAL: u64 = 100;

/// Relative path of the checkpoint of `version`.
pub fn checkpoint_path(version: u64) -> String {
    format!("{}/{version:010}.checkpoint.json", super::log_store::LOG_DIR)
}

#[derive(Serialize, Deserialize)]
struct CheckpointSegment {
    #[serde(flatten)]
    segment: SegmentMeta,
    added_in_version: u64,
}

#[derive(Serialize, Deserialize)]
struct Body {
    format_version: u32,
    version: u64,
    meta: TableMeta,
    segments: Vec<CheckpointSegment>,
    coverage_snapshot: Option<CoverageSnapshotRef>,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    #[serde(flatten)]
    body: Body,
    /// CRC-32 of the compact JSON of every other field.
    crc32: u32,
}

fn crc_of(body: &Body) -> Result<u32, String> {
    serde_json::to_vec(body).map(|bytes| crc32fast::hash(&bytes)).map_err(|e| e.to_string())
}

/// Serializes `state` as a checkpoint.
pub fn encode_checkpoint(state: &TableState) -> Result<Vec<u8>, String> {
    let body = Body {
        format_version: FORMAT_VERSION,
        version: state.version,
        meta: state.meta.clone(),
        segments: state
            .segments
            .values()
            .map(|s| CheckpointSegment { segment: (**s).clone(), added_in_version: s.added_in_version })
            .collect(),
        coverage_snapshot: state.coverage_snapshot.clone(),
    };
    let crc32 = crc_of(&body)?;
    serde_json::to_vec(&Checkpoint { body, crc32 }).map_err(|e| e.to_string())
}

/// Parses and verifies a checkpoint expected to hold `version`.
pub fn decode_checkpoint(bytes: &[u8], version: u64) -> Result<TableState, String> {
    let checkpoint: Checkpoint = serde_json::from_slice(bytes).map_err(|e| format!("not a checkpoint: {e}"))?;
    if crc_of(&checkpoint.body)? != checkpoint.crc32 {
        return Err("checksum mismatch".into());
    }
    let body = checkpoint.body;
    if body.format_version > FORMAT_VERSION {
        return Err(format!("format version {} is newer than this build reads", body.format_version));
    }
    if body.version != version {
        return Err(format!("holds version {} instead of {version}", body.version));
    }
    let mut segments = BTreeMap::new();
    for CheckpointSegment { mut segment, added_in_version } in body.segments {
        segment.added_in_version = added_in_version;
        if segments.insert(segment.id.clone(), Arc::new(segment)).is_some() {
            return Err("a segment is listed twice".into());
        }
    }
    Ok(TableState { version: body.version, meta: body.meta, segments, coverage_snapshot: body.coverage_snapshot })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{SegmentId, TimeIndexSpec};
    use crate::transaction_log::{Commit, LogAction};

    fn state() -> TableState {
        let meta = TableMeta::try_new(TimeIndexSpec::new("ts", "1m".parse().unwrap())).unwrap();
        let mut state =
            TableState::from_first_commit(&Commit::new(1, "create", vec![LogAction::UpdateTableMeta(meta)]), "1")
                .unwrap();
        let segment = SegmentMeta {
            id: SegmentId("a".into()),
            path: "data/a.parquet".into(),
            coverage_path: "_coverage/segments/a.roar".into(),
            ts_min: -5,
            ts_max: 10,
            row_count: 3,
            size_bytes: 99,
            sorted: true,
            entity_count: 1,
            entities: None,
            added_in_version: 0,
        };
        state.apply(&Commit::new(2, "append", vec![LogAction::AddSegment(segment)]), "2").unwrap();
        state
    }

    #[test]
    fn round_trip_keeps_everything_including_added_versions() {
        let state = state();
        let decoded = decode_checkpoint(&encode_checkpoint(&state).unwrap(), 2).unwrap();
        assert_eq!(decoded.version, 2);
        assert_eq!(decoded.segments, state.segments);
        assert_eq!(decoded.segments.values().next().unwrap().added_in_version, 2);
    }

    #[test]
    fn torn_damaged_or_misplaced_checkpoints_are_rejected() {
        let bytes = encode_checkpoint(&state()).unwrap();
        assert!(decode_checkpoint(&bytes[..bytes.len() - 3], 2).is_err(), "torn");
        let text = String::from_utf8(bytes.clone()).unwrap().replace("\"row_count\":3", "\"row_count\":4");
        assert_eq!(decode_checkpoint(text.as_bytes(), 2).unwrap_err(), "checksum mismatch");
        assert!(decode_checkpoint(&bytes, 3).is_err(), "wrong version");
    }
}
