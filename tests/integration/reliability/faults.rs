//! Fault injection: create, append and read run under a store that fails the k-th call,
//! for every k up to the number of calls the clean operation makes, in both failure modes
//! (fails before doing it; does it and reports failure). Appends run in three scenarios:
//! a plain append, an append that writes a table coverage snapshot, and an append by a
//! handle one version behind (its first commit attempt loses the race, so the
//! delete-reload-revalidate-retry path runs under the fault too).
//!
//! After each run a clean handle over the same data must open, show exactly the old or
//! the new version (rows and coverage), and take a further append. Success must mean the
//! new version, a definite failure the old one; an unknown outcome must keep its files.
//! Files nothing references may be left only when the outcome is unknown or when the
//! fault hit one of the append's own clean-up deletes.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use timeseries_table_core::metadata::EntityValue;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{CompactOptions, EntityFilter, RowSelector, TimeRange, TimeSeriesTable};
use timeseries_table_core::{Error, WriterOptions};

use super::faulty_store::{clean_location, Call, CallKind, FaultMode, FaultyStore, When};
use super::{observe, unreferenced_files, Observed};
use crate::common::*;

const ROOT: &str = "t";
const MODES: [FaultMode; 2] = [FaultMode::FailBefore, FaultMode::FailAfter];

fn b1() -> RecordBatch {
    minute_bars(&["A", "B"], T0, 30)
}
fn b2() -> RecordBatch {
    minute_bars(&["A"], T0 + HOUR, 20)
}
fn b3() -> RecordBatch {
    minute_bars(&["C"], T0, 10)
}

fn fork(store: &Arc<InMemory>) -> Arc<InMemory> {
    Arc::new(store.fork())
}

/// What happened at one fault position, for the record.
#[derive(Default)]
struct Tally {
    positions: usize,
    outcomes: BTreeMap<String, usize>,
}

impl Tally {
    fn record(&mut self, op: &str, mode: FaultMode, outcome: &str) {
        self.positions += 1;
        *self.outcomes.entry(format!("{op}, {mode:?}: {outcome}")).or_default() += 1;
    }
}

/// The data and sidecar files an append wrote (successfully or not), relative to the root.
fn staged_paths(calls: &[Call], root: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| matches!(c.kind, CallKind::Put | CallKind::PutMultipart))
        .filter_map(|c| c.path.strip_prefix(&format!("{root}/")).map(str::to_string))
        .filter(|p| p.starts_with("data/") || p.starts_with("_coverage/segments/"))
        .collect()
}

/// Checks the store after a faulty operation that would have gone from `old` to `new`.
/// `old` is `None` for a create (no table before).
#[allow(clippy::too_many_arguments)]
async fn check_after(
    store: Arc<dyn ObjectStore>,
    root: &str,
    what: &str,
    result: Result<u64, Error>,
    fault: &Call,
    calls: &[Call],
    old: Option<&Observed>,
    new: &Observed,
) -> String {
    let location = clean_location(store, root);
    let mut table = match (old, TimeSeriesTable::open(location.clone()).await) {
        (None, Err(Error::EmptyTable { .. })) => {
            assert!(result.is_err(), "{what}: create reported success but there is no table");
            new_table(location, "1m").await;
            return "failed, nothing created; creating again works".into();
        }
        (_, Ok(table)) => table,
        (_, Err(e)) => panic!("{what}: the table does not open after the fault: {e}"),
    };
    let version = table.version();
    let old_version = old.map_or(0, |o| o.version);
    if fault.kind == CallKind::Put && (fault.path.ends_with(".checkpoint.json") || fault.path.ends_with("/CURRENT")) {
        // Written after the commit, best effort: a fault there must not fail the append.
        assert!(result.is_ok(), "{what}: {result:?}");
    }
    let mut outcome = match &result {
        Ok(v) => {
            assert_eq!((*v, version), (new.version, new.version), "{what}: success must mean the new version");
            "succeeded".to_string()
        }
        Err(Error::CommitOutcomeUnknown { version: v, .. }) => {
            assert_eq!(*v, new.version, "{what}");
            assert!(version == old_version || version == new.version, "{what}: version {version}");
            for path in staged_paths(calls, root) {
                assert!(
                    location.size(&path).await.unwrap().is_some(),
                    "{what}: unknown outcome but {path} was deleted"
                );
            }
            "outcome reported unknown, files kept".to_string()
        }
        Err(e) => {
            assert_eq!(version, old_version, "{what}: reported failure ({e}) but version {version} landed");
            assert!(e.to_string().contains("injected fault"), "{what}: the error hides its cause: {e}");
            "failed, old version intact".to_string()
        }
    };
    let expected = if version == new.version { new } else { old.unwrap() };
    assert_eq!(&observe(&table).await, expected, "{what}: rows or coverage differ from version {version}");

    let orphans = unreferenced_files(&location).await;
    if version == new.version {
        let lost: Vec<_> = staged_paths(calls, root).into_iter().filter(|p| orphans.contains(p)).collect();
        assert!(lost.is_empty(), "{what}: committed, yet its files {lost:?} are unreferenced");
    }
    if !orphans.is_empty() {
        let unknown = matches!(result, Err(Error::CommitOutcomeUnknown { .. }));
        assert!(
            unknown || fault.kind == CallKind::Delete,
            "{what}: files left behind that nothing references: {orphans:?} (result {result:?})"
        );
        outcome = format!("{outcome}, {} orphan file(s) for vacuum", orphans.len());
    }
    let next = table
        .append(vec![minute_bars(&["LATER"], T0, 5)])
        .await
        .unwrap_or_else(|e| panic!("{what}: further append fails: {e}"));
    assert_eq!(next.version, version + 1, "{what}");
    outcome
}

