//! Concurrent writers and readers: tokio tasks and separate OS processes appending
//! disjoint data (every append lands, versions 1..N without holes, every row and covered
//! bucket there), racers with overlapping data (exactly one wins, the others get the
//! overlap error and leave no files), and readers during the writes (always a consistent
//! committed version). Compactions and deletes racing writers and each other: `rewrites`.

mod rewrites;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{CommitInfo, TimeSeriesTable};
use timeseries_table_core::Error;

use super::faulty_store::{CallKind, FaultyStore};
use super::{child_env, child_role_is, referenced_by_log, scan_rows, spawn_child, table_files, CHILD_ROLE};
use crate::common::*;

/// Rows in one appended segment: `minutes` minute bars for one symbol.
fn segment(symbol: &str, hour: i64, minutes: i64) -> arrow::array::RecordBatch {
    minute_bars(&[symbol], T0 + hour * HOUR, minutes)
}

/// How much bigger than the CI size the concurrency tests run (`TSQ_RELIABILITY_SCALE`,
/// default 1; see TESTING.md for the long runs).
fn scale() -> usize {
    std::env::var("TSQ_RELIABILITY_SCALE").ok().and_then(|s| s.parse().ok()).filter(|s| *s >= 1).unwrap_or(1)
}

/// Appends, retrying the whole append when it exhausted its commit attempts
/// (`Error::Conflict`, only under heavy contention). Returns the version and how many
/// times it had to retry.
async fn append_retrying(table: &mut TimeSeriesTable, batch: arrow::array::RecordBatch) -> (u64, usize) {
    let mut conflicts = 0;
    loop {
        match table.append(vec![batch.clone()]).await {
            Ok(r) => return (r.version, conflicts),
            Err(Error::Conflict { .. }) => {
                conflicts += 1;
                table.refresh().await.unwrap();
            }
            Err(e) => panic!("a disjoint append failed: {e}"),
        }
    }
}

/// Checks a table after concurrent disjoint appends: gapless versions, every row, every
/// covered bucket. `expected` maps symbol -> (rows, covered buckets).
async fn check_all_landed(location: TableLocation, commits: u64, expected: &BTreeMap<String, (u64, u64)>) {
    let table = TimeSeriesTable::open(location.clone()).await.unwrap();
    assert_eq!(table.version(), commits + 1, "every append landed");
    let history = table.history().await.unwrap();
    let versions: Vec<u64> = history.iter().map(|c| c.version).collect();
    assert_eq!(versions, (1..=commits + 1).collect::<Vec<_>>(), "versions 1..N without holes");
    let total: u64 = expected.values().map(|e| e.0).sum();
    assert_eq!(history.iter().map(|c| c.rows_added).sum::<u64>(), total);
    assert_eq!(scan_rows(&table).await.unwrap().len() as u64, total, "no row lost");
    let coverage = table.coverage(None, None).await.unwrap();
    let covered: BTreeMap<String, u64> =
        coverage.iter().map(|c| (c.entity.describe(&["symbol".to_string()]), c.covered_buckets)).collect();
    let want: BTreeMap<String, u64> = expected.iter().map(|(s, e)| (format!("symbol={s}"), e.1)).collect();
    assert_eq!(covered, want, "every covered bucket there");
    assert!(super::unreferenced_files(&location).await.is_empty(), "no orphan files after successful appends");
}

/// The rows the commits leave: added minus removed (a compaction adds and removes none).
fn net_rows(history: &[CommitInfo]) -> u64 {
    let net: i64 = history.iter().map(|c| c.rows_added as i64 - c.rows_removed as i64).sum();
    u64::try_from(net).expect("commits removed more rows than were added")
}

/// Loops until `done`: open (or refresh) + scan, checking that the rows seen equal the
/// rows committed up to the version seen. Returns how many reads it made.
async fn consistent_reader(location: TableLocation, done: Arc<AtomicBool>) -> usize {
    let mut reads = 0;
    let mut last_version = 0;
    loop {
        let finished = done.load(Ordering::SeqCst);
        let table = TimeSeriesTable::open(location.clone()).await.expect("reader open");
        let version = table.version();
        assert!(version >= last_version, "versions never go back ({last_version} then {version})");
        last_version = version;
        let rows = scan_rows(&table).await.expect("reader scan").len() as u64;
        let committed = net_rows(&table.history().await.unwrap());
        assert_eq!(rows, committed, "reader at version {version} sees {rows} rows, commits hold {committed}");
        assert_eq!(rows, table.snapshot().state().row_count());
        reads += 1;
        if finished {
            return reads;
        }
        tokio::task::yield_now().await;
    }
}

