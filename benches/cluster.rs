//! Distributed queries: what a Ballista cluster costs and buys on one machine.
//!
//! - The benchmark queries on a local session, and on a cluster in this process (its own
//!   scheduler and executors, talking gRPC on localhost) with 1 and with 2 executors of 2
//!   task slots each. Every answer is compared across the three (averages rounded to 6
//!   digits: summation order differs between partitionings).
//! - Planning on the scheduler for a table of about 10,000 segments: decoding the client's
//!   plan and planning it in the scheduler's session, as the scheduler does per job,
//!   against planning in a local session.
//!
//! `cargo bench --bench cluster` (release; it builds its tables in a temporary folder).

// Shared with the other benchmarks; this one uses part of it.
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::{
    logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
};
use timeseries_table_core::datafusion::cluster::{
    cluster_config, scheduler_session, standalone_session_context, TableCodec,
};
use timeseries_table_core::datafusion::{register_table, session_context};
use timeseries_table_core::sample::MarketBars;

use common::{build, median, ms};

const RUNS: usize = 7;

fn day_range(day: usize, from_min: i64, minutes: i64) -> (String, String) {
    let start = MarketBars::day_start_ms(day) + from_min * 60_000;
    let fmt = |ms: i64| timeseries_table_core::metadata::format_nanos(ms * 1_000_000);
    (fmt(start), fmt(start + minutes * 60_000))
}

fn queries(days: usize) -> Vec<(&'static str, String)> {
    let (h0, h1) = day_range(days / 2, 15 * 60 + 30, 60);
    let (d0, d1) = day_range(days / 2, 0, 24 * 60);
    vec![
        ("one symbol, one hour", format!("SELECT * FROM bars WHERE symbol = 'MSFT' AND ts >= '{h0}' AND ts < '{h1}' ORDER BY ts")),
        (
            "one day, all symbols, by symbol",
            format!("SELECT symbol, round(avg(close), 6), sum(volume) FROM bars WHERE ts >= '{d0}' AND ts < '{d1}' GROUP BY symbol ORDER BY symbol"),
        ),
        ("full scan: count, min, max, avg", "SELECT count(*), min(ts), max(ts), round(avg(close), 6) FROM bars".into()),
        (
            "15-minute rollup of one day",
            format!(
                "SELECT date_bin(INTERVAL '15 minutes', ts) AS b, symbol, max(high), min(low), sum(volume) FROM bars \
                 WHERE ts >= '{d0}' AND ts < '{d1}' GROUP BY b, symbol ORDER BY b, symbol"
            ),
        ),
        ("ORDER BY ts DESC LIMIT 100", "SELECT * FROM bars ORDER BY ts DESC, symbol LIMIT 100".into()),
        ("coverage()", "SELECT * FROM coverage('bars') ORDER BY symbol".into()),
        ("gaps() of one symbol", "SELECT * FROM gaps('bars') WHERE symbol = 'MSFT' ORDER BY gap_start".into()),
    ]
}

/// The answer as text (to compare) and the time it took, planning included.
async fn answer(ctx: &SessionContext, sql: &str) -> (String, Duration) {
    let start = Instant::now();
    let batches = ctx.sql(sql).await.expect("plans").collect().await.expect("runs");
    let took = start.elapsed();
    (pretty_format_batches(&batches).expect("prints").to_string(), took)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let work = tempfile::tempdir().expect("temp dir");
    let (symbols, days) = (200, 20);
    let dir = work.path().join("daily");
    let table = build(&dir, symbols, days, false).await;
    let rows: u64 = table.segments().iter().map(|s| s.row_count).sum();
    println!(
        "table: {symbols} symbols x {days} days, one segment per day ({} segments, {rows} rows)\n",
        table.segments().len()
    );
    let path = dir.to_string_lossy().into_owned();

    let local = session_context();
    let one = standalone_session_context(1, 2, &[]).await.expect("cluster of 1");
    let two = standalone_session_context(2, 2, &[]).await.expect("cluster of 2");
    for ctx in [&local, &one, &two] {
        register_table(ctx, "bars", &path).await.expect("registers");
    }
    println!("| query | local ms | 1 executor ms | 2 executors ms |");
    println!("|---|---:|---:|---:|");
    for (name, sql) in queries(days) {
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        let (want, _) = answer(&local, &sql).await;
        for (i, ctx) in [&one, &two].into_iter().enumerate() {
            let (got, _) = answer(ctx, &sql).await;
            assert_eq!(want, got, "{name}: the answer on {} executor(s) differs", i + 1);
        }
        for _ in 0..RUNS {
            for (i, ctx) in [&local, &one, &two].into_iter().enumerate() {
                times[i].push(answer(ctx, &sql).await.1);
            }
        }
        let [a, b, c] = times.map(median);
        println!("| {name} | {} | {} | {} |", ms(a), ms(b), ms(c));
    }

    // Planning for about 10,000 segments (one per symbol and day).
    let dir = work.path().join("per-symbol-day");
    let started = Instant::now();
    let table = build(&dir, 520, 20, true).await;
    let segments = table.segments().len();
    println!(
        "\ntable: 520 symbols x 20 days, one segment per symbol and day: {segments} segments (built in {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    let path = dir.to_string_lossy().into_owned();
    let client = session_context();
    register_table(&client, "bars", &path).await.expect("registers");
    let (h0, h1) = day_range(10, 15 * 60 + 30, 60);
    let selective = format!("SELECT * FROM bars WHERE symbol = 'MSFT' AND ts >= '{h0}' AND ts < '{h1}'");

    let codec = TableCodec::default();
    let scheduler_codec = TableCodec::default();
    let scheduler = SessionContext::new_with_state(scheduler_session(cluster_config()).expect("scheduler session"));
    let mut local_plan = Vec::new();
    let mut scheduler_plan = Vec::new();
    let mut first = None;
    for _ in 0..=RUNS {
        let start = Instant::now();
        let frame = client.sql(&selective).await.expect("plans");
        frame.create_physical_plan().await.expect("plans");
        local_plan.push(start.elapsed());

        // What the client sends and what the scheduler does with it.
        let logical = client.sql(&selective).await.expect("plans").into_optimized_plan().expect("optimizes");
        let bytes = logical_plan_to_bytes_with_extension_codec(&logical, &codec).expect("encodes");
        let start = Instant::now();
        let decoded = logical_plan_from_bytes_with_extension_codec(&bytes, &scheduler.task_ctx(), &scheduler_codec)
            .expect("decodes");
        scheduler.state().create_physical_plan(&decoded).await.expect("plans on the scheduler");
        let took = start.elapsed();
        // The first decode opens the table (once per scheduler process); later ones reuse it.
        if first.is_none() {
            first = Some(took);
        } else {
            scheduler_plan.push(took);
        }
    }
    local_plan.remove(0);
    println!("| planning a selective query, {segments} segments | ms |");
    println!("|---|---:|");
    println!("| local session (plan) | {} |", ms(median(local_plan)));
    println!("| scheduler: decode + plan, first job (opens the table) | {} |", ms(first.expect("ran")));
    println!("| scheduler: decode + plan, later jobs | {} |", ms(median(scheduler_plan)));

    let cluster = Arc::new(one);
    register_table(&cluster, "wide", &path).await.expect("registers");
    let on_cluster = selective.replace("FROM bars", "FROM wide");
    let mut end_to_end = Vec::new();
    for _ in 0..=RUNS {
        end_to_end.push(answer(&cluster, &on_cluster).await.1);
    }
    end_to_end.remove(0);
    println!("| whole query through the cluster (1 executor) | {} |", ms(median(end_to_end)));
}
