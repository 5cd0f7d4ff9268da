//! Checkpoints: the full `TableState` at a version, so opening a long log reads one file
//! plus the commits after it instead of every commit.
//!
//! Pure; no I/O. A checkpoint carries a CRC-32 of its own content: a torn or damaged
//! checkpoint fails to decode and readers fall back to the commits, never trusting it.
//! One written by a newer format is a different matter ([`CheckpointError::NewerFormat`]):
//! writers write checkpoints in the table's format, so it means the table itself moved on.
//!
//! Checkpoints may sit at any version. Writers aim for the multiples of
//! [`CHECKPOINT_INTERVAL`], and a commit that finds the newest one more than an interval
//! behind (the writer due to write it crashed or failed) writes one for its own version.
//!
//! A large checkpoint has its segment list parsed in parts on every core.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::actions::{format_version_of, FORMAT_VERSION};
use super::state::{CoverageSnapshotRef, TableState};
use crate::metadata::{SegmentId, SegmentMeta, TableMeta};

/// A checkpoint is written after every commit whose version is a multiple of this, and
/// after any commit that finds the newest checkpoint more than this many versions behind.
pub const CHECKPOINT_INTERVAL: u64 = 100;

const SUFFIX: &str = ".checkpoint.json";

/// Relative path of the checkpoint of `version`.
pub fn checkpoint_path(version: u64) -> String {
    format!("{}/{version:010}{SUFFIX}", super::log_store::LOG_DIR)
}

/// The version of a checkpoint from its file name (`0000000150.checkpoint.json` -> 150);
/// `None` for any other file.
pub(crate) fn checkpoint_version(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(SUFFIX)?;
    // `u64::from_str` would also take a sign.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether the commit of a version writes a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckpointDue {
    No,
    /// The version is a multiple of [`CHECKPOINT_INTERVAL`].
    Scheduled,
    /// The newest checkpoint known is more than an interval behind: the one scheduled
    /// since was never written (its writer crashed or failed).
    Overdue,
}

/// Whether the commit of `version` writes a checkpoint, given the newest checkpoint its
/// writer knows of (0 for none).
pub(crate) fn checkpoint_due(version: u64, newest_known: u64) -> CheckpointDue {
    if version == 0 {
        CheckpointDue::No
    } else if version % CHECKPOINT_INTERVAL == 0 {
        CheckpointDue::Scheduled
    } else if version.saturating_sub(newest_known) > CHECKPOINT_INTERVAL {
        CheckpointDue::Overdue
    } else {
        CheckpointDue::No
    }
}

/// Why a checkpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Written by a newer format. Not to be skipped: the reader must refuse the table.
    #[error("format version {found} is newer than this build reads ({FORMAT_VERSION})")]
    NewerFormat {
        /// The checkpoint's `format_version`.
        found: u32,
    },
    /// Torn, damaged or holding another version: ignored, the commits are replayed instead.
    #[error("{0}")]
    Unreadable(String),
}

#[derive(Serialize)]
struct CheckpointSegment {
    #[serde(flatten)]
    segment: SegmentMeta,
    added_in_version: u64,
}

#[derive(Serialize)]
struct Body {
    format_version: u32,
    version: u64,
    meta: TableMeta,
    segments: Vec<CheckpointSegment>,
    coverage_snapshot: Option<CoverageSnapshotRef>,
}

#[derive(Serialize)]
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

/// Segments as read, each behind its `Arc` (see [`shared_segments`]).
type SharedSegments = Vec<(SegmentId, Arc<SegmentMeta>)>;

/// A checkpoint as read: the same fields, without `flatten` (which makes serde buffer every
/// value before deserializing it, several times slower at a million segments). A segment's
/// `added_in_version` is read by [`SegmentMeta`] itself.
#[derive(Deserialize)]
struct CheckpointRead {
    format_version: u32,
    version: u64,
    meta: TableMeta,
    #[serde(deserialize_with = "shared_segments")]
    segments: SharedSegments,
    coverage_snapshot: Option<CoverageSnapshotRef>,
    crc32: u32,
}

/// The segment list, each segment put behind its `Arc` as it is read: a list of the
/// segments themselves would be copied whole each time it grows (at a million segments,
/// hundreds of megabytes).
fn shared_segments<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SharedSegments, D::Error> {
    struct Segments;

    impl<'de> serde::de::Visitor<'de> for Segments {
        type Value = SharedSegments;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of segments")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut segments = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(segment) = seq.next_element::<SegmentMeta>()? {
                segments.push((segment.id.clone(), Arc::new(segment)));
            }
            Ok(segments)
        }
    }

    deserializer.deserialize_seq(Segments)
}