/// On a cloud store an upload neither completed nor aborted lingers, unseen: every upload
/// started must end. (An upload whose start failed, call `k`, was never handed out.)
fn assert_uploads_ended(what: &str, seen: &[Call], k: u64) {
    for started in seen.iter().filter(|c| c.kind == CallKind::PutMultipart && c.n != k) {
        let ended = seen.iter().any(|c| {
            c.n > started.n
                && c.path == started.path
                && matches!(c.kind, CallKind::CompleteUpload | CallKind::AbortUpload)
        });
        let trace: Vec<_> =
            seen.iter().map(|c| format!("{:?} {}", c.kind, c.path.rsplit('/').next().unwrap_or(""))).collect();
        assert!(ended, "{what}: the upload of {} was neither completed nor aborted: {trace:?}", started.path);
    }
}

/// An append scenario: a base store, how to get a handle ready to append on a fork of
/// it, and the batch to append.
struct AppendScenario {
    name: &'static str,
    base: Arc<InMemory>,
    batch: RecordBatch,
    /// Fault only the writes (the reads of this scenario are exercised by the others).
    only_writes: bool,
    /// Makes the writer's handle; runs clean (before the fault is armed).
    setup: fn(Arc<InMemory>) -> futures::future::BoxFuture<'static, (FaultyStore, TimeSeriesTable)>,
}

fn up_to_date(store: Arc<InMemory>) -> futures::future::BoxFuture<'static, (FaultyStore, TimeSeriesTable)> {
    Box::pin(async move {
        let faulty = FaultyStore::new(store);
        let table = TimeSeriesTable::open(faulty.location(ROOT)).await.unwrap();
        faulty.reset();
        (faulty, table)
    })
}

/// Rows enough for three segments of 500, each uploaded in several parts.
fn multipart_batch() -> RecordBatch {
    minute_bars(&["A", "B", "C", "D"], T0 + 2 * HOUR, 300)
}

/// [`up_to_date`], writing segments of 500 rows in uploads of 2 KiB parts.
fn up_to_date_multipart(store: Arc<InMemory>) -> futures::future::BoxFuture<'static, (FaultyStore, TimeSeriesTable)> {
    Box::pin(async move {
        let (faulty, table) = up_to_date(store).await;
        let options = WriterOptions::default().with_segment_rows(500).with_upload_part_bytes(2048);
        (faulty, table.with_writer_options(options))
    })
}

/// A handle opened before another writer committed `b2`: one version behind.
fn one_behind(store: Arc<InMemory>) -> futures::future::BoxFuture<'static, (FaultyStore, TimeSeriesTable)> {
    Box::pin(async move {
        let faulty = FaultyStore::new(store.clone());
        let stale = TimeSeriesTable::open(faulty.location(ROOT)).await.unwrap();
        let mut winner = TimeSeriesTable::open(clean_location(store, ROOT)).await.unwrap();
        winner.append(vec![b2()]).await.unwrap();
        faulty.reset();
        (faulty, stale)
    })
}

