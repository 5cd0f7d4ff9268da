//! Vacuum: lists exactly the unreferenced files, deletes only those at least as old as
//! the retention period and only outside dry-run mode, never touches a file a version
//! within the retention needs (segments removed within it and old coverage snapshots
//! included), and does not delete the files of an append that commits while it runs.

use std::collections::BTreeSet;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;
use timeseries_table_core::table::{OrphanStatus, TimeSeriesTable, VacuumOptions};
use timeseries_table_core::transaction_log::{Commit, CommitOutcome, LogAction, LogStore};
use timeseries_table_core::Error;

use super::faulty_store::{clean_location, Call, CallKind, FaultyStore, When};
use super::{observe, referenced_by_log, table_files, unreferenced_files};
use crate::common::*;

#[tokio::test]
async fn vacuum_respects_retention_dry_run_and_references() {
    on_every_backend(|location| async move {
        let mut table = new_table(location.clone(), "1m").await;
        let empty = table.vacuum(VacuumOptions::new().with_retention(Duration::ZERO)).await.unwrap();
        assert!(empty.orphans.is_empty() && empty.files_scanned == 0, "{empty:?}");
        table.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
        table.append(vec![minute_bars(&["A"], T0 + HOUR, 10)]).await.unwrap();
        let referenced = table_files(&location).await;
        assert!(!referenced.is_empty());

        // Orphans as a dead writer leaves them, plus one under a nested folder.
        let orphans = [
            "data/deadbeef.parquet",
            "_coverage/segments/deadbeef.roar",
            "_coverage/table/0000000009-deadbeef.roar",
            "data/nested/x.parquet",
        ];
        for (i, path) in orphans.iter().enumerate() {
            location.put(path, Bytes::from(vec![7u8; 10 + i])).await.unwrap();
        }
        let expected: BTreeSet<String> = orphans.iter().map(|s| s.to_string()).collect();
        let before = observe(&table).await;

        // Default: one hour of retention; fresh orphans are listed and kept.
        let report = table.vacuum(VacuumOptions::default()).await.unwrap();
        assert_eq!(report.orphans.iter().map(|o| o.path.clone()).collect::<BTreeSet<_>>(), expected);
        assert!(report.orphans.iter().all(|o| o.status == OrphanStatus::Retained));
        assert_eq!((report.deleted_bytes(), report.orphan_bytes()), (0, 10 + 11 + 12 + 13));
        assert_eq!(report.version, 3);
        assert_eq!(report.files_scanned, referenced.len() + orphans.len());
        // Dry run with zero retention: would delete, deletes nothing.
        let dry = table.vacuum(VacuumOptions::new().with_retention(Duration::ZERO).with_dry_run(true)).await.unwrap();
        assert!(dry.orphans.iter().all(|o| o.status == OrphanStatus::WouldDelete) && dry.dry_run);
        assert_eq!(unreferenced_files(&location).await, expected);
        // For real.
        let real = table.vacuum(VacuumOptions::new().with_retention(Duration::ZERO)).await.unwrap();
        assert_eq!(real.with_status(OrphanStatus::Deleted).count(), 4);
        assert_eq!(real.deleted_bytes(), 46);
        assert_eq!(table_files(&location).await, referenced, "exactly the orphans are gone");
        assert_eq!(observe(&TimeSeriesTable::open(location.clone()).await.unwrap()).await, before);
    })
    .await;
}

#[tokio::test]
async fn vacuum_keeps_removed_segments_for_the_retention_then_frees_them() {
    on_every_backend(|location| async move {
        let mut table = new_table(location.clone(), "1m").await;
        table.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
        table.append(vec![minute_bars(&["B"], T0, 10)]).await.unwrap();
        let v3 = observe(&table).await;
        // Version 4 removes the first segment, as a delete of all its rows would.
        let first = table.segments().into_iter().find(|s| s.entities.as_ref().is_some_and(|e| e.len() == 1)).unwrap();
        let log = LogStore::new(location.clone());
        let remove = Commit::new(4, "remove", vec![LogAction::RemoveSegment { id: first.id.clone() }]);
        assert_eq!(log.try_commit(&remove).await.unwrap(), CommitOutcome::Committed);
        table.refresh().await.unwrap();
        let v4 = observe(&table).await;
        let files = table_files(&location).await;

        // Within the retention (the default hour) the removal is recent: nothing goes, and
        // time travel to version 3 still reads the removed segment's rows.
        let report = table.vacuum(VacuumOptions::new()).await.unwrap();
        assert!(report.orphans.is_empty(), "a recently removed segment is still needed: {report:?}");
        assert_eq!(table_files(&location).await, files);
        assert_eq!(observe(&TimeSeriesTable::open_at(location.clone(), 3).await.unwrap()).await, v3);

        // Past the retention its data file and sidecar are freed, and nothing else.
        let report = table.vacuum(VacuumOptions::new().with_retention(Duration::ZERO)).await.unwrap();
        let mut deleted: Vec<&str> = report.with_status(OrphanStatus::Deleted).map(|f| f.path.as_str()).collect();
        deleted.sort();
        let mut expected = vec![first.coverage_path.as_str(), first.path.as_str()];
        expected.sort();
        assert_eq!(deleted, expected, "{report:?}");
        assert_eq!(observe(&TimeSeriesTable::open(location.clone()).await.unwrap()).await, v4);
    })
    .await;
}

