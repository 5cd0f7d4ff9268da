//! The writing and querying commands: `create`, `append` (with its progress bar) and
//! `sql`, plus the helpers `shell` and `demo` share (opening a table by folder, registering
//! `-t NAME=DIR` tables, running one statement). The rules (validation, overlap, atomic
//! commits) are the library's; this only translates and prints.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use datafusion::prelude::SessionContext;
use indicatif::{ProgressBar, ProgressStyle};
use timeseries_table_core::datafusion::script::split_statements;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::metadata::{TableMeta, TimeBucket, TimeIndexSpec};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;
use timeseries_table_core::{parse_byte_size, Schedule, WriterOptions};

use crate::output::{fmt_bytes, fmt_int, write_result};
use crate::Format;

/// The `--storage-option`s of this run, for every table it names.
static STORAGE_OPTIONS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

pub fn set_storage_options(options: Vec<(String, String)>) {
    let _ = STORAGE_OPTIONS.set(options);
}

/// DIR (a folder or URL) with this run's storage options.
pub fn resolve(dir: &str) -> anyhow::Result<TableLocation> {
    Ok(TableLocation::parse_with_options(dir, STORAGE_OPTIONS.get().map_or(&[], Vec::as_slice))?)
}

/// Resolves DIR, turning a local folder that does not exist into a clear message.
fn location(dir: &str) -> anyhow::Result<TableLocation> {
    if !dir.contains("://") && !Path::new(dir).exists() {
        bail!("no table at {dir}: the folder does not exist (check the path, or make a table there with `tsq create {dir} --time-column ts --bucket 1m`)");
    }
    resolve(dir)
}

/// Opens the table in DIR at its latest version.
pub async fn open_table(dir: &str) -> anyhow::Result<TimeSeriesTable> {
    Ok(TimeSeriesTable::open(location(dir)?).await?)
}

pub async fn create(
    dir: &str,
    time_column: &str,
    bucket: TimeBucket,
    entities: &[String],
    timezone: Option<&str>,
    schedule: Option<&str>,
) -> anyhow::Result<()> {
    let mut spec = TimeIndexSpec::new(time_column, bucket).with_entity_columns(entities.iter().cloned());
    if let Some(tz) = timezone {
        spec = spec.with_timezone(tz);
    }
    let schedule =
        schedule.map(str::parse::<Schedule>).transpose().map_err(|e| anyhow!("--schedule: {}", e.describe()))?;
    let meta = TableMeta::try_new(spec)?.with_schedule(schedule);
    let table = TimeSeriesTable::create(resolve(dir)?, meta).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "created table at {dir} (version {})", table.version())?;
    write_spec(&mut out, &table)?;
    writeln!(out, "its columns are fixed by the first append: tsq append {dir} FILE.parquet")?;
    Ok(())
}

pub fn write_spec(out: &mut dyn Write, table: &TimeSeriesTable) -> std::io::Result<()> {
    let spec = table.spec();
    writeln!(out, "  time column  {}", spec.time_column)?;
    writeln!(out, "  bucket       {}", spec.bucket)?;
    let entities = if spec.entity_columns.is_empty() {
        "(none: the whole table is one entity)".to_string()
    } else {
        spec.entity_columns.join(", ")
    };
    writeln!(out, "  entity key   {entities}")?;
    writeln!(out, "  time zone    {}", spec.timezone.as_deref().unwrap_or("(any)"))?;
    match &table.meta().schedule {
        Some(schedule) => writeln!(out, "  schedule     {schedule}"),
        None => writeln!(out, "  schedule     (none: every bucket is expected)"),
    }
}

pub async fn append(
    dir: &str,
    files: &[PathBuf],
    segment_rows: Option<u64>,
    memory_limit: Option<&str>,
    evolve_schema: bool,
) -> anyhow::Result<()> {
    let mut options = WriterOptions::default().with_evolve_schema(evolve_schema);
    if let Some(rows) = segment_rows {
        if rows == 0 {
            bail!("--segment-rows must be at least 1");
        }
        options = options.with_segment_rows(rows);
    }
    if let Some(limit) = memory_limit {
        let bytes = parse_byte_size(limit).map_err(|e| anyhow!("--memory-limit: {}", e.describe()))?;
        options = options.with_memory_limit(usize::try_from(bytes)?);
    }
    let mut table = open_table(dir).await?.with_writer_options(options);
    append_files(&mut table, dir, files).await?;
    Ok(())
}