/// A checkpoint larger than two of these has its segment list parsed in parts of about
/// this size, on every core: at a million segments the JSON takes most of the open.
const PART_BYTES: usize = 4 << 20;

/// The most parts a segment list is cut into.
const MAX_PARTS: usize = 16;

/// What starts every segment but the first in a checkpoint written by
/// [`encode_checkpoint`]. It never occurs inside a JSON string, where a quote is always
/// escaped, so it is a place to cut the list; whether the place is between two segments of
/// the list (and not inside one) is proven by the part before it ending exactly there.
const NEXT_SEGMENT: &[u8] = b"},{\"id\":\"";

/// Where the segment list opens in a checkpoint written by [`encode_checkpoint`].
const SEGMENTS_FIELD: &[u8] = b",\"segments\":[";

/// The fields of a checkpoint but its segments.
#[derive(Deserialize)]
struct CheckpointHead {
    format_version: u32,
    version: u64,
    meta: TableMeta,
    coverage_snapshot: Option<CoverageSnapshotRef>,
    crc32: u32,
}

/// A large checkpoint laid out as [`encode_checkpoint`] writes it, read with its segment
/// list cut into parts of about `part_bytes` parsed side by side. `None` when the file is
/// small, laid out otherwise or unreadable: the caller then parses it whole, which also
/// says what is wrong with it.
fn read_in_parts(bytes: &[u8], part_bytes: usize) -> Option<CheckpointRead> {
    if bytes.len() < 2 * part_bytes {
        return None;
    }
    let field = find(bytes, SEGMENTS_FIELD, 0)?;
    let list = field + SEGMENTS_FIELD.len();
    let parts = ((bytes.len() - list) / part_bytes).min(MAX_PARTS);
    if parts < 2 {
        return None;
    }
    // Each part starts at a segment's opening brace; the first cut at or after each
    // equal share of the file.
    let mut starts = vec![list];
    for share in 1..parts {
        let cut = find(bytes, NEXT_SEGMENT, list + share * (bytes.len() - list) / parts)? + 2;
        if cut > *starts.last()? {
            starts.push(cut);
        }
    }
    let mut slots: Vec<Option<(SharedSegments, usize)>> = vec![None; starts.len()];
    let work = slots.iter_mut().zip(starts.iter().enumerate().map(|(i, &start)| (start, starts.get(i + 1))));
    // A segment takes a few hundred bytes: the list's length in those is about its count.
    crate::environment::on_cores(work, (bytes.len() - list) / 256, |(slot, (start, next))| {
        *slot = Some(read_segments(bytes, start, next.map(|next| next - 1)).ok_or(())?);
        Ok::<_, ()>(())
    })
    .ok()?;
    let parsed: Vec<(SharedSegments, usize)> = slots.into_iter().collect::<Option<_>>()?;
    let close = parsed.last()?.1;
    let mut segments = Vec::with_capacity(parsed.iter().map(|(part, _)| part.len()).sum());
    for (part, _) in parsed {
        segments.extend(part);
    }
    // The other fields: the file without its segment list.
    let head: CheckpointHead = serde_json::from_slice(&[&bytes[..field], &bytes[close + 1..]].concat()).ok()?;
    Some(CheckpointRead {
        format_version: head.format_version,
        version: head.version,
        meta: head.meta,
        segments,
        coverage_snapshot: head.coverage_snapshot,
        crc32: head.crc32,
    })
}

/// The segments listed from `start` (a segment's opening brace) to the comma at `end`, or
/// to the list's closing bracket when `end` is `None`, with where they stopped (that comma
/// or bracket). `None` when they do not stop exactly there.
fn read_segments(bytes: &[u8], mut at: usize, end: Option<usize>) -> Option<(SharedSegments, usize)> {
    let mut segments = Vec::new();
    loop {
        let mut one = serde_json::Deserializer::from_slice(&bytes[at..]).into_iter::<SegmentMeta>();
        let segment = one.next()?.ok()?;
        at += one.byte_offset();
        segments.push((segment.id.clone(), Arc::new(segment)));
        match (bytes.get(at), end) {
            (Some(b','), Some(end)) if at == end => return Some((segments, at)),
            (Some(b','), Some(end)) if at < end => at += 1,
            (Some(b','), None) => at += 1,
            (Some(b']'), None) => return Some((segments, at)),
            _ => return None,
        }
    }
}

/// The first place of `needle` in `bytes` at or after `from`.
fn find(bytes: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|window| window == needle).map(|at| from + at)
}

