//! Coverage at scale, through the Rust API (no SQL planning):
//!
//! 1. bytes per entity-year of one-minute coverage, in the version 1 sidecar layout (array
//!    and bitmap containers) and in version 2 (run containers);
//! 2. size, open time and memory of the table coverage of 5,000 entities x 5 years of
//!    trading sessions;
//! 3. latency of `coverage()`, `gaps()` and `last_covered_window()` over 500 entities x 60
//!    trading days, for all entities and for one, with the table's schedule and without.
//!
//! Run with `cargo bench --bench coverage` (a release build); the results are recorded in
//! BENCHMARKS.md. The tables are synthetic: each is one segment whose sidecar holds the
//! coverage (its data file is never read), committed through the log.

// Shared with the SQL benchmarks; this one uses only the spec and the timing helpers.
#[allow(dead_code)]
mod common;
#[path = "common/counting.rs"]
mod counting;

use std::time::{Duration, Instant};

use roaring::RoaringTreemap;
use timeseries_table_core::coverage::{encode_sidecar, BucketSet, Coverage};
use timeseries_table_core::metadata::{EntityKey, EntityValue, SegmentId, SegmentMeta, TableMeta};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{Expected, TimeRange, TimeSeriesTable};
use timeseries_table_core::transaction_log::{Commit, CommitOutcome, LogAction, LogStore};

use common::{median, ms, spec};

const MINUTE: i64 = 60_000_000_000;
const DAY_MINUTES: i64 = 1_440;
/// 2020-01-01T00:00Z in minutes.
const START_2020: i64 = 26_297_280;
/// 14:30-21:00 UTC: New York's session in winter.
const OPEN: i64 = 870;
const SESSION: i64 = 390;
const SCHEDULE: &str = "UTC; Mon-Fri 14:30-21:00";

/// Minute ids of the first minute of each weekday session in `days` calendar days from 2020-01-01
/// (a Wednesday).
fn sessions(days: i64) -> Vec<i64> {
    (0..days).filter(|d| (d + 2) % 7 < 5).map(|d| START_2020 + d * DAY_MINUTES + OPEN).collect()
}

fn key(i: usize) -> EntityKey {
    EntityKey(vec![EntityValue::Str(format!("S{i:05}"))])
}

/// Bytes of a set in the given form: the portable treemap plus the sidecar's 32 bytes of
/// entity framing (key, lengths) for a short key.
fn layout_bytes(ids: impl Iterator<Item = i64>, runs: bool) -> usize {
    let mut map = RoaringTreemap::new();
    for id in ids {
        // One by one, as the version 1 writer (roaring 0.10) built sets: no run containers.
        map.insert((id as u64) ^ (1 << 63));
    }
    if runs {
        map.optimize();
    }
    map.serialized_size() + 32
}

fn bytes_per_entity_year() {
    println!("## 1. Bytes per entity-year of one-minute coverage");
    println!();
    println!("| coverage of one entity for 2024 | buckets | version 1 layout | version 2 (runs) |");
    println!("|---|---:|---:|---:|");
    let year = START_2020 + 4 * 365 * DAY_MINUTES + DAY_MINUTES; // 2024-01-01
    let every_minute: Vec<i64> = (year..year + 366 * DAY_MINUTES).collect();
    // 2024-01-01 is a Monday.
    let trading: Vec<i64> =
        (0..366).filter(|d| d % 7 < 5).map(|d| year + d * DAY_MINUTES + OPEN).flat_map(|s| s..s + SESSION).collect();
    for (what, ids) in [("every minute", &every_minute), ("weekday sessions, 09:30-16:00 NY", &trading)] {
        println!(
            "| {what} | {} | {} | {} |",
            ids.len(),
            layout_bytes(ids.iter().copied(), false),
            layout_bytes(ids.iter().copied(), true)
        );
    }
    println!();
}