/// Appends `files` one commit each, with a progress bar when stderr is a terminal and a
/// line per file on stdout. Stops at the first rejected file. Returns the rows appended.
pub async fn append_files(table: &mut TimeSeriesTable, dir: &str, files: &[PathBuf]) -> anyhow::Result<u64> {
    let mut sizes = Vec::with_capacity(files.len());
    for file in files {
        let meta = std::fs::metadata(file)
            .map_err(|e| anyhow!("cannot read {}: {e}; nothing was appended", file.display()))?;
        if !meta.is_file() {
            bail!("{} is not a file; nothing was appended", file.display());
        }
        sizes.push(meta.len());
    }
    let total_bytes: u64 = sizes.iter().sum();
    let bar = if std::io::stderr().is_terminal() {
        let style = ProgressStyle::with_template("{spinner:.green} [{bar:25.cyan/blue}] {bytes}/{total_bytes} {msg}")?
            .progress_chars("=> ");
        let bar = ProgressBar::new(total_bytes).with_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut rows = 0;
    // Rows read so far, shown while a long file streams in.
    let rows_read = Arc::new(AtomicU64::new(0));
    *table = table.clone().with_rows_read_counter(Arc::clone(&rows_read));
    for (i, (file, size)) in files.iter().zip(&sizes).enumerate() {
        let label = format!("file {}/{}", i + 1, files.len());
        bar.set_message(format!("{label} · {} rows", fmt_int(rows)));
        let ticker = {
            let (bar, rows_read, done) = (bar.clone(), Arc::clone(&rows_read), rows);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    let read = rows_read.load(Ordering::Relaxed);
                    bar.set_message(format!("{label} · {} rows", fmt_int(done + read)));
                }
            })
        };
        rows_read.store(0, Ordering::Relaxed);
        let appended = table.append_file(file).await;
        ticker.abort();
        let result = match appended {
            Ok(result) => result,
            Err(e) => {
                bar.abandon();
                bail!(
                    "cannot append {} to the table at {dir} (it stays at version {}; {i} of {} file(s) appended): {}",
                    file.display(),
                    table.version(),
                    files.len(),
                    e.describe()
                );
            }
        };
        rows += result.rows;
        bar.inc(*size);
        let retries =
            if result.attempts > 1 { format!(" after {} commit attempts", result.attempts) } else { String::new() };
        let segments = match result.segments.len() {
            1 => String::new(),
            n => format!(" in {n} segments"),
        };
        let line = format!(
            "appended {}: {} rows{segments} -> version {}{retries}",
            file.display(),
            fmt_int(result.rows),
            result.version
        );
        bar.suspend(|| -> std::io::Result<()> {
            if let Some(reason) = result.reencoded {
                writeln!(std::io::stdout(), "re-encoding {} sorted by time: {reason}", file.display())?;
            }
            writeln!(std::io::stdout(), "{line}")
        })?;
    }
    bar.finish_and_clear();
    let total = table.snapshot().row_count();
    writeln!(
        std::io::stdout(),
        "{} file(s), {} rows, {} in {:.1}s; the table is at version {} with {} rows",
        files.len(),
        fmt_int(rows),
        fmt_bytes(total_bytes),
        started.elapsed().as_secs_f64(),
        table.version(),
        fmt_int(total)
    )?;
    Ok(rows)
}

