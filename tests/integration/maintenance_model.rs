//! Model-based test of the rewrites: random sequences of appends, deletes (Rust and SQL),
//! replaces, compactions and added columns, checked after every step against a plain list
//! of rows. The table must hold exactly the model's rows, cover exactly their
//! (symbol, minute) buckets, report the gaps those leave, refuse an append exactly when it
//! covers a covered bucket, and keep a contiguous history whose row counts add up; every
//! older version still reads as the model did then.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use anyhow::{bail, ensure, Context};
use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use proptest::prelude::*;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::formats::parquet::stats::timestamps_as_nanos;
use timeseries_table_core::metadata::{EntityKey, EntityValue};
use timeseries_table_core::table::{CompactOptions, EntityFilter, RowSelector, TimeRange, TimeSeriesTable};
use timeseries_table_core::{Error, Timestamp, WriterOptions};

use crate::common::*;

const SYMBOLS: [&str; 3] = ["A", "B", "C"];
/// Timestamps lie on a 20-second grid: three per minute bucket, so a bucket can lose some
/// of its rows and stay covered.
const STEP: i64 = MINUTE / 3;
/// Grid points in the hour the data starts in (dense enough for appends to collide).
const SPAN_STEPS: i64 = 60 * 3;
/// The gaps window, in minutes from `T0`: inside the data's span, so entities whose rows
/// all lie outside it still show up (with one gap over the whole window).
const GAPS_WINDOW: (i64, i64) = (10, 50);
/// The most columns the test adds.
const MAX_COLUMNS: usize = 4;

/// A time as grid steps from `T0`; printed as `+hh:mm:ss`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Clock(i64);

impl Clock {
    fn nanos(self) -> i64 {
        T0 + self.0 * STEP
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 * 20;
        write!(f, "+{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    }
}

/// One row as generated and as the model holds it. `extras` has a value for every column
/// the test may add; only the first (number of added columns) are written.
#[derive(Clone, PartialEq, Eq)]
struct Row {
    at: Clock,
    symbol: &'static str,
    volume: i64,
    extras: Vec<Option<i64>>,
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} v{}", self.symbol, self.at, self.volume)?;
        let extras: Vec<String> = self.extras.iter().map(|v| v.map_or("-".into(), |v| v.to_string())).collect();
        write!(f, " [{}]", extras.join(","))
    }
}

