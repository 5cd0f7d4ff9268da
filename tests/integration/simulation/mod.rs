//! Deterministic simulation of the commit protocol and every rewrite.
//!
//! One seed decides everything: the operations of three writers and two readers, each
//! store call's latency, failures (before a call, or after it took effect), crashes of a
//! writer at a store call (its future dropped, its files left; it restarts with its next
//! operation), lagging listings and stale or torn reads ([`sim_store`]). Everything runs on
//! one thread: a current-thread tokio runtime with paused time, the crate's ids, clock and
//! computation seeded (`environment::seed_this_thread`), so a seed replays call for call.
//!
//! Each run starts from a base table a few commits short of its first checkpoint, so
//! checkpoints are written while writers race and fail. When the actors are done, faults
//! stop, a fresh writer must append, and the log is replayed against the model
//! ([`workload::Model`]), version by version, reading old versions from every file ever
//! written (vacuum rightly deletes files that only old versions read):
//! - every version's commit is exactly one operation's whole effect on the version before
//!   (an acknowledged operation at the version it was told; an unacknowledged one, crashed
//!   or failed, at most once, or not at all);
//! - versions are contiguous, and every listed commit file is one of them;
//! - each version's coverage is exactly the buckets of its rows, and no append that
//!   overlaps is ever admitted;
//! - the live segments' files all exist (vacuum never took a referenced file);
//! - what every reader saw (rows, coverage, gaps, SQL aggregates) is the model at the
//!   version it pinned, and did not change while it held it.
//!
//! `TSQ_SIM_SEEDS=N` runs seeds `0..N` (default [`DEFAULT_SEEDS`]); `TSQ_SIM_SEED=S` runs
//! one seed and prints its trace; `TSQ_SIM_SKIP=3,7` leaves those operations out (what
//! shrinking reports).

mod sim_store;
mod workload;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field};
use chrono::{DateTime, Utc};
use futures::future::{AbortHandle, Abortable};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::environment::seed_this_thread;
use timeseries_table_core::formats::parquet::stats::timestamps_as_nanos;
use timeseries_table_core::metadata::{EntityKey, EntityValue};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{
    ColumnValues, CompactOptions, EntityFilter, RowSelector, TimeRange, TimeSeriesTable, VacuumOptions,
};
use timeseries_table_core::transaction_log::LogStore;
use timeseries_table_core::Error;
use url::Url;

use crate::common::{spec, MINUTE, T0};
use sim_store::{Odds, SimStore, World};
use workload::{base_schema, batch, Model, Op, Row, Selection, SPAN_MINUTES};

/// Seeds run when `TSQ_SIM_SEEDS` is not set: sized to stay well inside CI's budget.
const DEFAULT_SEEDS: u64 = 400;
/// One-row appends in the base table: with its create commit and a compaction, version
/// 94, so a run's sixth commit is due the checkpoint at 100.
const BASE_APPENDS: i64 = 92;
const WRITERS: usize = 3;
const READERS: usize = 2;
const MAX_OPS_PER_WRITER: usize = 6;

/// A splitmix64 generator: small, seedable, the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 for n = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

fn base_epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

/// Runs start a day after the base was written.
fn run_epoch() -> DateTime<Utc> {
    base_epoch() + chrono::Duration::days(1)
}

/// A location over one actor's store handle.
fn location(store: SimStore, actor: usize) -> TableLocation {
    let url = Url::parse(&format!("memory://sim-{actor}")).unwrap();
    TableLocation::from_store(Arc::new(store), url, "t").unwrap()
}

/// The table every run starts from, built once per process (seeded, so always the same).
struct Base {
    store: InMemory,
    version: u64,
    model: Model,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let runtime = runtime();
        runtime.block_on(async {
            // A seed no run uses, so the base's file names are its own.
            let _seeded = seed_this_thread(u64::MAX, base_epoch());
            let world = World::new(u64::MAX, InMemory::new(), base_epoch(), base_epoch());
            let location = location(world.actor("base", false), 0);
            let mut table = TimeSeriesTable::create_with_spec(location, spec("1m")).await.unwrap();
            let mut model = Model::default();
            for minute in 0..BASE_APPENDS {
                let row: Row = (T0 + minute * MINUTE, "Z".into(), minute);
                table.append(vec![batch(&base_schema(), std::slice::from_ref(&row))]).await.unwrap();
                model.rows.push(row);
            }
            model.rows.sort();
            // One segment, so readers read few files; the log keeps its length.
            table.compact(CompactOptions::new()).await.unwrap();
            Base { store: world.fork_store(), version: table.version(), model }
        })
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Running,
    /// Acknowledged: the version it committed (if it did) and the rows it reported.
    Done {
        version: Option<u64>,
        rows: Option<u64>,
    },
    /// A SQL statement that reported `rows` changed; its version is not reported.
    Counted {
        rows: u64,
    },
    Failed(String),
    Crashed,
}

