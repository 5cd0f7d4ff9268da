//! How query cost grows: the same queries against rows (about 1 M, 10 M and 100 M, one
//! segment per trading day) and against segments (60 to about 78,000 over the same
//! 3.9 M rows), through our session, plus a bare Parquet reader's decoding speed over the
//! largest table's files, which bounds a full scan on this machine.
//!
//! Run: `cargo bench --features ballista --bench growth` (release; writes about 2 GiB
//! under `TSQ_BENCH_DIR`, default the system temp dir, and takes about 15 minutes on 2
//! cores); `-- rows` or `-- segments` runs one axis only, `-- --quick` small sizes.
//! Prints markdown tables; BENCHMARKS.md records a run.

// Shared with the other benchmarks; this one uses the spec and the timing helpers.
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{median, ms, run, spec};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::metadata::format_nanos;
use timeseries_table_core::sample::MarketBars;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;
use timeseries_table_core::WriterOptions;

/// Timed runs per query, after one warm-up.
const REPEATS: usize = 5;

/// The queries, for a table of `bars` over `days` trading days.
fn queries(bars: &MarketBars) -> Vec<(&'static str, String)> {
    let mid = bars.days / 2;
    let symbol = &bars.symbols[0];
    let at = |minutes_after_open: i64| {
        let ms = MarketBars::day_start_ms(mid) + (14 * 60 + 30 + minutes_after_open) * 60_000;
        format_nanos(ms * 1_000_000)
    };
    let (h0, h1) = (at(60), at(120));
    let (d0, d1) = (at(-14 * 60 - 30), at(-14 * 60 - 30 + 24 * 60));
    vec![
        (
            "one symbol, one hour",
            format!("SELECT * FROM bars WHERE symbol = '{symbol}' AND ts >= '{h0}' AND ts < '{h1}'"),
        ),
        (
            "one day, all symbols, by symbol",
            format!(
                "SELECT symbol, avg(close), sum(volume) FROM bars WHERE ts >= '{d0}' AND ts < '{d1}' GROUP BY symbol"
            ),
        ),
        (
            "date_bin 15m rollup of one day",
            format!(
                "SELECT date_bin(INTERVAL '15 minutes', ts) AS b, symbol, max(high), min(low), sum(volume) \
                 FROM bars WHERE ts >= '{d0}' AND ts < '{d1}' GROUP BY b, symbol"
            ),
        ),
        ("ORDER BY ts DESC LIMIT 100", "SELECT * FROM bars ORDER BY ts DESC LIMIT 100".to_string()),
        ("count(*), min(ts), max(ts)", "SELECT count(*), min(ts), max(ts) FROM bars".to_string()),
        (
            "full scan: count, min, max, avg(close)",
            "SELECT count(*), min(ts), max(ts), avg(close) FROM bars".to_string(),
        ),
        ("coverage(), all symbols", "SELECT * FROM coverage('bars')".to_string()),
        ("gaps(), one symbol", format!("SELECT * FROM gaps('bars') WHERE symbol = '{symbol}'")),
    ]
}

/// One table's measurements: its shape and each query's median.
struct Measured {
    rows: u64,
    segments: usize,
    bytes: u64,
    open: Duration,
    medians: Vec<(String, Duration)>,
}

async fn measure(dir: &Path, bars: &MarketBars) -> Measured {
    let start = Instant::now();
    let table = TimeSeriesTable::open(TableLocation::local(dir).expect("dir")).await.expect("open");
    let rows = table.snapshot().row_count();
    let open = start.elapsed();
    let segments = table.segments();
    let bytes = segments.iter().map(|s| s.size_bytes).sum();
    let ctx = session_context();
    register_opened(&ctx, "bars", table.clone()).expect("register");
    let mut medians = Vec::new();
    for (name, sql) in queries(bars) {
        run(&ctx, &sql).await;
        let mut samples = Vec::new();
        for _ in 0..REPEATS {
            samples.push(run(&ctx, &sql).await.0);
        }
        medians.push((name.to_string(), median(samples)));
    }
    Measured { rows, segments: segments.len(), bytes, open, medians }
}

