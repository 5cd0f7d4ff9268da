//! Maintenance benchmark: a table fed by 10,000 single-row INSERTs before and after
//! `compact`, and a DELETE of one symbol-day from the large daily layout.
//!
//! Run: `cargo bench --bench maintenance` (release build; a few minutes on 2 cores) or
//! `cargo bench --bench maintenance -- --quick` for a small smoke run. Prints markdown
//! tables; BENCHMARKS.md records a run.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{build, median, ms, run, spec};
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::sample::MarketBars;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{CompactOptions, TimeSeriesTable};

/// Median time of `sql` over `repeats` runs after one warm-up, in a fresh session.
async fn timed(table: &TimeSeriesTable, sql: &str, repeats: usize) -> Duration {
    let ctx = session_context();
    register_opened(&ctx, "bars", table.clone()).expect("register");
    run(&ctx, sql).await;
    let mut samples = Vec::new();
    for _ in 0..repeats {
        samples.push(run(&ctx, sql).await.0);
    }
    median(samples)
}

/// 10,000 (or, quick, 1,000) single-row INSERTs, then `compact`.
async fn small_inserts(work: &Path, inserts: usize, repeats: usize) {
    let dir = work.join("inserts");
    let mut table =
        TimeSeriesTable::create_with_spec(TableLocation::local(&dir).expect("dir"), spec()).await.expect("create");
    // The first append fixes the schema; every INSERT after it adds one row.
    let bars = MarketBars::new(20, 1);
    let day = bars.day_batch(0);
    table.append(vec![day.slice(0, 1)]).await.expect("first row");
    let ctx = session_context();
    register_opened(&ctx, "bars", table.clone()).expect("register");
    let start = Instant::now();
    let symbols = 20;
    for i in 1..inserts {
        // Row i: symbol i % 20 at minute i / 20 after the day's first bar.
        let minute = (i / symbols) as i64;
        let ts_ms = MarketBars::day_start_ms(0) + (14 * 60 + 30 + minute) * 60_000;
        let sql = format!(
            "INSERT INTO bars VALUES (to_timestamp_millis({ts_ms}) AT TIME ZONE 'UTC', 'Z{:03}', 1.0, 2.0, 0.5, 1.5, {i})",
            i % symbols
        );
        run(&ctx, &sql).await;
    }
    let insert_time = start.elapsed();
    table.refresh().await.expect("refresh");
    let before_segments = table.segments().len();
    let selective = "SELECT count(*), avg(close) FROM bars WHERE symbol = 'Z007' AND ts >= '2024-01-02T15:00:00Z' AND ts < '2024-01-02T16:00:00Z'";
    let count = "SELECT count(*) FROM bars";
    let full = "SELECT symbol, sum(volume) FROM bars GROUP BY symbol";
    let before = [
        timed(&table, selective, repeats).await,
        timed(&table, count, repeats).await,
        timed(&table, full, repeats).await,
    ];
    let size_before = table.snapshot().size_bytes();

    let start = Instant::now();
    let report = table.compact(CompactOptions::new()).await.expect("compact");
    let compact_time = start.elapsed();
    let after = [
        timed(&table, selective, repeats).await,
        timed(&table, count, repeats).await,
        timed(&table, full, repeats).await,
    ];

    println!("\n| {inserts} single-row INSERTs | value |\n|---|---:|");
    println!("| inserting (s) | {:.1} |", insert_time.as_secs_f64());
    println!("| compact (ms) | {} |", ms(compact_time));
    println!("| segments before / after | {before_segments} / {} |", report.segments_after);
    println!(
        "| live data before / after | {:.1} MiB / {:.2} MiB |",
        size_before as f64 / 1048576.0,
        report.bytes_written as f64 / 1048576.0
    );
    println!("\n| query (median of {repeats}) | before compact (ms) | after (ms) | speed-up |\n|---|---:|---:|---:|");
    for (name, b, a) in [
        ("one symbol, one hour", before[0], after[0]),
        ("COUNT(*)", before[1], after[1]),
        ("sum by symbol (full scan)", before[2], after[2]),
    ] {
        println!("| {name} | {} | {} | {:.1}x |", ms(b), ms(a), b.as_secs_f64() / a.as_secs_f64());
    }
}

/// DELETE of one symbol-day from layout A (one segment per trading day, all symbols).
async fn delete_symbol_day(work: &Path, symbols: usize, days: usize) {
    let dir = work.join("daily");
    let bars = MarketBars::new(symbols, days);
    let mut table = build(&dir, symbols, days, false).await;
    let before: std::collections::BTreeSet<_> = table.segments().iter().map(|s| s.id.clone()).collect();
    let rows_before = table.snapshot().row_count();
    let ctx = session_context();
    register_opened(&ctx, "bars", table.clone()).expect("register");
    let symbol = &bars.symbols[1];
    let day = days / 2;
    let start_ms = MarketBars::day_start_ms(day);
    let sql = format!(
        "DELETE FROM bars WHERE symbol = '{symbol}' AND ts >= to_timestamp_millis({start_ms}) AND ts < to_timestamp_millis({})",
        start_ms + 86_400_000
    );
    let start = Instant::now();
    run(&ctx, &sql).await;
    let took = start.elapsed();
    table.refresh().await.expect("refresh");
    let added: Vec<_> = table.segments().into_iter().filter(|s| !before.contains(&s.id)).collect();
    let removed = before.len() + added.len() - table.segments().len();
    let rewritten: u64 = added.iter().map(|s| s.size_bytes).sum();
    println!(
        "\n| DELETE one symbol-day from {} rows in {} daily segments | value |\n|---|---:|",
        rows_before,
        before.len()
    );
    println!("| time (ms) | {} |", ms(took));
    println!("| rows deleted | {} |", rows_before - table.snapshot().row_count());
    println!("| segments removed / written | {removed} / {} |", added.len());
    println!(
        "| bytes rewritten | {:.1} MiB of {:.1} MiB |",
        rewritten as f64 / 1048576.0,
        table.snapshot().size_bytes() as f64 / 1048576.0
    );
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let work: PathBuf = std::env::var("TSQ_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("tsq-bench-maintenance"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    let (inserts, symbols, days, repeats) = if quick { (1_000, 20, 5, 3) } else { (10_000, 500, 60, 7) };
    small_inserts(&work, inserts, repeats).await;
    delete_symbol_day(&work, symbols, days).await;
    let _ = std::fs::remove_dir_all(&work);
}