impl AppendScenario {
    async fn run(&self, tally: &mut Tally) -> u64 {
        // The clean run: its calls, and the states before and after.
        let (probe, mut table) = (self.setup)(fork(&self.base)).await;
        let old = observe(&TimeSeriesTable::open(clean_location(probe.inner(), ROOT)).await.unwrap()).await;
        let result = table.append(vec![self.batch.clone()]).await.unwrap();
        let calls = probe.calls();
        assert_eq!(result.version, old.version + 1, "{}: clean run", self.name);
        if self.name.contains("multipart") {
            let parts = calls.iter().filter(|c| c.kind == CallKind::UploadPart).count();
            assert_eq!(result.segments.len(), 3, "{}", self.name);
            assert!(parts >= 6, "{}: {parts} parts uploaded", self.name);
        }
        let new = observe(&TimeSeriesTable::open(clean_location(probe.inner(), ROOT)).await.unwrap()).await;
        let positions: Vec<u64> =
            calls.iter().filter(|c| !self.only_writes || c.kind.is_write()).map(|c| c.n).collect();
        for mode in MODES {
            for &k in &positions {
                let (faulty, mut table) = (self.setup)(fork(&self.base)).await;
                faulty.arm(None, k, mode);
                let result = table.append(vec![self.batch.clone()]).await.map(|r| r.version);
                assert_eq!(faulty.injected(), 1, "{} {mode:?} k={k}: the fault did not fire", self.name);
                let seen = faulty.calls();
                let fault = &seen[k as usize - 1];
                let what = format!("{}, {mode:?} at call {k} ({:?} {})", self.name, fault.kind, fault.path);
                let outcome = check_after(faulty.inner(), ROOT, &what, result, fault, &seen, Some(&old), &new).await;
                assert_uploads_ended(&what, &seen, k);
                tally.record(self.name, mode, &outcome);
            }
        }
        positions.len() as u64
    }
}

/// A base whose next append (of hour `step` of symbol S) writes a table coverage snapshot.
async fn snapshot_due_base() -> (Arc<InMemory>, RecordBatch) {
    let base = Arc::new(InMemory::new());
    new_table(clean_location(base.clone(), ROOT), "1m").await;
    for step in 0..200 {
        let batch = minute_bars(&["S"], T0 + step * HOUR, 5);
        let probe = FaultyStore::new(fork(&base));
        let mut table = TimeSeriesTable::open(probe.location(ROOT)).await.unwrap();
        table.append(vec![batch.clone()]).await.unwrap();
        if probe.calls().iter().any(|c| c.kind == CallKind::Put && c.path.contains("/_coverage/table/")) {
            return (base, batch);
        }
        let mut table = TimeSeriesTable::open(clean_location(base.clone(), ROOT)).await.unwrap();
        table.append(vec![batch]).await.unwrap();
    }
    panic!("no append wrote a table coverage snapshot within 200 appends");
}

#[tokio::test]
async fn create_and_append_survive_a_fault_at_every_call() {
    let mut tally = Tally::default();

    // Create: count the calls of a clean create, then fail each one.
    let probe = FaultyStore::new(Arc::new(InMemory::new()));
    let created = new_table(probe.location(ROOT), "1m").await;
    let created = observe(&created).await;
    let create_calls = probe.call_count();
    for mode in MODES {
        for k in 1..=create_calls {
            let faulty = FaultyStore::new(Arc::new(InMemory::new()));
            faulty.arm(None, k, mode);
            let result =
                TimeSeriesTable::create_with_spec(faulty.location(ROOT), spec("1m")).await.map(|t| t.version());
            assert_eq!(faulty.injected(), 1, "create {mode:?} k={k}: the fault did not fire");
            let seen = faulty.calls();
            let fault = &seen[k as usize - 1];
            let what = format!("create, {mode:?} at call {k} ({:?} {})", fault.kind, fault.path);
            let outcome = check_after(faulty.inner(), ROOT, &what, result, fault, &seen, None, &created).await;
            tally.record("create", mode, &outcome);
        }
    }

    let base = Arc::new(InMemory::new());
    let mut table = new_table(clean_location(base.clone(), ROOT), "1m").await;
    table.append(vec![b1()]).await.unwrap();
    let (snapshot_base, snapshot_batch) = snapshot_due_base().await;
    let (checkpoint_base, checkpoint_batch) = super::checkpoint_due_store(ROOT).await;
    let scenarios = [
        AppendScenario { name: "append", base: base.clone(), batch: b2(), only_writes: false, setup: up_to_date },
        AppendScenario {
            name: "append writing a table snapshot",
            base: snapshot_base,
            batch: snapshot_batch,
            only_writes: false,
            setup: up_to_date,
        },
        AppendScenario {
            name: "append of three segments in multipart uploads",
            base: base.clone(),
            batch: multipart_batch(),
            only_writes: false,
            setup: up_to_date_multipart,
        },
        AppendScenario { name: "append after a lost race", base, batch: b3(), only_writes: false, setup: one_behind },
        AppendScenario {
            name: "append writing a checkpoint (writes only)",
            base: checkpoint_base,
            batch: checkpoint_batch,
            only_writes: true,
            setup: up_to_date,
        },
    ];
    let mut counts = Vec::new();
    for scenario in &scenarios {
        counts.push(format!("{} {}", scenario.name, scenario.run(&mut tally).await));
    }

    println!(
        "fault positions: {} (positions per mode: create {create_calls}, {}; x2 modes)",
        tally.positions,
        counts.join(", ")
    );
    for (outcome, count) in &tally.outcomes {
        println!("  {outcome}: {count}");
    }
    assert!(tally.outcomes.keys().any(|o| o.contains("unknown")), "no position produced an unknown outcome");
}