/// Parses and verifies a checkpoint expected to hold `version`. A newer format is reported
/// as such whether or not its layout parses here, and before its checksum is judged.
pub fn decode_checkpoint(bytes: &[u8], version: u64) -> Result<TableState, CheckpointError> {
    let unreadable = CheckpointError::Unreadable;
    let parsed = read_in_parts(bytes, PART_BYTES).map_or_else(|| serde_json::from_slice::<CheckpointRead>(bytes), Ok);
    let checkpoint = match parsed {
        Ok(checkpoint) if checkpoint.format_version <= FORMAT_VERSION => checkpoint,
        parsed => {
            let found = format_version_of(bytes).map_err(|e| unreadable(format!("not a checkpoint: {e}")))?;
            if found > FORMAT_VERSION {
                return Err(CheckpointError::NewerFormat { found });
            }
            let reason = parsed.err().map_or_else(|| "unreadable".to_string(), |e| e.to_string());
            return Err(unreadable(format!("not a checkpoint: {reason}")));
        }
    };
    if !checksum_matches(bytes, &checkpoint).map_err(unreadable)? {
        return Err(unreadable("checksum mismatch".into()));
    }
    if checkpoint.version != version {
        return Err(unreadable(format!("holds version {} instead of {version}", checkpoint.version)));
    }
    let listed = checkpoint.segments.len();
    // Written in id order, so collecting them is a bulk build, not a million inserts.
    let segments: BTreeMap<_, _> = checkpoint.segments.into_iter().collect();
    if segments.len() != listed {
        return Err(unreadable("a segment is listed twice".into()));
    }
    Ok(TableState {
        version: checkpoint.version,
        meta: checkpoint.meta,
        segments,
        coverage_snapshot: checkpoint.coverage_snapshot,
    })
}

