//! Corruption the other suites do not cover (`coverage.rs` has the deleted snapshot, the
//! garbage segment sidecar and sidecar-plus-data-file gone; `log_contract.rs` has a
//! non-JSON and a missing commit and a few bad `CURRENT` hints): truncated snapshots and
//! sidecars, a sidecar gone with its Parquet file damaged, torn or misplaced commit files,
//! data files missing or truncated at scan time (Rust API and SQL), more `CURRENT` garbage.

use bytes::Bytes;
use futures::TryStreamExt;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;
use timeseries_table_core::Error;

use super::{coverage_answers, observe, scan_rows};
use crate::common::*;

/// A table with a table coverage snapshot on disk and a segment appended after it
/// (appends until the snapshot policy writes one). Returns the table and the snapshot
/// paths.
async fn table_with_snapshot(location: TableLocation) -> (TimeSeriesTable, Vec<String>) {
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A", "B"], T0, 30)]).await.unwrap();
    for hour in 1..200 {
        if !location.list("_coverage/table").await.unwrap().is_empty() {
            break;
        }
        table.append(vec![minute_bars(&["A"], T0 + hour * HOUR, 5)]).await.unwrap();
    }
    table.append(vec![minute_bars(&["C"], T0, 7)]).await.unwrap();
    let snapshots: Vec<String> = location.list("_coverage/table").await.unwrap().into_iter().map(|f| f.path).collect();
    assert!(!snapshots.is_empty(), "no table coverage snapshot was written");
    (table, snapshots)
}

async fn truncate(location: &TableLocation, path: &str) {
    let bytes = location.get(path).await.unwrap().unwrap();
    location.put(path, bytes.slice(..bytes.len() / 2)).await.unwrap();
}

#[tokio::test]
async fn truncated_coverage_files_are_rebuilt() {
    let (dir, location) = temp_location();
    let (table, snapshots) = table_with_snapshot(location.clone()).await;
    let expected = observe(&table).await;

    // Every table snapshot truncated: rebuilt from the segment sidecars.
    for path in &snapshots {
        truncate(&location, path).await;
    }
    let reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
    assert_eq!(observe(&reopened).await, expected);
    // The overlap rule still holds against the rebuilt coverage, and nothing is written.
    let before = tree_snapshot(dir.path());
    let mut writer = TimeSeriesTable::open(location.clone()).await.unwrap();
    let err = writer.append(vec![minute_bars(&["B"], T0 + 29 * MINUTE, 1)]).await.unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err}");
    assert_eq!(tree_snapshot(dir.path()), before);

    // Segment sidecars truncated or deleted too: recomputed from the Parquet files.
    let segments = table.segments();
    truncate(&location, &segments[0].coverage_path).await;
    location.delete(&segments[1].coverage_path).await.unwrap();
    let reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
    assert_eq!(observe(&reopened).await, expected);

    // A sidecar gone and its Parquet file truncated: a clear error naming both.
    truncate(&location, &segments[1].path).await;
    let err = coverage_answers(&TimeSeriesTable::open(location.clone()).await.unwrap()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::MissingCoverage { .. }), "{text}");
    assert!(text.contains(&segments[1].coverage_path) && text.contains(&segments[1].path), "{text}");
}

#[tokio::test]
async fn torn_or_misplaced_commit_files_are_named() {
    let location = memory_location();
    let mut table = new_table(location.clone(), "1m").await;
    for hour in 0..3 {
        table.append(vec![minute_bars(&["A"], T0 + hour * HOUR, 5)]).await.unwrap();
    }
    let commit3 = location.get("_timeseries_log/0000000003.json").await.unwrap().unwrap();
    let commit2 = location.get("_timeseries_log/0000000002.json").await.unwrap().unwrap();
    let cases: [(&str, Bytes, &str); 4] = [
        ("truncated", commit3.slice(..commit3.len() / 2), "not a valid commit"),
        ("empty", Bytes::new(), "not a valid commit"),
        ("holding another version", commit2.clone(), "holds version 2 instead of 3"),
        ("valid JSON, not a commit", Bytes::from_static(b"{\"version\": 3}"), "not a valid commit"),
    ];
    for (what, bytes, needle) in cases {
        location.put("_timeseries_log/0000000003.json", bytes).await.unwrap();
        let err = TimeSeriesTable::open(location.clone()).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::CorruptLog { .. }), "{what}: {text}");
        assert!(text.contains("0000000003.json") && text.contains(needle), "{what}: {text}");
        // Versions before the damage stay readable.
        assert_eq!(TimeSeriesTable::open_at(location.clone(), 2).await.unwrap().version(), 2, "{what}");
    }
    location.put("_timeseries_log/0000000003.json", commit3).await.unwrap();

    // The first commit gone: the table is not silently empty.
    let first = location.get("_timeseries_log/0000000001.json").await.unwrap().unwrap();
    location.delete("_timeseries_log/0000000001.json").await.unwrap();
    let err = TimeSeriesTable::open(location.clone()).await.unwrap_err();
    assert!(matches!(err, Error::MissingLog { .. }) && err.to_string().contains("0000000001.json"), "{err}");
    location.put("_timeseries_log/0000000001.json", first).await.unwrap();
    assert_eq!(TimeSeriesTable::open(location).await.unwrap().version(), 4);
}