#[tokio::test]
async fn vacuum_refuses_to_work_from_an_incomplete_log() {
    let location = memory_location();
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
    table.append(vec![minute_bars(&["A"], T0 + HOUR, 10)]).await.unwrap();
    let files = table_files(&location).await;
    location.put("_timeseries_log/0000000002.json", Bytes::from_static(b"{ torn")).await.unwrap();
    let err = table.vacuum(VacuumOptions::new().with_retention(Duration::ZERO)).await.unwrap_err();
    assert!(matches!(err, Error::CorruptLog { .. }) && err.to_string().contains("0000000002.json"), "{err}");
    assert_eq!(table_files(&location).await, files, "nothing deleted on an unreadable log");
    let empty = memory_location();
    assert!(matches!(TimeSeriesTable::open(empty).await.map(|_| ()), Err(Error::EmptyTable { .. })));
}

/// An append whose files were written before vacuum listed them and whose commit lands
/// while vacuum runs: its files are referenced by then and must survive a zero-retention
/// vacuum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_does_not_delete_files_committed_while_it_runs() {
    let store = Arc::new(InMemory::new());
    let mut setup = new_table(clean_location(store.clone(), "t"), "1m").await;
    setup.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();

    // Probe runs on forks: the call numbers of the writer's commit and of vacuum's
    // second look at the log.
    let probe = FaultyStore::new(Arc::new(store.fork()));
    let mut writer = TimeSeriesTable::open(probe.location("t")).await.unwrap();
    probe.reset();
    writer.append(vec![minute_bars(&["B"], T0, 10)]).await.unwrap();
    let commit_call = probe.calls().iter().find(|c| c.create && c.path.contains("_timeseries_log/")).unwrap().n;
    let probe = FaultyStore::new(Arc::new(store.fork()));
    let vacuumer = TimeSeriesTable::open(probe.location("t")).await.unwrap();
    probe.location("t").put("data/orphan.parquet", Bytes::from_static(b"x")).await.unwrap();
    probe.reset();
    vacuumer.vacuum(VacuumOptions::new().with_retention(Duration::ZERO)).await.unwrap();
    let current_gets: Vec<u64> =
        probe.calls().iter().filter(|c| c.kind == CallKind::Get && c.path.ends_with("/CURRENT")).map(|c| c.n).collect();
    assert_eq!(current_gets.len(), 2, "vacuum reads the log, then looks again before deleting");
    let recheck_call = current_gets[1];

    // The writer stages its files and stops just before creating its commit.
    let (staged_tx, staged_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (committed_tx, committed_rx) = mpsc::channel::<()>();
    let writer_store = FaultyStore::new(store.clone());
    let writer_location = writer_store.location("t");
    let go_rx = std::sync::Mutex::new(go_rx);
    let writer_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let mut writer = TimeSeriesTable::open(writer_location).await.unwrap();
            writer_store.reset();
            writer_store.hook_at(
                commit_call,
                When::Before,
                Arc::new(move |_: &Call| {
                    staged_tx.send(()).unwrap();
                    go_rx.lock().unwrap().recv().unwrap();
                }),
            );
            let result = writer.append(vec![minute_bars(&["B"], T0, 10)]).await;
            committed_tx.send(()).unwrap();
            result
        })
    });
    tokio::task::spawn_blocking(move || staged_rx.recv().unwrap()).await.unwrap();

    // Vacuum lists the staged files as unreferenced, then lets the writer commit just
    // before it looks at the log again.
    let vacuum_store = FaultyStore::new(store.clone());
    let vacuum_location = vacuum_store.location("t");
    let vacuumer = TimeSeriesTable::open(vacuum_location.clone()).await.unwrap();
    vacuum_store.reset();
    let committed_rx = std::sync::Mutex::new(committed_rx);
    vacuum_store.hook_at(
        recheck_call,
        When::Before,
        Arc::new(move |_: &Call| {
            go_tx.send(()).unwrap();
            committed_rx.lock().unwrap().recv().unwrap();
        }),
    );
    let report = vacuumer.vacuum(VacuumOptions::new().with_retention(Duration::ZERO)).await.unwrap();
    let appended = writer_thread.join().unwrap().unwrap();
    assert_eq!(appended.version, 3);
    assert!(report.orphans.is_empty(), "the writer's files were committed before deletion: {report:?}");
    assert_eq!(report.version, 3);
    let location = clean_location(store, "t");
    assert!(unreferenced_files(&location).await.is_empty());
    assert_eq!(referenced_by_log(&location).await, table_files(&location).await);
    let table = TimeSeriesTable::open(location).await.unwrap();
    assert_eq!(observe(&table).await.rows.len(), 20, "the committed append is readable");
}
