//! Rewrites: compaction, DELETE, replace and added columns, with coverage recomputed from
//! the rows after each one.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use timeseries_table_core::datafusion::{register_opened, session_context, TimeSeriesProvider};
use timeseries_table_core::metadata::{EntityKey, EntityValue};
use timeseries_table_core::table::{CompactOptions, EntityFilter, RowSelector, TimeRange, TimeSeriesTable};
use timeseries_table_core::WriterOptions;

use crate::common::*;

/// Every (symbol, minute bucket) of the table's rows, read back through a scan.
async fn buckets_of_rows(table: &TimeSeriesTable) -> BTreeSet<(String, i64)> {
    let batches: Vec<RecordBatch> = table.scan(None).await.unwrap().try_collect().await.unwrap();
    let mut out = BTreeSet::new();
    for batch in &batches {
        let ts = timeseries_table_core::formats::parquet::stats::timestamps_as_nanos(batch.column(0), "ts").unwrap();
        let symbols = batch.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        for (i, t) in ts.iter().enumerate() {
            out.insert((symbols.value(i).to_string(), t.div_euclid(MINUTE)));
        }
    }
    out
}

/// Every (symbol, bucket) the table's coverage reports.
async fn covered(table: &TimeSeriesTable) -> BTreeSet<(String, i64)> {
    let coverage = table.snapshot().table_coverage().await.unwrap();
    let mut out = BTreeSet::new();
    for (key, set) in coverage.entities() {
        let EntityValue::Str(symbol) = &key.0[0] else { panic!("{key:?}") };
        out.extend(set.iter().map(|id| (symbol.clone(), id)));
    }
    out
}

async fn assert_coverage_exact(table: &TimeSeriesTable) {
    assert_eq!(covered(table).await, buckets_of_rows(table).await, "coverage must equal the rows' buckets");
    // A fresh handle reads the coverage the log names, not the writer's in-memory copy.
    let reopened = TimeSeriesTable::open(table.location().clone()).await.unwrap();
    assert_eq!(covered(&reopened).await, buckets_of_rows(table).await, "coverage after reopening");
}

fn symbol_filter(symbol: &str) -> EntityFilter {
    EntityFilter::from([(0, BTreeSet::from([EntityValue::Str(symbol.into())]))])
}

async fn sql(ctx: &SessionContext, query: &str) -> Vec<RecordBatch> {
    ctx.sql(query).await.unwrap().collect().await.unwrap()
}

fn single_u64(batches: &[RecordBatch]) -> u64 {
    let column = batches[0].column(0);
    arrow::compute::cast(column, &DataType::UInt64)
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::UInt64Array>()
        .unwrap()
        .value(0)
}

#[tokio::test]
async fn compaction_merges_small_segments_and_keeps_rows_and_coverage() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location.clone(), "1m").await;
    for i in 0..40 {
        table.append(vec![minute_bars(&["A", "B"], T0 + i * 10 * MINUTE, 5)]).await.unwrap();
    }
    let before_rows = buckets_of_rows(&table).await;
    let old_version = table.version();
    assert_eq!(table.segments().len(), 40);

    let dry = table.compact(CompactOptions::new().with_target_rows(150).with_dry_run(true)).await.unwrap();
    assert_eq!((dry.version, dry.segments_merged, dry.segments_written), (None, 40, 3));
    assert_eq!(table.version(), old_version, "a dry run commits nothing");

    let report = table.compact(CompactOptions::new().with_target_rows(150)).await.unwrap();
    assert_eq!(report.version, Some(old_version + 1));
    assert_eq!(report.segments_merged, 40);
    assert_eq!(report.segments_written, 3, "{report:?}");
    assert_eq!(table.segments().len(), 3);
    assert!(table.segments().iter().all(|s| s.sorted));
    assert_eq!(table.snapshot().row_count(), 400);
    assert_eq!(buckets_of_rows(&table).await, before_rows);
    assert_coverage_exact(&table).await;

    let again = table.compact(CompactOptions::new().with_target_rows(150)).await.unwrap();
    assert!(again.nothing_to_do(), "{again:?}");

    // Time travel to before the compaction still reads the old files.
    let old = TimeSeriesTable::open_at(location.clone(), old_version).await.unwrap();
    assert_eq!(buckets_of_rows(&old).await, before_rows);
    let history = table.history().await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.operation.as_str(), last.segments_added, last.segments_removed, last.rows_added, last.rows_removed),
        ("compact", 3, 40, 0, 0)
    );
}