struct Record {
    id: usize,
    actor: String,
    op: Op,
    status: Status,
}

/// What a reader saw at the version it pinned.
struct Observation {
    actor: String,
    id: usize,
    version: u64,
    rows: Vec<Row>,
    covered: BTreeSet<(String, i64)>,
    /// Missing buckets per symbol in the first `SPAN_MINUTES` minutes, from `gaps()`.
    missing: BTreeMap<String, u64>,
    /// `count(*)` and `sum(volume)` through SQL.
    sql: (u64, i64),
}

#[derive(Default)]
struct Shared {
    records: Mutex<Vec<Record>>,
    observations: Mutex<Vec<Observation>>,
    problems: Mutex<Vec<String>>,
}

impl Shared {
    fn problem(&self, text: String) {
        self.problems.lock().unwrap().push(text);
    }

    fn set_status(&self, id: usize, status: Status) {
        let mut records = self.records.lock().unwrap();
        if let Some(record) = records.iter_mut().find(|r| r.id == id) {
            record.status = status;
        }
    }
}

/// What one run found.
pub struct Outcome {
    pub problems: Vec<String>,
    pub trace: Vec<String>,
    pub commits: u64,
    pub calls: u64,
    pub faults: u64,
    pub crashes: u64,
    /// Checkpoint files written during the run.
    pub checkpoints: u64,
    /// Files vacuum deleted.
    pub vacuumed: u64,
}

/// How a simulated world may differ from a sound store (the self-test breaks one).
#[derive(Debug, Clone, Copy, Default)]
pub struct Flaws {
    /// Create-if-absent overwrites, as a store without conditional writes would.
    pub racy_create: bool,
}

/// Runs seed `seed` without the operations in `skip`.
pub fn run_seed(seed: u64, skip: &BTreeSet<usize>, flaws: Flaws) -> Outcome {
    let base = base();
    let runtime = runtime();
    runtime.block_on(async {
        let _seeded = seed_this_thread(seed, run_epoch());
        let world = World::new(seed, base.store.fork(), run_epoch(), base_epoch());
        world.set_flaws(flaws);
        world.vault_existing().await;
        let mut rng = Rng::new(seed);
        world.set_odds(Some(Odds::from_rng(&mut rng)));
        let actors = workload::draw(&mut rng, WRITERS, READERS, MAX_OPS_PER_WRITER);
        let shared = Arc::new(Shared::default());
        let mut handles = Vec::new();
        for (index, ops) in actors.into_iter().enumerate() {
            let ops: Vec<(usize, Op)> = ops.into_iter().filter(|(id, _)| !skip.contains(id)).collect();
            let writer = index < WRITERS;
            let name = if writer { format!("w{index}") } else { format!("r{}", index - WRITERS) };
            let start = Duration::from_millis(rng.below(500));
            let think = Rng::new(seed.wrapping_mul(31).wrapping_add(index as u64));
            let actor = Actor { world: Arc::clone(&world), shared: Arc::clone(&shared), name, index, writer, think };
            handles.push(tokio::spawn(actor.run(ops, start)));
        }
        // Simulated time: an hour is far beyond any run, so reaching it means the actors
        // are stuck (time only advances when every task waits).
        let finished = tokio::time::timeout(Duration::from_secs(3600), futures::future::join_all(handles)).await;
        match finished {
            Err(_) => shared.problem("the actors did not finish within an hour of simulated time".into()),
            Ok(joined) => {
                for panicked in joined.into_iter().filter_map(|j| j.err()) {
                    shared.problem(format!("an actor panicked: {panicked}"));
                }
            }
        }
        world.set_odds(None);
        world.note("faults stop; checking");
        check(&world, base, &shared).await;
        let (calls, faults, crashes) = world.counts();
        let counting = location(world.actor("count", false), 99);
        let commits = LogStore::new(counting.clone()).latest_version().await.map_or(0, |v| v - base.version);
        let listed = counting.list("_timeseries_log").await.unwrap_or_default();
        let checkpoints = listed.iter().filter(|f| f.path.ends_with(".checkpoint.json")).count() as u64;
        let vacuumed = shared
            .records
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| match (&r.op, &r.status) {
                (Op::Vacuum { .. }, Status::Done { rows, .. }) => *rows,
                _ => None,
            })
            .sum();
        let problems = std::mem::take(&mut *shared.problems.lock().unwrap());
        Outcome { problems, trace: world.trace(), commits, calls, faults, crashes, checkpoints, vacuumed }
    })
}