/// A table whose single segment covers `coverage` (data file absent, never read).
async fn synthetic_table(coverage: &Coverage, schedule: Option<&str>) -> (TimeSeriesTable, usize) {
    let location = TableLocation::memory(&format!("cov{}", SegmentId::random()), "t").unwrap();
    let meta = TableMeta::try_new(spec()).unwrap().with_schedule(schedule.map(|s| s.parse().unwrap()));
    let table = TimeSeriesTable::create(location.clone(), meta).await.unwrap();
    let bytes = encode_sidecar(coverage);
    let size = bytes.len();
    let id = SegmentId::random();
    let coverage_path = format!("_coverage/segments/{id}.roar");
    location.put(&coverage_path, bytes::Bytes::from(bytes)).await.unwrap();
    let extent = coverage.extent().unwrap();
    let keys: Vec<EntityKey> = coverage.entities().map(|(k, _)| k.clone()).collect();
    let segment = SegmentMeta {
        path: format!("data/{id}.parquet"),
        id,
        coverage_path,
        ts_min: extent.start * MINUTE,
        ts_max: extent.end * MINUTE - 1,
        row_count: coverage.bucket_count(),
        size_bytes: 0,
        sorted: true,
        entity_count: keys.len() as u64,
        entities: (keys.len() <= 10_000).then_some(keys),
        added_in_version: 0,
    };
    let commit = Commit::new(table.version() + 1, "append", vec![LogAction::AddSegment(segment)]);
    assert_eq!(LogStore::new(location.clone()).try_commit(&commit).await.unwrap(), CommitOutcome::Committed);
    (TimeSeriesTable::open(location).await.unwrap(), size)
}

async fn five_thousand_entities_five_years() {
    println!("## 2. 5,000 entities x 5 years of sessions (2020-2024, 390 one-minute buckets a weekday)");
    println!();
    let starts = sessions(5 * 365 + 1);
    let started = Instant::now();
    let mut coverage = Coverage::new();
    for e in 0..5_000 {
        let mut set = BucketSet::new();
        for &s in &starts {
            set.insert_range(s..s + SESSION);
        }
        set.optimize();
        coverage.insert_set(key(e), set);
    }
    let built = started.elapsed();
    let one_entity_v1 = layout_bytes(starts.iter().flat_map(|&s| s..s + SESSION), false);
    let (table, sidecar) = synthetic_table(&coverage, None).await;
    drop(coverage);
    let mut opens = Vec::new();
    let mut memory = 0;
    for _ in 0..5 {
        let before = counting::live_bytes();
        let started = Instant::now();
        let opened = TimeSeriesTable::open(table.location().clone()).await.unwrap();
        let loaded = opened.snapshot().table_coverage().await.unwrap();
        opens.push(started.elapsed());
        // The handle and its coverage (and the segment cache) are alive here.
        memory = counting::held_since(before);
        assert_eq!(loaded.entity_count(), 5_000);
    }
    // An append of one row: its commit unions the new segment into the table coverage, which
    // shares every untouched entity's set with the previous version instead of copying it.
    let mut writer = TimeSeriesTable::open(table.location().clone()).await.unwrap();
    writer.snapshot().table_coverage().await.unwrap();
    let mut appends = Vec::new();
    for i in 0..5 {
        let minute = START_2020 + 5 * 366 * DAY_MINUTES + OPEN + i;
        let started = Instant::now();
        writer.append(vec![one_row(minute)]).await.unwrap();
        appends.push(started.elapsed());
    }
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| buckets covered | {} |", 5_000 * starts.len() as u64 * SESSION as u64);
    println!("| sidecar, version 2 (runs) | {:.1} MiB |", sidecar as f64 / (1 << 20) as f64);
    println!(
        "| the same in the version 1 layout (5,000 x one entity's {} bytes) | {:.1} MiB |",
        one_entity_v1,
        (5_000 * one_entity_v1) as f64 / (1 << 20) as f64
    );
    println!("| open + load the table coverage (median of 5) | {} ms |", ms(median(opens)));
    println!("| heap held by an opened table with its coverage loaded | {:.1} MiB |", memory as f64 / (1 << 20) as f64);
    println!("| append one row (commit included, median of 5) | {} ms |", ms(median(appends)));
    println!("| building the coverage in memory | {} ms |", ms(built));
    println!();
}