#[tokio::test]
async fn more_garbage_in_current_is_recovered_by_probing() {
    let location = memory_location();
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 5)]).await.unwrap();
    table.append(vec![minute_bars(&["A"], T0 + HOUR, 5)]).await.unwrap();
    let garbage: [&[u8]; 7] =
        [b"0", b"-1", b"18446744073709551615", b"99999999999999999999999", b"\xff\xfe\x00binary", b" 2\n", b"3abc"];
    for bytes in garbage {
        location.put("_timeseries_log/CURRENT", Bytes::copy_from_slice(bytes)).await.unwrap();
        let reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
        assert_eq!(reopened.version(), 3, "CURRENT = {:?}", String::from_utf8_lossy(bytes));
    }
    // CURRENT gone altogether, and the table still takes appends.
    location.delete("_timeseries_log/CURRENT").await.unwrap();
    let mut reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
    assert_eq!(reopened.append(vec![minute_bars(&["A"], T0 + 2 * HOUR, 5)]).await.unwrap().version, 4);
}

/// Runs a full scan both through `TimeSeriesTable::scan` and through SQL; returns both
/// errors' texts.
async fn scan_errors(location: &TableLocation) -> (String, String) {
    let table = TimeSeriesTable::open(location.clone()).await.unwrap();
    let rust = match table.scan(None).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let ctx = timeseries_table_core::datafusion::session_context();
    timeseries_table_core::datafusion::register_opened(&ctx, "t", table).unwrap();
    let sql = match ctx.sql("SELECT * FROM t ORDER BY ts").await {
        Ok(frame) => frame.collect().await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    (
        rust.expect_err("scan over a damaged data file must fail"),
        sql.expect_err("SQL over a damaged data file must fail"),
    )
}

#[tokio::test]
async fn a_missing_data_file_is_named_at_scan_time() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
    table.append(vec![minute_bars(&["A"], T0 + HOUR, 10)]).await.unwrap();
    let victim = table.segments()[1].clone();
    let answers = coverage_answers(&table).await.unwrap();
    location.delete(&victim.path).await.unwrap();
    let (rust, sql) = scan_errors(&location).await;
    for (surface, text) in [("Rust scan", &rust), ("SQL", &sql)] {
        assert!(text.contains(&victim.path), "{surface}: the error must name the missing file: {text}");
    }
    // Coverage questions need no data file: they still answer.
    let reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
    assert_eq!(coverage_answers(&reopened).await.unwrap(), answers);
    // A scan that prunes the damaged segment by time still works.
    let first_hour = timeseries_table_core::table::TimeRange::from_nanos(T0, T0 + HOUR).unwrap();
    let rows: Vec<_> = reopened.scan(Some(first_hour)).await.unwrap().try_collect().await.unwrap();
    assert_eq!(row_count(&rows), 10);
}

#[tokio::test]
async fn a_truncated_data_file_is_named_at_scan_time() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
    table.append(vec![minute_bars(&["A"], T0 + HOUR, 10)]).await.unwrap();
    let victim = table.segments()[1].clone();
    truncate(&location, &victim.path).await;
    let (rust, sql) = scan_errors(&location).await;
    for (surface, text) in [("Rust scan", &rust), ("SQL", &sql)] {
        assert!(text.contains(&victim.path), "{surface}: the error must name the damaged file: {text}");
    }
    // Nothing else is affected.
    let reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
    assert!(scan_rows(&reopened).await.is_err());
    assert_eq!(reopened.version(), 3);
}
