//! The maintenance commands: `compact`, `replace`, `alter` and `vacuum`. The rules (what to merge,
//! what a replace may contain, which columns may be added) are the library's; this
//! parses, shows progress and prints what changed.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail};
use arrow::datatypes::{DataType, Field};
use indicatif::{ProgressBar, ProgressStyle};
use timeseries_table_core::metadata::schema::parse_column_type;
use timeseries_table_core::metadata::{EntityValue, Schedule};
use timeseries_table_core::table::{
    CompactOptions, EntityFilter, OrphanStatus, TimeRange, TimeSeriesTable, VacuumOptions,
};

use crate::commands::open_table;
use crate::output::{fmt_bytes, fmt_int};

/// A spinner counting rows while `work` runs, when stderr is a terminal.
fn rows_spinner(verb: &'static str) -> (ProgressBar, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let rows = Arc::new(AtomicU64::new(0));
    let bar = if std::io::stderr().is_terminal() {
        let bar =
            ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner:.green} {msg}").unwrap());
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        bar
    } else {
        ProgressBar::hidden()
    };
    let ticker = {
        let (bar, rows) = (bar.clone(), Arc::clone(&rows));
        tokio::spawn(async move {
            loop {
                bar.set_message(format!("{verb} · {} rows", fmt_int(rows.load(Ordering::Relaxed))));
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        })
    };
    (bar, rows, ticker)
}

pub async fn compact(dir: &str, target_rows: Option<u64>, dry_run: bool) -> anyhow::Result<()> {
    let mut options = CompactOptions::new().with_dry_run(dry_run);
    if let Some(rows) = target_rows {
        if rows == 0 {
            bail!("--target-rows must be at least 1");
        }
        options = options.with_target_rows(rows);
    }
    let (bar, rows, ticker) = rows_spinner("compacting");
    let mut table = open_table(dir).await?.with_rows_read_counter(Arc::clone(&rows));
    let started = Instant::now();
    let result = table.compact(options).await;
    ticker.abort();
    bar.finish_and_clear();
    let report = result.map_err(|e| anyhow!("cannot compact the table at {dir}: {}", e.describe()))?;
    let mut out = std::io::stdout().lock();
    if report.nothing_to_do() {
        writeln!(
            out,
            "nothing to compact: {} segment(s), none unsorted and at most one under half of {} rows (version {})",
            fmt_int(report.segments_before as u64),
            fmt_int(report.target_rows),
            table.version()
        )?;
        return Ok(());
    }
    let verb = if report.dry_run { "would merge" } else { "merged" };
    writeln!(
        out,
        "{verb} {} segment(s) ({} rows, {}) into {} of up to {} rows: {} -> {} segments",
        fmt_int(report.segments_merged as u64),
        fmt_int(report.rows_rewritten),
        fmt_bytes(report.bytes_read),
        fmt_int(report.segments_written as u64),
        fmt_int(report.target_rows),
        fmt_int(report.segments_before as u64),
        fmt_int(report.segments_after as u64),
    )?;
    match report.version {
        Some(version) => writeln!(
            out,
            "wrote {} in {:.1}s -> version {version}; the old files stay for time travel until `vacuum`",
            fmt_bytes(report.bytes_written),
            started.elapsed().as_secs_f64()
        )?,
        None => writeln!(out, "dry run: nothing was written")?,
    }
    Ok(())
}

/// Parses `--entity COL=VALUE` options against the table's entity columns and types.
fn entity_filter(table: &TimeSeriesTable, specs: &[String]) -> anyhow::Result<EntityFilter> {
    let mut filter = EntityFilter::new();
    let columns = &table.spec().entity_columns;
    for spec in specs {
        let (column, value) =
            spec.split_once('=').ok_or_else(|| anyhow!("--entity {spec}: expected COLUMN=VALUE, e.g. symbol=AAPL"))?;
        let index = columns.iter().position(|c| c == column).ok_or_else(|| {
            anyhow!(
                "--entity {spec}: '{column}' is not an entity column of the table (they are: {})",
                columns.join(", ")
            )
        })?;
        let data_type = table
            .schema()
            .and_then(|s| s.field_with_name(column).ok().map(|f| f.data_type().clone()))
            .unwrap_or(DataType::Utf8);
        let value = match data_type {
            DataType::Utf8 | DataType::LargeUtf8 => EntityValue::Str(value.to_string()),
            _ => EntityValue::Int(
                value.parse().map_err(|_| anyhow!("--entity {spec}: '{column}' holds integers, not '{value}'"))?,
            ),
        };
        filter.entry(index).or_default().insert(value);
    }
    Ok(filter)
}