/// One simulated process: runs its operations in order; crashed, it restarts (a new
/// process) with the operation after the one it died in.
struct Actor {
    world: Arc<World>,
    shared: Arc<Shared>,
    name: String,
    index: usize,
    writer: bool,
    think: Rng,
}

impl Actor {
    async fn run(mut self, ops: Vec<(usize, Op)>, start: Duration) {
        tokio::time::sleep(start).await;
        let mut next = 0;
        let mut incarnation = 0;
        while next < ops.len() {
            let label = if incarnation == 0 { self.name.clone() } else { format!("{}.{incarnation}", self.name) };
            let store = self.world.actor(&label, self.writer);
            let (abort, registration) = AbortHandle::new_pair();
            self.world.set_abort(&store, abort);
            let progress = Arc::new(AtomicUsize::new(next));
            // Mostly short pauses between operations; some long enough for vacuum's
            // retention to pass.
            let pauses: Vec<u64> =
                ops.iter()
                    .map(|_| {
                        if self.think.below(5) == 0 {
                            30_000 + self.think.below(90_000)
                        } else {
                            self.think.below(2000)
                        }
                    })
                    .collect();
            let work = self.ops(store, label.clone(), &ops, next, &pauses, Arc::clone(&progress));
            let finished = Abortable::new(work, registration).await;
            next = progress.load(Ordering::SeqCst);
            if finished.is_ok() {
                break;
            }
            let (id, _) = &ops[next];
            self.shared.set_status(*id, Status::Crashed);
            self.world.note(format!("{label} crashed in op {id}"));
            next += 1;
            incarnation += 1;
        }
    }

    async fn ops(
        &self,
        store: SimStore,
        label: String,
        ops: &[(usize, Op)],
        from: usize,
        pauses: &[u64],
        progress: Arc<AtomicUsize>,
    ) {
        let location = location(store, self.index);
        let mut table: Option<TimeSeriesTable> = None;
        for (i, (id, op)) in ops.iter().enumerate().skip(from) {
            progress.store(i, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(pauses[i])).await;
            self.shared.records.lock().unwrap().push(Record {
                id: *id,
                actor: label.clone(),
                op: op.clone(),
                status: Status::Running,
            });
            self.world.note(format!("{label} op {id}: {op}"));
            let status = if self.writer {
                match write(&location, &mut table, op).await {
                    Ok(status) => status,
                    Err(e) => {
                        table = None;
                        if !expected_writer_error(&e) {
                            self.shared.problem(format!("{label} op {id} ({op}) failed unexpectedly: {e}"));
                        }
                        Status::Failed(e.to_string())
                    }
                }
            } else {
                match read(&location, op, &label, *id).await {
                    Ok((observation, second)) => {
                        if second != observation.rows {
                            self.shared.problem(format!(
                                "{label} op {id}: the snapshot of version {} changed while held: {} rows, then {}",
                                observation.version,
                                observation.rows.len(),
                                second.len()
                            ));
                        }
                        let version = observation.version;
                        self.shared.observations.lock().unwrap().push(observation);
                        Status::Done { version: Some(version), rows: None }
                    }
                    Err(e) => {
                        if !e.to_string().contains("injected failure") {
                            self.shared.problem(format!("{label} op {id} ({op}) failed unexpectedly: {e}"));
                        }
                        Status::Failed(e.to_string())
                    }
                }
            };
            self.world.note(format!("{label} op {id} -> {status:?}"));
            self.shared.set_status(*id, status);
        }
    }
}

/// Failures a writer may meet in this world: injected ones and the refusals the table
/// rules make (overlap, a lost race, a schema changed meanwhile, an unknown outcome).
fn expected_writer_error(error: &Error) -> bool {
    error.to_string().contains("injected failure")
        || matches!(
            error,
            Error::Overlap { .. }
                | Error::Conflict { .. }
                | Error::CommitOutcomeUnknown { .. }
                | Error::SchemaMismatch { .. }
                | Error::InvalidInput { .. }
        )
}

fn symbol_filter(symbol: Option<&str>) -> EntityFilter {
    match symbol {
        Some(s) => EntityFilter::from([(0, BTreeSet::from([EntityValue::Str(s.into())]))]),
        None => EntityFilter::new(),
    }
}

fn selector(selection: &Selection) -> timeseries_table_core::Result<RowSelector> {
    Ok(RowSelector::range(TimeRange::from_nanos(selection.from, selection.to)?, symbol_filter(selection.symbol)))
}

