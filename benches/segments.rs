//! Cost against segment count: opening a table from its checkpoint, the heap its snapshot
//! holds, `COUNT(*)`/`MIN(ts)`/`MAX(ts)`, and planning a selective query (one symbol, one
//! hour) and a one-day query, at 1,000 to 1,000,000 segments.
//!
//! Run with `cargo bench --bench segments` (a release build; `-- 1000 10000` for some sizes
//! only); the results are recorded in BENCHMARKS.md. The tables are synthetic, in layout
//! B's shape: one segment per symbol and day (500 symbols, 390 one-minute bars a day,
//! 14:30-21:00 UTC), all added by one commit and opened from a checkpoint of it. The
//! segments' data files are never written, since nothing here reads them: the
//! aggregates are answered from metadata or statistics, and the other queries are only
//! planned. Each symbol's coverage sidecar is real (shared by its segments), so planning
//! prunes by coverage as on a real table.

// Shared with the other benchmarks; this one uses the spec and the timing helpers.
#[allow(dead_code)]
mod common;
#[path = "common/counting.rs"]
mod counting;

use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use timeseries_table_core::coverage::{encode_sidecar, BucketSet, Coverage};
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::metadata::{format_nanos, EntityKey, EntityValue, SegmentId, SegmentMeta, TableMeta};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;
use timeseries_table_core::transaction_log::checkpoint::encode_checkpoint;
use timeseries_table_core::transaction_log::{checkpoint_path, Commit, CommitOutcome, LogAction, LogStore};

use common::{median, ms, spec};

const SYMBOLS: usize = 500;
const MINUTE: i64 = 60_000_000_000;
/// 2020-01-01T00:00Z in minutes.
const START_2020: i64 = 26_297_280;
const DAY_MINUTES: i64 = 1_440;
/// 14:30 UTC, and 390 minutes to 21:00.
const OPEN: i64 = 870;
const SESSION: i64 = 390;

fn key(symbol: usize) -> EntityKey {
    EntityKey(vec![EntityValue::Str(symbol_name(symbol))])
}

fn symbol_name(symbol: usize) -> String {
    format!("S{symbol:05}")
}

fn session_start(day: usize) -> i64 {
    START_2020 + day as i64 * DAY_MINUTES + OPEN
}

/// Creates the table of `segments` segments (a multiple of [`SYMBOLS`]) in `dir` and
/// writes a checkpoint of it. Returns the checkpoint's size in bytes.
async fn build(location: &TableLocation, segments: usize) -> usize {
    let days = segments / SYMBOLS;
    let schema = Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("close", DataType::Float64, true),
    ]);
    let meta = TableMeta::try_with_schema(spec(), &schema).expect("valid meta");
    let table = TimeSeriesTable::create(location.clone(), meta).await.expect("create");
    let mut actions = Vec::with_capacity(segments);
    for symbol in 0..SYMBOLS {
        let mut set = BucketSet::new();
        for day in 0..days {
            set.insert_range(session_start(day)..session_start(day) + SESSION);
        }
        set.optimize();
        let mut coverage = Coverage::new();
        coverage.insert_set(key(symbol), set);
        let path = format!("_coverage/segments/{}.roar", symbol_name(symbol));
        location.put(&path, bytes::Bytes::from(encode_sidecar(&coverage))).await.expect("sidecar");
    }
    for day in 0..days {
        for symbol in 0..SYMBOLS {
            let id = format!("d{day:05}-{}", symbol_name(symbol));
            actions.push(LogAction::AddSegment(SegmentMeta {
                path: format!("data/{id}.parquet"),
                id: SegmentId(id),
                coverage_path: format!("_coverage/segments/{}.roar", symbol_name(symbol)),
                ts_min: session_start(day) * MINUTE,
                ts_max: (session_start(day) + SESSION) * MINUTE - 1,
                row_count: SESSION as u64,
                size_bytes: 20_000,
                sorted: true,
                entity_count: 1,
                entities: Some(vec![key(symbol)]),
                added_in_version: 0,
            }));
        }
    }
    let store = LogStore::new(location.clone());
    let commit = Commit::new(table.version() + 1, "append", actions);
    assert_eq!(store.try_commit(&commit).await.expect("commit"), CommitOutcome::Committed);
    let state = store.load(None).await.expect("load");
    let checkpoint = encode_checkpoint(&state).expect("encode checkpoint");
    let size = checkpoint.len();
    location.put(&checkpoint_path(state.version), bytes::Bytes::from(checkpoint)).await.expect("checkpoint");
    size
}

