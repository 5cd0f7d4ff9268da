//! End-to-end benchmark: this table format against DataFusion's `ListingTable` over the very
//! same Parquet files, plus append throughput against a bare `ArrowWriter`, open time as the
//! commit count grows, and peak memory of a streaming full scan.
//!
//! Run: `cargo bench --bench compare` (release build; about 10-20 minutes on 2 cores with
//! the default sizes) or `cargo bench --bench compare -- --quick` for a small smoke run;
//! `-- --writer-settings` compares Parquet compression and row-group sizes instead;
//! `-- --build-layout-b DIR` builds layout B alone and `-- --repeat-query DIR SQL N` times
//! one query on a table.
//! Prints markdown tables; BENCHMARKS.md records a run.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use common::{build, median, ms, run, spec};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::sample::MarketBars;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;

/// Sizes of one run.
struct Sizes {
    /// Layout A: one segment per trading day holding every symbol.
    daily_symbols: usize,
    daily_days: usize,
    /// Layout B: one segment per (symbol, day).
    small_symbols: usize,
    small_days: usize,
    repeats: usize,
    open_commits: Vec<usize>,
    append_days: usize,
}

impl Sizes {
    fn full() -> Self {
        Sizes {
            daily_symbols: 500,
            daily_days: 60,
            small_symbols: 500,
            small_days: 20,
            repeats: 7,
            open_commits: vec![10, 1_000, 10_000],
            append_days: 10,
        }
    }

    fn quick() -> Self {
        Sizes {
            daily_symbols: 20,
            daily_days: 5,
            small_symbols: 20,
            small_days: 3,
            repeats: 3,
            open_commits: vec![10, 200],
            append_days: 3,
        }
    }
}