/// Registers `-t NAME=DIR` / `-t DIR` tables; returns (name, dir) pairs.
pub async fn register_tables(ctx: &SessionContext, specs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut registered = Vec::new();
    for spec in specs {
        let (name, dir) = match spec.split_once('=') {
            Some((name, dir)) if !name.is_empty() && !name.contains(['/', '\\', ':', '.']) => {
                (name.to_string(), dir.to_string())
            }
            _ => {
                let path = Path::new(spec.trim_end_matches('/'));
                let name = path.file_name().map(|n| n.to_string_lossy().to_string()).filter(|n| !n.is_empty());
                let name = name
                    .ok_or_else(|| anyhow!("cannot name the table at '{spec}' after its folder; use -t NAME={spec}"))?;
                (name, spec.clone())
            }
        };
        let table = match split_version(&dir) {
            Some((dir, version)) => TimeSeriesTable::open_at(location(dir)?, version).await?,
            None => open_table(&dir).await?,
        };
        register_opened(ctx, &name, table)
            .with_context(|| format!("cannot register the table at {dir} as '{name}'"))?;
        registered.push((name, dir));
    }
    Ok(registered)
}

/// `DIR@VERSION` as its parts, when the text after the last `@` is a version number.
fn split_version(dir: &str) -> Option<(&str, u64)> {
    let (dir, version) = dir.rsplit_once('@')?;
    Some((dir, version.parse().ok()?))
}

pub async fn sql(
    tables: &[String],
    format: Format,
    file: Option<&Path>,
    sql: Option<&str>,
    cluster: Option<&str>,
) -> anyhow::Result<()> {
    let ctx = match cluster {
        #[cfg(feature = "ballista")]
        Some(url) => timeseries_table_core::datafusion::cluster::remote_session_context(url).await?,
        _ => session_context(),
    };
    register_tables(&ctx, tables).await?;
    let text = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?,
        None => sql.unwrap_or_default().to_string(),
    };
    if file.is_none() && !text.contains(char::is_whitespace) && Path::new(&text).is_file() {
        bail!("`{text}` is a file, not SQL; to run the statements in a file, use -f {text}");
    }
    let statements = split_statements(&text);
    if statements.is_empty() {
        bail!("no SQL statement to run (the text is empty or only comments)");
    }
    let mut out = std::io::stdout().lock();
    for (i, statement) in statements.iter().enumerate() {
        if statements.len() > 1 && format == Format::Table {
            writeln!(out, "> {}", one_line(statement, 200))?;
        }
        let (schema, batches) =
            run_statement(&ctx, statement).await.with_context(|| statement_label(i, statements.len(), statement))?;
        write_result(&mut out, &schema, &batches, format, None)?;
        if statements.len() > 1 && format == Format::Table && i + 1 < statements.len() {
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Runs one statement (as split by the library); returns its schema and batches.
///
/// Statement by statement rather than `run_script` so that results print as they come,
/// a failure names the statement, and an empty result still knows its columns.
pub async fn run_statement(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(arrow::datatypes::Schema, Vec<arrow::array::RecordBatch>), timeseries_table_core::Error> {
    let df = ctx.sql(sql).await?;
    let schema = df.schema().as_arrow().clone();
    Ok((schema, df.collect().await?))
}

pub fn statement_label(i: usize, n: usize, sql: &str) -> String {
    if n == 1 {
        format!("cannot run `{}`", one_line(sql, 80))
    } else {
        format!("statement {} of {n} failed (`{}`)", i + 1, one_line(sql, 80))
    }
}

/// The statement on one line, shortened to `max` characters.
pub fn one_line(sql: &str, max: usize) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}...", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

/// `tsq cluster scheduler|executor`: runs the process until it is stopped.
#[cfg(feature = "ballista")]
pub async fn cluster(command: crate::ClusterCommand) -> anyhow::Result<()> {
    use timeseries_table_core::datafusion::cluster::{run_executor, run_scheduler, ExecutorOptions};
    match command {
        crate::ClusterCommand::Scheduler { bind } => {
            eprintln!("scheduler listening on {bind}; stop it with Ctrl-C");
            run_scheduler(bind).await?;
        }
        crate::ClusterCommand::Executor { scheduler, concurrency, host, port, grpc_port } => {
            let concurrency =
                concurrency.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            eprintln!(
                "executor on {host}:{port} with {concurrency} task slots, serving {scheduler}; stop it with Ctrl-C"
            );
            let storage_options = STORAGE_OPTIONS.get().cloned().unwrap_or_default();
            run_executor(ExecutorOptions { scheduler, host, port, grpc_port, concurrency, storage_options }).await?;
        }
    }
    Ok(())
}