/// Runs a writer's operation.
async fn write(location: &TableLocation, table: &mut Option<TimeSeriesTable>, op: &Op) -> Result<Status, Error> {
    if table.is_none() {
        *table = Some(TimeSeriesTable::open(location.clone()).await?);
    }
    let table = table.as_mut().unwrap();
    let done = |version: Option<u64>, rows: Option<u64>| Ok(Status::Done { version, rows });
    match op {
        Op::Append(rows) => {
            table.refresh().await?;
            let schema = table.schema().unwrap_or_else(base_schema);
            let result = table.append(vec![batch(&schema, rows)]).await?;
            done(Some(result.version), Some(result.rows))
        }
        Op::Delete { selection, sql: false } => {
            let report = table.delete(&selector(selection)?).await?;
            done(report.version, Some(report.rows_deleted))
        }
        Op::Delete { selection, sql: true } => {
            let ctx = session_context();
            register_opened(&ctx, "t", table.clone())?;
            let statement = format!("DELETE FROM t WHERE {}", selection.sql());
            let batches = ctx.sql(&statement).await?.collect().await?;
            let rows = first_u64(&batches[0])?;
            table.refresh().await?;
            Ok(if rows == 0 { Status::Done { version: None, rows: Some(0) } } else { Status::Counted { rows } })
        }
        Op::Update { selection, add } => {
            let add = *add;
            let values: ColumnValues = Arc::new(move |batch: &RecordBatch| {
                let volume = batch.column_by_name("volume").expect("a volume column");
                let volume = volume.as_any().downcast_ref::<Int64Array>().expect("Int64 volumes");
                Ok(Arc::new(volume.iter().map(|v| v.map(|v| v + add)).collect::<Int64Array>()) as ArrayRef)
            });
            let report = table.update(&selector(selection)?, &[("volume".to_string(), values)]).await?;
            done(report.version, Some(report.rows_updated))
        }
        Op::Replace { selection, rows } => {
            table.refresh().await?;
            let schema = table.schema().unwrap_or_else(base_schema);
            let range = TimeRange::from_nanos(selection.from, selection.to)?;
            let data = futures::stream::iter([Ok(batch(&schema, rows))]);
            let report = table.replace(range, symbol_filter(selection.symbol), data).await?;
            done(Some(report.version), Some(report.rows_deleted))
        }
        Op::Compact { target_rows } => {
            let report = table.compact(CompactOptions::new().with_target_rows(*target_rows)).await?;
            done(report.version, None)
        }
        Op::AddColumn(name) => {
            let version = table.add_columns(vec![Field::new(name, DataType::Float64, true)]).await?;
            done(Some(version), None)
        }
        Op::Vacuum { retention_secs } => {
            let options = VacuumOptions::new().with_retention(Duration::from_secs(*retention_secs));
            let report = table.vacuum(options).await?;
            done(None, Some(report.with_status(timeseries_table_core::table::OrphanStatus::Deleted).count() as u64))
        }
        Op::Read { .. } => unreachable!("readers read"),
    }
}

/// A reader's operation: what it saw at the version it pinned, and its rows read again
/// after the pause.
async fn read(location: &TableLocation, op: &Op, actor: &str, id: usize) -> Result<(Observation, Vec<Row>), Error> {
    let Op::Read { pause_ms } = op else { unreachable!("writers write") };
    let table = TimeSeriesTable::open(location.clone()).await?;
    let version = table.version();
    let rows = table_rows(&table).await?;
    let covered = covered(&table).await?;
    let window = TimeRange::from_nanos(T0, T0 + SPAN_MINUTES * MINUTE)?;
    let mut missing = BTreeMap::new();
    for gap in table.gaps(Some(window), None).await? {
        *missing.entry(symbol_of(&gap.entity)).or_default() += gap.missing_buckets;
    }
    tokio::time::sleep(Duration::from_millis(*pause_ms)).await;
    let again = table_rows(&table).await?;
    let pinned = TimeSeriesTable::open_at(location.clone(), version).await?;
    let ctx = session_context();
    register_opened(&ctx, "t", pinned)?;
    let batches = ctx.sql("SELECT count(*), coalesce(sum(volume), 0) FROM t").await?.collect().await?;
    let count = first_u64(&batches[0])?;
    let sum = batches[0].column(1).as_any().downcast_ref::<Int64Array>().map_or(i64::MIN, |a| a.value(0));
    let observation = Observation { actor: actor.to_string(), id, version, rows, covered, missing, sql: (count, sum) };
    Ok((observation, again))
}

/// A test-side failure as an error of the crate's type.
fn bad(reason: impl Into<String>) -> Error {
    Error::InvalidInput { reason: reason.into() }
}