/// Loops until `done`: a SQL count through a registered provider (which follows new
/// commits). Returns the counts seen, in order.
async fn sql_reader(location: TableLocation, done: Arc<AtomicBool>) -> Vec<u64> {
    let ctx = timeseries_table_core::datafusion::session_context();
    let table = TimeSeriesTable::open(location).await.unwrap();
    timeseries_table_core::datafusion::register_opened(&ctx, "t", table).unwrap();
    let mut counts = Vec::new();
    loop {
        let finished = done.load(Ordering::SeqCst);
        // A filter keeps DataFusion from answering from statistics: the rows are read.
        let batches = ctx.sql("SELECT count(*) AS n FROM t WHERE price > 0").await.unwrap().collect().await.unwrap();
        let n = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0);
        counts.push(n as u64);
        if finished {
            return counts;
        }
        tokio::task::yield_now().await;
    }
}

/// Every count a SQL reader saw must be the row total of some committed version
/// (a prefix of the log), and never decrease.
async fn check_sql_counts(location: &TableLocation, counts: &[u64]) {
    let history = TimeSeriesTable::open(location.clone()).await.unwrap().history().await.unwrap();
    let prefixes: BTreeSet<u64> = (1..=history.len()).map(|n| net_rows(&history[..n])).collect();
    for n in counts {
        assert!(prefixes.contains(n), "SQL reader saw {n} rows, which is no committed version's total {prefixes:?}");
    }
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "SQL counts went back: {counts:?}");
}