/// A `DELETE FROM t WHERE ...` condition, with its meaning in the model.
#[derive(Debug, Clone)]
enum Condition {
    /// `volume % m = r`: a row test on every candidate segment.
    VolumeMod { m: i64, r: i64 },
    /// `symbol = s AND ts >= from AND ts < to`: decided by pruning alone.
    SymbolBetween { symbol: &'static str, from: Clock, to: Clock },
    /// `ts < before OR volume = v`.
    BeforeOrVolume { before: Clock, volume: i64 },
    /// `symbol IN (..) AND volume > v`.
    SymbolsAbove { symbols: Vec<&'static str>, volume: i64 },
    /// `ts BETWEEN from AND to AND symbol IN (..)`: a closed interval, by pruning alone.
    Between { from: Clock, to: Clock, symbols: Vec<&'static str> },
    /// `NOT (ts >= from AND ts < to) AND symbol = s`: a complement, by pruning alone.
    Outside { from: Clock, to: Clock, symbol: &'static str },
    /// `ts IN (..)`: points, by pruning alone.
    At(Vec<Clock>),
    /// `symbol <> s AND ts < before`.
    OtherBefore { symbol: &'static str, before: Clock },
    /// `c<column> IS [NOT] NULL` on an added column (older segments read it as nulls);
    /// `volume % 2 = 0` while the table has fewer columns.
    Added { column: usize, null: bool },
}

#[derive(Debug, Clone)]
enum Op {
    /// `table.append` of the rows, in the order given.
    Append(Vec<Row>),
    /// One segment of the rows in the order given, recorded as unsorted (as older tables
    /// may hold), committed through the log; skipped when it would overlap.
    AppendUnsorted(Vec<Row>),
    /// `table.delete` of `[from, to)` (not bucket aligned), for one symbol or all.
    Delete { from: Clock, to: Clock, symbol: Option<&'static str> },
    /// SQL `DELETE FROM t WHERE ...`.
    SqlDelete(Condition),
    /// SQL `UPDATE t SET volume = volume + add WHERE ...`.
    SqlUpdate { condition: Condition, add: i64 },
    /// `table.replace` of the minutes `[from_minute, from_minute + minutes)` with `rows` (inside the range
    /// and of the symbol, when one is given).
    Replace { from_minute: i64, minutes: i64, symbol: Option<&'static str>, rows: Vec<Row> },
    /// `table.compact` with this target.
    Compact { target_rows: u64 },
    /// `table.add_columns` of one nullable column, Utf8 or Float64.
    AddColumn { utf8: bool },
}

#[derive(Clone, Default)]
struct Model {
    rows: Vec<Row>,
    /// Added columns: whether each is Utf8 (else Float64).
    columns: Vec<bool>,
    /// The first successful append fixes the schema; deletes never unfix it.
    has_schema: bool,
}

/// A row as read back: time, symbol, volume and the added columns rendered.
type Flat = (i64, String, i64, Vec<Option<String>>);

impl Model {
    fn column_name(i: usize) -> String {
        format!("c{i}")
    }

    fn flat(&self, row: &Row) -> Flat {
        let extras = self
            .columns
            .iter()
            .zip(&row.extras)
            .map(|(utf8, v)| v.map(|v| if *utf8 { format!("s{v}") } else { format!("{}", v as f64 + 0.5) }))
            .collect();
        (row.at.nanos(), row.symbol.to_string(), row.volume, extras)
    }

    fn sorted_rows(&self) -> Vec<Flat> {
        let mut rows: Vec<Flat> = self.rows.iter().map(|r| self.flat(r)).collect();
        rows.sort();
        rows
    }

    fn covered(&self) -> BTreeSet<(String, i64)> {
        self.rows.iter().map(|r| (r.symbol.to_string(), r.at.nanos().div_euclid(MINUTE))).collect()
    }

    fn schema(&self) -> Arc<Schema> {
        let mut fields = vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("symbol", DataType::Utf8, false),
            Field::new("volume", DataType::Int64, true),
        ];
        for (i, utf8) in self.columns.iter().enumerate() {
            let kind = if *utf8 { DataType::Utf8 } else { DataType::Float64 };
            fields.push(Field::new(Self::column_name(i), kind, true));
        }
        Arc::new(Schema::new(fields))
    }

    /// `rows` as one batch with every column the table has now.
    fn batch(&self, rows: &[Row]) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(rows.iter().map(|r| r.at.nanos()).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.symbol).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.volume).collect::<Vec<_>>())),
        ];
        for (i, utf8) in self.columns.iter().enumerate() {
            let values = rows.iter().map(|r| r.extras[i]);
            columns.push(if *utf8 {
                Arc::new(StringArray::from(values.map(|v| v.map(|v| format!("s{v}"))).collect::<Vec<_>>()))
            } else {
                Arc::new(Float64Array::from(values.map(|v| v.map(|v| v as f64 + 0.5)).collect::<Vec<_>>()))
            });
        }
        RecordBatch::try_new(self.schema(), columns).unwrap()
    }

    /// Gaps over the window per symbol with a covered bucket anywhere, in symbol order:
    /// (symbol, start, end, missing buckets).
    fn gaps(&self) -> Vec<(String, i64, i64, u64)> {
        let covered = self.covered();
        let symbols: BTreeSet<&String> = covered.iter().map(|(s, _)| s).collect();
        let first = T0.div_euclid(MINUTE) + GAPS_WINDOW.0;
        let last = T0.div_euclid(MINUTE) + GAPS_WINDOW.1;
        let mut gaps = Vec::new();
        for symbol in symbols {
            let mut run: Option<(i64, i64)> = None;
            for id in first..=last {
                let missing = id < last && !covered.contains(&(symbol.clone(), id));
                match (&mut run, missing) {
                    (Some((_, end)), true) => *end = id + 1,
                    (None, true) => run = Some((id, id + 1)),
                    (Some((start, end)), false) => {
                        gaps.push((symbol.clone(), *start * MINUTE, *end * MINUTE, (*end - *start) as u64));
                        run = None;
                    }
                    (None, false) => {}
                }
            }
        }
        gaps
    }
}

impl Condition {
    fn sql(&self, model: &Model) -> String {
        let at = |c: Clock| Timestamp::from_nanos(c.nanos()).to_string();
        match self {
            Condition::VolumeMod { m, r } => format!("volume % {m} = {r}"),
            Condition::SymbolBetween { symbol, from, to } => {
                format!("symbol = '{symbol}' AND ts >= '{}' AND ts < '{}'", at(*from), at(*to))
            }
            Condition::BeforeOrVolume { before, volume } => format!("ts < '{}' OR volume = {volume}", at(*before)),
            Condition::SymbolsAbove { symbols, volume } => {
                format!("symbol IN ({}) AND volume > {volume}", quoted(symbols))
            }
            Condition::Between { from, to, symbols } => {
                format!("ts BETWEEN '{}' AND '{}' AND symbol IN ({})", at(*from), at(*to), quoted(symbols))
            }
            Condition::Outside { from, to, symbol } => {
                format!("NOT (ts >= '{}' AND ts < '{}') AND symbol = '{symbol}'", at(*from), at(*to))
            }
            Condition::At(times) => {
                let list: Vec<String> = times.iter().map(|t| format!("'{}'", at(*t))).collect();
                format!("ts IN ({})", list.join(", "))
            }
            Condition::OtherBefore { symbol, before } => format!("symbol <> '{symbol}' AND ts < '{}'", at(*before)),
            Condition::Added { column, null } if *column < model.columns.len() => {
                format!("{} IS {}NULL", Model::column_name(*column), if *null { "" } else { "NOT " })
            }
            Condition::Added { .. } => "volume % 2 = 0".into(),
        }
    }

