//! The read-side commands: `info`, `coverage` (with the heatmap, or the changes since a
//! version) and `gaps`. Each asks the library (table metadata and coverage sidecars only,
//! no data scan) and prints.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail};
use timeseries_table_core::coverage::BucketSet;
use timeseries_table_core::metadata::describe_schema;
use timeseries_table_core::table::{Change, Expected, TimeRange, TimeSeriesTable};

use crate::commands::{open_table, write_spec};
use crate::heatmap::{heat_grid, render_svg, GridOptions};
use crate::output::{fmt_bytes, fmt_int, fmt_pct, fmt_span, TextTable};

pub async fn info(dir: &str) -> anyhow::Result<()> {
    let table = open_table(dir).await?;
    let snapshot = table.snapshot();
    let coverage = snapshot.table_coverage().await?;
    let report = table.coverage(None, None).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "table {dir}")?;
    writeln!(out, "  version      {}", table.version())?;
    write_spec(&mut out, &table)?;
    match table.schema() {
        Some(schema) => {
            writeln!(out, "  schema")?;
            for field in schema.fields() {
                let one = arrow::datatypes::Schema::new(vec![field.as_ref().clone()]);
                writeln!(out, "    {}", describe_schema(&one))?;
            }
        }
        None => writeln!(out, "  schema       (not yet fixed: the first append sets it)")?,
    }
    let segments = snapshot.segments().len() as u64;
    writeln!(out, "  segments     {} ({})", fmt_int(segments), fmt_bytes(snapshot.size_bytes()))?;
    writeln!(out, "  rows         {}", fmt_int(snapshot.row_count()))?;
    match snapshot.time_extent() {
        Some((min, max)) => writeln!(out, "  time span    {min} .. {max} (first and last row)")?,
        None => writeln!(out, "  time span    (empty)")?,
    }
    writeln!(out, "  entities     {}", fmt_int(coverage.entity_count() as u64))?;
    let (covered, expected) =
        report.iter().fold((0, 0), |acc, r| (acc.0 + r.covered_buckets, acc.1 + r.expected_buckets));
    match report.first() {
        Some(r) if expected > 0 => writeln!(
            out,
            "  coverage     {} ({} of {} entity-buckets between {} and {}; see `tsq coverage {dir}`)",
            fmt_pct(covered as f64 / expected as f64),
            fmt_int(covered),
            fmt_int(expected),
            r.window.start,
            r.window.end
        )?,
        _ => writeln!(out, "  coverage     (no data yet)")?,
    }
    writeln!(out, "  last commits")?;
    for commit in table.recent_history(5).await?.iter().rev() {
        let mut changes = Vec::new();
        if commit.rows_added > 0 || commit.rows_removed > 0 {
            changes.push(format!("+{} -{} rows", fmt_int(commit.rows_added), fmt_int(commit.rows_removed)));
        }
        if commit.segments_added > 0 || commit.segments_removed > 0 {
            changes.push(format!("+{} -{} segments", commit.segments_added, commit.segments_removed));
        }
        writeln!(
            out,
            "    v{:<6} {:<12} {:<32} {}",
            commit.version,
            commit.operation,
            changes.join(", "),
            commit.committed_at
        )?;
    }
    Ok(())
}

/// `--from`, `--to` and `--schedule` as given.
pub struct Window {
    pub from: Option<String>,
    pub to: Option<String>,
    pub schedule: Option<String>,
}

impl Window {
    /// The time range; times without an offset are read in the table's time zone.
    fn range(&self, table: &TimeSeriesTable) -> anyhow::Result<Option<TimeRange>> {
        match (&self.from, &self.to) {
            (Some(from), Some(to)) => Ok(Some(TimeRange::parse_in(from, to, table.spec().timezone.as_deref())?)),
            (None, None) => Ok(None),
            _ => bail!("give both --from and --to, or neither"),
        }
    }

    fn expected(&self) -> anyhow::Result<Expected> {
        match &self.schedule {
            Some(text) => Expected::parse(text).map_err(|e| anyhow!("--schedule: {}", e.describe())),
            None => Ok(Expected::TableSchedule),
        }
    }
}

pub async fn coverage(dir: &str, window: &Window, plot: Option<&Path>) -> anyhow::Result<()> {
    let table = open_table(dir).await?;
    let (range, expected) = (window.range(&table)?, window.expected()?);
    write_coverage(&mut std::io::stdout().lock(), &table, range, &expected, plot, dir).await
}