/// Whether `crc32` is the checksum of the checkpoint's other fields. [`encode_checkpoint`]
/// writes compact JSON with `crc32` last, so the other fields' JSON is the file up to
/// `,"crc32":` closed by a brace, and hashing that needs no second serialization. A file laid
/// out any other way is checked by serializing its fields again.
fn checksum_matches(bytes: &[u8], checkpoint: &CheckpointRead) -> Result<bool, String> {
    const FIELD: &[u8] = b",\"crc32\":";
    if let Some(at) = bytes.windows(FIELD.len()).rposition(|window| window == FIELD) {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&bytes[..at]);
        hasher.update(b"}");
        if hasher.finalize() == checkpoint.crc32 {
            return Ok(true);
        }
    }
    let body = Body {
        format_version: checkpoint.format_version,
        version: checkpoint.version,
        meta: checkpoint.meta.clone(),
        segments: checkpoint
            .segments
            .iter()
            .map(|(_, s)| CheckpointSegment { segment: (**s).clone(), added_in_version: s.added_in_version })
            .collect(),
        coverage_snapshot: checkpoint.coverage_snapshot.clone(),
    };
    Ok(crc_of(&body)? == checkpoint.crc32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{EntityKey, EntityValue, TimeIndexSpec};
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
        assert_eq!(
            decode_checkpoint(text.as_bytes(), 2).unwrap_err(),
            CheckpointError::Unreadable("checksum mismatch".into())
        );
        assert!(decode_checkpoint(&bytes, 3).is_err(), "wrong version");
        for bad in [&bytes[..bytes.len() - 3], text.as_bytes()] {
            assert!(matches!(decode_checkpoint(bad, 2), Err(CheckpointError::Unreadable(_))));
        }
    }

    #[test]
    fn the_checksum_is_that_of_the_file_up_to_its_own_field_and_other_layouts_are_checked_too() {
        let bytes = encode_checkpoint(&state()).unwrap();
        // What the fast check relies on: the written file is the checksummed JSON plus the
        // checksum field.
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let at = String::from_utf8(bytes.clone()).unwrap().rfind(",\"crc32\":").unwrap();
        assert_eq!(crc32fast::hash(&[&bytes[..at], b"}"].concat()), value["crc32"].as_u64().unwrap() as u32);
        // The same checkpoint pretty-printed (another layout, same content) still verifies.
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        assert_ne!(pretty, bytes);
        assert_eq!(decode_checkpoint(&pretty, 2).unwrap().segments, state().segments);
        // And a pretty-printed damaged one does not.
        let pretty = String::from_utf8(pretty).unwrap();
        let damaged = pretty.replace("\"row_count\": 3", "\"row_count\": 4");
        assert_ne!(damaged, pretty);
        assert!(matches!(decode_checkpoint(damaged.as_bytes(), 2), Err(CheckpointError::Unreadable(_))));
    }

    /// A state of `count` segments whose entity values look like the cut marks.
    fn many_segments(count: usize) -> TableState {
        let mut state = state();
        let tricky = ["},{\"id\":\"", "\\\"},{", "]", ",\"segments\":[", "plain"];
        let segments = (0..count)
            .map(|i| {
                let name = format!("s{i:05}");
                LogAction::AddSegment(SegmentMeta {
                    id: SegmentId(name.clone()),
                    path: format!("data/{name}.parquet"),
                    coverage_path: format!("_coverage/segments/{name}.roar"),
                    ts_min: i as i64 * 60,
                    ts_max: i as i64 * 60 + 59,
                    row_count: 1 + i as u64 % 7,
                    size_bytes: 1000,
                    sorted: i % 3 != 0,
                    entity_count: 2,
                    entities: Some(vec![
                        EntityKey(vec![EntityValue::Str(tricky[i % tricky.len()].into()), EntityValue::Int(i as i64)]),
                        EntityKey(vec![EntityValue::Str(format!("{{\"id\":\"{i}\"}}")), EntityValue::UInt(u64::MAX)]),
                    ]),
                    added_in_version: 0,
                })
            })
            .collect();
        state.apply(&Commit::new(3, "append", segments), "3").unwrap();
        state
    }

    #[test]
    fn a_segment_list_read_in_parts_equals_the_list_read_whole() {
        let state = many_segments(300);
        let bytes = encode_checkpoint(&state).unwrap();
        let whole: CheckpointRead = serde_json::from_slice(&bytes).unwrap();
        for part_bytes in [bytes.len() / 3, 4_000, 1_000, 97, 1] {
            let parts = read_in_parts(&bytes, part_bytes).expect("a written checkpoint is read in parts");
            assert_eq!(parts.segments, whole.segments, "parts of {part_bytes} bytes");
            assert_eq!((parts.version, parts.crc32, &parts.meta), (whole.version, whole.crc32, &whole.meta));
            assert_eq!(parts.coverage_snapshot, whole.coverage_snapshot);
        }
        let decoded = decode_checkpoint(&bytes, 3).unwrap();
        assert_eq!(decoded.segments, state.segments);
        // Too small to cut: read whole.
        assert!(read_in_parts(&bytes, bytes.len()).is_none());
        // Other layouts, and damage, are left to the whole read (which rejects the damage).
        let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()).unwrap();
        assert!(read_in_parts(&pretty, 100).is_none());
        assert_eq!(decode_checkpoint(&pretty, 3).unwrap().segments, state.segments);
        let torn = &bytes[..bytes.len() * 2 / 3];
        assert!(read_in_parts(torn, 100).is_none());
        assert!(matches!(decode_checkpoint(torn, 3), Err(CheckpointError::Unreadable(_))));
        let text = String::from_utf8(bytes.clone()).unwrap().replacen("\"row_count\":1", "\"row_count\":2", 1);
        assert!(read_in_parts(text.as_bytes(), 100).is_some(), "parsed, then judged by its checksum");
        assert_eq!(decode_checkpoint(text.as_bytes(), 3).unwrap_err(), CheckpointError::Unreadable("checksum mismatch".into()));
    }

    #[test]
    fn a_newer_checkpoint_is_reported_as_such_before_its_checksum_or_layout_is_judged() {
        let mut value: serde_json::Value = serde_json::from_slice(&encode_checkpoint(&state()).unwrap()).unwrap();
        value["format_version"] = 3.into();
        value["segments"] = "stored elsewhere in format 3".into();
        let bytes = serde_json::to_vec(&value).unwrap();
        assert_eq!(decode_checkpoint(&bytes, 2).unwrap_err(), CheckpointError::NewerFormat { found: 3 });
    }

    #[test]
    fn checkpoint_names_parse_back_to_their_version() {
        assert_eq!(checkpoint_version("0000000150.checkpoint.json"), Some(150));
        assert_eq!(checkpoint_path(150).rsplit('/').next().and_then(checkpoint_version), Some(150));
        for other in ["0000000150.json", "CURRENT", "+150.checkpoint.json", ".checkpoint.json", "x.checkpoint.json"] {
            assert_eq!(checkpoint_version(other), None, "{other}");
        }
    }

    #[test]
    fn checkpoints_are_due_on_the_schedule_or_when_the_newest_is_more_than_an_interval_behind() {
        use CheckpointDue::*;
        let cases = [
            (0, 0, No),
            (99, 0, No),
            (100, 0, Scheduled),
            (200, 100, Scheduled),
            (200, 200, Scheduled),
            (101, 0, Overdue),
            (201, 100, Overdue),
            (201, 200, No),
            (201, 101, No),
            (150, 150, No),
        ];
        for (version, newest_known, due) in cases {
            assert_eq!(checkpoint_due(version, newest_known), due, "version {version}, newest known {newest_known}");
        }
    }
}