async fn listing_table(ctx: &SessionContext, name: &str, table_dir: &Path, table: &TimeSeriesTable) {
    let url = ListingTableUrl::parse(format!("{}/", table_dir.join("data").display())).expect("path url");
    let config = ListingTableConfig::new(url)
        .with_listing_options(ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet"))
        .with_schema(table.schema().expect("table has data"));
    ctx.register_table(name, Arc::new(ListingTable::try_new(config).expect("listing table"))).expect("register");
}

struct Row {
    layout: String,
    query: String,
    ours: Duration,
    listing: Duration,
    rows: usize,
}

/// Interleaves our table and the listing table, `repeats` times each, after one warm-up.
async fn compare(ctx: &SessionContext, layout: &str, queries: &[(&str, String, String)], repeats: usize) -> Vec<Row> {
    let mut out = Vec::new();
    for (name, ours_sql, listing_sql) in queries {
        run(ctx, ours_sql).await;
        run(ctx, listing_sql).await;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut rows = 0;
        for _ in 0..repeats {
            let (t, n) = run(ctx, ours_sql).await;
            a.push(t);
            rows = n;
            b.push(run(ctx, listing_sql).await.0);
        }
        out.push(Row { layout: layout.into(), query: name.to_string(), ours: median(a), listing: median(b), rows });
    }
    out
}

fn day_literal(day: usize, hour_offset_min: i64, minutes: i64) -> (String, String) {
    let start = MarketBars::day_start_ms(day) + (14 * 60 + 30 + hour_offset_min) * 60_000;
    let fmt = |ms: i64| timeseries_table_core::metadata::format_nanos(ms * 1_000_000);
    (fmt(start), fmt(start + minutes * 60_000))
}

fn queries(days: usize) -> Vec<(&'static str, String, String)> {
    let mid = days / 2;
    let (h0, h1) = day_literal(mid, 60, 60);
    let (d0, d1) = day_literal(mid, -14 * 60 - 30, 24 * 60);
    let pairs: Vec<(&str, String)> = vec![
        ("one symbol, one hour", format!("SELECT * FROM {{t}} WHERE symbol = 'MSFT' AND ts >= '{h0}' AND ts < '{h1}'")),
        (
            "one day, all symbols, by symbol",
            format!(
                "SELECT symbol, avg(close), sum(volume) FROM {{t}} WHERE ts >= '{d0}' AND ts < '{d1}' GROUP BY symbol"
            ),
        ),
        ("count(*), min(ts), max(ts)", "SELECT count(*), min(ts), max(ts) FROM {t}".to_string()),
        (
            "date_bin 15m rollup of one day",
            format!(
                "SELECT date_bin(INTERVAL '15 minutes', ts) AS b, symbol, max(high), min(low), sum(volume) \
                 FROM {{t}} WHERE ts >= '{d0}' AND ts < '{d1}' GROUP BY b, symbol"
            ),
        ),
        ("ORDER BY ts DESC LIMIT 100", "SELECT * FROM {t} ORDER BY ts DESC LIMIT 100".to_string()),
        ("ORDER BY ts LIMIT 100", "SELECT * FROM {t} ORDER BY ts LIMIT 100".to_string()),
    ];
    pairs.into_iter().map(|(n, q)| (n, q.replace("{t}", "bars"), q.replace("{t}", "listing"))).collect()
}

/// coverage()/gaps() against their brute-force SQL equivalents on the listing table.
fn coverage_queries() -> Vec<(&'static str, String, String)> {
    let distinct = "SELECT DISTINCT symbol, date_bin(INTERVAL '1 minute', ts) AS b FROM listing";
    vec![
        (
            "coverage() vs SQL equivalent",
            "SELECT * FROM coverage('bars')".to_string(),
            format!("SELECT symbol, count(*) AS covered, min(b), max(b) FROM ({distinct}) GROUP BY symbol"),
        ),
        (
            "gaps() vs SQL equivalent",
            "SELECT * FROM gaps('bars')".to_string(),
            format!(
                "SELECT symbol, prev + INTERVAL '1 minute' AS gap_start, b AS gap_end FROM \
                 (SELECT symbol, b, lag(b) OVER (PARTITION BY symbol ORDER BY b) AS prev FROM ({distinct})) \
                 WHERE b - prev > INTERVAL '1 minute'"
            ),
        ),
    ]
}

async fn append_throughput(work: &Path, symbols: usize, days: usize, repeats: usize) -> (Duration, Duration, u64) {
    let bars = MarketBars::new(symbols, days);
    let batches: Vec<RecordBatch> = (0..days).map(|d| bars.day_batch(d)).collect();
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for r in 0..repeats {
        let dir = work.join(format!("append-{r}"));
        let mut table =
            TimeSeriesTable::create_with_spec(TableLocation::local(&dir).expect("dir"), spec()).await.expect("create");
        let start = Instant::now();
        for batch in &batches {
            table.append(vec![batch.clone()]).await.expect("append");
        }
        ours.push(start.elapsed());

        // The floor: parquet's async writer streaming the same rows, with the same
        // settings, into the same kind of store.
        let bare_dir = work.join(format!("bare-{r}"));
        std::fs::create_dir_all(&bare_dir).expect("dir");
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&bare_dir).expect("store"));
        let start = Instant::now();
        for (i, batch) in batches.iter().enumerate() {
            let props = timeseries_table_core::formats::parquet::segment_properties(
                &batch.schema(),
                &spec(),
                &Default::default(),
            )
            .expect("properties");
            let upload = object_store::buffered::BufWriter::new(Arc::clone(&store), format!("{i}.parquet").into());
            let mut writer =
                parquet::arrow::AsyncArrowWriter::try_new(upload, batch.schema(), Some(props)).expect("writer");
            writer.write(batch).await.expect("write");
            writer.close().await.expect("close");
        }
        bare.push(start.elapsed());
    }
    (median(ours), median(bare), rows)
}

async fn open_time(work: &Path, commits: usize, repeats: usize) -> Duration {
    let dir = work.join(format!("open-{commits}"));
    let bars = MarketBars::new(1, 1);
    let day = bars.day_batch(0);
    let mut table =
        TimeSeriesTable::create_with_spec(TableLocation::local(&dir).expect("dir"), spec()).await.expect("create");
    let per_day = day.num_rows();
    for i in 0..commits.saturating_sub(1) {
        // One-row appends walking forward in time, one minute each.
        let shifted = shift_days(&day.slice(i % per_day, 1), (i / per_day) as i64);
        table.append(vec![shifted]).await.expect("append");
    }
    let mut samples = Vec::new();
    for _ in 0..repeats {
        let start = Instant::now();
        let opened = TimeSeriesTable::open(TableLocation::local(&dir).expect("dir")).await.expect("open");
        samples.push(start.elapsed());
        assert_eq!(opened.version() as usize, commits.max(1));
    }
    median(samples)
}