    fn holds(&self, model: &Model, row: &Row) -> bool {
        match self {
            Condition::VolumeMod { m, r } => row.volume % m == *r,
            Condition::SymbolBetween { symbol, from, to } => row.symbol == *symbol && *from <= row.at && row.at < *to,
            Condition::BeforeOrVolume { before, volume } => row.at < *before || row.volume == *volume,
            Condition::SymbolsAbove { symbols, volume } => symbols.contains(&row.symbol) && row.volume > *volume,
            Condition::Between { from, to, symbols } => {
                symbols.contains(&row.symbol) && *from <= row.at && row.at <= *to
            }
            Condition::Outside { from, to, symbol } => row.symbol == *symbol && !(*from <= row.at && row.at < *to),
            Condition::At(times) => times.contains(&row.at),
            Condition::OtherBefore { symbol, before } => row.symbol != *symbol && row.at < *before,
            Condition::Added { column, null } if *column < model.columns.len() => {
                row.extras[*column].is_none() == *null
            }
            Condition::Added { .. } => row.volume % 2 == 0,
        }
    }
}

fn quoted(symbols: &[&str]) -> String {
    symbols.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}

fn symbol_filter(symbol: Option<&str>) -> EntityFilter {
    match symbol {
        Some(s) => EntityFilter::from([(0, BTreeSet::from([EntityValue::Str(s.into())]))]),
        None => EntityFilter::new(),
    }
}

fn symbol_of(key: &EntityKey) -> anyhow::Result<String> {
    match key.0.as_slice() {
        [EntityValue::Str(s)] => Ok(s.clone()),
        other => bail!("unexpected entity key {other:?}"),
    }
}

/// Applies `op` to the table and the model, checking what the table reports against what
/// the model expects.
async fn apply(table: &mut TimeSeriesTable, model: &mut Model, op: &Op) -> anyhow::Result<()> {
    let version = table.version();
    match op {
        Op::Append(rows) => {
            let appended: BTreeSet<(String, i64)> =
                rows.iter().map(|r| (r.symbol.to_string(), r.at.nanos().div_euclid(MINUTE))).collect();
            let overlap = !appended.is_disjoint(&model.covered());
            match (overlap, table.append(vec![model.batch(rows)]).await) {
                (false, Ok(result)) => {
                    ensure!(result.rows == rows.len() as u64, "appended {} rows, reported {}", rows.len(), result.rows);
                    ensure!(table.version() == version + 1, "an append commits one version");
                    model.rows.extend(rows.iter().cloned());
                    model.has_schema = true;
                }
                (true, Err(Error::Overlap { .. })) => {
                    ensure!(table.version() == version, "a refused append commits nothing");
                }
                (overlap, result) => bail!("the model expects overlap={overlap}, the table answered {result:?}"),
            }
        }
        Op::AppendUnsorted(rows) => {
            let appended: BTreeSet<(String, i64)> =
                rows.iter().map(|r| (r.symbol.to_string(), r.at.nanos().div_euclid(MINUTE))).collect();
            if !appended.is_disjoint(&model.covered()) {
                return Ok(());
            }
            commit_unsorted_segment(table, &model.batch(rows)).await;
            model.rows.extend(rows.iter().cloned());
            model.has_schema = true;
        }
        Op::Delete { from, to, symbol } => {
            let range = TimeRange::from_nanos(from.nanos(), to.nanos())?;
            let report = table.delete(&RowSelector::range(range, symbol_filter(*symbol))).await?;
            let selected = |r: &Row| *from <= r.at && r.at < *to && symbol.is_none_or(|s| s == r.symbol);
            let removed = model.rows.iter().filter(|r| selected(r)).count() as u64;
            model.rows.retain(|r| !selected(r));
            ensure!(report.rows_deleted == removed, "deleted {} rows, the model {removed}", report.rows_deleted);
            let expected = (removed > 0).then_some(version + 1);
            ensure!(report.version == expected, "delete committed {:?}, expected {expected:?}", report.version);
        }
        Op::SqlDelete(condition) => {
            if !model.has_schema {
                return Ok(());
            }
            let statement = format!("DELETE FROM t WHERE {}", condition.sql(model));
            let ctx = session_context();
            register_opened(&ctx, "t", table.clone())?;
            let count = single_count(&ctx, &statement).await?;
            table.refresh().await?;
            let removed = model.rows.iter().filter(|r| condition.holds(model, r)).count() as u64;
            let kept: Vec<Row> = model.rows.iter().filter(|r| !condition.holds(model, r)).cloned().collect();
            model.rows = kept;
            ensure!(count == removed, "{statement}: deleted {count} rows, the model {removed}");
            let expected = if removed > 0 { version + 1 } else { version };
            ensure!(table.version() == expected, "{statement}: version {} expected {expected}", table.version());
            // The next statement through the same registration sees the delete.
            let left = single_count(&ctx, "SELECT count(*) FROM t").await?;
            ensure!(left == model.rows.len() as u64, "{statement}: then SELECT count(*) says {left}");
        }
        Op::SqlUpdate { condition, add } => {
            if !model.has_schema {
                return Ok(());
            }
            let statement = format!("UPDATE t SET volume = volume + {add} WHERE {}", condition.sql(model));
            let ctx = session_context();
            register_opened(&ctx, "t", table.clone())?;
            let count = single_count(&ctx, &statement).await?;
            table.refresh().await?;
            // The condition is judged on the values before the update, as SQL does.
            let selected: Vec<bool> = model.rows.iter().map(|r| condition.holds(model, r)).collect();
            for (row, selected) in model.rows.iter_mut().zip(&selected) {
                if *selected {
                    row.volume += add;
                }
            }
            let updated = selected.iter().filter(|s| **s).count() as u64;
            ensure!(count == updated, "{statement}: updated {count} rows, the model {updated}");
            let expected = if updated > 0 { version + 1 } else { version };
            ensure!(table.version() == expected, "{statement}: version {} expected {expected}", table.version());
        }
        Op::Replace { from_minute, minutes, symbol, rows } => {
            let (start, end) = (T0 + from_minute * MINUTE, T0 + (from_minute + minutes) * MINUTE);
            let range = TimeRange::from_nanos(start, end)?;
            let data = futures::stream::iter([Ok(model.batch(rows))]);
            let result = table.replace(range, symbol_filter(*symbol), data).await;
            if !model.has_schema || rows.is_empty() {
                ensure!(result.is_err(), "a replace with no schema or no rows must fail: {result:?}");
                ensure!(table.version() == version, "a refused replace commits nothing");
                return Ok(());
            }
            let report = result?;
            let selected = |r: &Row| (start..end).contains(&r.at.nanos()) && symbol.is_none_or(|s| s == r.symbol);
            let removed = model.rows.iter().filter(|r| selected(r)).count() as u64;
            model.rows.retain(|r| !selected(r));
            model.rows.extend(rows.iter().cloned());
            ensure!(
                (report.rows_deleted, report.rows_added) == (removed, rows.len() as u64),
                "replace reported {report:?}, the model removed {removed} and added {}",
                rows.len()
            );
            ensure!(report.version == version + 1, "a replace commits one version: {report:?}");
        }
        Op::Compact { target_rows } => {
            let before = table.segments();
            let small = before.iter().filter(|s| !s.sorted || s.row_count < (target_rows / 2).max(1)).count();
            let merged = if small == 1 && before.iter().all(|s| s.sorted) { 0 } else { small };
            let report = table.compact(CompactOptions::new().with_target_rows(*target_rows)).await?;
            ensure!(report.segments_merged == merged, "merged {} segments, expected {merged}", report.segments_merged);
            let after = table.segments().len();
            ensure!(
                after == before.len() - report.segments_merged + report.segments_written,
                "{} segments, then {after} after {report:?}",
                before.len()
            );
            ensure!(table.segments().iter().all(|s| s.sorted), "compacted segments are sorted");
            let expected = (merged > 0).then_some(version + 1);
            ensure!(report.version == expected, "compact committed {:?}, expected {expected:?}", report.version);
        }
        Op::AddColumn { utf8 } => {
            if model.columns.len() >= MAX_COLUMNS {
                return Ok(());
            }
            let kind = if *utf8 { DataType::Utf8 } else { DataType::Float64 };
            let field = Field::new(Model::column_name(model.columns.len()), kind, true);
            let result = table.add_columns(vec![field]).await;
            if !model.has_schema {
                ensure!(result.is_err(), "adding a column before the first append must fail: {result:?}");
                return Ok(());
            }
            ensure!(result? == version + 1, "add_columns commits one version");
            model.columns.push(*utf8);
            for row in &mut model.rows {
                row.extras[model.columns.len() - 1] = None;
            }
        }
    }
    Ok(())
}

/// Every row of the table, read back through a scan and sorted.
async fn table_rows(table: &TimeSeriesTable, model: &Model) -> anyhow::Result<Vec<Flat>> {
    if !model.has_schema {
        // Before its first append a table has no columns to scan.
        ensure!(table.schema().is_none(), "a schema before the first append");
        return Ok(Vec::new());
    }
    let batches: Vec<RecordBatch> = table.scan(None).await?.try_collect().await?;
    let mut rows = Vec::new();
    for batch in &batches {
        let names: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        let expected: Vec<String> = model.schema().fields().iter().map(|f| f.name().clone()).collect();
        ensure!(names == expected, "scan columns {names:?}, expected {expected:?}");
        let ts = timestamps_as_nanos(batch.column(0), "ts")?;
        let symbols = batch.column(1).as_any().downcast_ref::<StringArray>().context("symbol")?;
        let volumes = batch.column(2).as_any().downcast_ref::<Int64Array>().context("volume")?;
        for (i, t) in ts.iter().enumerate() {
            let extras = (3..batch.num_columns())
                .map(|c| {
                    let column = batch.column(c);
                    if column.is_null(i) {
                        return Ok(None);
                    }
                    if let Some(s) = column.as_any().downcast_ref::<StringArray>() {
                        return Ok(Some(s.value(i).to_string()));
                    }
                    let f = column.as_any().downcast_ref::<Float64Array>().context("an added column")?;
                    Ok(Some(format!("{}", f.value(i))))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            rows.push((*t, symbols.value(i).to_string(), volumes.value(i), extras));
        }
    }
    rows.sort();
    Ok(rows)
}

/// Every (symbol, bucket) the table's coverage reports.
async fn covered(table: &TimeSeriesTable) -> anyhow::Result<BTreeSet<(String, i64)>> {
    let coverage = table.snapshot().table_coverage().await?;
    let mut out = BTreeSet::new();
    for (key, set) in coverage.entities() {
        let symbol = symbol_of(key)?;
        out.extend(set.iter().map(|id| (symbol.clone(), id)));
    }
    Ok(out)
}

/// Compares everything a user can read off the table with the model.
/// Runs `statement` and returns the single count it answers (a DML count or `count(*)`).
async fn single_count(ctx: &SessionContext, statement: &str) -> anyhow::Result<u64> {
    let batches = ctx.sql(statement).await?.collect().await.with_context(|| statement.to_string())?;
    let count = arrow::compute::cast(batches[0].column(0), &DataType::UInt64)?;
    Ok(count.as_any().downcast_ref::<arrow::array::UInt64Array>().context("count")?.value(0))
}

async fn check(table: &TimeSeriesTable, model: &Model) -> anyhow::Result<()> {
    let rows = table_rows(table, model).await?;
    let expected = model.sorted_rows();
    ensure!(rows == expected, "rows differ:\n table {rows:?}\n model {expected:?}");
    ensure!(table.snapshot().row_count() == expected.len() as u64, "row count {}", table.snapshot().row_count());

    let model_covered = model.covered();
    let table_covered = covered(table).await?;
    ensure!(table_covered == model_covered, "coverage differs:\n table {table_covered:?}\n model {model_covered:?}");

    let mut per_symbol: BTreeMap<String, u64> = BTreeMap::new();
    for (symbol, _) in &model_covered {
        *per_symbol.entry(symbol.clone()).or_default() += 1;
    }
    let reported: BTreeMap<String, u64> = table
        .coverage(None, None)
        .await?
        .iter()
        .map(|c| Ok((symbol_of(&c.entity)?, c.covered_buckets)))
        .collect::<anyhow::Result<_>>()?;
    ensure!(reported == per_symbol, "coverage() {reported:?}, the model {per_symbol:?}");

    let window = TimeRange::from_nanos(T0 + GAPS_WINDOW.0 * MINUTE, T0 + GAPS_WINDOW.1 * MINUTE)?;
    let gaps: Vec<(String, i64, i64, u64)> = table
        .gaps(Some(window), None)
        .await?
        .iter()
        .map(|g| Ok((symbol_of(&g.entity)?, g.start.as_nanos(), g.end.as_nanos(), g.missing_buckets)))
        .collect::<anyhow::Result<_>>()?;
    let model_gaps = model.gaps();
    ensure!(gaps == model_gaps, "gaps differ:\n table {gaps:?}\n model {model_gaps:?}");

    let history = table.history().await?;
    let versions: Vec<u64> = history.iter().map(|c| c.version).collect();
    ensure!(versions == (1..=table.version()).collect::<Vec<_>>(), "history versions {versions:?}");
    let net: i64 = history.iter().map(|c| c.rows_added as i64 - c.rows_removed as i64).sum();
    ensure!(net == expected.len() as i64, "history adds up to {net} rows, the table has {}", expected.len());

    // A fresh handle reads the coverage snapshot the log names, not this handle's copy.
    let reopened = TimeSeriesTable::open(table.location().clone()).await?;
    ensure!(reopened.version() == table.version(), "reopened at {}", reopened.version());
    let reopened_covered = covered(&reopened).await?;
    ensure!(reopened_covered == model_covered, "coverage after reopening: {reopened_covered:?}");
    Ok(())
}

async fn run(segment_rows: u64, ops: &[Op]) -> anyhow::Result<()> {
    let location = memory_location();
    let mut table = new_table(location.clone(), "1m")
        .await
        .with_writer_options(WriterOptions::default().with_segment_rows(segment_rows));
    let mut model = Model::default();
    // The model as of each version, for time travel.
    let mut past = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        apply(&mut table, &mut model, op).await.with_context(|| format!("step {i}: {op:?}"))?;
        check(&table, &model).await.with_context(|| format!("after step {i}: {op:?}"))?;
        past.insert(table.version(), model.clone());
    }
    let reopened = TimeSeriesTable::open(location.clone()).await?;
    check(&reopened, &model).await.context("after reopening at the end")?;
    // Rewrites leave the files older versions name: each reads as the model did then.
    for (version, then) in &past {
        let old = TimeSeriesTable::open_at(location.clone(), *version).await?;
        let rows = table_rows(&old, then).await.with_context(|| format!("version {version}"))?;
        ensure!(rows == then.sorted_rows(), "version {version} reads {rows:?}, expected {:?}", then.sorted_rows());
        let old_covered = covered(&old).await?;
        ensure!(old_covered == then.covered(), "version {version} covers {old_covered:?}");
    }
    Ok(())
}

fn symbol() -> impl Strategy<Value = &'static str> {
    prop::sample::select(SYMBOLS.to_vec())
}

fn clock() -> impl Strategy<Value = Clock> {
    (0..SPAN_STEPS).prop_map(Clock)
}

/// Rows with random values, each with an offset for the caller to place it by.
fn rows(offsets: std::ops::Range<i64>, count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<(i64, Row)>> {
    let row = (offsets, symbol(), 0i64..10, prop::collection::vec(prop::option::of(0i64..5), MAX_COLUMNS))
        .prop_map(|(offset, symbol, volume, extras)| (offset, Row { at: Clock(0), symbol, volume, extras }));
    prop::collection::vec(row, count)
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        (2i64..4, 0i64..3).prop_map(|(m, r)| Condition::VolumeMod { m, r: r % m }),
        (symbol(), clock(), 1i64..90).prop_map(|(symbol, from, len)| Condition::SymbolBetween {
            symbol,
            from,
            to: Clock(from.0 + len)
        }),
        (clock(), 0i64..10).prop_map(|(before, volume)| Condition::BeforeOrVolume { before, volume }),
        (prop::collection::btree_set(symbol(), 1..3), 0i64..10).prop_map(|(symbols, volume)| {
            Condition::SymbolsAbove { symbols: symbols.into_iter().collect(), volume }
        }),
        (clock(), 0i64..60, prop::collection::btree_set(symbol(), 1..3)).prop_map(|(from, len, symbols)| {
            Condition::Between { from, to: Clock(from.0 + len), symbols: symbols.into_iter().collect() }
        }),
        (clock(), 1i64..90, symbol()).prop_map(|(from, len, symbol)| Condition::Outside {
            from,
            to: Clock(from.0 + len),
            symbol
        }),
        prop::collection::vec(clock(), 1..4).prop_map(Condition::At),
        (symbol(), clock()).prop_map(|(symbol, before)| Condition::OtherBefore { symbol, before }),
        (0..MAX_COLUMNS, any::<bool>()).prop_map(|(column, null)| Condition::Added { column, null }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Rows within ten minutes of a start, so that appends collide only sometimes.
        4 => (clock(), rows(0..30, 1..12)).prop_map(|(start, rows)| {
            Op::Append(rows.into_iter().map(|(offset, row)| Row { at: Clock(start.0 + offset), ..row }).collect())
        }),
        1 => (clock(), rows(0..30, 1..12)).prop_map(|(start, rows)| {
            Op::AppendUnsorted(rows.into_iter().map(|(offset, row)| Row { at: Clock(start.0 + offset), ..row }).collect())
        }),
        2 => (clock(), 1i64..90, prop::option::of(symbol())).prop_map(|(from, len, symbol)| Op::Delete {
            from,
            to: Clock(from.0 + len),
            symbol
        }),
        2 => condition().prop_map(Op::SqlDelete),
        1 => (condition(), 1i64..5).prop_map(|(condition, add)| Op::SqlUpdate { condition, add }),
        2 => (0i64..60, 1i64..15, prop::option::of(symbol()), rows(0..45, 0..8)).prop_map(
            |(from_minute, minutes, only, rows)| {
                let rows = rows
                    .into_iter()
                    .map(|(offset, row)| Row {
                        at: Clock(from_minute * 3 + offset % (minutes * 3)),
                        symbol: only.unwrap_or(row.symbol),
                        ..row
                    })
                    .collect();
                Op::Replace { from_minute, minutes, symbol: only, rows }
            }
        ),
        2 => (1u64..24).prop_map(|target_rows| Op::Compact { target_rows }),
        1 => any::<bool>().prop_map(|utf8| Op::AddColumn { utf8 }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn rewrites_keep_rows_coverage_and_history_equal_to_the_model(
        segment_rows in 1u64..8,
        ops in prop::collection::vec(op(), 1..20),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        if let Err(e) = runtime.block_on(run(segment_rows, &ops)) {
            return Err(TestCaseError::fail(format!("{e:#}")));
        }
    }
}