fn first_u64(batch: &RecordBatch) -> Result<u64, Error> {
    let column = arrow::compute::cast(batch.column(0), &DataType::UInt64)?;
    Ok(column.as_any().downcast_ref::<arrow::array::UInt64Array>().map_or(u64::MAX, |a| a.value(0)))
}

fn symbol_of(key: &EntityKey) -> String {
    match key.0.as_slice() {
        [EntityValue::Str(s)] => s.clone(),
        other => format!("{other:?}"),
    }
}

/// Every row through the table's scan, sorted.
async fn table_rows(table: &TimeSeriesTable) -> Result<Vec<Row>, Error> {
    if table.schema().is_none() {
        return Ok(Vec::new());
    }
    let batches: Vec<RecordBatch> = table.scan(None).await?.try_collect().await?;
    let mut rows = Vec::new();
    for batch in &batches {
        rows.extend(batch_rows(batch)?);
    }
    rows.sort();
    Ok(rows)
}

fn batch_rows(batch: &RecordBatch) -> Result<Vec<Row>, Error> {
    let column = |name: &str| batch.column_by_name(name).cloned().ok_or_else(|| bad(format!("no column {name}")));
    let ts = timestamps_as_nanos(&column("ts")?, "ts")?;
    let symbols = column("symbol")?;
    let symbols = symbols.as_any().downcast_ref::<StringArray>().ok_or_else(|| bad("symbol"))?;
    let volumes = column("volume")?;
    let volumes = volumes.as_any().downcast_ref::<Int64Array>().ok_or_else(|| bad("volume"))?;
    Ok((0..batch.num_rows())
        .map(|i| (ts[i], symbols.value(i).to_string(), if volumes.is_null(i) { i64::MIN } else { volumes.value(i) }))
        .collect())
}

/// The (symbol, minute) buckets the table's coverage holds.
async fn covered(table: &TimeSeriesTable) -> Result<BTreeSet<(String, i64)>, Error> {
    let coverage = table.snapshot().table_coverage().await?;
    let mut out = BTreeSet::new();
    for (key, set) in coverage.entities() {
        let symbol = symbol_of(key);
        out.extend(set.iter().map(|bucket| (symbol.clone(), bucket)));
    }
    Ok(out)
}

/// Missing buckets per covered symbol in the first `SPAN_MINUTES` minutes.
fn model_missing(model: &Model) -> BTreeMap<String, u64> {
    let covered = model.covered();
    let first = T0.div_euclid(MINUTE);
    let symbols: BTreeSet<&String> = covered.iter().map(|(s, _)| s).collect();
    symbols
        .into_iter()
        .map(|s| {
            let inside = covered.iter().filter(|(c, b)| c == s && (first..first + SPAN_MINUTES).contains(b)).count();
            (s.clone(), SPAN_MINUTES as u64 - inside as u64)
        })
        .filter(|(_, missing)| *missing > 0)
        .collect()
}

/// The checks once the actors are done (see the module docs).
async fn check(world: &Arc<World>, base: &Base, shared: &Shared) {
    let location = location(world.actor("check", false), 98);
    if let Err(problem) = check_log(world, &location, base, shared).await {
        shared.problem(problem);
    }
}