/// A rewrite of the fault suite.
#[derive(Clone, Copy, Debug)]
enum Rewrite {
    /// Merges the four segments of [`rewrite_base`] into two.
    Compact,
    /// Rewrites the first segment of [`rewrite_base`] without half its rows and drops the second.
    Delete,
}

impl Rewrite {
    async fn run(self, table: &mut TimeSeriesTable) -> Result<Option<u64>, Error> {
        match self {
            Rewrite::Compact => Ok(table.compact(CompactOptions::new().with_target_rows(60)).await?.version),
            Rewrite::Delete => {
                // A and B (all the base holds): the racing append of C selects nothing, so
                // the delete rebases over it rather than planning again.
                let range = TimeRange::from_nanos(T0 + 5 * MINUTE, T0 + 2 * HOUR).unwrap();
                let ours = EntityFilter::from([(0, ["A", "B"].map(|s| EntityValue::Str(s.into())).into())]);
                Ok(table.delete(&RowSelector::range(range, ours)).await?.version)
            }
        }
    }
}

/// Four segments of 20 rows: A and B, 10 minutes in each of hours 0 to 3.
async fn rewrite_base() -> Arc<InMemory> {
    let base = Arc::new(InMemory::new());
    let mut table = new_table(clean_location(base.clone(), ROOT), "1m").await;
    for hour in 0..4 {
        table.append(vec![minute_bars(&["A", "B"], T0 + hour * HOUR, 10)]).await.unwrap();
    }
    base
}

/// The objects another writer's append of `b3` adds to `base` (its commit among them).
async fn winner_objects(base: &Arc<InMemory>) -> Vec<(object_store::path::Path, bytes::Bytes)> {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let before: Vec<_> = base.list(None).map_ok(|m| m.location).try_collect().await.unwrap();
    let fork = fork(base);
    let mut winner = TimeSeriesTable::open(clean_location(fork.clone(), ROOT)).await.unwrap();
    winner.append(vec![b3()]).await.unwrap();
    let mut objects = Vec::new();
    for meta in fork.list(None).try_collect::<Vec<_>>().await.unwrap() {
        if !before.contains(&meta.location) {
            let bytes = fork.get(&meta.location).await.unwrap().bytes().await.unwrap();
            objects.push((meta.location, bytes));
        }
    }
    objects
}

/// A rewrite under a fault at every call: on a fork of `base`, optionally with another
/// writer's append landing just before the rewrite's first write (so that its first commit
/// attempt loses the race and it rebases; faults are then injected from that write on).
struct RewriteScenario {
    name: &'static str,
    base: Arc<InMemory>,
    rewrite: Rewrite,
    race: Option<Vec<(object_store::path::Path, bytes::Bytes)>>,
}

