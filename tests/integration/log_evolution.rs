//! Format evolution and checkpoint discovery, against golden fixtures:
//!
//! - `format-v3-commit`: a format-1 table (versions 1 and 2) whose commit 3 was written by
//!   format 3 and holds an action this build does not know.
//! - `format-v3-checkpoint`: format-1 commits 1 to 3 and a format-3 checkpoint of version 3.
//!   The commits are all format 1 on purpose: a reader that skipped the checkpoint would open
//!   the table, so refusing it shows the checkpoint alone decides.
//! - `checkpoint-catch-up-v1`: 103 versions; the checkpoint due at 100 is missing (its writer
//!   died) and the next commit wrote one at 101.
//!
//! Tests that change a table work on a copy (in memory and in a local directory); the
//! fixtures themselves are only read.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::TryStreamExt;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;
use timeseries_table_core::transaction_log::checkpoint::{decode_checkpoint, encode_checkpoint, CheckpointError};
use timeseries_table_core::transaction_log::{checkpoint_path, commit_path, CHECKPOINT_INTERVAL};
use timeseries_table_core::Error;

use crate::common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The fixture opened in place (read-only use only).
fn fixture_location(name: &str) -> TableLocation {
    TableLocation::local(fixture(name)).unwrap()
}

/// Copies the fixture into `location`, leaving out the files `skip` names.
async fn copy_fixture(name: &str, location: &TableLocation, skip: &[String]) {
    for (relative, bytes) in tree_snapshot(&fixture(name)) {
        if !skip.contains(&relative) {
            location.put(&relative, Bytes::from(bytes)).await.unwrap();
        }
    }
}

/// Deletes commits `1..=last`: only a checkpoint can then bring a reader to a later version.
async fn delete_commits_through(location: &TableLocation, last: u64) {
    for version in 1..=last {
        location.delete(&commit_path(version)).await.unwrap();
    }
}

async fn has_checkpoint(location: &TableLocation, version: u64) -> bool {
    location.size(&checkpoint_path(version)).await.unwrap().is_some()
}

fn assert_unsupported(err: &Error, file: &str) {
    match err {
        Error::UnsupportedFormat { path, found: 3, supported: 2 } => {
            assert!(path.ends_with(file), "{err}");
            let message = err.to_string();
            assert!(
                message.contains("version 3") && message.contains("up to 2") && message.contains(file),
                "{message}"
            );
        }
        other => panic!("expected UnsupportedFormat of {file} (found 3, supported 2), got {other:?}"),
    }
}

#[tokio::test]
async fn a_newer_commit_is_unsupported_format_not_corruption() {
    let err = TimeSeriesTable::open(fixture_location("format-v3-commit")).await.unwrap_err();
    assert_unsupported(&err, "_timeseries_log/0000000003.json");
    // The versions before it are format 1 and stay readable.
    let old = TimeSeriesTable::open_at(fixture_location("format-v3-commit"), 2).await.unwrap();
    assert_eq!((old.segments().len(), old.snapshot().state().row_count()), (1, 10));

    // A writer that opened the table before the newer commit landed: refreshing and
    // appending both report the newer format.
    on_every_backend(|location| async move {
        let newer = "_timeseries_log/0000000003.json".to_string();
        copy_fixture("format-v3-commit", &location, &[newer.clone(), "_timeseries_log/CURRENT".into()]).await;
        let mut table = TimeSeriesTable::open(location.clone()).await.unwrap();
        let mut writer = table.clone();
        assert_eq!(table.version(), 2);
        let bytes = std::fs::read(fixture("format-v3-commit").join(&newer)).unwrap();
        location.put(&newer, Bytes::from(bytes)).await.unwrap();
        assert_unsupported(&table.refresh().await.unwrap_err(), &newer);
        let err = writer.append(vec![minute_bars(&["MSFT"], T0, 5)]).await.unwrap_err();
        assert_unsupported(&err, &newer);
    })
    .await;
}

#[tokio::test]
async fn a_newer_checkpoint_is_unsupported_format_not_skipped() {
    let name = "0000000003.checkpoint.json";
    let bytes = std::fs::read(fixture("format-v3-checkpoint").join("_timeseries_log").join(name)).unwrap();
    assert_eq!(decode_checkpoint(&bytes, 3).unwrap_err(), CheckpointError::NewerFormat { found: 3 });

    let err = TimeSeriesTable::open(fixture_location("format-v3-checkpoint")).await.unwrap_err();
    assert_unsupported(&err, &format!("_timeseries_log/{name}"));
    // Time travel to before the checkpoint does not meet it.
    let old = TimeSeriesTable::open_at(fixture_location("format-v3-checkpoint"), 2).await.unwrap();
    assert_eq!(old.segments().len(), 1);

    // Without the checkpoint the same commits open: the checkpoint alone is refused.
    on_every_backend(|location| async move {
        copy_fixture("format-v3-checkpoint", &location, &[checkpoint_path(3)]).await;
        let table = TimeSeriesTable::open(location).await.unwrap();
        assert_eq!((table.version(), table.segments().len()), (3, 2));
    })
    .await;
}

