//! Coverage answers on a table with known holes, and their recovery when sidecars are
//! missing or corrupt.

use bytes::Bytes;
use timeseries_table_core::metadata::{EntityKey, EntityValue, Timestamp};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{TimeRange, TimeSeriesTable};
use timeseries_table_core::Error;

use crate::common::*;

/// AAPL: 00:00-01:00 and 02:00-03:00 (a one-hour hole); MSFT: 00:00-00:30 only.
async fn holey_table(location: TableLocation) -> TimeSeriesTable {
    let mut table = new_table(location, "1m").await;
    table.append(vec![minute_bars(&["AAPL", "MSFT"], T0, 30)]).await.unwrap();
    table.append(vec![minute_bars(&["AAPL"], T0 + 30 * MINUTE, 30)]).await.unwrap();
    table.append(vec![minute_bars(&["AAPL"], T0 + 2 * HOUR, 60)]).await.unwrap();
    table
}

fn key(symbol: &str) -> EntityKey {
    EntityKey(vec![EntityValue::Str(symbol.into())])
}

/// Everything a user can ask, rendered so two tables can be compared.
async fn answers(table: &TimeSeriesTable) -> String {
    let window = TimeRange::from_nanos(T0, T0 + 4 * HOUR).unwrap();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}",
        table.coverage(None, None).await.unwrap(),
        table.coverage(Some(window), None).await.unwrap(),
        table.gaps(Some(window), None).await.unwrap(),
        table.last_covered_window(minutes(30), None, None).await.unwrap()
    )
}

#[tokio::test]
async fn known_holes_give_exact_gaps_ratios_and_windows() {
    let table = holey_table(memory_location()).await;
    let window = TimeRange::from_nanos(T0, T0 + 4 * HOUR).unwrap();
    let cov = table.coverage(Some(window), None).await.unwrap();
    let aapl = &cov[0];
    assert_eq!(aapl.entity, key("AAPL"));
    assert_eq!((aapl.expected_buckets, aapl.covered_buckets, aapl.missing_buckets), (240, 120, 120));
    assert_eq!(aapl.coverage_ratio, 0.5);
    assert_eq!((aapl.gap_count, aapl.max_gap_buckets), (2, 60));
    assert_eq!((aapl.covered_from.map(ns), aapl.covered_until.map(ns)), (Some(T0), Some(T0 + 3 * HOUR)));
    let msft = &cov[1];
    assert_eq!((msft.covered_buckets, msft.gap_count, msft.max_gap_buckets), (30, 1, 210));

    let gaps = table.gaps(Some(window), Some(&[key("AAPL")])).await.unwrap();
    let spans: Vec<(i64, i64, u64)> =
        gaps.iter().map(|g| (ns(g.start) - T0, ns(g.end) - T0, g.missing_buckets)).collect();
    assert_eq!(spans, vec![(HOUR, 2 * HOUR, 60), (3 * HOUR, 4 * HOUR, 60)]);

    // Default window: the covered extent [00:00, 03:00).
    let default = table.coverage(None, None).await.unwrap();
    assert_eq!((ns(default[0].window.start), ns(default[0].window.end)), (T0, T0 + 3 * HOUR));
    assert_eq!(default[0].expected_buckets, 180);

    // Last fully covered hour before 02:30 is 00:00-01:00 for AAPL; MSFT has none.
    let windows = table
        .last_covered_window(minutes(60), Some(Timestamp::from_nanos(T0 + 2 * HOUR + 30 * MINUTE)), None)
        .await
        .unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!((ns(windows[0].1.start), ns(windows[0].1.end)), (T0, T0 + HOUR));
    let latest = table.last_covered_window(minutes(60), None, None).await.unwrap();
    assert_eq!((ns(latest[0].1.start), ns(latest[0].1.end)), (T0 + 2 * HOUR, T0 + 3 * HOUR));

    // A window not aligned to buckets counts the buckets it touches.
    let odd = TimeRange::from_nanos(T0 + 30 * 1_000_000_000, T0 + 2 * MINUTE).unwrap();
    assert_eq!(table.coverage(Some(odd), Some(&[key("MSFT")])).await.unwrap()[0].expected_buckets, 2);
    assert!(matches!(TimeRange::from_nanos(T0, T0), Err(Error::InvalidRange { .. })));
    assert!(
        table.last_covered_window(std::time::Duration::from_secs(90), None, None).await.is_err(),
        "length not a bucket multiple"
    );
}

#[tokio::test]
async fn missing_or_corrupt_sidecars_are_rebuilt() {
    let location = memory_location();
    let mut table = holey_table(location.clone()).await;
    // Enough small segments that the log names a table coverage snapshot.
    for i in 0..32 {
        table.append(vec![minute_bars(&["ZZZ"], T0 + DAY + i * MINUTE, 1)]).await.unwrap();
    }
    let expected = answers(&table).await;
    let snapshot_path = table.snapshot().state().coverage_snapshot.clone().unwrap().path;

    // Snapshot plus the segments added after it, as a fresh reader sees them.
    let fresh = TimeSeriesTable::open(location.clone()).await.unwrap();
    assert!(fresh.snapshot().state().segments_after_snapshot().count() > 0);
    assert_eq!(answers(&fresh).await, expected);

    // Table snapshot deleted: rebuilt from segment sidecars.
    location.delete(&snapshot_path).await.unwrap();
    assert_eq!(answers(&TimeSeriesTable::open(location.clone()).await.unwrap()).await, expected);

    // Snapshot truncated and a segment sidecar corrupt: that segment is recomputed from Parquet.
    location.put(&snapshot_path, Bytes::from_static(b"TSCOVER1\x01")).await.unwrap();
    let segment = table.segments().into_iter().find(|s| s.added_in_version == 2).unwrap();
    location.put(&segment.coverage_path, Bytes::from_static(b"garbage")).await.unwrap();
    let reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
    assert_eq!(answers(&reopened).await, expected);

    // And appends still check overlap correctly against the rebuilt coverage.
    let mut writer = TimeSeriesTable::open(location.clone()).await.unwrap();
    let err = writer.append(vec![minute_bars(&["MSFT"], T0 + 10 * MINUTE, 1)]).await.unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err}");

    // Sidecar and data file both gone: a clear error naming both files.
    location.delete(&segment.path).await.unwrap();
    let err = TimeSeriesTable::open(location.clone()).await.unwrap().coverage(None, None).await.unwrap_err();
    assert!(matches!(err, Error::MissingCoverage { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&segment.coverage_path) && text.contains(&segment.path), "{text}");
}