impl RewriteScenario {
    /// A handle on a fork of the base, ready to rewrite (with the race's hook armed).
    async fn setup(&self) -> (FaultyStore, TimeSeriesTable) {
        let store = fork(&self.base);
        let faulty = FaultyStore::new(store.clone());
        let table = TimeSeriesTable::open(faulty.location(ROOT)).await.unwrap();
        faulty.reset();
        if let Some(objects) = self.race.clone() {
            let hook = move |_: &Call| {
                use object_store::ObjectStoreExt;
                // The in-memory store completes at once: no runtime needed.
                futures::executor::block_on(async {
                    for (path, bytes) in &objects {
                        store.put(path, bytes.clone().into()).await.unwrap();
                    }
                });
            };
            faulty.hook_on(CallKind::Put, 1, When::Before, Arc::new(hook));
        }
        (faulty, table)
    }

    async fn run(&self, tally: &mut Tally) -> u64 {
        let (probe, mut table) = self.setup().await;
        let version = self.rewrite.run(&mut table).await.unwrap().expect("the clean rewrite commits");
        let calls = probe.calls();
        let clean = clean_location(probe.inner(), ROOT);
        let new = observe(&TimeSeriesTable::open(clean.clone()).await.unwrap()).await;
        // The state the rewrite commits on top of (the base, or the base and the race's winner).
        let old = observe(&TimeSeriesTable::open_at(clean, version - 1).await.unwrap()).await;
        assert_eq!(new.version, version, "{}: clean run", self.name);
        let first_write = calls.iter().find(|c| c.kind == CallKind::Put).unwrap().n;
        if self.race.is_some() {
            let commits = calls.iter().filter(|c| c.create && c.path.contains("/_timeseries_log/")).count();
            assert_eq!((commits, version), (2, old.version + 1), "{}: the first commit attempt lost", self.name);
        }
        let from = if self.race.is_some() { first_write } else { 1 };
        let positions: Vec<u64> = calls.iter().map(|c| c.n).filter(|&n| n >= from).collect();
        for mode in MODES {
            for &k in &positions {
                let (faulty, mut table) = self.setup().await;
                faulty.arm(None, k, mode);
                let result = self.rewrite.run(&mut table).await;
                assert_eq!(faulty.injected(), 1, "{} {mode:?} k={k}: the fault did not fire", self.name);
                let seen = faulty.calls();
                let fault = &seen[k as usize - 1];
                let what = format!("{}, {mode:?} at call {k} ({:?} {})", self.name, fault.kind, fault.path);
                let result = result.map(|v| v.unwrap_or_else(|| panic!("{what}: the rewrite found nothing to do")));
                let outcome = check_after(faulty.inner(), ROOT, &what, result, fault, &seen, Some(&old), &new).await;
                assert_uploads_ended(&what, &seen, k);
                // Not wedged for rewrites either: a compaction (of the append `check_after`
                // made, and of whatever else is small) keeps every row and exact coverage.
                let mut table = TimeSeriesTable::open(clean_location(faulty.inner(), ROOT)).await.unwrap();
                let rows = super::scan_row_keys(&table).await;
                let report = table
                    .compact(CompactOptions::new())
                    .await
                    .unwrap_or_else(|e| panic!("{what}: a compaction afterwards fails: {e}"));
                assert!(report.version.is_some(), "{what}: {report:?}");
                assert_eq!(super::scan_row_keys(&table).await, rows, "{what}: the compaction afterwards lost rows");
                super::assert_coverage_is_the_rows_buckets(&table, &what).await;
                tally.record(self.name, mode, &outcome);
            }
        }
        positions.len() as u64
    }
}

#[tokio::test]
async fn compaction_and_delete_survive_a_fault_at_every_call() {
    let mut tally = Tally::default();
    let base = rewrite_base().await;
    let race = Some(winner_objects(&base).await);
    let scenarios = [
        RewriteScenario { name: "compaction", base: base.clone(), rewrite: Rewrite::Compact, race: None },
        RewriteScenario { name: "delete", base: base.clone(), rewrite: Rewrite::Delete, race: None },
        RewriteScenario {
            name: "compaction rebasing over an append",
            base: base.clone(),
            rewrite: Rewrite::Compact,
            race: race.clone(),
        },
        RewriteScenario { name: "delete rebasing over an append", base, rewrite: Rewrite::Delete, race },
    ];
    let mut counts = Vec::new();
    for scenario in &scenarios {
        counts.push(format!("{} {}", scenario.name, scenario.run(&mut tally).await));
    }
    println!("rewrite fault positions: {} (positions per mode: {}; x2 modes)", tally.positions, counts.join(", "));
    for (outcome, count) in &tally.outcomes {
        println!("  {outcome}: {count}");
    }
    assert!(tally.outcomes.keys().any(|o| o.contains("unknown")), "no position produced an unknown outcome");
}