/// The per-entity coverage summary and, with `plot`, the heatmap SVG.
pub async fn write_coverage(
    out: &mut dyn Write,
    table: &TimeSeriesTable,
    window: Option<TimeRange>,
    against: &Expected,
    plot: Option<&Path>,
    name: &str,
) -> anyhow::Result<()> {
    let snapshot = table.snapshot();
    let report = snapshot.coverage_report(window, None, against).await?;
    let Some(first) = report.first() else {
        writeln!(out, "no data: the table has no rows{}", if window.is_some() { "" } else { " yet" })?;
        return Ok(());
    };
    let window = first.window;
    writeln!(out, "coverage of {} bucket(s) from {} to {}", table.spec().bucket, window.start, window.end)?;
    if let Some(schedule) = snapshot.schedule_for(against) {
        writeln!(out, "expected: the buckets of the schedule {schedule}")?;
    }
    let mut text = TextTable::new(&[
        (&entity_header(table), false),
        ("covered", true),
        ("expected", true),
        ("ratio", true),
        ("gaps", true),
        ("longest gap", true),
        ("first", false),
        ("last", false),
    ]);
    let bucket_nanos = table.spec().bucket.nanos();
    let (mut covered, mut expected) = (0, 0);
    for r in &report {
        covered += r.covered_buckets;
        expected += r.expected_buckets;
        text.push(vec![
            r.entity.to_string(),
            fmt_int(r.covered_buckets),
            fmt_int(r.expected_buckets),
            fmt_pct(r.coverage_ratio),
            fmt_int(r.gap_count),
            if r.max_gap_buckets > 0 { fmt_span(r.max_gap_buckets as i64 * bucket_nanos) } else { "-".into() },
            r.covered_from.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            r.covered_until.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
        ]);
    }
    text.write(out)?;
    let overall = if expected > 0 { covered as f64 / expected as f64 } else { 0.0 };
    writeln!(
        out,
        "{} entities; {} of {} expected entity-buckets covered ({})",
        report.len(),
        fmt_int(covered),
        fmt_int(expected),
        fmt_pct(overall)
    )?;
    if let Some(path) = plot {
        let coverage = snapshot.table_coverage().await?;
        let Some((_, ids)) = snapshot.resolve_window(&coverage, Some(window))? else { return Ok(()) };
        let scheduled: Option<BucketSet> = snapshot.schedule_for(against).map(|_| {
            let mut set = BucketSet::new();
            for range in snapshot.expected_ranges(ids.clone(), against) {
                set.insert_range(range);
            }
            set
        });
        let grid = heat_grid(&coverage, snapshot.grid(), ids, scheduled.as_ref(), GridOptions::default())?;
        let title = format!("Coverage of {name}");
        std::fs::write(path, render_svg(&grid, &title))
            .map_err(|e| anyhow!("cannot write the heatmap to {}: {e}", path.display()))?;
        writeln!(
            out,
            "heatmap written to {} ({} entities × {} columns of {})",
            path.display(),
            grid.entities.len(),
            grid.columns.len(),
            fmt_span(grid.column_nanos)
        )?;
    }
    Ok(())
}

fn entity_header(table: &TimeSeriesTable) -> String {
    let columns = &table.spec().entity_columns;
    if columns.is_empty() {
        "entity".to_string()
    } else {
        columns.join("/")
    }
}

pub async fn gaps(dir: &str, window: &Window) -> anyhow::Result<()> {
    let table = open_table(dir).await?;
    let (window, expected) = (window.range(&table)?, window.expected()?);
    let snapshot = table.snapshot();
    let gaps = snapshot.gaps(window, None, &expected).await?;
    let mut out = std::io::stdout().lock();
    let coverage = snapshot.table_coverage().await?;
    let Some((range, _)) = snapshot.resolve_window(&coverage, window)? else {
        writeln!(out, "no data: the table has no rows yet")?;
        return Ok(());
    };
    let span = format!("from {} to {}", range.start, range.end);
    if gaps.is_empty() {
        let scheduled = if snapshot.schedule_for(&expected).is_some() { "scheduled " } else { "" };
        writeln!(out, "no gaps: every entity has data in every {scheduled}{} bucket {span}", table.spec().bucket)?;
        return Ok(());
    }
    let mut text = TextTable::new(&[
        (&entity_header(&table), false),
        ("gap start", false),
        ("gap end", false),
        ("missing buckets", true),
        ("duration", true),
    ]);
    let mut missing = 0;
    for g in &gaps {
        missing += g.missing_buckets;
        text.push(vec![
            g.entity.to_string(),
            g.start.to_string(),
            g.end.to_string(),
            fmt_int(g.missing_buckets),
            fmt_span(g.end.as_nanos() - g.start.as_nanos()),
        ]);
    }
    text.write(&mut out)?;
    writeln!(
        out,
        "{} gap(s), {} missing {} bucket(s), {span}",
        fmt_int(gaps.len() as u64),
        fmt_int(missing),
        table.spec().bucket
    )?;
    Ok(())
}

/// `coverage --since-version N`: the buckets each entity gained or lost since version N.
pub async fn coverage_changes(dir: &str, since: u64) -> anyhow::Result<()> {
    let table = open_table(dir).await?;
    let changes =
        table.coverage_changes(since, None).await.map_err(|e| anyhow!("--since-version {since}: {}", e.describe()))?;
    let mut out = std::io::stdout().lock();
    if changes.is_empty() {
        writeln!(out, "no coverage changed from version {since} to version {}", table.version())?;
        return Ok(());
    }
    let mut text = TextTable::new(&[
        (&entity_header(&table), false),
        ("change", false),
        ("from", false),
        ("to", false),
        ("buckets", true),
    ]);
    let (mut added, mut removed) = (0, 0);
    for c in &changes {
        match c.change {
            Change::Added => added += c.buckets,
            Change::Removed => removed += c.buckets,
        }
        text.push(vec![
            c.entity.to_string(),
            c.change.as_str().to_string(),
            c.start.to_string(),
            c.end.to_string(),
            fmt_int(c.buckets),
        ]);
    }
    text.write(&mut out)?;
    writeln!(
        out,
        "from version {since} to version {}: {} {} bucket(s) added, {} removed, in {} run(s)",
        table.version(),
        fmt_int(added),
        table.spec().bucket,
        fmt_int(removed),
        fmt_int(changes.len() as u64)
    )?;
    Ok(())
}
