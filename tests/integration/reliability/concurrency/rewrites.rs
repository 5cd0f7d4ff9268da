//! Rewrites racing: compactions against appends and deletes (in tasks and in a separate
//! process), two writers forced to plan on one version with the second losing the commit
//! race (a rewrite rebases over appends of rows it does not select, and plans again when
//! its inputs went or rows it selects arrived), and
//! compactions of the same segments (exactly one commits). Afterwards every acknowledged
//! row is there exactly once, every deleted row is gone, versions have no holes, the
//! coverage is exactly the rows' buckets and no file is orphaned.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::Int64Array;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use timeseries_table_core::formats::parquet::stats::timestamps_as_nanos;
use timeseries_table_core::metadata::EntityValue;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{CommitInfo, CompactOptions, EntityFilter, RowSelector, TimeRange, TimeSeriesTable};
use timeseries_table_core::Error;

use super::{append_retrying, consistent_reader, net_rows, results, scale, segment, writer_process};
use crate::common::*;
use crate::reliability::faulty_store::{clean_location, Call, CallKind, FaultyStore, When};
use crate::reliability::{
    assert_coverage_is_the_rows_buckets, child_env, child_role_is, observe, row_keys, scan_row_keys, spawn_child,
    unreferenced_files, CHILD_ROLE,
};

/// What a compacting task or process did.
#[derive(Debug, Default)]
struct Compactions {
    /// The versions it committed.
    committed: Vec<u64>,
    /// Runs that found nothing to merge.
    idle: usize,
    /// Runs that exhausted their commit attempts (`Error::Conflict`).
    gave_up: usize,
}