/// Plans `sql` (no execution) and returns the time and the plan's text.
async fn plan(ctx: &SessionContext, sql: &str) -> (Duration, String) {
    let started = Instant::now();
    let plan = ctx.sql(sql).await.expect("plans").create_physical_plan().await.expect("physical plan");
    let elapsed = started.elapsed();
    let text = displayable(plan.as_ref()).indent(true).to_string();
    (elapsed, text)
}

/// Median of `runs` timings of `f`, after one untimed call.
async fn timed<F, Fut>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    f().await;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        samples.push(f().await);
    }
    median(samples)
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("segment counts as numbers"))
        .collect();
    let sizes = if sizes.is_empty() { vec![1_000, 10_000, 100_000, 1_000_000] } else { sizes };
    println!("| segments | checkpoint (MiB) | open (ms) | heap per segment (B) | COUNT/MIN/MAX, our session (ms) | same, plain session (ms) | plan: one symbol, one hour (ms) | plan: one day, all symbols (ms) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for segments in sizes {
        let segments = segments.div_ceil(SYMBOLS) * SYMBOLS;
        let dir = tempfile::tempdir().expect("tempdir");
        let location = TableLocation::local(dir.path().join("t")).expect("location");
        let checkpoint = build(&location, segments).await;

        // Open (and build the time index, which the first query would), timed without
        // counting allocations; then once more counting, for the heap held after.
        let opens = if segments >= 1_000_000 { 3 } else { 5 };
        let mut samples = Vec::new();
        counting::count(false);
        for _ in 0..opens {
            let started = Instant::now();
            let opened = TimeSeriesTable::open(location.clone()).await.expect("open");
            assert_eq!(opened.snapshot().segments().len(), segments);
            samples.push(started.elapsed());
        }
        // The first open also pays for the allocator's deferred work of the build's frees.
        eprintln!("{segments} segments: opens {:?} ms", samples.iter().map(|t| ms(*t)).collect::<Vec<_>>());
        counting::count(true);
        let open = median(samples);
        let before = counting::live_bytes();
        let table = TimeSeriesTable::open(location.clone()).await.expect("open");
        assert_eq!(table.snapshot().segments().len(), segments);
        let heap = counting::held_since(before);

        let ctx = session_context();
        register_opened(&ctx, "t", table.clone()).expect("register");
        let aggregates = "SELECT count(*), min(ts), max(ts) FROM t";
        let batches = ctx.sql(aggregates).await.expect("plans").collect().await.expect("runs");
        let rows = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().expect("a count").value(0);
        assert_eq!(rows, segments as i64 * SESSION);
        let ours = timed(15, || async { common::run(&ctx, aggregates).await.0 }).await;

        // Without the metadata rule: DataFusion answers from the scan's statistics.
        let plain_ctx = SessionContext::new();
        register_opened(&plain_ctx, "t", table.clone()).expect("register");
        let plain_runs = if segments >= 1_000_000 { 3 } else { 7 };
        let plain = timed(plain_runs, || async { common::run(&plain_ctx, aggregates).await.0 }).await;

        // One symbol, one hour, in the middle of the table's days.
        let day = segments / SYMBOLS / 2;
        let hour = session_start(day) + 60;
        let (from, to) = (format_nanos(hour * MINUTE), format_nanos((hour + 60) * MINUTE));
        let selective =
            format!("SELECT * FROM t WHERE symbol = '{}' AND ts >= '{from}' AND ts < '{to}'", symbol_name(42));
        let (_, text) = plan(&ctx, &selective).await;
        assert_eq!(text.matches(".parquet").count(), 1, "{text}");
        let selective = timed(15, || async { plan(&ctx, &selective).await.0 }).await;

        let (from, to) =
            (format_nanos(session_start(day) * MINUTE), format_nanos((session_start(day) + SESSION) * MINUTE));
        let one_day = format!("SELECT symbol, avg(close) FROM t WHERE ts >= '{from}' AND ts < '{to}' GROUP BY symbol");
        let (_, text) = plan(&ctx, &one_day).await;
        // The day's 500 small segments, each read whole.
        assert!(text.contains(&format!("SmallSegmentsExec: segments={SYMBOLS}")), "{text}");
        let one_day = timed(15, || async { plan(&ctx, &one_day).await.0 }).await;

        println!(
            "| {segments} | {:.1} | {} | {} | {} | {} | {} | {} |",
            checkpoint as f64 / (1 << 20) as f64,
            ms(open),
            heap / segments,
            ms(ours),
            ms(plain),
            ms(selective),
            ms(one_day),
        );
    }
}