/// The batch moved by whole days (keeps the same minute of day).
fn shift_days(batch: &RecordBatch, days: i64) -> RecordBatch {
    use arrow::array::AsArray;
    let ts = batch.column(0).as_primitive::<arrow::datatypes::TimestampMillisecondType>();
    let moved = arrow::array::TimestampMillisecondArray::from(
        ts.values().iter().map(|v| v + days * 86_400_000).collect::<Vec<_>>(),
    )
    .with_timezone_opt(ts.timezone().map(str::to_string));
    let mut columns = batch.columns().to_vec();
    columns[0] = Arc::new(moved);
    RecordBatch::try_new(batch.schema(), columns).expect("same schema")
}

/// Encode time and size of the same batches under candidate writer settings, plus the
/// time of a one-symbol one-hour read through the Parquet reader's row-group pruning.
fn writer_settings(symbols: usize, days: usize) {
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    let bars = MarketBars::new(symbols, days);
    let batches: Vec<RecordBatch> = (0..days).map(|d| bars.day_batch(d)).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    println!(
        "\n| compression | row group rows | encode {rows} rows (ms) | bytes | bytes/row |\n|---|---:|---:|---:|---:|"
    );
    let codecs = [
        ("none", Compression::UNCOMPRESSED),
        ("snappy", Compression::SNAPPY),
        ("lz4_raw", Compression::LZ4_RAW),
        ("zstd(1)", Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1"))),
    ];
    for (name, codec) in codecs {
        for group in [64 * 1024, 128 * 1024, 1024 * 1024] {
            let mut samples = Vec::new();
            let mut bytes = 0;
            for _ in 0..3 {
                let start = Instant::now();
                bytes = 0;
                for batch in &batches {
                    let props = WriterProperties::builder()
                        .set_compression(codec)
                        .set_max_row_group_row_count(Some(group))
                        .build();
                    let mut buffer = Vec::new();
                    let mut writer =
                        parquet::arrow::ArrowWriter::try_new(&mut buffer, batch.schema(), Some(props)).expect("writer");
                    writer.write(batch).expect("write");
                    writer.close().expect("close");
                    bytes += buffer.len();
                }
                samples.push(start.elapsed());
            }
            println!("| {name} | {group} | {} | {bytes} | {:.1} |", ms(median(samples)), bytes as f64 / rows as f64);
        }
    }
}

/// Child-process mode: stream a full scan and print peak RSS in KiB.
async fn scan_rss(dir: &str) {
    let table = TimeSeriesTable::open(TableLocation::local(dir).expect("dir")).await.expect("open");
    let ctx = session_context();
    register_opened(&ctx, "bars", table).expect("register");
    let mut stream = ctx.sql("SELECT * FROM bars").await.expect("plan").execute_stream().await.expect("stream");
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.expect("batch").num_rows();
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: ? kB").to_string();
    println!("rows={rows} {hwm}");
}

fn peak_rss_of_scan(dir: &Path) -> String {
    let exe = std::env::current_exe().expect("own path");
    let out = std::process::Command::new(exe).arg("--scan-rss").arg(dir).output().expect("child runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--scan-rss") {
        scan_rss(&args[i + 1]).await;
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--build-layout-b") {
        // Layout B alone, for `--repeat-query`: `--build-layout-b TABLE_DIR`.
        let dir = PathBuf::from(&args[i + 1]);
        let _ = std::fs::remove_dir_all(&dir);
        let sizes = Sizes::full();
        let table = build(&dir, sizes.small_symbols, sizes.small_days, true).await;
        eprintln!("built {}: {} segments", dir.display(), table.segments().len());
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--repeat-query") {
        // For profiling one query: `--repeat-query TABLE_DIR SQL N [--without-rule NAME]...
        // [--set KEY=VALUE]... [--plan-only]`, the last timing planning alone;
        // each `--without-rule` drops one of the session's physical optimizer rules by name
        // (`small_segments`, `scan_groups`, `newest_first`), to time a query without it, and
        // each `--set` sets a session option (`datafusion.execution.parquet.pushdown_filters=true`).
        let table = TimeSeriesTable::open(TableLocation::local(&args[i + 1]).expect("dir")).await.expect("open");
        let without: Vec<&str> =
            args.windows(2).filter(|pair| pair[0] == "--without-rule").map(|pair| pair[1].as_str()).collect();
        let state = session_context().state();
        let rules =
            state.physical_optimizers().iter().filter(|rule| !without.contains(&rule.name())).cloned().collect();
        let ctx = SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(state).with_physical_optimizer_rules(rules).build(),
        );
        for pair in args.windows(2).filter(|pair| pair[0] == "--set") {
            let (key, value) = pair[1].split_once('=').expect("--set KEY=VALUE");
            ctx.sql(&format!("SET {key} = {value}")).await.expect("a session option").collect().await.expect("set");
        }
        register_opened(&ctx, "bars", table).expect("register");
        let n: usize = args[i + 3].parse().expect("a count");
        let plan_only = args.iter().any(|a| a == "--plan-only");
        let runs: Vec<(Duration, usize)> = futures::stream::iter(0..n)
            .then(|_| async {
                if plan_only {
                    let start = Instant::now();
                    let plan = ctx.sql(&args[i + 2]).await.expect("plans").create_physical_plan().await.expect("plans");
                    (start.elapsed(), plan.children().len())
                } else {
                    run(&ctx, &args[i + 2]).await
                }
            })
            .collect()
            .await;
        let rows = runs.last().map_or(0, |&(_, rows)| rows);
        println!("median {} ms over {n} runs, {rows} rows", ms(median(runs.into_iter().map(|(t, _)| t).collect())));
        return;
    }
    let sizes = if args.iter().any(|a| a == "--quick") { Sizes::quick() } else { Sizes::full() };
    if args.iter().any(|a| a == "--writer-settings") {
        writer_settings(sizes.daily_symbols, sizes.append_days);
        return;
    }
    let work: PathBuf =
        std::env::var("TSQ_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir().join("tsq-bench"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    let mut results = Vec::new();

    for (layout, symbols, days, per_symbol) in [
        ("A: daily segments", sizes.daily_symbols, sizes.daily_days, false),
        ("B: symbol x day segments", sizes.small_symbols, sizes.small_days, true),
    ] {
        let dir = work.join(if per_symbol { "layout-b" } else { "layout-a" });
        let start = Instant::now();
        let table = build(&dir, symbols, days, per_symbol).await;
        let segments = table.segments().len();
        eprintln!(
            "built {layout}: {segments} segments, {} rows in {:.1}s",
            table.snapshot().row_count(),
            start.elapsed().as_secs_f64()
        );
        let ctx = session_context();
        register_opened(&ctx, "bars", table.clone()).expect("register");
        listing_table(&ctx, "listing", &dir, &table).await;
        let label = format!("{layout} ({segments} segments)");
        results.extend(compare(&ctx, &label, &queries(days), sizes.repeats).await);
        if !per_symbol {
            results.extend(compare(&ctx, &label, &coverage_queries(), sizes.repeats).await);
        }
    }

    println!(
        "\n| layout | query | this table (ms) | ListingTable (ms) | speed-up | rows |\n|---|---|---:|---:|---:|---:|"
    );
    for r in &results {
        let ratio = r.listing.as_secs_f64() / r.ours.as_secs_f64();
        println!("| {} | {} | {} | {} | {:.1}x | {} |", r.layout, r.query, ms(r.ours), ms(r.listing), ratio, r.rows);
    }

    let (ours, bare, rows) =
        append_throughput(&work, sizes.daily_symbols, sizes.append_days, sizes.repeats.min(3)).await;
    println!("\n| append {rows} rows in {} segments | this table (ms) | bare ArrowWriter (ms) | ratio |\n|---|---:|---:|---:|", sizes.append_days);
    println!(
        "| median of {} | {} | {} | {:.2} |",
        sizes.repeats.min(3),
        ms(ours),
        ms(bare),
        ours.as_secs_f64() / bare.as_secs_f64()
    );

    println!("\n| commits | open (ms) |\n|---:|---:|");
    for &commits in &sizes.open_commits {
        println!("| {commits} | {} |", ms(open_time(&work, commits, sizes.repeats).await));
    }

    println!("\n| full streaming scan of | table size on disk | result |\n|---|---:|---|");
    for name in ["layout-b", "layout-a"] {
        let dir = work.join(name);
        println!("| {name} | {:.1} MiB | {} |", dir_size(&dir) as f64 / 1048576.0, peak_rss_of_scan(&dir));
    }
}
