//! The transaction-log contract, run against both in-memory and local-directory storage:
//! replay, time travel, orphan commits beyond `CURRENT`, racing writers, damaged logs.

use bytes::Bytes;
use timeseries_table_core::table::TimeSeriesTable;
use timeseries_table_core::Error;

use crate::common::*;

#[tokio::test]
async fn replay_and_time_travel_to_every_version() {
    on_every_backend(|location| async move {
        let mut table = new_table(location.clone(), "1m").await;
        for hour in 0..3 {
            table.append(vec![minute_bars(&["A", "B"], T0 + hour * HOUR, 10)]).await.unwrap();
        }
        let latest = TimeSeriesTable::open(location.clone()).await.unwrap();
        assert_eq!(latest.version(), 4);
        assert_eq!(latest.snapshot().state().row_count(), 60);
        for version in 1..=4u64 {
            let old = TimeSeriesTable::open_at(location.clone(), version).await.unwrap();
            assert_eq!(old.version(), version);
            assert_eq!(old.segments().len() as u64, version - 1);
            assert_eq!(old.snapshot().state().row_count(), (version - 1) * 20);
        }
        let err = TimeSeriesTable::open_at(location.clone(), 5).await.unwrap_err();
        assert!(matches!(err, Error::VersionNotFound { requested: 5, latest: 4, .. }), "{err}");
        // A time-travel handle is read-only.
        let mut old = TimeSeriesTable::open_at(location.clone(), 2).await.unwrap();
        assert!(old.append(vec![minute_bars(&["Z"], T0, 1)]).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn open_empty_location_is_empty_table() {
    on_every_backend(|location| async move {
        let err = TimeSeriesTable::open(location).await.unwrap_err();
        assert!(matches!(err, Error::EmptyTable { .. }), "{err}");
    })
    .await;
}

#[tokio::test]
async fn create_twice_is_refused() {
    on_every_backend(|location| async move {
        new_table(location.clone(), "1m").await;
        let again = TimeSeriesTable::create_with_spec(location, spec("1m")).await.unwrap_err();
        assert!(matches!(again, Error::TableExists { .. }), "{again}");
    })
    .await;
}

#[tokio::test]
async fn commits_beyond_a_stale_or_garbled_current_are_found() {
    on_every_backend(|location| async move {
        let mut table = new_table(location.clone(), "1m").await;
        table.append(vec![minute_bars(&["A"], T0, 5)]).await.unwrap();
        table.append(vec![minute_bars(&["A"], T0 + HOUR, 5)]).await.unwrap();
        // A writer that died after its commit file but before updating the hint.
        location.put("_timeseries_log/CURRENT", Bytes::from_static(b"1")).await.unwrap();
        assert_eq!(TimeSeriesTable::open(location.clone()).await.unwrap().version(), 3);
        for garbage in [&b"not a number"[..], b"", b"99"] {
            location.put("_timeseries_log/CURRENT", Bytes::copy_from_slice(garbage)).await.unwrap();
            let reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
            assert_eq!(reopened.version(), 3, "CURRENT = {:?}", String::from_utf8_lossy(garbage));
        }
        // And the table stays writable.
        let mut reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
        assert_eq!(reopened.append(vec![minute_bars(&["A"], T0 + 2 * HOUR, 5)]).await.unwrap().version, 4);
    })
    .await;
}

#[tokio::test]
async fn racing_writers_one_wins_the_other_retries_and_lands_next() {
    on_every_backend(|location| async move {
        let mut first = new_table(location.clone(), "1m").await;
        let mut second = TimeSeriesTable::open(location.clone()).await.unwrap();
        // Both handles believe version 1 is the latest.
        let a = first.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
        let b = second.append(vec![minute_bars(&["B"], T0, 10)]).await.unwrap();
        assert_eq!((a.version, a.attempts), (2, 1));
        assert_eq!((b.version, b.attempts), (3, 2), "the loser reloads and commits on top");
        let reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
        assert_eq!(reopened.snapshot().state().row_count(), 20);
        let cov = reopened.coverage(None, None).await.unwrap();
        assert_eq!(cov.iter().map(|c| c.covered_buckets).sum::<u64>(), 20);
    })
    .await;
}

#[tokio::test]
async fn racing_overlapping_writer_is_revalidated_and_rejected() {
    on_every_backend(|location| async move {
        let mut first = new_table(location.clone(), "1m").await;
        let mut second = TimeSeriesTable::open(location.clone()).await.unwrap();
        first.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
        let files_before = location.list("").await.unwrap().len();
        let err = second.append(vec![minute_bars(&["A"], T0 + 5 * MINUTE, 10)]).await.unwrap_err();
        assert!(matches!(err, Error::Overlap { buckets: 5, .. }), "{err}");
        assert_eq!(location.list("").await.unwrap().len(), files_before, "the loser leaves no files behind");
        assert_eq!(TimeSeriesTable::open(location.clone()).await.unwrap().version(), 2);
    })
    .await;
}

#[tokio::test]
async fn concurrent_tasks_appending_disjoint_data_all_land() {
    on_every_backend(|location| async move {
        new_table(location.clone(), "1m").await;
        let writers = 8;
        let mut handles = Vec::new();
        for w in 0..writers {
            let location = location.clone();
            handles.push(tokio::spawn(async move {
                let mut table = TimeSeriesTable::open(location).await.unwrap();
                table.append(vec![minute_bars(&[&format!("S{w}")], T0, 30)]).await.unwrap().version
            }));
        }
        let mut versions = Vec::new();
        for h in handles {
            versions.push(h.await.unwrap());
        }
        versions.sort_unstable();
        assert_eq!(versions, (2..2 + writers as u64).collect::<Vec<_>>(), "gapless versions");
        let table = TimeSeriesTable::open(location).await.unwrap();
        assert_eq!(table.snapshot().state().row_count(), writers as u64 * 30);
        let cov = table.coverage(None, None).await.unwrap();
        assert_eq!(cov.len(), writers);
        assert!(cov.iter().all(|c| c.covered_buckets == 30));
    })
    .await;
}

#[tokio::test]
async fn damaged_commit_files_are_named_in_the_error() {
    on_every_backend(|location| async move {
        let mut table = new_table(location.clone(), "1m").await;
        table.append(vec![minute_bars(&["A"], T0, 5)]).await.unwrap();
        table.append(vec![minute_bars(&["A"], T0 + HOUR, 5)]).await.unwrap();

        location.put("_timeseries_log/0000000002.json", Bytes::from_static(b"{ this is not json")).await.unwrap();
        let err = TimeSeriesTable::open(location.clone()).await.unwrap_err();
        assert!(matches!(err, Error::CorruptLog { .. }), "{err}");
        assert!(err.to_string().contains("0000000002.json"), "{err}");

        location.delete("_timeseries_log/0000000002.json").await.unwrap();
        let err = TimeSeriesTable::open(location.clone()).await.unwrap_err();
        assert!(matches!(err, Error::MissingLog { .. }), "{err}");
        assert!(err.to_string().contains("0000000002.json"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn checkpoints_shorten_replay_and_a_torn_one_is_ignored() {
    on_every_backend(|location| async move {
        let mut table = new_table(location.clone(), "1m").await;
        for i in 0..205 {
            table.append(vec![minute_bars(&["A"], T0 + i * MINUTE, 1)]).await.unwrap();
        }
        assert_eq!(table.version(), 206);
        for v in [100u64, 200] {
            assert!(location
                .size(&timeseries_table_core::transaction_log::checkpoint_path(v))
                .await
                .unwrap()
                .is_some());
        }
        let reference = table.segments();
        let opened = TimeSeriesTable::open(location.clone()).await.unwrap();
        assert_eq!(opened.segments(), reference, "checkpoint + 6 commits = full replay");
        let old = TimeSeriesTable::open_at(location.clone(), 150).await.unwrap();
        assert_eq!(old.segments().len(), 149);

        // A torn checkpoint is never trusted: the reader falls back to the previous one.
        let path = timeseries_table_core::transaction_log::checkpoint_path(200);
        let bytes = location.get(&path).await.unwrap().unwrap();
        location.put(&path, bytes.slice(..bytes.len() / 2)).await.unwrap();
        let reopened = TimeSeriesTable::open(location.clone()).await.unwrap();
        assert_eq!(reopened.segments(), reference);
        assert_eq!(reopened.coverage(None, None).await.unwrap()[0].covered_buckets, 205);
    })
    .await;
}