async fn check_log(world: &World, location: &TableLocation, base: &Base, shared: &Shared) -> Result<(), String> {
    let failed = |what: &str, e: Error| format!("{what}: {e}");
    // With the faults gone, a fresh writer always gets in.
    let mut fresh = TimeSeriesTable::open(location.clone()).await.map_err(|e| failed("a fresh open", e))?;
    let rows: Vec<Row> = (0..3).map(|m| (T0 + m * MINUTE, "F".to_string(), -m)).collect();
    let schema = fresh.schema().unwrap_or_else(base_schema);
    let appended = fresh.append(vec![batch(&schema, &rows)]).await.map_err(|e| failed("a fresh writer's append", e))?;
    shared.records.lock().unwrap().push(Record {
        id: 0,
        actor: "fresh".into(),
        op: Op::Append(rows),
        status: Status::Done { version: Some(appended.version), rows: Some(appended.rows) },
    });

    let log = LogStore::new(location.clone());
    let latest = log.latest_version().await.map_err(|e| failed("the latest version", e))?;
    let listed: BTreeSet<u64> = location
        .list("_timeseries_log")
        .await
        .map_err(|e| failed("listing the log", e))?
        .iter()
        .filter_map(|f| f.path.rsplit('/').next()?.strip_suffix(".json")?.parse().ok())
        .collect();
    let expected: BTreeSet<u64> = (1..=latest).collect();
    if listed != expected {
        return Err(format!("the log lists versions {listed:?}, not 1..={latest}"));
    }

    // Old versions are read from every file ever written: vacuum rightly deletes the files
    // of segments removed longer ago than its retention, which time travel then misses.
    let history = TableLocation::from_store(
        Arc::new(world.vault_store().await),
        Url::parse("memory://sim-history").unwrap(),
        "t",
    )
    .unwrap();
    let mut model = base.model.clone();
    let mut models = BTreeMap::from([(base.version, model.clone())]);
    let mut matched: BTreeSet<usize> = BTreeSet::new();
    let mut segment_rows: HashMap<String, Vec<Row>> = HashMap::new();
    for version in base.version + 1..=latest {
        let commit = log.read_commit(version).await.map_err(|e| failed("reading a commit", e))?;
        let table = TimeSeriesTable::open_at(history.clone(), version).await.map_err(|e| failed("time travel", e))?;
        let actual = version_rows(&table, &mut segment_rows).await.map_err(|e| failed("reading segments", e))?;
        let columns: Vec<String> =
            table.schema().map(|s| s.fields().iter().skip(3).map(|f| f.name().clone()).collect()).unwrap_or_default();
        let (id, next) =
            explain(&shared.records.lock().unwrap(), &matched, &model, version, &commit.operation, &actual, &columns)?;
        matched.insert(id);
        let table_covered =
            covered(&table).await.map_err(|e| failed(&format!("the coverage of version {version}"), e))?;
        if table_covered != next.covered() {
            return Err(format!(
                "version {version}: coverage is not the buckets of its rows: {} buckets, rows cover {}",
                table_covered.len(),
                next.covered().len()
            ));
        }
        model = next;
        models.insert(version, model.clone());
    }
    for record in shared.records.lock().unwrap().iter() {
        let acknowledged = match record.status {
            Status::Done { version: Some(_), .. } => record.op.commit_name().is_some(),
            Status::Counted { .. } => true,
            _ => false,
        };
        if acknowledged && !matched.contains(&record.id) {
            return Err(format!(
                "op {} of {} ({}) was acknowledged ({:?}) but is not in the log",
                record.id, record.actor, record.op, record.status
            ));
        }
    }

    // Vacuum never took a file the latest version reads.
    let latest_table = TimeSeriesTable::open(location.clone()).await.map_err(|e| failed("opening the latest", e))?;
    for segment in latest_table.segments() {
        for path in [&segment.path, &segment.coverage_path] {
            if location.size(path).await.map_err(|e| failed("a head", e))?.is_none() {
                return Err(format!("the live segment {} has lost {path}", segment.id));
            }
        }
    }
    let ctx = session_context();
    register_opened(&ctx, "t", latest_table).map_err(|e| failed("registering", e))?;
    let batches = ctx
        .sql("SELECT count(*), coalesce(sum(volume), 0) FROM t")
        .await
        .map_err(|e| failed("SQL", e.into()))?
        .collect()
        .await
        .map_err(|e| failed("SQL", e.into()))?;
    let count = first_u64(&batches[0]).map_err(|e| failed("SQL", e))?;
    let sum: i64 = model.rows.iter().map(|r| r.2).sum();
    let got = batches[0].column(1).as_any().downcast_ref::<Int64Array>().map_or(i64::MIN, |a| a.value(0));
    if (count, got) != (model.rows.len() as u64, sum) {
        return Err(format!(
            "SQL at the latest version: count {count} sum {got}, the model {} {sum}",
            model.rows.len()
        ));
    }

    for seen in shared.observations.lock().unwrap().iter() {
        let Some(expected) = models.get(&seen.version) else {
            return Err(format!("{} op {} pinned version {}, before the run", seen.actor, seen.id, seen.version));
        };
        let what = format!("{} op {} at version {}", seen.actor, seen.id, seen.version);
        if seen.rows != expected.rows {
            return Err(format!("{what} read other rows: {}", diff(&expected.rows, &seen.rows)));
        }
        if seen.covered != expected.covered() {
            return Err(format!("{what}: its coverage is not its version's"));
        }
        if seen.missing != model_missing(expected) {
            return Err(format!("{what}: gaps() {:?}, the model {:?}", seen.missing, model_missing(expected)));
        }
        let sum: i64 = expected.rows.iter().map(|r| r.2).sum();
        if seen.sql != (expected.rows.len() as u64, sum) {
            return Err(format!(
                "{what}: SQL count and sum {:?}, the model {:?}",
                seen.sql,
                (expected.rows.len(), sum)
            ));
        }
    }
    Ok(())
}