pub async fn replace(dir: &str, from: &str, to: &str, entities: &[String], files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        if !file.is_file() {
            bail!("{} is not a file; nothing was replaced", file.display());
        }
    }
    let (bar, rows, ticker) = rows_spinner("replacing");
    let mut table = open_table(dir).await?.with_rows_read_counter(Arc::clone(&rows));
    let range = TimeRange::parse_in(from, to, table.spec().timezone.as_deref())
        .map_err(|e| anyhow!("--from/--to: {}", e.describe()));
    let range = match range {
        Ok(range) => range,
        Err(e) => {
            ticker.abort();
            bar.finish_and_clear();
            return Err(e);
        }
    };
    let filter = entity_filter(&table, entities)?;
    let result = table.replace_files(range, filter, files).await;
    ticker.abort();
    bar.finish_and_clear();
    let report = result.map_err(|e| {
        anyhow!(
            "cannot replace {range} in the table at {dir} (it stays at version {}): {}",
            table.version(),
            e.describe()
        )
    })?;
    let scope = if entities.is_empty() { String::new() } else { format!(" for {}", entities.join(", ")) };
    writeln!(
        std::io::stdout(),
        "replaced {range}{scope}: {} rows removed, {} rows added ({} segment(s) removed, {} added) -> version {}",
        fmt_int(report.rows_deleted),
        fmt_int(report.rows_added),
        report.segments_removed,
        report.segments_added,
        report.version
    )?;
    Ok(())
}

pub async fn add_column(dir: &str, name: &str, type_name: &str) -> anyhow::Result<()> {
    let data_type = parse_column_type(type_name).map_err(|e| anyhow!("{}", e.describe()))?;
    let mut table = open_table(dir).await?;
    let version = table
        .add_columns(vec![Field::new(name, data_type.clone(), true)])
        .await
        .map_err(|e| anyhow!("cannot add column '{name}' to the table at {dir}: {}", e.describe()))?;
    writeln!(
        std::io::stdout(),
        "added column {name} ({type_name}, nullable) -> version {version}; rows written before read it as NULL"
    )?;
    Ok(())
}

pub async fn set_schedule(dir: &str, text: &str) -> anyhow::Result<()> {
    let schedule = match text.trim() {
        "none" => None,
        text => Some(text.parse::<Schedule>().map_err(|e| anyhow!("{}", e.describe()))?),
    };
    let mut table = open_table(dir).await?;
    let version = table
        .set_schedule(schedule.clone())
        .await
        .map_err(|e| anyhow!("cannot set the schedule of the table at {dir}: {}", e.describe()))?;
    let mut out = std::io::stdout();
    match schedule {
        Some(schedule) => writeln!(out, "schedule set to {schedule} -> version {version}")?,
        None => writeln!(out, "schedule removed: every bucket is expected -> version {version}")?,
    }
    Ok(())
}

pub async fn vacuum(dir: &str, retention: &str, dry_run: bool) -> anyhow::Result<()> {
    let retention = match retention.trim() {
        "0" => std::time::Duration::ZERO,
        text => {
            let span: timeseries_table_core::metadata::TimeBucket = text
                .parse()
                .map_err(|_| anyhow!("--retention {text}: expected a duration such as 30m, 1h or 7d (or 0)"))?;
            std::time::Duration::from_nanos(span.nanos() as u64)
        }
    };
    let table = open_table(dir).await?;
    let options = VacuumOptions::new().with_retention(retention).with_dry_run(dry_run);
    let report =
        table.vacuum(options).await.map_err(|e| anyhow!("cannot vacuum the table at {dir}: {}", e.describe()))?;
    let mut out = std::io::stdout().lock();
    for file in &report.orphans {
        let what = match file.status {
            OrphanStatus::Deleted => "deleted",
            OrphanStatus::WouldDelete => "would delete",
            OrphanStatus::Retained => "kept (younger than the retention)",
        };
        writeln!(out, "{what:>34}  {}  {}", fmt_bytes(file.size), file.path)?;
    }
    let deleted = report.with_status(OrphanStatus::Deleted).count();
    let would = report.with_status(OrphanStatus::WouldDelete).count();
    let kept = report.with_status(OrphanStatus::Retained).count();
    writeln!(
        out,
        "{} file(s) looked at, {} no longer needed: {deleted} deleted ({}), {would} to delete, {kept} kept; the table is at version {}",
        fmt_int(report.files_scanned as u64),
        fmt_int(report.orphans.len() as u64),
        fmt_bytes(report.deleted_bytes()),
        report.version
    )?;
    Ok(())
}