/// What the catch-up fixture holds at its latest version: one AAPL row per minute.
async fn assert_catch_up_table(table: &TimeSeriesTable, version: u64, segments: usize) {
    assert_eq!((table.version(), table.segments().len()), (version, segments));
    assert_eq!(table.snapshot().state().row_count(), segments as u64);
    let cov = table.coverage(None, None).await.unwrap();
    assert_eq!(cov.iter().map(|c| c.covered_buckets).sum::<u64>(), segments as u64);
    let rows: Vec<_> = table.scan(None).await.unwrap().try_collect().await.unwrap();
    assert_eq!(row_count(&rows), segments);
}

#[tokio::test]
async fn a_checkpoint_off_the_schedule_is_found_by_listing_and_used() {
    on_every_backend(|location| async move {
        copy_fixture("checkpoint-catch-up-v1", &location, &[]).await;
        assert!(!has_checkpoint(&location, 100).await && has_checkpoint(&location, 101).await);
        assert_catch_up_table(&TimeSeriesTable::open(location.clone()).await.unwrap(), 103, 102).await;

        // With the commits up to the checkpoint gone, only the checkpoint can say what they did.
        delete_commits_through(&location, 101).await;
        assert_catch_up_table(&TimeSeriesTable::open(location.clone()).await.unwrap(), 103, 102).await;
        let at = TimeSeriesTable::open_at(location.clone(), 101).await.unwrap();
        assert_eq!(at.segments().len(), 100);
        // Versions before it are replayed from commit 1 (here: gone).
        let err = TimeSeriesTable::open_at(location.clone(), 100).await.unwrap_err();
        assert!(matches!(err, Error::MissingLog { .. }), "{err}");

        // A torn checkpoint is ignored, and the reader replays the commits (here: gone).
        let bytes = location.get(&checkpoint_path(101)).await.unwrap().unwrap();
        location.put(&checkpoint_path(101), bytes.slice(..bytes.len() / 2)).await.unwrap();
        let err = TimeSeriesTable::open(location.clone()).await.unwrap_err();
        assert!(matches!(err, Error::MissingLog { .. }), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_missing_checkpoint_is_written_by_a_later_commit() {
    on_every_backend(|location| async move {
        // 103 versions and no checkpoint at all: the one due at 100 and its catch-up both lost.
        copy_fixture("checkpoint-catch-up-v1", &location, &[checkpoint_path(101)]).await;
        let mut table = TimeSeriesTable::open(location.clone()).await.unwrap();
        let mut stale = TimeSeriesTable::open(location.clone()).await.unwrap();
        assert_eq!(table.version(), 103);

        assert_eq!(table.append(vec![minute_bars(&["MSFT"], T0, 1)]).await.unwrap().version, 104);
        let bytes = location.get(&checkpoint_path(104)).await.unwrap().expect("checkpoint written at 104");
        assert_eq!(decode_checkpoint(&bytes, 104).unwrap().segments.len(), 103);
        // One per gap, not one per commit.
        table.append(vec![minute_bars(&["MSFT"], T0 + MINUTE, 1)]).await.unwrap();
        assert!(!has_checkpoint(&location, 105).await);
        // A writer that has not seen the new checkpoint finds it by listing, and writes none.
        let landed = stale.append(vec![minute_bars(&["MSFT"], T0 + 2 * MINUTE, 1)]).await.unwrap();
        assert_eq!((landed.version, landed.attempts), (106, 2));
        assert!(!has_checkpoint(&location, 106).await);

        // Readers use it: the commits it covers are no longer needed.
        delete_commits_through(&location, 104).await;
        let reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
        assert_eq!((reopened.version(), reopened.segments().len()), (106, 105));
    })
    .await;
}

#[tokio::test]
async fn a_failed_scheduled_checkpoint_is_written_by_the_next_commit() {
    let (store, next) = crate::reliability::checkpoint_due_store("t").await;
    let (tmp, location) = temp_location();
    let dir = tmp.path().join("table");
    crate::reliability::dump_to_dir(&store, "t", &dir).await;
    let mut table = TimeSeriesTable::open(location.clone()).await.unwrap();
    assert_eq!(table.version(), CHECKPOINT_INTERVAL - 1);
    // A directory where the checkpoint goes makes its write fail; the commit must not.
    std::fs::create_dir_all(dir.join(checkpoint_path(CHECKPOINT_INTERVAL))).unwrap();
    assert_eq!(table.append(vec![next]).await.unwrap().version, CHECKPOINT_INTERVAL);
    assert!(!has_checkpoint(&location, CHECKPOINT_INTERVAL).await);

    table.append(vec![minute_bars(&["K"], T0 - HOUR, 1)]).await.unwrap();
    assert!(has_checkpoint(&location, CHECKPOINT_INTERVAL + 1).await, "the next commit catches up");
    delete_commits_through(&location, CHECKPOINT_INTERVAL).await;
    let reopened = TimeSeriesTable::open(location).await.unwrap();
    assert_eq!((reopened.version(), reopened.segments().len() as u64), (CHECKPOINT_INTERVAL + 1, CHECKPOINT_INTERVAL));
}

// Fixture generators: run by hand once (`cargo test --test integration write_<name>_fixture
// -- --ignored`); each refuses to overwrite an existing fixture.

fn new_fixture_dir(name: &str) -> TableLocation {
    let root = fixture(name);
    assert!(!root.exists(), "{} exists; a format change adds a new fixture instead", root.display());
    TableLocation::local(&root).unwrap()
}

async fn put_json(location: &TableLocation, relative: &str, value: &serde_json::Value) {
    location.put(relative, Bytes::from(serde_json::to_vec_pretty(value).unwrap())).await.unwrap();
}

#[tokio::test]
#[ignore = "generates a golden fixture; run by hand only"]
async fn write_format_v3_commit_fixture() {
    let location = new_fixture_dir("format-v3-commit");
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["AAPL"], T0, 10)]).await.unwrap();
    // What a format-3 writer might commit: an action format 2 does not have.
    let commit = r#"{
  "format_version": 3,
  "version": 3,
  "committed_at": 1767225600000,
  "operation": "set_retention",
  "txn_id": "5f0c2a7e9b8d4c3fa1e6d2b7c8a9f001",
  "actions": [
    {
      "SetRetention": {
        "keep": "30d"
      }
    }
  ]
}"#;
    location.put(&commit_path(3), Bytes::from_static(commit.as_bytes())).await.unwrap();
    location.put("_timeseries_log/CURRENT", Bytes::from_static(b"3")).await.unwrap();
}