#[tokio::test]
async fn reads_under_a_fault_at_every_call_are_right_or_an_error() {
    let store = Arc::new(InMemory::new());
    let mut table = new_table(clean_location(store.clone(), ROOT), "1m").await;
    table.append(vec![b1()]).await.unwrap();
    table.append(vec![b2()]).await.unwrap();
    let expected = observe(&TimeSeriesTable::open(clean_location(store.clone(), ROOT)).await.unwrap()).await;
    // A read: open, scan every row, ask coverage questions.
    let read = |faulty: FaultyStore| async move {
        let table = TimeSeriesTable::open(faulty.location(ROOT)).await?;
        let rows = super::scan_rows(&table).await?;
        let answers = super::coverage_answers(&table).await?;
        Ok::<_, Error>(Observed { version: table.version(), rows, answers })
    };
    let probe = FaultyStore::new(fork(&store));
    assert_eq!(read(probe.clone()).await.unwrap(), expected);
    let read_calls = probe.call_count();
    assert!(probe.calls().iter().all(|c| !c.kind.is_write()), "readers never write: {:?}", probe.calls());

    let mut positions = 0;
    let mut errors = 0;
    for mode in MODES {
        for k in 1..=read_calls {
            let faulty = FaultyStore::new(fork(&store));
            faulty.arm(None, k, mode);
            match read(faulty.clone()).await {
                Ok(seen) => assert_eq!(seen, expected, "read {mode:?} at call {k}: a wrong answer instead of an error"),
                Err(e) => {
                    errors += 1;
                    let text = e.to_string();
                    assert!(
                        text.contains("injected fault"),
                        "read {mode:?} at call {k}: the error hides its cause: {text}"
                    );
                }
            }
            assert!(faulty.calls().iter().all(|c| !c.kind.is_write()), "a failed read wrote to the store");
            let clean = TimeSeriesTable::open(clean_location(faulty.inner(), ROOT)).await.unwrap();
            assert_eq!(observe(&clean).await, expected, "read {mode:?} at call {k} changed the table");
            positions += 1;
        }
    }
    println!("read fault positions: {positions} ({read_calls} calls x2 modes), {errors} surfaced as errors");
    assert!(errors > 0);
}

#[tokio::test]
async fn the_wrapper_counts_fails_and_delays_as_configured() {
    use object_store::path::Path;
    use object_store::ObjectStoreExt;
    let faulty = FaultyStore::new(Arc::new(InMemory::new()));
    let path = Path::from("a/b");
    faulty.arm(Some(CallKind::Put), 2, FaultMode::FailBefore);
    faulty.put(&path, "1".into()).await.unwrap();
    assert!(faulty.put(&path, "2".into()).await.is_err());
    assert_eq!(
        faulty.inner().get(&path).await.unwrap().bytes().await.unwrap().as_ref(),
        b"1",
        "fail-before must not write"
    );
    faulty.reset();
    faulty.arm(None, 1, FaultMode::FailAfter);
    assert!(faulty.put(&path, "3".into()).await.is_err());
    assert_eq!(faulty.inner().get(&path).await.unwrap().bytes().await.unwrap().as_ref(), b"3", "fail-after must write");
    faulty.reset();
    faulty.arm(Some(CallKind::Delete), 1, FaultMode::FailBefore);
    assert!(faulty.delete(&path).await.is_err());
    assert!(faulty.head(&path).await.is_ok());
    faulty.delay(Some(CallKind::Head), std::time::Duration::from_millis(30));
    let started = std::time::Instant::now();
    faulty.head(&path).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(30));
    let kinds: Vec<_> = faulty.calls().iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![CallKind::Delete, CallKind::Head, CallKind::Head]);
    assert_eq!(faulty.injected(), 1);
}

/// What the S3 pass runs under a fault.
#[derive(Clone, Copy, Debug, PartialEq)]
enum OnS3 {
    Create,
    Append,
    /// By a handle one version behind: the first commit attempt loses the race.
    AppendAfterALostRace,
    /// One segment of about 7 MB, uploaded in two parts (5 MiB, S3's minimum, and the rest).
    MultipartAppend,
}

