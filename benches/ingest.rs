//! Ingest benchmarks: the peak memory of `tsq append` on 20 M-row inputs in each order and
//! format, and of `INSERT ... SELECT`; a time-sorted append against parquet's bare async
//! writer; the cost of sorting unsorted input; and query times at three segment sizes.
//!
//! ```sh
//! cargo build --release --bin tsq
//! cargo bench --bench ingest            # TSQ_BIN picks another tsq; -- --quick for 2 M rows
//! ```
//!
//! Peak memory is the child process's `ru_maxrss`, read with `wait4`. Inputs are written
//! to `TSQ_BENCH_DIR` (default: the system temp dir), about 4 GiB for the full run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use parquet::arrow::{ArrowWriter, AsyncArrowWriter};
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::formats::parquet::segment_properties;
use timeseries_table_core::metadata::{TimeBucket, TimeIndexSpec};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;
use timeseries_table_core::WriterOptions;

/// 2024-01-01T00:00:00Z in milliseconds.
const T0_MS: i64 = 1_704_067_200_000;
const MINUTE_MS: i64 = 60_000;
const BATCH_ROWS: usize = 64 * 1024;

/// The input: one-minute OHLCV bars of `symbols` symbols over `minutes` minutes.
#[derive(Clone, Copy)]
struct Input {
    symbols: usize,
    minutes: usize,
}

impl Input {
    fn rows(&self) -> usize {
        self.symbols * self.minutes
    }