#[tokio::test]
async fn compaction_sorts_unsorted_segments() {
    let mut table = new_table(memory_location(), "1m").await;
    let rows: Vec<(&str, i64)> = (0..50).rev().map(|m| ("A", T0 + m * MINUTE)).collect();
    commit_unsorted_segment(&mut table, &bars(TimeUnit::Nanosecond, None, &rows)).await;
    assert!(!table.segments()[0].sorted);
    let report = table.compact(CompactOptions::new()).await.unwrap();
    assert_eq!((report.segments_merged, report.segments_written), (1, 1));
    assert!(table.segments()[0].sorted);
    assert_coverage_exact(&table).await;
}

/// A local table of symbols A and B over two hours, one segment per hour, registered as
/// `t` in a fresh session.
async fn two_hours_registered_as_t() -> (tempfile::TempDir, TimeSeriesTable, SessionContext) {
    let (dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    table.append(vec![minute_bars(&["A", "B"], T0, 60)]).await.unwrap();
    table.append(vec![minute_bars(&["A", "B"], T0 + 60 * MINUTE, 60)]).await.unwrap();
    let ctx = session_context();
    register_opened(&ctx, "t", table.clone()).unwrap();
    (dir, table, ctx)
}

#[tokio::test]
async fn sql_delete_removes_rows_and_uncovers_emptied_buckets() {
    let (_dir, mut table, ctx) = two_hours_registered_as_t().await;

    // A whole segment's rows: dropped without a rewrite.
    let deleted = sql(&ctx, "DELETE FROM t WHERE ts >= '2024-01-01T01:00:00Z' AND ts < '2024-01-01T02:00:00Z'").await;
    assert_eq!(single_u64(&deleted), 120);
    table.refresh().await.unwrap();
    assert_eq!(table.segments().len(), 1);
    assert_coverage_exact(&table).await;

    // Some rows of a segment, by an arbitrary predicate: rewritten.
    let deleted = sql(&ctx, "DELETE FROM t WHERE symbol = 'A' AND volume % 2 = 0").await;
    assert_eq!(single_u64(&deleted), 30);
    table.refresh().await.unwrap();
    assert_eq!(table.snapshot().row_count(), 90);
    assert_coverage_exact(&table).await;
    let left = sql(&ctx, "SELECT count(*) FROM t WHERE symbol = 'A'").await;
    assert_eq!(single_u64(&left), 30);

    // Nothing matches: nothing is committed.
    let version = table.version();
    let deleted = sql(&ctx, "DELETE FROM t WHERE symbol = 'ZZZ'").await;
    assert_eq!(single_u64(&deleted), 0);
    table.refresh().await.unwrap();
    assert_eq!(table.version(), version);

    let history = sql(&ctx, "SELECT operation, rows_removed FROM history('t') ORDER BY version").await;
    assert!(pretty(&history).contains("| delete    | 120          |"), "{}", pretty(&history));
}

#[tokio::test]
async fn replace_swaps_a_range_in_one_commit() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A", "B"], T0, 180)]).await.unwrap();
    let range = TimeRange::from_nanos(T0 + 60 * MINUTE, T0 + 120 * MINUTE).unwrap();
    // The corrected hour for A has only every other minute.
    let rows: Vec<(&str, i64)> = (0..60).step_by(2).map(|m| ("A", T0 + (60 + m) * MINUTE)).collect();
    let fixed = bars(TimeUnit::Nanosecond, None, &rows);
    let version = table.version();
    let report = table.replace(range, symbol_filter("A"), futures::stream::iter([Ok(fixed)])).await.unwrap();
    assert_eq!(report.version, version + 1);
    assert_eq!((report.rows_deleted, report.rows_added), (60, 30));
    assert_eq!(table.snapshot().row_count(), 360 - 60 + 30);
    assert_coverage_exact(&table).await;
    let a = table.coverage(Some(range), Some(&[EntityKey(vec![EntityValue::Str("A".into())])])).await.unwrap();
    assert_eq!(a[0].covered_buckets, 30);

    // Data outside the range is refused and the table is unchanged.
    let before = tree_snapshot(_dir.path());
    let outside = bars(TimeUnit::Nanosecond, None, &[("A", T0 + 130 * MINUTE)]);
    let err = table.replace(range, symbol_filter("A"), futures::stream::iter([Ok(outside)])).await.unwrap_err();
    assert!(err.to_string().contains("outside the replaced range"), "{err}");
    let other = bars(TimeUnit::Nanosecond, None, &[("B", T0 + 61 * MINUTE)]);
    let err = table.replace(range, symbol_filter("A"), futures::stream::iter([Ok(other)])).await.unwrap_err();
    assert!(err.to_string().contains("not among the replaced entities"), "{err}");
    assert_eq!(tree_snapshot(_dir.path()), before);
}

