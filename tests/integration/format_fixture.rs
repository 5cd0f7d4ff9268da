//! Golden on-disk fixtures: a table written by format version 1 must keep opening with the
//! same answers, and its log and sidecar files must round-trip byte-for-byte through the
//! codecs. A format change adds a new fixture folder; it never edits an old one.

use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use timeseries_table_core::coverage::sidecar;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;
use timeseries_table_core::transaction_log::Commit;

use crate::common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (relative, _) in tree_snapshot(dir) {
        if relative.ends_with(suffix) {
            out.push(dir.join(relative));
        }
    }
    out
}

/// Writes `tests/fixtures/format-v1` (run by hand once: `cargo test --test integration
/// write_format_v1_fixture -- --ignored`). Refuses to overwrite an existing fixture.
#[tokio::test]
#[ignore = "generates the golden fixture; run by hand only for a new format version"]
async fn write_format_v1_fixture() {
    let root = fixture("format-v1");
    assert!(!root.exists(), "{} exists; a format change adds a new fixture instead", root.display());
    let location = TableLocation::local(&root).unwrap();
    let mut table = new_table(location, "1m").await;
    table.append(vec![minute_bars(&["AAPL", "MSFT"], T0, 30)]).await.unwrap();
    table.append(vec![minute_bars(&["AAPL"], T0 + HOUR, 15)]).await.unwrap();
}

#[tokio::test]
async fn format_v1_table_opens_with_the_same_answers() {
    let root = fixture("format-v1");
    let table = TimeSeriesTable::open(TableLocation::local(&root).unwrap()).await.unwrap();
    assert_eq!(table.version(), 3);
    assert_eq!(table.spec().time_column, "ts");
    assert_eq!(table.spec().bucket.to_string(), "1m");
    assert_eq!(table.spec().entity_columns, vec!["symbol".to_string()]);
    assert_eq!(table.segments().len(), 2);
    assert_eq!(table.snapshot().state().row_count(), 75);
    let cov = table.coverage(None, None).await.unwrap();
    let summary: Vec<(String, u64, u64)> =
        cov.iter().map(|c| (c.entity.to_string(), c.expected_buckets, c.covered_buckets)).collect();
    assert_eq!(summary, vec![("AAPL".into(), 75, 45), ("MSFT".into(), 75, 30)]);
    let rows: Vec<_> = table.scan(None).await.unwrap().try_collect().await.unwrap();
    assert_eq!(row_count(&rows), 75);
}

#[test]
fn format_v1_commits_round_trip_losslessly() {
    let commits = files_with_suffix(&fixture("format-v1"), ".json");
    assert_eq!(commits.len(), 3);
    for path in commits {
        let text = std::fs::read_to_string(&path).unwrap();
        let commit: Commit = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&commit).unwrap(), original, "{}", path.display());
    }
}

#[test]
fn format_v1_sidecars_round_trip_byte_for_byte() {
    let sidecars = files_with_suffix(&fixture("format-v1"), ".roar");
    assert_eq!(sidecars.len(), 4, "two segment sidecars and two table snapshots");
    for path in sidecars {
        let bytes = std::fs::read(&path).unwrap();
        let coverage = sidecar::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(sidecar::encode(&coverage), bytes, "{}", path.display());
    }
}

/// Writes `tests/fixtures/checkpoint-v1/0000000100.checkpoint.json` (run by hand once:
/// `cargo test --test integration write_checkpoint_v1_fixture -- --ignored`).
#[tokio::test]
#[ignore = "generates the golden fixture; run by hand only for a new format version"]
async fn write_checkpoint_v1_fixture() {
    let target = fixture("checkpoint-v1");
    assert!(!target.exists(), "{} exists; a format change adds a new fixture instead", target.display());
    let location = memory_location();
    let mut table = new_table(location.clone(), "1m").await;
    for i in 0..99 {
        table.append(vec![minute_bars(&["AAPL"], T0 + i * MINUTE, 1)]).await.unwrap();
    }
    let path = timeseries_table_core::transaction_log::checkpoint_path(100);
    let bytes = location.get(&path).await.unwrap().unwrap();
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("0000000100.checkpoint.json"), bytes).unwrap();
}

#[test]
fn checkpoint_v1_decodes_and_re_encodes_byte_for_byte() {
    use timeseries_table_core::transaction_log::checkpoint::{decode_checkpoint, encode_checkpoint};
    let bytes = std::fs::read(fixture("checkpoint-v1").join("0000000100.checkpoint.json")).unwrap();
    let state = decode_checkpoint(&bytes, 100).unwrap();
    assert_eq!(state.version, 100);
    assert_eq!(state.segments.len(), 99);
    assert_eq!(state.row_count(), 99);
    assert_eq!(state.coverage_snapshot.as_ref().map(|s| s.version), Some(97), "snapshot after 32, 64, 96 segments");
    assert!(state.segments.values().all(|s| (2..=100).contains(&s.added_in_version)));
    assert_eq!(encode_checkpoint(&state).unwrap(), bytes);
}