async fn tasks_append_disjoint_data(location: TableLocation, label: &str) {
    let mut creator = new_table(location.clone(), "1m").await;
    // The first append fixes the schema; readers then always have one to scan.
    creator.append(vec![segment("SEED", 0, 5)]).await.unwrap();
    let mut expected = BTreeMap::from([("SEED".to_string(), (5, 5))]);
    let done = Arc::new(AtomicBool::new(false));
    let readers = vec![
        tokio::spawn(consistent_reader(location.clone(), Arc::clone(&done))),
        tokio::spawn(consistent_reader(location.clone(), Arc::clone(&done))),
    ];
    let sql = tokio::spawn(sql_reader(location.clone(), Arc::clone(&done)));

    // Ten writers with their own entity, two hours each; four more writers sharing one
    // entity in different hours (disjoint in time, same entity). Times the scale.
    let (own, shared) = (10 * scale(), 4 * scale() as i64);
    let mut writers = Vec::new();
    for w in 0..own {
        let symbol = format!("W{w}");
        expected.insert(symbol.clone(), (2 * 15, 2 * 15));
        let location = location.clone();
        writers.push(tokio::spawn(async move {
            let mut table = TimeSeriesTable::open(location).await.unwrap();
            let mut versions = Vec::new();
            for hour in [1, 3] {
                versions.push(append_retrying(&mut table, segment(&symbol, hour, 15)).await);
            }
            versions
        }));
    }
    expected.insert("SHARED".to_string(), (shared as u64 * 10, shared as u64 * 10));
    for w in 0..shared {
        let location = location.clone();
        writers.push(tokio::spawn(async move {
            let mut table = TimeSeriesTable::open(location).await.unwrap();
            vec![append_retrying(&mut table, segment("SHARED", 5 + w, 10)).await]
        }));
    }
    let mut versions = Vec::new();
    let mut gave_up = 0;
    for w in writers {
        for (version, conflicts) in w.await.unwrap() {
            versions.push(version);
            gave_up += conflicts;
        }
    }
    done.store(true, Ordering::SeqCst);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    let counts = sql.await.unwrap();
    versions.sort_unstable();
    let commits = versions.len() as u64 + 1;
    assert_eq!(versions, (3..=commits + 1).collect::<Vec<_>>(), "{label}: each writer got its own version");
    check_all_landed(location.clone(), commits, &expected).await;
    check_sql_counts(&location, &counts).await;
    println!(
        "{label}: {} appends by {} tasks, {reads} consistent reads, {} SQL reads, {gave_up} append(s) gave up after {} \
         commit attempts and were retried",
        versions.len(),
        own + shared as usize,
        counts.len(),
        12
    );
    if scale() == 1 {
        assert_eq!(gave_up, 0, "{label}: at this contention no append should exhaust its commit attempts");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_append_disjoint_data_while_readers_read() {
    // In memory, with every write slowed down so that commits really interleave.
    let faulty = FaultyStore::new(Arc::new(InMemory::new()));
    faulty.delay(Some(CallKind::Put), Duration::from_millis(3));
    tasks_append_disjoint_data(faulty.location("t"), "memory (delayed puts)").await;
    let races = faulty.calls().iter().filter(|c| c.create && c.path.contains("_timeseries_log/")).count();
    assert!(races >= 24 * scale() + 2, "commit attempts: {races}");
    // And on a local directory.
    let (_dir, location) = temp_location();
    tasks_append_disjoint_data(location, "local directory").await;
}

async fn overlapping_racers(location: TableLocation, label: &str) {
    let mut base = new_table(location.clone(), "1m").await;
    base.append(vec![segment("X", 0, 10)]).await.unwrap();
    let before = table_files(&location).await;
    let racers = 6;
    let mut handles = Vec::new();
    for r in 0..racers {
        let location = location.clone();
        // Same entity, same hour, different minutes: every pair overlaps in buckets.
        let batch = minute_bars(&["X"], T0 + 2 * HOUR + r * MINUTE, 20);
        let table = TimeSeriesTable::open(location).await.unwrap();
        handles.push(tokio::spawn(async move {
            let mut table = table;
            table.append(vec![batch]).await
        }));
    }
    let mut wins = Vec::new();
    let mut overlaps = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(r) => wins.push(r),
            Err(Error::Overlap { .. }) => overlaps += 1,
            Err(e) => panic!("{label}: a racer failed with something other than overlap: {e}"),
        }
    }
    assert_eq!(wins.len(), 1, "{label}: exactly one racer wins");
    assert_eq!(overlaps, racers - 1, "{label}: every other racer gets the overlap error");
    let table = TimeSeriesTable::open(location.clone()).await.unwrap();
    assert_eq!(table.version(), 3);
    assert_eq!(table.snapshot().state().row_count(), 30);
    // The losers left nothing: the files are the base's plus what the winning commit names.
    let after = table_files(&location).await;
    let referenced = referenced_by_log(&location).await;
    let leftovers: Vec<_> = after.iter().filter(|f| !before.contains(*f) && !referenced.contains(*f)).collect();
    assert!(leftovers.is_empty(), "{label}: losers left files behind: {leftovers:?}");
    assert_eq!(
        after.len() - before.len(),
        2,
        "{label}: exactly the winner's data file and sidecar are new (plus a snapshot if one was due)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_racers_exactly_one_wins_and_losers_leave_nothing() {
    overlapping_racers(super::faulty_store::clean_location(Arc::new(InMemory::new()), "t"), "memory").await;
    let (_dir, location) = temp_location();
    overlapping_racers(location, "local directory").await;
}

/// Child process role: append the hours `TSQ_HOURS` (comma-separated) of symbol
/// `TSQ_SYMBOL` to the table `TSQ_TABLE` (a local folder or an `s3://` URL on the test
/// server), one append each, printing one result line per append.
#[tokio::test]
#[ignore = "child process of the multi-process tests; does nothing when run by hand"]
async fn process_writer() {
    if !child_role_is("writer") {
        return;
    }
    let location = test_location(&child_env("TSQ_TABLE"));
    let symbol = child_env("TSQ_SYMBOL");
    let minutes: i64 = child_env("TSQ_MINUTES").parse().unwrap();
    let mut table = TimeSeriesTable::open(location).await.unwrap();
    for hour in child_env("TSQ_HOURS").split(',') {
        let hour: i64 = hour.parse().unwrap();
        loop {
            match table.append(vec![segment(&symbol, hour, minutes)]).await {
                Ok(r) => println!("RESULT ok {} {}", r.version, r.attempts),
                Err(Error::Overlap { .. }) => println!("RESULT overlap"),
                // Commit attempts exhausted (heavy contention, long runs only): try again.
                Err(Error::Conflict { .. }) => {
                    table.refresh().await.unwrap();
                    continue;
                }
                Err(e) => println!("RESULT error {e}"),
            }
            break;
        }
    }
}

fn writer_process(table: &str, symbol: &str, hours: &str, minutes: i64) -> std::process::Child {
    spawn_child(
        "reliability::concurrency::process_writer",
        &[
            (CHILD_ROLE, "writer".into()),
            ("TSQ_TABLE", table.into()),
            ("TSQ_SYMBOL", symbol.into()),
            ("TSQ_HOURS", hours.into()),
            ("TSQ_MINUTES", minutes.to_string()),
        ],
    )
}

/// Waits for a child and returns its `RESULT` lines.
fn results(mut child: std::process::Child) -> Vec<String> {
    let status = child.wait().unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "writer process failed: {status}\n{out}\n{err}");
    out.lines().filter_map(|l| l.strip_prefix("RESULT ").map(str::to_string)).collect()
}