/// One bar of `S00000` at `minute`.
fn one_row(minute: i64) -> arrow::array::RecordBatch {
    use arrow::array::{StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let schema = Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("symbol", DataType::Utf8, false),
    ]);
    arrow::array::RecordBatch::try_new(
        std::sync::Arc::new(schema),
        vec![
            std::sync::Arc::new(TimestampNanosecondArray::from(vec![minute * MINUTE])),
            std::sync::Arc::new(StringArray::from(vec!["S00000"])),
        ],
    )
    .unwrap()
}

/// 500 entities x 60 calendar days of sessions, each entity halted 45 minutes on one day in
/// seven and missing one whole session in twenty.
fn five_hundred_entities() -> Coverage {
    let starts = sessions(60);
    let mut coverage = Coverage::new();
    for e in 0..500usize {
        let mut set = BucketSet::new();
        for (d, &s) in starts.iter().enumerate() {
            if (d + e) % 20 == 0 {
                continue;
            }
            if (d + e) % 7 == 0 {
                let halt = s + 60 + (e as i64 % 200);
                set.insert_range(s..halt);
                set.insert_range(halt + 45..s + SESSION);
            } else {
                set.insert_range(s..s + SESSION);
            }
        }
        set.optimize();
        coverage.insert_set(key(e), set);
    }
    coverage
}

/// Milliseconds with three decimals: one entity's answers take microseconds.
fn ms3(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Median time of `runs` calls of `f`.
async fn time<F: std::future::Future>(runs: usize, mut f: impl FnMut() -> F) -> Duration {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        std::hint::black_box(f().await);
        samples.push(started.elapsed());
    }
    median(samples)
}

async fn latency() {
    println!("## 3. Latency on 500 entities x 60 days (median of 50 calls, table coverage loaded)");
    println!();
    let coverage = five_hundred_entities();
    let (table, _) = synthetic_table(&coverage, Some(SCHEDULE)).await;
    let snapshot = table.snapshot();
    snapshot.table_coverage().await.unwrap();
    let one = [key(7)];
    let window = TimeRange::from_nanos(START_2020 * MINUTE, (START_2020 + 60 * DAY_MINUTES) * MINUTE).unwrap();
    println!("| call | with the schedule | every bucket (`always`) | rows (schedule / always) |");
    println!("|---|---:|---:|---:|");
    for (what, entities) in [("all 500 entities", None), ("one entity", Some(&one[..]))] {
        let mut cells = Vec::new();
        let mut rows = Vec::new();
        for expected in [Expected::TableSchedule, Expected::Always] {
            let e = &expected;
            let coverage = time(50, || snapshot.coverage_report(Some(window), entities, e)).await;
            rows.push(snapshot.coverage_report(Some(window), entities, e).await.unwrap().len());
            cells.push(coverage);
        }
        println!("| coverage(), {what} | {} ms | {} ms | {} / {} |", ms3(cells[0]), ms3(cells[1]), rows[0], rows[1]);
        let mut cells = Vec::new();
        let mut rows = Vec::new();
        for expected in [Expected::TableSchedule, Expected::Always] {
            let e = &expected;
            cells.push(time(50, || snapshot.gaps(Some(window), entities, e)).await);
            rows.push(snapshot.gaps(Some(window), entities, e).await.unwrap().len());
        }
        println!("| gaps(), {what} | {} ms | {} ms | {} / {} |", ms3(cells[0]), ms3(cells[1]), rows[0], rows[1]);
        let mut cells = Vec::new();
        for expected in [Expected::TableSchedule, Expected::Always] {
            let e = &expected;
            let length = Duration::from_secs(4 * 3_600);
            cells.push(time(50, || snapshot.last_covered_windows(length, None, entities, e)).await);
        }
        println!("| last_covered_window('4h'), {what} | {} ms | {} ms | |", ms3(cells[0]), ms3(cells[1]));
    }
    println!();
}

#[tokio::main]
async fn main() {
    bytes_per_entity_year();
    five_thousand_entities_five_years().await;
    latency().await;
}
