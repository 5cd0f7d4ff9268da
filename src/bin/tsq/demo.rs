//! `tsq demo`: builds a realistic sample table end to end, the way a user would.
//!
//! Deterministic one-minute market bars (`sample::MarketBars`, with trading halts, late
//! listings and a feed outage) are written as one Parquet file per trading day into
//! DIR/incoming, a table is created at DIR/table (bucket 1m, entity `symbol`), the files
//! are appended one by one, the repository's `sql-examples/*.sql` run against it as table
//! `bars`, and the coverage summary and heatmap (DIR/coverage.svg) close the tour.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use timeseries_table_core::datafusion::script::split_statements;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::metadata::{TableMeta, TimeBucket, TimeIndexSpec};
use timeseries_table_core::sample::{MarketBars, SCHEDULE};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{Expected, TimeSeriesTable};

use crate::commands::{append_files, one_line, run_statement};
use crate::output::{fmt_bytes, fmt_int, write_result};
use crate::report::write_coverage;
use crate::Format;

/// Rows shown per result; the examples may select more.
const SHOWN_ROWS: usize = 20;

pub async fn run(dir: Option<PathBuf>, small: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let (symbols, days) = if small { (6, 5) } else { (30, 20) };
    let dir = choose_dir(dir)?;
    let incoming = dir.join("incoming");
    std::fs::create_dir_all(&incoming).map_err(|e| anyhow!("cannot create {}: {e}", incoming.display()))?;
    let mut out = std::io::stdout();
    writeln!(out, "building the demo in {}", dir.display())?;

    let bars = MarketBars::new(symbols, days);
    let mut files = Vec::with_capacity(days);
    let (mut rows, mut bytes) = (0, 0);
    for day in 0..days {
        let batch = bars.day_batch(day);
        let date = chrono::DateTime::from_timestamp_millis(MarketBars::day_start_ms(day))
            .map(|d| d.format("%Y-%m-%d").to_string());
        let path = incoming.join(format!("bars-{}.parquet", date.unwrap_or_else(|| format!("day{day:03}"))));
        let file = std::fs::File::create(&path).map_err(|e| anyhow!("cannot create {}: {e}", path.display()))?;
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
        writer.write(&batch)?;
        writer.close()?;
        rows += batch.num_rows() as u64;
        bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        files.push(path);
    }
    writeln!(
        out,
        "wrote {days} Parquet files ({} one-minute bars of {symbols} symbols, {}) to {}",
        fmt_int(rows),
        fmt_bytes(bytes),
        incoming.display()
    )?;

    let table_dir = dir.join("table");
    let spec = TimeIndexSpec::new("ts", "1m".parse::<TimeBucket>()?).with_entity_columns(["symbol"]);
    let meta = TableMeta::try_new(spec)?.with_schedule(Some(SCHEDULE.parse()?));
    let mut table = TimeSeriesTable::create(TableLocation::local(&table_dir)?, meta).await?;
    writeln!(
        out,
        "created table at {} (time column ts, bucket 1m, entity symbol, schedule {SCHEDULE})",
        table_dir.display()
    )?;
    append_files(&mut table, &table_dir.display().to_string(), &files).await?;

    let ctx = session_context();
    register_opened(&ctx, "bars", table.clone())?;
    writeln!(out, "\nregistered the table as `bars`\n")?;
    let overview = "SELECT count(*) AS row_count, count(DISTINCT symbol) AS symbols, min(ts) AS first_bar, max(ts) AS last_bar FROM bars";
    let mut failures = run_statements(&mut out, &ctx, &[overview.to_string()], "overview").await?;
    failures += run_examples(&mut out, &ctx, small).await?;

    table.refresh().await?; // the examples may have inserted rows
    writeln!(out)?;
    let svg = dir.join("coverage.svg");
    write_coverage(&mut out, &table, None, &Expected::TableSchedule, Some(&svg), "the demo table bars").await?;
    writeln!(
        out,
        "(the ratios count the minutes of the schedule's sessions, so nights and weekends are not \
         missing; `tsq coverage {} --schedule always` counts every minute)",
        table_dir.display()
    )?;
    writeln!(out, "\ndemo finished in {:.1}s. Try next:", started.elapsed().as_secs_f64())?;
    let t = table_dir.display();
    writeln!(out, "  tsq info {t}\n  tsq gaps {t}\n  tsq shell -t bars={t}")?;
    if failures > 0 {
        bail!("{failures} example statement(s) failed (see the errors above)");
    }
    Ok(())
}

/// The demo folder: the one given (it must be new or empty), else ./tsq-demo, ./tsq-demo-2...
fn choose_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = dir {
        if dir.is_file() {
            bail!("{} is a file; give a new or empty folder for the demo", dir.display());
        }
        if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            bail!("{} is not empty; give a new or empty folder for the demo (it writes incoming/, table/ and coverage.svg there)", dir.display());
        }
        return Ok(dir);
    }
    (1..1000)
        .map(|i| PathBuf::from(if i == 1 { "tsq-demo".to_string() } else { format!("tsq-demo-{i}") }))
        .find(|p| !p.exists())
        .ok_or_else(|| anyhow!("could not find a free ./tsq-demo-N folder; pass a folder: tsq demo DIR"))
}

/// Runs every `sql-examples/*.sql` file in name order; returns how many statements failed.
async fn run_examples(
    out: &mut dyn Write,
    ctx: &datafusion::prelude::SessionContext,
    small: bool,
) -> anyhow::Result<usize> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-examples");
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&folder) {
        Ok(entries) => {
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "sql")).collect()
        }
        Err(_) => Vec::new(),
    };
    paths.sort();
    if paths.is_empty() {
        writeln!(out, "note: no SQL examples found in {} (nothing more to run)", folder.display())?;
        return Ok(0);
    }
    if !small {
        // The examples are golden tests over the small sample, and their comments say so.
        writeln!(
            out,
            "note: the examples' comments describe the small sample (6 symbols × 5 days, `tsq demo --small`); \
             this table is bigger, so its counts differ\n"
        )?;
    }
    let mut failures = 0;
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
        writeln!(out, "==== {} ====", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())?;
        // The file's opening comment says what it shows.
        for line in text.lines().take_while(|l| l.trim_start().starts_with("--")) {
            writeln!(out, "{}", line.trim())?;
        }
        failures += run_statements(out, ctx, &split_statements(&text), &path.display().to_string()).await?;
    }
    Ok(failures)
}

/// Prints and runs statements; a failure is printed and ends this group (later statements
/// may depend on it). Returns the number of failures (0 or 1).
async fn run_statements(
    out: &mut dyn Write,
    ctx: &datafusion::prelude::SessionContext,
    statements: &[String],
    origin: &str,
) -> anyhow::Result<usize> {
    for (i, sql) in statements.iter().enumerate() {
        writeln!(out, "\n> {}", one_line(sql, 400))?;
        match run_statement(ctx, sql).await {
            Ok((schema, batches)) => write_result(out, &schema, &batches, Format::Table, Some(SHOWN_ROWS))?,
            Err(e) => {
                out.flush()?;
                eprintln!("error: statement {} of {origin} failed: {}", i + 1, e.describe());
                return Ok(1);
            }
        }
    }
    writeln!(out)?;
    Ok(0)
}