/// `writers` processes append four hours each, disjoint (own symbol), while this process
/// reads; then `racers` processes race with the same hour of one symbol and exactly one
/// wins. `table` is the location as the children open it.
async fn separate_processes(table: &str, writers: usize, racers: usize) {
    let location = test_location(table);
    let mut created = new_table(location.clone(), "1m").await;
    created.append(vec![segment("SEED", 0, 5)]).await.unwrap();

    let appends_each = 4;
    let children: Vec<_> = (0..writers).map(|p| writer_process(table, &format!("P{p}"), "1,2,3,4", 12)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(consistent_reader(location.clone(), Arc::clone(&done)));
    let outputs =
        tokio::task::spawn_blocking(move || children.into_iter().map(results).collect::<Vec<_>>()).await.unwrap();
    done.store(true, Ordering::SeqCst);
    let reads = reader.await.unwrap();
    let mut versions = Vec::new();
    for lines in &outputs {
        assert_eq!(lines.len(), appends_each, "{lines:?}");
        for line in lines {
            let parts: Vec<_> = line.split(' ').collect();
            assert_eq!(parts[0], "ok", "a disjoint append failed: {line}");
            versions.push(parts[1].parse::<u64>().unwrap());
        }
    }
    versions.sort_unstable();
    let commits = (writers * appends_each) as u64 + 1;
    assert_eq!(versions, (3..=commits + 1).collect::<Vec<_>>(), "each append got its own version");
    let mut expected: BTreeMap<String, (u64, u64)> = (0..writers).map(|p| (format!("P{p}"), (48, 48))).collect();
    expected.insert("SEED".into(), (5, 5));
    check_all_landed(location.clone(), commits, &expected).await;

    // Processes racing with overlapping data: exactly one wins.
    let before = table_files(&location).await;
    let children: Vec<_> = (0..racers).map(|_| writer_process(table, "RACE", "7", 30)).collect();
    let outputs =
        tokio::task::spawn_blocking(move || children.into_iter().map(results).collect::<Vec<_>>()).await.unwrap();
    let outcomes: Vec<&str> = outputs.iter().flatten().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "ok").count(), 1, "exactly one process wins: {outputs:?}");
    assert_eq!(
        outcomes.iter().filter(|o| **o == "overlap").count(),
        racers - 1,
        "the others get the overlap error: {outputs:?}"
    );
    let after = table_files(&location).await;
    let referenced = referenced_by_log(&location).await;
    assert!(after.iter().all(|f| before.contains(f) || referenced.contains(f)), "losing processes left files");
    let reopened = TimeSeriesTable::open(location).await.unwrap();
    assert_eq!(reopened.version(), commits + 2);
    println!(
        "processes on {table}: {writers} writers ({} appends) + {racers} racers; {reads} consistent reads meanwhile",
        versions.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_append_disjoint_data_and_race_on_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table").display().to_string();
    separate_processes(&table, 4 * scale(), 3).await;
}

/// The same on S3: eight writer processes, then a four-way race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_on_s3_append_disjoint_data_and_race_on_overlaps() {
    if s3_endpoint().is_none() {
        return;
    }
    separate_processes(&s3_url(), 8 * scale(), 4).await;
}

/// Snapshot isolation of a handle: while others commit, a handle's `scan` returns the
/// rows of the version the handle reports, until it is refreshed. (Found by the reader
/// check above: `scan` used to catch up with the latest commit on its own, so a reader
/// saw rows of a newer version than `version()`, `segments()` and `coverage()` described.)
#[tokio::test]
async fn a_handle_scans_the_version_it_reports_until_refreshed() {
    let location = memory_location();
    let mut writer = new_table(location.clone(), "1m").await;
    writer.append(vec![segment("A", 0, 10)]).await.unwrap();
    let mut reader = TimeSeriesTable::open(location.clone()).await.unwrap();
    writer.append(vec![segment("B", 0, 10)]).await.unwrap();
    assert_eq!(reader.version(), 2);
    assert_eq!(scan_rows(&reader).await.unwrap().len(), 10, "the scan must read version 2, which the handle reports");
    assert!(reader.refresh().await.unwrap());
    assert_eq!((reader.version(), scan_rows(&reader).await.unwrap().len()), (3, 20));
}
