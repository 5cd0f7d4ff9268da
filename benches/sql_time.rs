//! SQL for time series: what pruning through date functions saves, and what gap filling
//! costs against doing the same in plain SQL.
//!
//! 1. A one-day query written with `CAST(ts AS DATE) = d`, pruned (this crate's session)
//!    against unpruned (the same filter OR'ed with a condition no row meets and no
//!    pruning understands, which is how every date function read before), with the plain
//!    range for reference, on layout A (60 daily segments) and layout B (9,667 symbol-day
//!    segments).
//! 2. One symbol over the 60 days of layout A at 1 minute, carried forward: with
//!    `date_bin_gapfill` + `locf`, against a calendar from `generate_series` left-joined to
//!    the aggregate and filled with `last_value(...) IGNORE NULLS` (their rows and checksums
//!    must agree).
//!
//! Run: `cargo bench --bench sql_time` (release; builds the layouts in about 5 minutes on
//! 2 cores) or `cargo bench --bench sql_time -- --quick`. BENCHMARKS.md records a run.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{build, median, ms, run};
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::prelude::SessionContext;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::metadata::format_nanos;
use timeseries_table_core::sample::MarketBars;

async fn timed(ctx: &SessionContext, sql: &str, repeats: usize) -> (String, usize) {
    run(ctx, sql).await;
    let mut samples = Vec::new();
    let mut rows = 0;
    for _ in 0..repeats {
        let (t, n) = run(ctx, sql).await;
        samples.push(t);
        rows = n;
    }
    (ms(median(samples)), rows)
}

/// The segments the scan of `sql` reads, from the scan's pruning counters.
async fn segments_read(ctx: &SessionContext, sql: &str) -> usize {
    fn counter(plan: &Arc<dyn ExecutionPlan>, name: &str) -> usize {
        let own = plan.metrics().and_then(|m| m.sum_by_name(name)).map_or(0, |v| v.as_usize());
        own + plan.children().into_iter().map(|child| counter(child, name)).sum::<usize>()
    }
    let plan = ctx.sql(sql).await.expect("plans").create_physical_plan().await.expect("plans");
    collect(Arc::clone(&plan), ctx.task_ctx()).await.expect("runs");
    ["segments_pruned_by_time", "segments_pruned_by_entity", "segments_pruned_by_coverage", "segments_pruned_by_limit"]
        .iter()
        .fold(counter(&plan, "segments_total"), |read, name| read - counter(&plan, name))
}

/// A checksum of a query's rows, so two formulations can be seen to agree.
async fn checksum(ctx: &SessionContext, sql: &str) -> String {
    let wrapped = format!("SELECT count(*) AS n, count(v) AS filled, round(sum(v), 3) AS total FROM ({sql})");
    let batches = ctx.sql(&wrapped).await.expect("plans").collect().await.expect("runs");
    arrow::util::pretty::pretty_format_batches(&batches)
        .expect("prints")
        .to_string()
        .lines()
        .nth(3)
        .unwrap_or("")
        .to_string()
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (symbols, days_a, days_b, repeats) = if quick { (20, 10, 3, 3) } else { (500, 60, 20, 7) };
    let work: PathBuf = std::env::var("TSQ_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("tsq-bench-sql-time"));
    let _ = std::fs::remove_dir_all(&work);

    println!("| layout | one day written as | segments read | median (ms) | rows |\n|---|---|---:|---:|---:|");
    let mut layout_a = None;
    for (label, days, per_symbol) in [("A", days_a, false), ("B", days_b, true)] {
        let table = build(&work.join(label), symbols, days, per_symbol).await;
        let ctx = session_context();
        register_opened(&ctx, "bars", table.clone()).expect("register");
        let layout = format!("{label} ({} segments)", table.segments().len());
        let day_ms = MarketBars::day_start_ms(days / 2);
        let day = format_nanos(day_ms * 1_000_000)[..10].to_string();
        let (from, to) = (format_nanos(day_ms * 1_000_000), format_nanos((day_ms + 86_400_000) * 1_000_000));
        let select = "SELECT symbol, avg(close), sum(volume) FROM bars WHERE";
        for (written, filter) in [
            ("`ts >= d AND ts < d + 1`", format!("ts >= '{from}' AND ts < '{to}'")),
            ("`CAST(ts AS DATE) = d`, pruned", format!("CAST(ts AS DATE) = DATE '{day}'")),
            ("`CAST(ts AS DATE) = d`, unpruned", format!("(CAST(ts AS DATE) = DATE '{day}' OR volume < 0)")),
        ] {
            let sql = format!("{select} {filter} GROUP BY symbol");
            let read = segments_read(&ctx, &sql).await;
            let (median, rows) = timed(&ctx, &sql, repeats).await;
            println!("| {layout} | {written} | {read} | {median} | {rows} |");
        }
        if !per_symbol {
            layout_a = Some((ctx, days));
        }
    }

    let (ctx, days) = layout_a.expect("layout A built");
    let first = MarketBars::day_start_ms(0) * 1_000_000;
    let end = (MarketBars::day_start_ms(days - 1) + 86_400_000) * 1_000_000;
    let (from, to) = (format_nanos(first), format_nanos(end));
    let last_minute = format_nanos(end - 60_000_000_000);
    let range = format!("symbol = 'MSFT' AND ts >= '{from}' AND ts < '{to}'");
    let gapfill = format!(
        "SELECT date_bin_gapfill(INTERVAL '1 minute', ts) AS minute, locf(avg(close)) AS v \
         FROM bars WHERE {range} GROUP BY minute ORDER BY minute"
    );
    let calendar = format!(
        "WITH calendar AS (
           SELECT arrow_cast(value, 'Timestamp(Nanosecond, Some(\"UTC\"))') AS minute
           FROM generate_series(TIMESTAMP '{}', TIMESTAMP '{}', INTERVAL '1 minute')),
         agg AS (
           SELECT date_bin(INTERVAL '1 minute', ts) AS minute, avg(close) AS value
           FROM bars WHERE {range} GROUP BY date_bin(INTERVAL '1 minute', ts))
         SELECT c.minute, last_value(a.value) IGNORE NULLS OVER (ORDER BY c.minute
                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS v
         FROM calendar c LEFT JOIN agg a ON a.minute = c.minute ORDER BY c.minute",
        &from[..19],
        &last_minute[..19]
    );
    let (ours, theirs) = (checksum(&ctx, &gapfill).await, checksum(&ctx, &calendar).await);
    assert_eq!(ours, theirs, "gap fill and calendar join must agree");
    println!(
        "\n| one symbol, {days} trading days at 1 minute, carried forward | median (ms) | rows |\n|---|---:|---:|"
    );
    for (name, sql) in
        [("`date_bin_gapfill` + `locf`", &gapfill), ("calendar join + `last_value IGNORE NULLS`", &calendar)]
    {
        let (median, rows) = timed(&ctx, sql, repeats).await;
        println!("| {name} | {median} | {rows} |");
    }
    println!("\nchecksum (rows, filled, sum): {ours}");
}