#[tokio::test]
async fn added_columns_read_as_null_in_older_segments() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
    table.add_columns(vec![Field::new("note", DataType::Utf8, true)]).await.unwrap();
    assert_eq!(table.schema().unwrap().fields().len(), 5);

    // Input must now carry the new column (nulls are fine).
    let err = table.append(vec![minute_bars(&["A"], T0 + 10 * MINUTE, 5)]).await.unwrap_err();
    assert!(err.to_string().contains("note missing"), "{err}");
    let null_note = {
        let base = minute_bars(&["A"], T0 + 10 * MINUTE, 5);
        let mut columns = base.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec![None::<&str>; 5])));
        RecordBatch::try_new(table.schema().unwrap(), columns).unwrap()
    };
    table.append(vec![null_note]).await.unwrap();
    let with_note = {
        let base = minute_bars(&["A"], T0 + 20 * MINUTE, 5);
        let mut columns = base.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec!["x"; 5])));
        RecordBatch::try_new(table.schema().unwrap(), columns).unwrap()
    };
    table.append(vec![with_note]).await.unwrap();

    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(TimeSeriesProvider::try_new(table.clone()).unwrap())).unwrap();
    let counts = sql(&ctx, "SELECT count(note), count(*) FROM t").await;
    assert_eq!(pretty(&counts).lines().nth(3).unwrap().replace(' ', ""), "|5|20|");

    // Appending with yet another column needs schema evolution.
    let wider = {
        let base = minute_bars(&["A"], T0 + 30 * MINUTE, 1);
        let mut columns = base.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec!["y"])));
        columns.push(Arc::new(Float64Array::from(vec![1.5])));
        let mut fields: Vec<Field> = table.schema().unwrap().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("vwap", DataType::Float64, false));
        RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns).unwrap()
    };
    let err = table.append(vec![wider.clone()]).await.unwrap_err();
    assert!(err.to_string().contains("evolve"), "{err}");
    let mut evolving = table.clone().with_writer_options(WriterOptions::default().with_evolve_schema(true));
    evolving.append(vec![wider]).await.unwrap();
    let schema = evolving.schema().unwrap();
    assert_eq!(schema.field(5).name(), "vwap");
    assert!(schema.field(5).is_nullable());

    // Bad additions are refused with one sentence and change nothing.
    let before = tree_snapshot(_dir.path());
    for (field, needle) in [
        (Field::new("note", DataType::Int64, true), "already has a column"),
        (Field::new("n", DataType::Int64, false), "must be nullable"),
        (Field::new("l", DataType::new_list(DataType::Int32, true), true), "cannot store"),
    ] {
        let err = evolving.add_columns(vec![field]).await.unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert_eq!(tree_snapshot(_dir.path()), before);
}