/// Compacts through one handle until `done`, and once more after it is set, so that the
/// last run sees every write. Merged segments of `target_rows` stay; smaller ones are
/// merged again with whatever was appended since.
async fn compact_until(location: TableLocation, done: Arc<AtomicBool>, target_rows: u64) -> Compactions {
    let mut table = TimeSeriesTable::open(location).await.unwrap();
    let mut out = Compactions::default();
    loop {
        let finished = done.load(Ordering::SeqCst);
        match table.compact(CompactOptions::new().with_target_rows(target_rows)).await {
            Ok(report) => match report.version {
                Some(version) => out.committed.push(version),
                None => {
                    assert!(report.nothing_to_do(), "a compaction with work to do committed nothing: {report:?}");
                    out.idle += 1;
                }
            },
            Err(Error::Conflict { .. }) => out.gave_up += 1,
            Err(e) => panic!("a compaction failed: {e}"),
        }
        if finished {
            return out;
        }
        // Pacing only: an idle run is a refresh; don't spin on the log.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Where two lists of row keys differ, for a readable failure.
fn row_difference(expected: &[String], seen: &[String]) -> String {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for row in expected {
        *counts.entry(row).or_default() += 1;
    }
    for row in seen {
        *counts.entry(row).or_default() -= 1;
    }
    let lost: Vec<_> = counts.iter().filter(|(_, n)| **n > 0).map(|(r, _)| *r).take(5).collect();
    let extra: Vec<_> = counts.iter().filter(|(_, n)| **n < 0).map(|(r, n)| format!("{r} (x{})", -n)).take(5).collect();
    format!(
        "{} rows expected, {} seen; lost e.g. {lost:?}; extra or duplicated e.g. {extra:?}",
        expected.len(),
        seen.len()
    )
}

/// Checks a table after concurrent appends and rewrites: versions 1..N without holes, the
/// commits' row counts add up, the rows are exactly `expected` (each as often: nothing lost,
/// nothing duplicated), the coverage is exactly their buckets, and no file is orphaned.
/// Returns the history.
async fn check_exact(location: &TableLocation, expected: &[String], label: &str) -> Vec<CommitInfo> {
    let table = TimeSeriesTable::open(location.clone()).await.unwrap();
    let history = table.history().await.unwrap();
    let versions: Vec<u64> = history.iter().map(|c| c.version).collect();
    assert_eq!(versions, (1..=table.version()).collect::<Vec<_>>(), "{label}: versions 1..N without holes");
    let rows = scan_row_keys(&table).await;
    assert_eq!(net_rows(&history), rows.len() as u64, "{label}: the commits' row counts do not add up");
    assert!(rows == expected, "{label}: {}", row_difference(expected, &rows));
    assert_coverage_is_the_rows_buckets(&table, label).await;
    let orphans = unreferenced_files(location).await;
    assert!(orphans.is_empty(), "{label}: files nothing references after successful writes: {orphans:?}");
    history
}

/// Asserts that each of `versions` is a commit of `operation`.
fn assert_operations(history: &[CommitInfo], versions: &[u64], operation: &str, label: &str) {
    for &v in versions {
        assert_eq!(history[v as usize - 1].operation, operation, "{label}: version {v}");
    }
}

async fn compaction_racing_appends(location: TableLocation, label: &str) {
    let mut creator = new_table(location.clone(), "1m").await;
    let seed = segment("SEED", 0, 5);
    creator.append(vec![seed.clone()]).await.unwrap();
    let mut expected = row_keys(&[seed]);
    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(consistent_reader(location.clone(), Arc::clone(&done)));
    // Appends of 6 rows are small for a target of 40: every compaction has new work.
    let compactor = tokio::spawn(compact_until(location.clone(), Arc::clone(&done), 40));
    let mut writers = Vec::new();
    for w in 0..4 * scale() {
        let batches: Vec<_> = (0..5).map(|hour| segment(&format!("W{w}"), hour, 6)).collect();
        expected.extend(row_keys(&batches));
        let location = location.clone();
        writers.push(tokio::spawn(async move {
            let mut table = TimeSeriesTable::open(location).await.unwrap();
            let mut acknowledged = Vec::new();
            for batch in batches {
                acknowledged.push(append_retrying(&mut table, batch).await);
            }
            acknowledged
        }));
    }
    let (mut appended, mut gave_up) = (Vec::new(), 0);
    for w in writers {
        for (version, conflicts) in w.await.unwrap() {
            appended.push(version);
            gave_up += conflicts;
        }
    }
    done.store(true, Ordering::SeqCst);
    let compactions = compactor.await.unwrap();
    let reads = reader.await.unwrap();
    expected.sort();

    let history = check_exact(&location, &expected, label).await;
    assert_operations(&history, &appended, "append", label);
    assert_operations(&history, &compactions.committed, "compact", label);
    assert_eq!(history.len(), 2 + appended.len() + compactions.committed.len(), "{label}: commits nobody reported");
    assert!(!compactions.committed.is_empty(), "{label}: no compaction committed");
    if compactions.gave_up == 0 {
        // The last run came after every append: at most its own tail is still small.
        let table = TimeSeriesTable::open(location.clone()).await.unwrap();
        let small = table.segments().iter().filter(|s| s.row_count < 20).count();
        assert!(small <= 1, "{label}: {small} small segments left after the last compaction");
    }
    println!(
        "{label}: {} appends, {} compactions committed ({} found nothing, {} gave up), {reads} consistent reads, \
         {gave_up} append(s) retried after exhausting their commit attempts",
        appended.len(),
        compactions.committed.len(),
        compactions.idle,
        compactions.gave_up
    );
    if scale() == 1 {
        assert_eq!(gave_up, 0, "{label}: at this contention no append should exhaust its commit attempts");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_racing_appends_loses_and_duplicates_no_row() {
    let faulty = FaultyStore::new(Arc::new(InMemory::new()));
    faulty.delay(Some(CallKind::Put), Duration::from_millis(3));
    compaction_racing_appends(faulty.location("t"), "compaction and appends, memory (delayed puts)").await;
    let (_dir, location) = temp_location();
    compaction_racing_appends(location, "compaction and appends, local directory").await;
}

/// The rows of symbol `symbol` a deleter deletes from: 10 minutes in each of 5 hours, one
/// segment per hour (hour 0 in the base, the others appended by the deleter).
fn delete_base(symbol: &str) -> Vec<(String, i64)> {
    (0..5).flat_map(|hour| (0..10).map(move |m| (symbol.to_string(), T0 + hour * HOUR + m * MINUTE))).collect()
}

/// One delete of a deleter's own symbol: the rows from minute `from` to `to` (after T0),
/// all of them or those with an even volume (a row test).
#[derive(Clone, Copy)]
struct DeleteSpec {
    from: i64,
    to: i64,
    even_only: bool,
}

/// The i-th deletes in hour i, the last in hour 1 again: a whole segment (hour 0, unless a
/// compaction merged it meanwhile), parts of segments, a row test (hour 3) and a part of a
/// segment a delete already rewrote.
const DELETES: [DeleteSpec; 6] = [
    DeleteSpec { from: 0, to: 60, even_only: false },
    DeleteSpec { from: 60, to: 63, even_only: false },
    DeleteSpec { from: 123, to: 125, even_only: false },
    DeleteSpec { from: 180, to: 240, even_only: true },
    DeleteSpec { from: 249, to: 250, even_only: false },
    DeleteSpec { from: 67, to: 68, even_only: false },
];

impl DeleteSpec {
    fn selector(self, symbol: &str) -> RowSelector {
        let range = TimeRange::from_nanos(T0 + self.from * MINUTE, T0 + self.to * MINUTE).unwrap();
        let own = EntityFilter::from([(0, BTreeSet::from([EntityValue::Str(symbol.into())]))]);
        let selector = RowSelector::range(range, own);
        if !self.even_only {
            return selector;
        }
        selector.with_matcher(Arc::new(|batch| {
            let volume = batch.column_by_name("volume").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
            Ok(volume.iter().map(|v| v.map(|v| v % 2 == 0)).collect())
        }))
    }

    /// Whether it removes the row at `t` (of its symbol). Volume is the minute since the
    /// epoch, mod 1000 (see `bars`).
    fn removes(self, t: i64) -> bool {
        (T0 + self.from * MINUTE..T0 + self.to * MINUTE).contains(&t)
            && (!self.even_only || (t / MINUTE % 1000) % 2 == 0)
    }
}

fn keys_of(rows: &[(String, i64)]) -> Vec<String> {
    let rows: Vec<(&str, i64)> = rows.iter().map(|(s, t)| (s.as_str(), *t)).collect();
    row_keys(&[bars(arrow::datatypes::TimeUnit::Nanosecond, None, &rows)])
}

async fn compaction_racing_deletes(location: TableLocation, label: &str) {
    let mut table = new_table(location.clone(), "1m").await;
    let symbols: Vec<String> = (0..3 * scale()).map(|d| format!("D{d}")).collect();
    let mut expected = Vec::new();
    for symbol in &symbols {
        table.append(vec![segment(symbol, 0, 10)]).await.unwrap();
        let left: Vec<_> =
            delete_base(symbol).into_iter().filter(|(_, t)| !DELETES.iter().any(|d| d.removes(*t))).collect();
        expected.extend(keys_of(&left));
    }
    let base_version = table.version();
    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(consistent_reader(location.clone(), Arc::clone(&done)));
    // Segments under 30 rows are merged: every appended hour and the remainders of
    // segments the deletes rewrote, often while a delete reads the same segment.
    let compactor = tokio::spawn(compact_until(location.clone(), Arc::clone(&done), 60));
    let mut deleters = Vec::new();
    for symbol in &symbols {
        let location = location.clone();
        let symbol = symbol.clone();
        deleters.push(tokio::spawn(async move {
            let mut table = TimeSeriesTable::open(location).await.unwrap();
            let (mut appended, mut committed, mut gave_up) = (Vec::new(), Vec::new(), 0);
            for (hour, spec) in DELETES.into_iter().enumerate() {
                // Each hour is appended (a small segment) just before the delete in it.
                if (1..5).contains(&hour) {
                    let (version, conflicts) = append_retrying(&mut table, segment(&symbol, hour as i64, 10)).await;
                    appended.push(version);
                    gave_up += conflicts;
                }
                let selector = spec.selector(&symbol);
                let want = delete_base(&symbol).iter().filter(|(_, t)| spec.removes(*t)).count() as u64;
                let report = loop {
                    match table.delete(&selector).await {
                        Ok(report) => break report,
                        Err(Error::Conflict { .. }) => gave_up += 1,
                        Err(e) => panic!("a delete of {symbol} failed: {e}"),
                    }
                };
                assert_eq!(report.rows_deleted, want, "a delete of {symbol} removed other rows: {report:?}");
                committed.push(report.version.expect("a delete that removed rows committed"));
            }
            (appended, committed, gave_up)
        }));
    }
    let (mut appended, mut deleted, mut gave_up) = (Vec::new(), Vec::new(), 0);
    for d in deleters {
        let (appends, deletes, conflicts) = d.await.unwrap();
        appended.extend(appends);
        deleted.extend(deletes);
        gave_up += conflicts;
    }
    done.store(true, Ordering::SeqCst);
    let compactions = compactor.await.unwrap();
    let reads = reader.await.unwrap();
    expected.sort();

    let history = check_exact(&location, &expected, label).await;
    assert_operations(&history, &deleted, "delete", label);
    assert_operations(&history, &appended, "append", label);
    assert_operations(&history, &compactions.committed, "compact", label);
    assert_eq!(
        history.len() as u64,
        base_version + (deleted.len() + appended.len() + compactions.committed.len()) as u64,
        "{label}: commits nobody reported"
    );
    assert!(!compactions.committed.is_empty(), "{label}: no compaction committed");
    println!(
        "{label}: {} deletes and {} appends ({gave_up} retried after exhausting their attempts), {} compactions \
         committed ({} found nothing, {} gave up), {reads} consistent reads",
        deleted.len(),
        appended.len(),
        compactions.committed.len(),
        compactions.idle,
        compactions.gave_up
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_racing_deletes_removes_exactly_the_selected_rows() {
    let faulty = FaultyStore::new(Arc::new(InMemory::new()));
    faulty.delay(Some(CallKind::Put), Duration::from_millis(3));
    compaction_racing_deletes(faulty.location("t"), "compaction and deletes, memory (delayed puts)").await;
    let (_dir, location) = temp_location();
    compaction_racing_deletes(location, "compaction and deletes, local directory").await;
}

/// A meeting point for store hooks, which are synchronous: `wait` blocks (moving the
/// worker's other tasks away) until `n` callers have arrived. It panics after 20 s, so a
/// race that went wrong fails instead of hanging.
struct Rendezvous {
    n: usize,
    arrived: std::sync::Mutex<usize>,
    all: std::sync::Condvar,
}

impl Rendezvous {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Rendezvous { n, arrived: std::sync::Mutex::new(0), all: std::sync::Condvar::new() })
    }

    fn wait(&self) {
        tokio::task::block_in_place(|| {
            let mut arrived = self.arrived.lock().unwrap();
            *arrived += 1;
            self.all.notify_all();
            let (arrived, waited) =
                self.all.wait_timeout_while(arrived, Duration::from_secs(20), |a| *a < self.n).unwrap();
            assert!(!waited.timed_out(), "only {} of {} writers got to the meeting point", *arrived, self.n);
        });
    }
}

/// One write of the two-writer races. A delete removes the rows of `symbol` from minute
/// `from` to `to` (after T0).
#[derive(Clone)]
enum Write {
    Append(arrow::array::RecordBatch),
    Compact,
    Delete { symbol: &'static str, from: i64, to: i64 },
}

/// What a write of the two-writer races reported.
#[derive(Debug)]
struct Wrote {
    /// `None`: nothing to do.
    version: Option<u64>,
    rows_deleted: u64,
}

impl Write {
    fn operation(&self) -> &'static str {
        match self {
            Write::Append(_) => "append",
            Write::Compact => "compact",
            Write::Delete { .. } => "delete",
        }
    }

    async fn run(self, table: &mut TimeSeriesTable) -> Wrote {
        match self {
            Write::Append(batch) => {
                let appended = table.append(vec![batch]).await.unwrap();
                Wrote { version: Some(appended.version), rows_deleted: 0 }
            }
            Write::Compact => {
                let report = table.compact(CompactOptions::new()).await.unwrap();
                Wrote { version: report.version, rows_deleted: 0 }
            }
            Write::Delete { symbol, from, to } => {
                let range = TimeRange::from_nanos(T0 + from * MINUTE, T0 + to * MINUTE).unwrap();
                let own = EntityFilter::from([(0, BTreeSet::from([EntityValue::Str(symbol.into())]))]);
                let report = table.delete(&RowSelector::range(range, own)).await.unwrap();
                Wrote { version: report.version, rows_deleted: report.rows_deleted }
            }
        }
    }
}

/// Runs `first` and `second` on two handles of the table at `root`, both planned on the
/// same version: each waits at its first write until the other has planned too, and
/// `second` creates its commit file only after `first` committed (wrote `CURRENT`), so
/// `second` loses the race for that version.
async fn race_two(store: &Arc<dyn ObjectStore>, root: &str, first: Write, second: Write) -> (Wrote, Wrote) {
    let planned = Rendezvous::new(2);
    let committed = Rendezvous::new(2);
    let mut tasks = Vec::new();
    for (write, is_first) in [(first, true), (second, false)] {
        let faulty = FaultyStore::new(Arc::clone(store));
        let mut table = TimeSeriesTable::open(faulty.location(root)).await.unwrap();
        let (planned, committed) = (Arc::clone(&planned), Arc::clone(&committed));
        let (staged, signalled) = (AtomicBool::new(false), AtomicBool::new(false));
        let hook = move |call: &Call| {
            if !staged.swap(true, Ordering::SeqCst) {
                planned.wait();
            }
            let meets = if is_first {
                call.path.ends_with("/CURRENT")
            } else {
                call.create && call.path.contains("/_timeseries_log/")
            };
            if meets && !signalled.swap(true, Ordering::SeqCst) {
                committed.wait();
            }
        };
        faulty.hook_every(Some(CallKind::Put), When::Before, Arc::new(hook));
        tasks.push(tokio::spawn(async move {
            let wrote = write.run(&mut table).await;
            let commits_tried =
                faulty.calls().iter().filter(|c| c.create && c.path.contains("/_timeseries_log/")).count();
            (wrote, commits_tried)
        }));
    }
    let (second, tried) = tasks.pop().unwrap().await.unwrap();
    let (first, _) = tasks.pop().unwrap().await.unwrap();
    assert!(tried >= 2, "the second writer's first commit attempt was not the lost race ({tried} attempts)");
    (first, second)
}

/// The two-writer races, each on a fresh table from `new_store`: A and B, hours 0 to 3, 10
/// minutes each, one segment per symbol and hour. Per race: the two writes, in commit
/// order, and how many segments are live afterwards.
async fn two_writer_races(new_store: impl Fn() -> (Arc<dyn ObjectStore>, String), label: &str) {
    let late_a = || Write::Append(minute_bars(&["A"], T0 + HOUR + 30 * MINUTE, 10));
    let races = [
        // A compaction rebases over an append, and an append over a compaction.
        ("append, then compaction", Write::Append(segment("C", 0, 10)), Write::Compact, 2),
        ("compaction, then append", Write::Compact, Write::Append(segment("C", 0, 10)), 2),
        // A delete whose segment was merged meanwhile deletes from the merged one.
        ("compaction, then delete", Write::Compact, Write::Delete { symbol: "A", from: 60, to: 65 }, 1),
        ("compaction, then dropping delete", Write::Compact, Write::Delete { symbol: "A", from: 120, to: 180 }, 1),
        // A compaction whose input was rewritten or dropped meanwhile plans again.
        ("delete, then compaction", Write::Delete { symbol: "A", from: 60, to: 65 }, Write::Compact, 1),
        ("dropping delete, then compaction", Write::Delete { symbol: "A", from: 120, to: 180 }, Write::Compact, 1),
        // A delete sees every row it selects at the version it commits: one that lost the
        // race to an append of such rows plans again and deletes them too.
        ("append, then delete", late_a(), Write::Delete { symbol: "A", from: 60, to: 120 }, 7),
        ("delete, then append", Write::Delete { symbol: "A", from: 60, to: 120 }, late_a(), 8),
    ];
    for (race, first, second, live) in races {
        let label = format!("{label}, {race}");
        let (store, root) = new_store();
        let location = clean_location(Arc::clone(&store), &root);
        let mut table = new_table(location.clone(), "1m").await;
        let mut base = Vec::new();
        for symbol in ["A", "B"] {
            for hour in 0..4 {
                table.append(vec![segment(symbol, hour, 10)]).await.unwrap();
                base.extend((0..10).map(|m| (symbol.to_string(), T0 + hour * HOUR + m * MINUTE)));
            }
        }
        let version = table.version();
        // What the table holds afterwards: the two writes applied to the base in commit
        // order.
        let mut rows = base;
        let mut want_deleted = 0;
        for write in [&first, &second] {
            match write {
                Write::Append(batch) => {
                    let at = timestamps_as_nanos(batch.column_by_name("ts").unwrap(), "ts").unwrap();
                    let symbols = batch.column_by_name("symbol").unwrap();
                    let symbols = symbols.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
                    rows.extend(symbols.iter().zip(at).map(|(s, t)| (s.unwrap().to_string(), t)));
                }
                Write::Delete { symbol, from, to } => {
                    let selected =
                        |(s, t): &(String, i64)| s == symbol && (T0 + from * MINUTE..T0 + to * MINUTE).contains(t);
                    want_deleted = rows.iter().filter(|r| selected(r)).count() as u64;
                    rows.retain(|r| !selected(r));
                }
                Write::Compact => {}
            }
        }
        let mut expected = keys_of(&rows);
        expected.sort();
        let operations = [first.operation(), second.operation()];

        let (first, second) = race_two(&store, &root, first, second).await;
        assert_eq!(first.version, Some(version + 1), "{label}: {first:?}");
        assert_eq!(second.version, Some(version + 2), "{label}: the loser did not commit after the winner: {second:?}");
        assert_eq!(first.rows_deleted + second.rows_deleted, want_deleted, "{label}");
        let history = check_exact(&location, &expected, &label).await;
        assert_eq!(history.len() as u64, version + 2, "{label}");
        assert_operations(&history, &[version + 1], operations[0], &label);
        assert_operations(&history, &[version + 2], operations[1], &label);
        let table = TimeSeriesTable::open(location).await.unwrap();
        assert_eq!(table.segments().len(), live, "{label}: live segments");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rewrite_that_loses_a_race_rebases_over_appends_and_plans_again_after_rewrites() {
    two_writer_races(|| (Arc::new(InMemory::new()) as Arc<dyn ObjectStore>, "t".to_string()), "memory").await;
    let dir = tempfile::tempdir().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let local = || {
        let path = dir.path().join(format!("t{}", next.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&path).unwrap();
        let root = object_store::path::Path::from_absolute_path(std::path::absolute(path).unwrap()).unwrap();
        (Arc::new(LocalFileSystem::new()) as Arc<dyn ObjectStore>, root.to_string())
    };
    two_writer_races(local, "local directory").await;
}

/// Several handles compact the same small segments at once. Each waits at its first write
/// until all have planned and merged, so all plan on the same version: exactly one
/// commits; the others find their inputs gone, plan again and find nothing to do.
async fn racing_compactions(store: Arc<dyn ObjectStore>, root: &str, label: &str) {
    let location = clean_location(Arc::clone(&store), root);
    let mut table = new_table(location.clone(), "1m").await;
    for hour in 0..8 {
        table.append(vec![segment("R", hour, 5)]).await.unwrap();
    }
    let before = observe(&table).await;
    let racers = 3;
    let planned = Rendezvous::new(racers);
    let mut handles = Vec::new();
    for _ in 0..racers {
        let faulty = FaultyStore::new(Arc::clone(&store));
        let table = TimeSeriesTable::open(faulty.location(root)).await.unwrap();
        let planned = Arc::clone(&planned);
        faulty.hook_on(CallKind::Put, 1, When::Before, Arc::new(move |_: &Call| planned.wait()));
        handles.push(tokio::spawn(async move {
            let mut table = table;
            (table.compact(CompactOptions::new()).await, faulty)
        }));
    }
    let mut committed = Vec::new();
    for h in handles {
        let (report, faulty) = h.await.unwrap();
        let report = report.unwrap_or_else(|e| panic!("{label}: a racing compaction failed: {e}"));
        assert!(
            faulty.calls().iter().any(|c| c.kind == CallKind::Put && c.path.contains("/data/")),
            "{label}: every racer merged the segments before any committed"
        );
        match report.version {
            Some(version) => committed.push(version),
            None => assert!(report.nothing_to_do(), "{label}: a losing racer did something: {report:?}"),
        }
    }
    assert_eq!(committed, vec![before.version + 1], "{label}: exactly one racer commits the compaction");
    let table = TimeSeriesTable::open(location.clone()).await.unwrap();
    let after = observe(&table).await;
    assert_eq!((after.version, &after.rows, &after.answers), (before.version + 1, &before.rows, &before.answers));
    assert_eq!(table.segments().len(), 1, "{label}: the 8 segments were merged into one");
    let orphans = unreferenced_files(&location).await;
    assert!(orphans.is_empty(), "{label}: the losers left their merged segments: {orphans:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compactions_of_the_same_segments_commit_once() {
    racing_compactions(Arc::new(InMemory::new()), "t", "memory").await;
    let dir = tempfile::tempdir().unwrap();
    let root = object_store::path::Path::from_absolute_path(std::path::absolute(dir.path()).unwrap()).unwrap();
    racing_compactions(Arc::new(LocalFileSystem::new()), root.as_ref(), "local directory").await;
}

/// Child process role: compact the local table `TSQ_TABLE` (target `TSQ_TARGET_ROWS`)
/// until the file `TSQ_STOP` exists, then once more; one `RESULT` line per committed
/// compaction, and a last one with the count of runs that found nothing to do.
#[tokio::test]
#[ignore = "child process of the multi-process tests; does nothing when run by hand"]
async fn process_compactor() {
    if !child_role_is("compactor") {
        return;
    }
    let location = TableLocation::local(child_env("TSQ_TABLE")).unwrap();
    let stop = std::path::PathBuf::from(child_env("TSQ_STOP"));
    let target: u64 = child_env("TSQ_TARGET_ROWS").parse().unwrap();
    let mut table = TimeSeriesTable::open(location).await.unwrap();
    let mut idle = 0;
    loop {
        let finished = stop.exists();
        match table.compact(CompactOptions::new().with_target_rows(target)).await {
            Ok(report) => match report.version {
                Some(version) => println!("RESULT compacted {version}"),
                None => idle += 1,
            },
            Err(Error::Conflict { .. }) => println!("RESULT conflict"),
            Err(e) => println!("RESULT error {e}"),
        }
        if finished {
            break;
        }
        // Pacing only: an idle compaction is a refresh; don't spin on the log.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("RESULT idle {idle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_append_while_another_compacts() {
    let (dir, location) = temp_location();
    let table_dir = dir.path().join("table");
    let mut table = new_table(location.clone(), "1m").await;
    let seed = segment("SEED", 0, 5);
    table.append(vec![seed.clone()]).await.unwrap();
    let mut expected = row_keys(&[seed]);

    let stop = dir.path().join("stop");
    let compactor = spawn_child(
        "reliability::concurrency::rewrites::process_compactor",
        &[
            (CHILD_ROLE, "compactor".into()),
            ("TSQ_TABLE", table_dir.display().to_string()),
            ("TSQ_STOP", stop.display().to_string()),
            ("TSQ_TARGET_ROWS", "40".into()),
        ],
    );
    let processes = 3 * scale();
    let writers: Vec<_> = (0..processes)
        .map(|p| writer_process(&table_dir.display().to_string(), &format!("P{p}"), "1,2,3,4", 12))
        .collect();
    for p in 0..processes {
        expected.extend(row_keys(&(1..=4).map(|hour| segment(&format!("P{p}"), hour, 12)).collect::<Vec<_>>()));
    }
    expected.sort();
    let outputs =
        tokio::task::spawn_blocking(move || writers.into_iter().map(results).collect::<Vec<_>>()).await.unwrap();
    std::fs::write(&stop, b"").unwrap();
    let compacted = tokio::task::spawn_blocking(move || results(compactor)).await.unwrap();

    let mut appended = Vec::new();
    for line in outputs.iter().flatten() {
        let parts: Vec<_> = line.split(' ').collect();
        assert_eq!(parts[0], "ok", "a disjoint append failed: {line}");
        appended.push(parts[1].parse::<u64>().unwrap());
    }
    let mut compactions = Vec::new();
    for line in &compacted {
        match line.split(' ').collect::<Vec<_>>()[..] {
            ["compacted", version] => compactions.push(version.parse::<u64>().unwrap()),
            ["idle", _] | ["conflict"] => {}
            _ => panic!("the compacting process failed: {line}"),
        }
    }
    let label = "processes appending while another compacts";
    let history = check_exact(&location, &expected, label).await;
    assert_operations(&history, &appended, "append", label);
    assert_operations(&history, &compactions, "compact", label);
    assert_eq!(history.len(), 2 + appended.len() + compactions.len(), "{label}: commits nobody reported");
    assert!(!compactions.is_empty(), "{label}: no compaction committed");
    println!(
        "{label}: {processes} writers ({} appends) + 1 compactor ({} compactions)",
        appended.len(),
        compactions.len()
    );
}