impl OnS3 {
    /// The table before the operation (none for a create) on a fresh prefix of the test
    /// bucket, and a handle over the fault wrapper around the S3 store, named `s3://` so
    /// that it is probed and uploads in S3's part sizes. Runs clean.
    async fn setup(self) -> (FaultyStore, String, TableLocation, Option<TimeSeriesTable>) {
        let url = s3_url();
        let s3 = test_location(&url);
        let (faulty, location) = FaultyStore::around_s3(&url);
        let root = location.path("").to_string();
        if self == OnS3::Create {
            return (faulty, root, location, None);
        }
        new_table(s3.clone(), "1m").await.append(vec![b1()]).await.unwrap();
        let mut table = TimeSeriesTable::open(location.clone()).await.unwrap();
        if self == OnS3::AppendAfterALostRace {
            TimeSeriesTable::open(s3).await.unwrap().append(vec![b2()]).await.unwrap();
        }
        if self == OnS3::MultipartAppend {
            table = table.with_writer_options(WriterOptions::default().with_segment_rows(1_000_000));
        }
        faulty.reset();
        (faulty, root, location, Some(table))
    }

    async fn run(self, location: TableLocation, table: Option<TimeSeriesTable>) -> Result<u64, Error> {
        let batches = match self {
            OnS3::Create => return TimeSeriesTable::create_with_spec(location, spec("1m")).await.map(|t| t.version()),
            OnS3::Append => vec![b2()],
            OnS3::AppendAfterALostRace => vec![b3()],
            OnS3::MultipartAppend => random_bars("R", 450_000),
        };
        table.unwrap().append(batches).await.map(|r| r.version)
    }
}

/// The fault suite on S3: the fault wrapper around the S3 store of the test server
/// (`scripts/test`), a fault at every call of a create (with its probe), an append and an
/// append after a lost race, and at every write of an append uploading in parts. Each
/// position runs on a fresh prefix, checked as on the other stores; every multipart
/// upload started on S3 is completed or aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_append_survive_a_fault_at_every_call_on_s3() {
    let Some(_) = s3_endpoint() else { return };
    let mut tally = Tally::default();
    let mut counts = Vec::new();
    for op in [OnS3::Create, OnS3::Append, OnS3::AppendAfterALostRace, OnS3::MultipartAppend] {
        let name = format!("{op:?} on S3");
        let (probe, root, location, table) = op.setup().await;
        let clean = clean_location(probe.inner(), &root);
        let old = match op {
            OnS3::Create => None,
            _ => Some(observe(&TimeSeriesTable::open(clean.clone()).await.unwrap()).await),
        };
        op.run(location, table).await.unwrap_or_else(|e| panic!("{name}: clean run: {e}"));
        let calls = probe.calls();
        let new = observe(&TimeSeriesTable::open(clean).await.unwrap()).await;
        if op == OnS3::MultipartAppend {
            let parts = calls.iter().filter(|c| c.kind == CallKind::UploadPart).count();
            assert_eq!(parts, 2, "{name}: one segment in two parts");
        }
        let writes_only = op == OnS3::MultipartAppend;
        let positions: Vec<u64> = calls.iter().filter(|c| !writes_only || c.kind.is_write()).map(|c| c.n).collect();
        for mode in MODES {
            for &k in &positions {
                let (faulty, root, location, table) = op.setup().await;
                faulty.arm(None, k, mode);
                let result = op.run(location, table).await;
                assert_eq!(faulty.injected(), 1, "{name} {mode:?} k={k}: the fault did not fire");
                let seen = faulty.calls();
                let fault = &seen[k as usize - 1];
                let what = format!("{name}, {mode:?} at call {k} ({:?} {})", fault.kind, fault.path);
                let outcome = check_after(faulty.inner(), &root, &what, result, fault, &seen, old.as_ref(), &new).await;
                assert_uploads_ended(&what, &seen, k);
                // The create's probe file goes again unless the fault hit that delete.
                let probes = clean_location(faulty.inner(), &root).list("_probe").await.unwrap();
                assert!(probes.is_empty() || fault.kind == CallKind::Delete, "{what}: probe left: {probes:?}");
                tally.record(&name, mode, &outcome);
            }
        }
        counts.push(format!("{name} {}", positions.len()));
    }
    println!("fault positions on S3: {} (per mode: {}; x2 modes)", tally.positions, counts.join(", "));
    for (outcome, count) in &tally.outcomes {
        println!("  {outcome}: {count}");
    }
}