#[tokio::test]
async fn rust_delete_by_range_and_entity_reads_only_candidates() {
    let mut table = new_table(memory_location(), "1m").await;
    for day in 0..3 {
        table.append(vec![minute_bars(&["A", "B"], T0 + day * DAY, 30)]).await.unwrap();
    }
    let day1 = TimeRange::from_nanos(T0 + DAY, T0 + 2 * DAY).unwrap();
    let report = table.delete(&RowSelector::range(day1, symbol_filter("A"))).await.unwrap();
    assert_eq!(report.rows_deleted, 30);
    assert_eq!((report.segments_read, report.segments_rewritten), (1, 1), "{report:?}");
    assert_coverage_exact(&table).await;
    let report = table.delete(&RowSelector::range(day1, EntityFilter::new())).await.unwrap();
    assert_eq!((report.rows_deleted, report.segments_read, report.segments_dropped), (30, 0, 1), "{report:?}");
    assert_coverage_exact(&table).await;
}

#[tokio::test]
async fn sql_update_sets_values_in_place_and_truncate_empties_the_table() {
    let (_dir, mut table, ctx) = two_hours_registered_as_t().await;
    let sum = |sql_text: &'static str| {
        let ctx = ctx.clone();
        async move { single_u64(&sql(&ctx, sql_text).await) }
    };
    let before_a =
        sum("SELECT CAST(sum(volume) AS BIGINT) FROM t WHERE symbol = 'A' AND ts < '2024-01-01T00:30:00Z'").await;
    let others =
        sum("SELECT CAST(sum(volume) AS BIGINT) FROM t WHERE NOT (symbol = 'A' AND ts < '2024-01-01T00:30:00Z')").await;
    let buckets = buckets_of_rows(&table).await;

    let updated =
        sql(&ctx, "UPDATE t SET volume = volume * 2, price = NULL WHERE symbol = 'A' AND ts < '2024-01-01T00:30:00Z'")
            .await;
    assert_eq!(single_u64(&updated), 30);
    table.refresh().await.unwrap();
    assert_eq!(table.history().await.unwrap().last().unwrap().operation, "update");
    assert_eq!(table.snapshot().row_count(), 240);
    assert_eq!(buckets_of_rows(&table).await, buckets, "no row moved");
    assert_coverage_exact(&table).await;
    let after_a =
        sum("SELECT CAST(sum(volume) AS BIGINT) FROM t WHERE symbol = 'A' AND ts < '2024-01-01T00:30:00Z'").await;
    assert_eq!(after_a, 2 * before_a);
    let untouched =
        sum("SELECT CAST(sum(volume) AS BIGINT) FROM t WHERE NOT (symbol = 'A' AND ts < '2024-01-01T00:30:00Z')").await;
    assert_eq!(untouched, others, "rows outside the WHERE keep their values");
    assert_eq!(sum("SELECT count(*) FROM t WHERE price IS NULL").await, 30);
    // Only the first hour's segment held matching rows: the second was not rewritten.
    assert_eq!(table.history().await.unwrap().last().unwrap().segments_removed, 1);

    // Nothing matches: nothing is committed.
    let version = table.version();
    assert_eq!(single_u64(&sql(&ctx, "UPDATE t SET volume = 0 WHERE symbol = 'ZZZ'").await), 0);
    table.refresh().await.unwrap();
    assert_eq!(table.version(), version);

    let truncated = sql(&ctx, "TRUNCATE TABLE t").await;
    assert_eq!(single_u64(&truncated), 240);
    table.refresh().await.unwrap();
    assert_eq!((table.snapshot().row_count(), table.segments().len()), (0, 0));
    assert!(table.snapshot().table_coverage().await.unwrap().is_empty());
}