    fn schema() -> SchemaRef {
        let utc = Some(Arc::from("UTC"));
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, utc), false),
            Field::new("symbol", DataType::Utf8, false),
            Field::new("open", DataType::Float64, false),
            Field::new("high", DataType::Float64, false),
            Field::new("low", DataType::Float64, false),
            Field::new("close", DataType::Float64, false),
            Field::new("volume", DataType::Int64, false),
            Field::new("trades", DataType::Int64, false),
        ]))
    }

    /// Rows `range` of the input in time order (ties by symbol), or in (symbol, time) order.
    fn batch(&self, range: std::ops::Range<usize>, by_symbol: bool) -> RecordBatch {
        let cell = |row: usize| {
            if by_symbol {
                (row / self.minutes, row % self.minutes)
            } else {
                (row % self.symbols, row / self.symbols)
            }
        };
        let cells: Vec<(usize, usize)> = range.map(cell).collect();
        let noise = |s: usize, m: usize, k: u64| splitmix((s as u64) << 32 | m as u64 | k << 60);
        // Full-precision prices and wide counts, so the file compresses about as little as
        // real tick-derived bars do (20 M rows come to about 1 GiB).
        let price =
            |s: usize, m: usize, k: u64| 50.0 + (s % 97) as f64 + (noise(s, m, k) >> 11) as f64 / (1u64 << 53) as f64;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampMillisecondArray::from_iter_values(cells.iter().map(|&(_, m)| T0_MS + m as i64 * MINUTE_MS))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(cells.iter().map(|&(s, _)| format!("S{s:04}")))),
            Arc::new(Float64Array::from_iter_values(cells.iter().map(|&(s, m)| price(s, m, 1)))),
            Arc::new(Float64Array::from_iter_values(cells.iter().map(|&(s, m)| price(s, m, 2) + 1.0))),
            Arc::new(Float64Array::from_iter_values(cells.iter().map(|&(s, m)| price(s, m, 3) - 1.0))),
            Arc::new(Float64Array::from_iter_values(cells.iter().map(|&(s, m)| price(s, m, 4)))),
            Arc::new(Int64Array::from_iter_values(cells.iter().map(|&(s, m)| (noise(s, m, 5) >> 24) as i64))),
            Arc::new(Int64Array::from_iter_values(cells.iter().map(|&(s, m)| (noise(s, m, 6) % 100_000) as i64))),
        ];
        RecordBatch::try_new(Self::schema(), columns).expect("batch")
    }

    fn batches(&self, by_symbol: bool) -> impl Iterator<Item = RecordBatch> + '_ {
        (0..self.rows())
            .step_by(BATCH_ROWS)
            .map(move |start| self.batch(start..(start + BATCH_ROWS).min(self.rows()), by_symbol))
    }

    fn write_parquet(&self, path: &Path, by_symbol: bool) {
        let file = std::fs::File::create(path).expect("create");
        let mut writer = ArrowWriter::try_new(file, Self::schema(), None).expect("writer");
        for batch in self.batches(by_symbol) {
            writer.write(&batch).expect("write");
        }
        writer.close().expect("close");
    }

    fn write_csv(&self, path: &Path) {
        let file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
        let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(file);
        for batch in self.batches(false) {
            writer.write(&batch).expect("write");
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn spec() -> TimeIndexSpec {
    TimeIndexSpec::new("ts", "1m".parse::<TimeBucket>().expect("bucket"))
        .with_entity_columns(["symbol"])
        .with_timezone("UTC")
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn size_of(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path).expect("dir").map(|e| size_of(&e.expect("entry").path())).sum()
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

/// Runs `command` to completion; returns its wall time and peak resident memory in bytes.
// The child is reaped by `wait4`, which also reports its peak memory.
#[allow(clippy::zombie_processes)]
fn run_measured(command: &mut Command) -> (Duration, u64) {
    let start = Instant::now();
    let child = command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("spawn");
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which nothing else reaps.
    let reaped = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert_eq!(reaped, child.id() as i32, "wait4");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{command:?} failed ({status})");
    (elapsed, usage.ru_maxrss as u64 * 1024)
}

fn tsq_bin() -> PathBuf {
    std::env::var("TSQ_BIN").map(PathBuf::from).unwrap_or_else(|_| {
        let target =
            std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")));
        PathBuf::from(target).join("release").join("tsq")
    })
}

fn create_table(tsq: &Path, dir: &Path) {
    let status = Command::new(tsq)
        .args(["create", &dir.display().to_string(), "--time-column", "ts", "--bucket", "1m", "--entity", "symbol"])
        .args(["--timezone", "UTC"])
        .stdout(Stdio::null())
        .status()
        .expect("tsq create");
    assert!(status.success());
}

/// Peak memory and time of `tsq append` of each input, and of `INSERT ... SELECT`.
fn peak_memory(work: &Path, input: Input) {
    let tsq = tsq_bin();
    assert!(tsq.exists(), "{} is missing: cargo build --release --bin tsq (or set TSQ_BIN)", tsq.display());
    let by_symbol = work.join("by-symbol.parquet");
    let by_time = work.join("by-time.parquet");
    let csv = work.join("by-time.csv");
    let started = Instant::now();
    input.write_parquet(&by_symbol, true);
    input.write_parquet(&by_time, false);
    input.write_csv(&csv);
    eprintln!("inputs written in {:.0}s", started.elapsed().as_secs_f64());

    println!("\n| input ({} rows) | size | time (s) | rows/s | peak RSS |\n|---|---:|---:|---:|---:|", input.rows());
    for (name, file) in [
        ("Parquet sorted by (symbol, ts): re-encoded, sorted", &by_symbol),
        ("Parquet sorted by ts: adopted as is", &by_time),
        ("CSV sorted by ts", &csv),
    ] {
        let table = work.join(format!("table-{}", file.file_name().unwrap().to_string_lossy()));
        create_table(&tsq, &table);
        let (elapsed, rss) = run_measured(Command::new(&tsq).arg("append").arg(&table).arg(file));
        let rate = input.rows() as f64 / elapsed.as_secs_f64();
        println!(
            "| {name} | {} | {:.1} | {:.2} M | {} |",
            mib(size_of(file)),
            elapsed.as_secs_f64(),
            rate / 1e6,
            mib(rss)
        );
    }

    let table = work.join("table-insert");
    let script = work.join("insert.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE EXTERNAL TABLE t (ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL, open DOUBLE NOT NULL, \
             high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL, volume BIGINT NOT NULL, \
             trades BIGINT NOT NULL) STORED AS TIMESERIES LOCATION '{}' \
             OPTIONS ('time_column' 'ts', 'bucket' '1m', 'entity_columns' 'symbol', 'timezone' 'UTC');\n\
             CREATE EXTERNAL TABLE src STORED AS PARQUET LOCATION '{}';\n\
             INSERT INTO t SELECT * FROM src;\n",
            table.display(),
            by_symbol.display()
        ),
    )
    .expect("script");
    let (elapsed, rss) = run_measured(Command::new(&tsq).arg("sql").arg("-f").arg(&script));
    let rate = input.rows() as f64 / elapsed.as_secs_f64();
    println!(
        "| INSERT ... SELECT from the (symbol, ts) Parquet file | {} | {:.1} | {:.2} M | {} |",
        mib(size_of(&by_symbol)),
        elapsed.as_secs_f64(),
        rate / 1e6,
        mib(rss)
    );
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Parquet's async writer writing `batches` to a local store, a new file every
/// `file_rows` rows, with the table's writer properties: the floor of an append.
async fn bare_write(dir: &Path, batches: &[RecordBatch], file_rows: usize) {
    std::fs::create_dir_all(dir).expect("dir");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir).expect("store"));
    let options = WriterOptions::default();
    let properties = segment_properties(&Input::schema(), &spec(), &options).expect("properties");
    let open = |n: usize| {
        let upload =
            BufWriter::with_capacity(Arc::clone(&store), format!("{n}.parquet").into(), options.upload_part_bytes)
                .with_max_concurrency(2);
        AsyncArrowWriter::try_new(upload, Input::schema(), Some(properties.clone())).expect("writer")
    };
    let (mut files, mut rows) = (0, 0);
    let mut writer = open(files);
    for batch in batches {
        if rows >= file_rows {
            writer.close().await.expect("close");
            files += 1;
            rows = 0;
            writer = open(files);
        }
        writer.write(batch).await.expect("write");
        rows += batch.num_rows();
    }
    writer.close().await.expect("close");
}

async fn append(dir: &Path, batches: &[RecordBatch], options: WriterOptions) -> (Duration, TimeSeriesTable) {
    let location = TableLocation::local(dir).expect("dir");
    let mut table =
        TimeSeriesTable::create_with_spec(location, spec()).await.expect("create").with_writer_options(options);
    let started = Instant::now();
    table.append(batches.to_vec()).await.expect("append");
    (started.elapsed(), table)
}

/// A time-sorted append against the bare writer, and the same rows unsorted.
async fn throughput(work: &Path, input: Input, repeats: usize) {
    let sorted: Vec<RecordBatch> = input.batches(false).collect();
    let unsorted: Vec<RecordBatch> = input.batches(true).collect();
    let segment_rows = WriterOptions::default().segment_rows as usize;
    let (mut bare, mut ours, mut sorting) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..repeats {
        let dir = work.join(format!("bare-{r}"));
        let started = Instant::now();
        bare_write(&dir, &sorted, segment_rows).await;
        bare.push(started.elapsed());
        let (elapsed, _) = append(&work.join(format!("sorted-{r}")), &sorted, WriterOptions::default()).await;
        ours.push(elapsed);
        let (elapsed, _) = append(&work.join(format!("unsorted-{r}")), &unsorted, WriterOptions::default()).await;
        sorting.push(elapsed);
        for name in ["bare", "sorted", "unsorted"] {
            let _ = std::fs::remove_dir_all(work.join(format!("{name}-{r}")));
        }
    }
    let (bare, ours, sorting) = (median(bare), median(ours), median(sorting));
    let secs = |d: Duration| format!("{:.2}", d.as_secs_f64());
    println!(
        "\n| {} rows from memory, median of {repeats} | time (s) | rows/s | vs bare writer |\n|---|---:|---:|---:|",
        input.rows()
    );
    for (name, time) in [
        ("bare AsyncArrowWriter, same properties, same file size", bare),
        ("append, time-sorted input", ours),
        ("append, input sorted by (symbol, ts)", sorting),
    ] {
        let rate = input.rows() as f64 / time.as_secs_f64() / 1e6;
        println!("| {name} | {} | {rate:.2} M | {:.2}x |", secs(time), bare.as_secs_f64() / time.as_secs_f64());
    }
}

/// Queries over the same rows written with three segment sizes.
async fn segment_sizes(work: &Path, input: Input, repeats: usize) {
    let sorted: Vec<RecordBatch> = input.batches(false).collect();
    let day =
        |d: i64| chrono::DateTime::from_timestamp_millis(T0_MS + d * 24 * 60 * MINUTE_MS).expect("time").to_rfc3339();
    let hour_end = chrono::DateTime::from_timestamp_millis(T0_MS + 3 * 24 * 60 * MINUTE_MS + 60 * MINUTE_MS)
        .expect("time")
        .to_rfc3339();
    let queries = [
        (
            "one symbol, one hour",
            format!("SELECT avg(close) FROM bars WHERE symbol = 'S0042' AND ts >= '{}' AND ts < '{hour_end}'", day(3)),
        ),
        (
            "one day, all symbols",
            format!(
                "SELECT symbol, max(high) FROM bars WHERE ts >= '{}' AND ts < '{}' GROUP BY symbol",
                day(5),
                day(6)
            ),
        ),
        ("full scan: count, avg", "SELECT count(*), avg(close) FROM bars".to_string()),
    ];
    println!(
        "\n| segment rows | append (s) | segments |{}\n|---:|---:|---:|{}",
        queries.iter().map(|q| format!(" {} (ms) |", q.0)).collect::<String>(),
        "---:|".repeat(queries.len())
    );
    for rows in [1u64 << 20, 2 << 20, 4 << 20] {
        let dir = work.join(format!("segments-{rows}"));
        let (elapsed, table) = append(&dir, &sorted, WriterOptions::default().with_segment_rows(rows)).await;
        let segments = table.segments().len();
        let ctx = session_context();
        register_opened(&ctx, "bars", table).expect("register");
        let mut cells = String::new();
        for (_, sql) in &queries {
            let mut samples = Vec::new();
            for _ in 0..=repeats {
                let started = Instant::now();
                ctx.sql(sql).await.expect("plan").collect().await.expect("run");
                samples.push(started.elapsed());
            }
            samples.remove(0); // warm-up
            cells.push_str(&format!(" {:.1} |", median(samples).as_secs_f64() * 1000.0));
        }
        println!("| {rows} | {:.2} | {segments} |{cells}", elapsed.as_secs_f64());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // 500 symbols x 40,000 minutes = 20 M rows; quick: 2 M rows.
    let input = Input { symbols: 500, minutes: if quick { 4_000 } else { 40_000 } };
    let repeats = if quick { 1 } else { 3 };
    let work: PathBuf = std::env::var("TSQ_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("tsq-bench"))
        .join("ingest");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");

    if !args.iter().any(|a| a == "--no-rss") {
        peak_memory(&work, input);
    }
    throughput(&work, input, repeats).await;
    segment_sizes(&work, input, if quick { 3 } else { 7 }).await;
    let _ = std::fs::remove_dir_all(&work);
}