/// The operation whose whole effect on `model` gives the rows and added columns found at
/// `version`: the operation acknowledged at that version, or else one not yet matched,
/// unacknowledged, of the commit's kind. With the model after it.
fn explain(
    records: &[Record],
    matched: &BTreeSet<usize>,
    model: &Model,
    version: u64,
    operation: &str,
    actual: &[Row],
    columns: &[String],
) -> Result<(usize, Model), String> {
    let told = records.iter().find(
        |r| matches!(r.status, Status::Done { version: Some(v), .. } if v == version && r.op.commit_name().is_some()),
    );
    let candidates: Vec<&Record> = match told {
        Some(record) => vec![record],
        None => {
            let mut unmatched: Vec<&Record> = records
                .iter()
                .filter(|r| !matched.contains(&r.id) && r.op.commit_name() == Some(operation))
                .filter(|r| {
                    matches!(r.status, Status::Failed(_) | Status::Crashed | Status::Counted { .. } | Status::Running)
                })
                .collect();
            // Two operations may have the same effect here (say, deletes whose ranges hold
            // the same rows); one that reported success must commit, the others need not.
            unmatched.sort_by_key(|r| !matches!(r.status, Status::Counted { .. }));
            unmatched
        }
    };
    let mut reasons = Vec::new();
    for record in candidates {
        match model.after(&record.op) {
            Ok((next, rows)) if next.rows == actual && next.added_columns == columns => {
                let reported = match record.status {
                    Status::Done { rows, .. } => rows,
                    Status::Counted { rows } => Some(rows),
                    _ => None,
                };
                if reported.is_some_and(|r| r != rows) {
                    reasons.push(format!("op {} reported {reported:?} rows, the model {rows}", record.id));
                    continue;
                }
                return Ok((record.id, next));
            }
            Ok((next, _)) => reasons.push(format!(
                "op {} ({}) would leave {} rows and columns {:?}: {}",
                record.id,
                record.op,
                next.rows.len(),
                next.added_columns,
                diff(&next.rows, actual)
            )),
            Err(why) => reasons.push(format!("op {} ({}) cannot commit here: {why}", record.id, record.op)),
        }
    }
    Err(format!(
        "version {version} ({operation}, {} rows, columns {columns:?}) is no operation's whole effect on version {}:\n    {}",
        actual.len(),
        version - 1,
        if reasons.is_empty() { "no candidate".to_string() } else { reasons.join("\n    ") }
    ))
}

/// The rows of a version, from its live segments' files (each read once per run).
async fn version_rows(table: &TimeSeriesTable, cache: &mut HashMap<String, Vec<Row>>) -> Result<Vec<Row>, Error> {
    let mut rows = Vec::new();
    for segment in table.segments() {
        if !cache.contains_key(&segment.path) {
            let bytes =
                table.location().get(&segment.path).await?.ok_or_else(|| {
                    bad(format!("segment {} has no file {}, and never had", segment.id, segment.path))
                })?;
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                .map_err(|e| bad(e.to_string()))?
                .build()
                .map_err(|e| bad(e.to_string()))?;
            let mut segment_rows = Vec::new();
            for batch in reader {
                segment_rows.extend(batch_rows(&batch?)?);
            }
            cache.insert(segment.path.clone(), segment_rows);
        }
        rows.extend(cache[&segment.path].iter().cloned());
    }
    rows.sort();
    Ok(rows)
}

/// A short account of how two sorted row lists differ.
fn diff(expected: &[Row], actual: &[Row]) -> String {
    let expected_set: BTreeSet<&Row> = expected.iter().collect();
    let actual_set: BTreeSet<&Row> = actual.iter().collect();
    let missing: Vec<&&Row> = expected_set.difference(&actual_set).take(3).collect();
    let extra: Vec<&&Row> = actual_set.difference(&expected_set).take(3).collect();
    format!(
        "{} rows expected, {} found; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
        expected.len(),
        actual.len()
    )
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}")))
}

fn skip_from_env() -> BTreeSet<usize> {
    std::env::var("TSQ_SIM_SKIP")
        .map(|v| {
            v.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse().expect("TSQ_SIM_SKIP: numbers"))
                .collect()
        })
        .unwrap_or_default()
}

/// The operation ids of a seed's workload.
fn op_ids(seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let _ = Odds::from_rng(&mut rng);
    workload::draw(&mut rng, WRITERS, READERS, MAX_OPS_PER_WRITER).into_iter().flatten().map(|(id, _)| id).collect()
}