/// A table of `bars`, appended one day at a time (one segment per day), or in one append
/// cut into segments of about `segment_rows` rows.
async fn build(dir: &Path, bars: &MarketBars, segment_rows: Option<u64>) {
    let _ = std::fs::remove_dir_all(dir);
    let start = Instant::now();
    let location = TableLocation::local(dir).expect("dir");
    let mut table = TimeSeriesTable::create_with_spec(location, spec()).await.expect("create");
    match segment_rows {
        None => {
            for day in 0..bars.days {
                table.append(vec![bars.day_batch(day)]).await.expect("append");
            }
        }
        Some(rows) => {
            table = table.with_writer_options(WriterOptions::default().with_segment_rows(rows));
            let days = futures::stream::iter(
                (0..bars.days).map(|day| Ok::<_, timeseries_table_core::Error>(bars.day_batch(day))),
            );
            table.append_stream(days).await.expect("append");
        }
    }
    eprintln!(
        "built {} ({} segments) in {:.1} s",
        dir.display(),
        table.segments().len(),
        start.elapsed().as_secs_f64()
    );
}

fn print_table(axis: &str, measured: &[Measured]) {
    let Some(first) = measured.first() else { return };
    let mut header = "| rows | segments | data (MiB) | open (ms) |".to_string();
    let mut rule = "|---:|---:|---:|---:|".to_string();
    for (name, _) in &first.medians {
        header += &format!(" {name} (ms) |");
        rule += "---:|";
    }
    println!("\n{axis}\n\n{header}\n{rule}");
    for m in measured {
        let mut line = format!("| {} | {} | {:.1} | {} |", m.rows, m.segments, m.bytes as f64 / 1048576.0, ms(m.open));
        for (_, t) in &m.medians {
            line += &format!(" {} |", ms(*t));
        }
        println!("{line}");
    }
}

/// Decodes the `ts` and `close` columns of every data file of the table at `dir` with the
/// plain synchronous Parquet reader, on `threads` threads; returns the time taken and the
/// bytes of the files.
fn bare_scan(dir: &Path, threads: usize) -> (Duration, u64) {
    let files: Vec<PathBuf> = std::fs::read_dir(dir.join("data"))
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    let bytes = files.iter().map(|f| std::fs::metadata(f).expect("size").len()).sum();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for share in files.chunks(files.len().div_ceil(threads.max(1)).max(1)) {
            scope.spawn(move || {
                let mut rows = 0;
                for file in share {
                    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).expect("open"))
                        .expect("parquet");
                    let mask = ProjectionMask::columns(builder.parquet_schema(), ["ts", "close"]);
                    for batch in builder.with_projection(mask).build().expect("reader") {
                        rows += batch.expect("batch").num_rows();
                    }
                }
                rows
            });
        }
    });
    (start.elapsed(), bytes)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let all = !args.iter().any(|a| a == "rows" || a == "segments");
    let work: PathBuf =
        std::env::var("TSQ_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir()).join("tsq-growth");

    if all || args.iter().any(|a| a == "rows") {
        // 500 symbols, one segment per trading day of about 195,000 rows.
        let day_counts: &[usize] = if quick { &[2, 5] } else { &[5, 52, 520] };
        let mut measured = Vec::new();
        let mut largest = None;
        for &days in day_counts {
            let bars = MarketBars::new(500, days);
            let dir = work.join(format!("rows-{days}d"));
            build(&dir, &bars, None).await;
            measured.push(measure(&dir, &bars).await);
            largest = Some(dir);
        }
        print_table("Against rows:", &measured);
        if let Some(dir) = largest {
            println!("\n| bare Parquet reader over the largest table (ts, close) | threads | time (ms) | MiB/s of files |\n|---|---:|---:|---:|");
            for threads in [1, 2] {
                let samples: Vec<(Duration, u64)> = (0..3).map(|_| bare_scan(&dir, threads)).collect();
                let bytes = samples[0].1;
                let time = median(samples.into_iter().map(|s| s.0).collect());
                println!(
                    "| {} | {threads} | {} | {:.0} |",
                    dir.display(),
                    ms(time),
                    bytes as f64 / 1048576.0 / time.as_secs_f64()
                );
            }
        }
    }

    if all || args.iter().any(|a| a == "segments") {
        // 50 symbols x 200 trading days (3.9 M rows), cut ever finer; a segment closes at
        // the first new minute after it holds `rows` rows, so 1 row means one a minute.
        let (bars, cuts): (MarketBars, &[u64]) = if quick {
            (MarketBars::new(20, 10), &[20_000, 1])
        } else {
            (MarketBars::new(50, 200), &[65_000, 3_900, 390, 1])
        };
        let mut measured = Vec::new();
        for &rows in cuts {
            let dir = work.join(format!("segments-{rows}"));
            build(&dir, &bars, Some(rows)).await;
            measured.push(measure(&dir, &bars).await);
        }
        print_table("Against segments:", &measured);
    }
}