#[tokio::test]
#[ignore = "generates a golden fixture; run by hand only"]
async fn write_format_v3_checkpoint_fixture() {
    let location = new_fixture_dir("format-v3-checkpoint");
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["AAPL"], T0, 10)]).await.unwrap();
    table.append(vec![minute_bars(&["AAPL"], T0 + HOUR, 10)]).await.unwrap();
    // A format-3 checkpoint: a new field, and a checksum by rules format 2 does not know.
    let current = encode_checkpoint(table.snapshot().state()).unwrap();
    let mut checkpoint: serde_json::Value = serde_json::from_slice(&current).unwrap();
    checkpoint["format_version"] = 3.into();
    checkpoint["properties"] = serde_json::json!({"retention": "30d"});
    checkpoint["crc32"] = 0.into();
    put_json(&location, &checkpoint_path(3), &checkpoint).await;
}

#[tokio::test]
#[ignore = "generates a golden fixture; run by hand only"]
async fn write_checkpoint_catch_up_v1_fixture() {
    let location = new_fixture_dir("checkpoint-catch-up-v1");
    let mut table = new_table(location.clone(), "1m").await;
    let mut minute = 0;
    while table.version() < CHECKPOINT_INTERVAL {
        table.append(vec![minute_bars(&["AAPL"], T0 + minute * MINUTE, 1)]).await.unwrap();
        minute += 1;
    }
    // The writer of version 100 died before writing its checkpoint.
    location.delete(&checkpoint_path(CHECKPOINT_INTERVAL)).await.unwrap();
    let mut table = TimeSeriesTable::open(location.clone()).await.unwrap();
    while table.version() < CHECKPOINT_INTERVAL + 3 {
        table.append(vec![minute_bars(&["AAPL"], T0 + minute * MINUTE, 1)]).await.unwrap();
        minute += 1;
    }
    let checkpoints: Vec<String> = location
        .list("_timeseries_log")
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .filter(|p| p.ends_with(".checkpoint.json"))
        .collect();
    assert_eq!(checkpoints, vec![checkpoint_path(CHECKPOINT_INTERVAL + 1)]);
}