/// Leaves out one operation at a time while the seed still fails: the smallest failing
/// set of skipped operations found within a few dozen runs.
fn shrink(seed: u64, flaws: Flaws) -> (BTreeSet<usize>, usize) {
    let mut skip = BTreeSet::new();
    let mut runs = 0;
    let mut progress = true;
    while progress && runs < 60 {
        progress = false;
        for id in op_ids(seed) {
            if skip.contains(&id) || runs >= 60 {
                continue;
            }
            let mut candidate = skip.clone();
            candidate.insert(id);
            runs += 1;
            if !run_seed(seed, &candidate, flaws).problems.is_empty() {
                skip = candidate;
                progress = true;
            }
        }
    }
    (skip, runs)
}

/// Runs `seeds` on every core; the failing seeds with their problems.
fn run_seeds(seeds: Vec<u64>, flaws: Flaws) -> (Vec<(u64, Vec<String>)>, [u64; 6]) {
    let queue = Arc::new(Mutex::new(seeds));
    let results = Arc::new(Mutex::new((Vec::new(), [0u64; 6])));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (queue, results) = (Arc::clone(&queue), Arc::clone(&results));
            std::thread::spawn(move || loop {
                let Some(seed) = queue.lock().unwrap().pop() else { break };
                let outcome = run_seed(seed, &BTreeSet::new(), flaws);
                let mut results = results.lock().unwrap();
                let counts = [
                    outcome.commits,
                    outcome.calls,
                    outcome.faults,
                    outcome.crashes,
                    outcome.checkpoints,
                    outcome.vacuumed,
                ];
                for (total, n) in results.1.iter_mut().zip(counts) {
                    *total += n;
                }
                if !outcome.problems.is_empty() {
                    results.0.push((seed, outcome.problems));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let (mut failed, totals) = std::mem::take(&mut *results.lock().unwrap());
    failed.sort();
    (failed, totals)
}

#[test]
fn simulation_of_writers_readers_and_faults() {
    if let Some(seed) = env_u64("TSQ_SIM_SEED") {
        let outcome = run_seed(seed, &skip_from_env(), Flaws::default());
        for line in &outcome.trace {
            println!("{line}");
        }
        assert!(outcome.problems.is_empty(), "seed {seed}:\n  {}", outcome.problems.join("\n  "));
        return;
    }
    let count = env_u64("TSQ_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let started = Instant::now();
    let (failed, [commits, calls, faults, crashes, checkpoints, vacuumed]) =
        run_seeds((0..count).rev().collect(), Flaws::default());
    println!(
        "simulation: {count} seeds, {commits} commits, {checkpoints} checkpoints, {calls} store calls, \
         {faults} injected failures, {crashes} crashes, {vacuumed} files vacuumed, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (seed, problems) in failed.iter().take(20) {
        println!("seed {seed}: {}", problems[0]);
    }
    if let Some((seed, problems)) = failed.first() {
        let (skip, runs) = shrink(*seed, Flaws::default());
        let skip: Vec<String> = skip.iter().map(|id| id.to_string()).collect();
        panic!(
            "{} of {count} seeds failed: {:?}\nseed {seed}:\n  {}\nsmallest failing run found ({runs} tries): without operations [{}]\nreplay with its trace:\n  TSQ_SIM_SEED={seed} TSQ_SIM_SKIP={} cargo test --test integration simulation_of -- --nocapture",
            failed.len(),
            failed.iter().map(|(s, _)| s).collect::<Vec<_>>(),
            problems.join("\n  "),
            skip.join(", "),
            skip.join(",")
        );
    }
}

#[test]
fn simulation_replays_a_seed_call_for_call() {
    for seed in [3, 11] {
        let first = run_seed(seed, &BTreeSet::new(), Flaws::default());
        let again = run_seed(seed, &BTreeSet::new(), Flaws::default());
        assert!(first.calls > 100, "seed {seed} made only {} store calls", first.calls);
        if let Some(i) = first.trace.iter().zip(&again.trace).position(|(a, b)| a != b) {
            panic!("seed {seed} diverged at trace line {i}:\n  {}\n  {}", first.trace[i], again.trace[i]);
        }
        assert_eq!(first.trace.len(), again.trace.len(), "seed {seed}: traces of different lengths");
    }
}

/// The checks have teeth: on a store whose create-if-absent overwrites, concurrent
/// writers overwrite each other's commits, and some seed must show it.
#[test]
fn simulation_catches_a_store_without_conditional_create() {
    let (failed, _) = run_seeds((0..24).collect(), Flaws { racy_create: true });
    assert!(!failed.is_empty(), "no seed noticed commits overwriting each other");
    let (seed, problems) = &failed[0];
    println!("seed {seed} on a racy store: {}", problems[0]);
}
