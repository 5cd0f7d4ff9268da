//! Append/scan round trips: every timestamp unit and zone, with and without entity
//! columns, multi-entity and unsorted input, existing Parquet files, overlap and schema rules.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use futures::TryStreamExt;
use timeseries_table_core::metadata::{EntityKey, TableMeta, TimeIndexSpec};
use timeseries_table_core::table::{TimeRange, TimeSeriesTable};
use timeseries_table_core::{Error, Reencoded, WriterOptions};

use crate::common::*;

/// The time column of scanned batches, in nanoseconds.
fn scanned_times(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let tz = match b.column(0).data_type() {
                DataType::Timestamp(_, tz) => tz.clone(),
                _ => None,
            };
            let ns = cast(b.column(0), &DataType::Timestamp(TimeUnit::Nanosecond, tz)).unwrap();
            ns.as_primitive::<arrow::datatypes::TimestampNanosecondType>().values().to_vec()
        })
        .collect()
}

#[tokio::test]
async fn round_trip_every_unit_and_zone() {
    for unit in [TimeUnit::Second, TimeUnit::Millisecond, TimeUnit::Microsecond, TimeUnit::Nanosecond] {
        for tz in [None, Some("UTC"), Some("+05:30")] {
            let location = memory_location();
            let mut table = new_table(location.clone(), "1m").await;
            // Unsorted, two entities, one timestamp before 1970.
            let rows = [("B", T0 + 3 * MINUTE), ("A", T0), ("A", T0 + 90 * 1_000_000_000), ("B", -60_000_000_000)];
            table.append(vec![bars(unit, tz, &rows)]).await.unwrap();
            let all: Vec<RecordBatch> = table.scan(None).await.unwrap().try_collect().await.unwrap();
            assert_eq!(all[0].schema().field(0).data_type(), &ts_type(unit, tz), "{unit:?} {tz:?}");
            let mut expected: Vec<i64> = rows.iter().map(|r| r.1).collect();
            expected.sort_unstable();
            assert_eq!(scanned_times(&all), expected, "{unit:?} {tz:?}: chronological");

            let window = TimeRange::from_nanos(T0, T0 + 2 * MINUTE).unwrap();
            let some: Vec<RecordBatch> = table.scan(Some(window)).await.unwrap().try_collect().await.unwrap();
            assert_eq!(scanned_times(&some), vec![T0, T0 + 90 * 1_000_000_000], "{unit:?} {tz:?}");
            assert_eq!(table.segments()[0].ts_min, -60_000_000_000);
            assert!(table.segments()[0].sorted, "segments are written sorted");
        }
    }
}

#[tokio::test]
async fn table_without_entity_columns_has_one_implicit_entity() {
    let location = memory_location();
    let spec = TimeIndexSpec::new("ts", "1h".parse().unwrap());
    let mut table = TimeSeriesTable::create(location, TableMeta::try_new(spec).unwrap()).await.unwrap();
    table.append(vec![minute_bars(&["A", "B"], T0, 60)]).await.unwrap();
    // Another symbol in the same hour is still the same (implicit) entity: overlap.
    let err = table.append(vec![minute_bars(&["C"], T0 + 30 * MINUTE, 1)]).await.unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err}");
    assert!(err.to_string().contains("(whole table)"), "{err}");
    table.append(vec![minute_bars(&["C"], T0 + HOUR, 1)]).await.unwrap();
    let cov = table.coverage(None, None).await.unwrap();
    assert_eq!(cov.len(), 1);
    assert_eq!((cov[0].expected_buckets, cov[0].covered_buckets), (2, 2));
}

#[tokio::test]
async fn overlap_is_per_entity_and_the_error_names_everything() {
    let location = memory_location();
    let mut table = new_table(location.clone(), "1m").await;
    let first = table.append(vec![minute_bars(&["AAPL", "MSFT"], T0, 30)]).await.unwrap();
    // Different entity, same minutes: fine.
    table.append(vec![minute_bars(&["IBM"], T0, 30)]).await.unwrap();
    // Same entity, overlapping minutes 20..29 (10 buckets): rejected.
    let err = table.append(vec![minute_bars(&["MSFT"], T0 + 20 * MINUTE, 15)]).await.unwrap_err();
    match &err {
        Error::Overlap { entity, entity_columns, first_bucket, buckets, segment } => {
            assert_eq!(*entity, EntityKey::from("MSFT"));
            assert_eq!(entity_columns, &["symbol".to_string()]);
            assert_eq!(first_bucket.start.to_string(), "2024-01-01T00:20:00Z");
            assert_eq!(first_bucket.end.to_string(), "2024-01-01T00:21:00Z");
            assert_eq!(*buckets, 10);
            assert_eq!(segment.as_ref(), Some(&first.segments[0]));
            let text = err.to_string();
            assert!(text.contains("symbol=MSFT") && text.contains(&first.segments[0].to_string()), "{text}");
        }
        other => panic!("expected an overlap, got {other}"),
    }
    assert_eq!(TimeSeriesTable::open(location).await.unwrap().version(), 3, "nothing committed");
}

#[tokio::test]
async fn schema_mismatch_is_rejected_before_anything_is_written() {
    let (dir, location) = temp_location();
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 5)]).await.unwrap();
    let before = tree_snapshot(dir.path());

    // Same names, different type for `volume`.
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("price", DataType::Float64, true),
        Field::new("volume", DataType::Float64, true),
    ]));
    let good = minute_bars(&["B"], T0, 1);
    let columns = vec![
        good.column(0).clone(),
        good.column(1).clone(),
        good.column(2).clone(),
        cast(good.column(3), &DataType::Float64).unwrap(),
    ];
    let wrong = RecordBatch::try_new(schema, columns).unwrap();
    let err = table.append(vec![wrong]).await.unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("volume"), "{err}");

    // A missing column.
    let fewer = good.project(&[0, 1, 2]).unwrap();
    assert!(matches!(table.append(vec![fewer]).await.unwrap_err(), Error::SchemaMismatch { .. }));
    assert_eq!(tree_snapshot(dir.path()), before, "the table directory is byte-for-byte unchanged");
}

/// Writes `batch` as a Parquet file at `file` (its Arrow schema embedded), returning the path.
fn write_parquet(file: &std::path::Path, batch: &RecordBatch) -> std::path::PathBuf {
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(file).unwrap(), batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    file.to_path_buf()
}

#[tokio::test]
async fn parquet_files_in_time_order_are_adopted_and_others_reencoded() {
    let (dir, location) = temp_location();
    let mut table = new_table(location.clone(), "1m").await;
    let write = |name: &str, rows: &[(&str, i64)]| {
        write_parquet(&dir.path().join(name), &bars(TimeUnit::Microsecond, Some("UTC"), rows))
    };

    // In time order: stored byte for byte.
    let sorted = write("sorted.parquet", &[("A", T0), ("B", T0), ("A", T0 + MINUTE)]);
    let result = table.append_parquet_file(&sorted).await.unwrap();
    assert_eq!((result.rows, result.reencoded), (3, None));
    let segment = &table.segments()[0];
    assert!(segment.sorted);
    let stored = std::fs::read(dir.path().join("table").join(&segment.path)).unwrap();
    assert_eq!(stored, std::fs::read(&sorted).unwrap(), "copied byte for byte");

    // Out of time order (sorted by symbol, then time): re-encoded sorted.
    let unsorted =
        write("by-symbol.parquet", &[("A", T0 + 5 * MINUTE), ("A", T0 + 7 * MINUTE), ("B", T0 + 6 * MINUTE)]);
    let result = table.append_parquet_file(&unsorted).await.unwrap();
    assert_eq!((result.rows, result.reencoded), (3, Some(Reencoded::NotInTimeOrder)));
    assert!(table.segments().iter().all(|s| s.sorted), "every segment is sorted");
    let newest = table.segments().iter().find(|s| s.id == result.segments[0]).unwrap().clone();
    let stored = std::fs::read(dir.path().join("table").join(&newest.path)).unwrap();
    assert_ne!(stored, std::fs::read(&unsorted).unwrap(), "re-encoded, not copied");

    let all: Vec<RecordBatch> = table.scan(None).await.unwrap().try_collect().await.unwrap();
    let times = scanned_times(&all);
    assert_eq!(times.len(), 6);
    assert_eq!(&times[3..], &[T0 + 5 * MINUTE, T0 + 6 * MINUTE, T0 + 7 * MINUTE], "the new segment is in time order");
    // The same file again overlaps, and nothing of it is kept.
    let before = tree_snapshot(dir.path());
    assert!(matches!(table.append_parquet_file(&unsorted).await.unwrap_err(), Error::Overlap { .. }));
    assert_eq!(tree_snapshot(dir.path()), before);
}

/// `batch` with its plain strings as string views (what DataFusion's `COPY ... TO` writes).
fn string_views(batch: &RecordBatch) -> RecordBatch {
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => Field::new(f.name(), DataType::Utf8View, f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    let columns: Vec<ArrayRef> =
        batch.columns().iter().zip(&fields).map(|(column, field)| cast(column, field.data_type()).unwrap()).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

#[tokio::test]
async fn parquet_files_with_string_views_append_as_plain_strings() {
    // DataFusion's `COPY ... TO` writes strings as views (the file's Arrow schema says
    // `Utf8View`): the table's first append adopts them as plain strings, and later files
    // of either kind append.
    let (dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    let write = |name: &str, rows: &[(&str, i64)]| {
        write_parquet(&dir.path().join(name), &string_views(&bars(TimeUnit::Microsecond, Some("UTC"), rows)))
    };
    for (name, rows) in [
        ("sorted.parquet", vec![("A", T0), ("B", T0), ("A", T0 + MINUTE)]),
        ("by-symbol.parquet", vec![("A", T0 + 5 * MINUTE), ("A", T0 + 7 * MINUTE), ("B", T0 + 6 * MINUTE)]),
    ] {
        let result = table.append_parquet_file(write(name, &rows)).await.unwrap();
        assert_eq!((result.rows, result.reencoded.is_some()), (3, true), "{name}");
    }
    let symbol = table.schema().unwrap().field_with_name("symbol").unwrap().data_type().clone();
    assert_eq!(symbol, DataType::Utf8);
    let coverage = table.coverage(None, Some(&[EntityKey::from("B")])).await.unwrap();
    assert_eq!(coverage[0].covered_buckets, 2);
}

/// A file re-encoded for its column types is in time order and must stay so: read whole
/// and decoded a column of a row group per task (on several threads: over 8 Ki rows) when
/// it is small, streamed row group by row group when it is not, the segment holds the
/// same rows in the same order.
#[tokio::test]
async fn a_reencoded_file_keeps_its_order_read_whole_or_streamed() {
    let dir = tempfile::tempdir().unwrap();
    // 20,000 rows a minute apart in row groups of 2,048, strings as views (stored as plain).
    let rows: Vec<(String, i64)> = (0..20_000).map(|i| (format!("S{}", i % 7), T0 + i * MINUTE)).collect();
    let borrowed: Vec<(&str, i64)> = rows.iter().map(|(s, t)| (s.as_str(), *t)).collect();
    let viewed = string_views(&bars(TimeUnit::Microsecond, Some("UTC"), &borrowed));
    let file = dir.path().join("viewed.parquet");
    let properties =
        parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(2048)).build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), viewed.schema(), Some(properties))
            .unwrap();
    writer.write(&viewed).unwrap();
    writer.close().unwrap();

    // The default limit holds the file; 16 KiB does not (a quarter of it is what input of
    // unknown order may take).
    for (name, limit) in [("whole", WriterOptions::default().memory_limit), ("streamed", 16 * 1024)] {
        let location = timeseries_table_core::storage::TableLocation::local(dir.path().join(name)).unwrap();
        let mut table =
            new_table(location, "1m").await.with_writer_options(WriterOptions::default().with_memory_limit(limit));
        let result = table.append_parquet_file(&file).await.unwrap();
        assert_eq!((result.rows, result.reencoded), (20_000, Some(Reencoded::ColumnTypes)), "{name}");
        let all: Vec<RecordBatch> = table.scan(None).await.unwrap().try_collect().await.unwrap();
        assert_eq!(scanned_times(&all), borrowed.iter().map(|r| r.1).collect::<Vec<_>>(), "{name}");
        let symbols: Vec<String> =
            all.iter().flat_map(|b| b.column(1).as_string::<i32>().iter().map(|s| s.unwrap().to_string())).collect();
        assert_eq!(symbols, rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), "{name}");
    }
}

#[tokio::test]
async fn multi_batch_input_and_integer_entities() {
    let location = memory_location();
    let schema = Arc::new(Schema::new(vec![
        Field::new("sensor", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
    ]));
    let spec = TimeIndexSpec::new("ts", "15m".parse().unwrap()).with_entity_columns(["sensor"]);
    let mut table = TimeSeriesTable::create(location, TableMeta::try_new(spec).unwrap()).await.unwrap();
    let batch = |sensors: Vec<i64>, minutes: Vec<i64>| {
        let ts: Arc<dyn Array> =
            Arc::new(TimestampNanosecondArray::from(minutes.iter().map(|m| T0 + m * MINUTE).collect::<Vec<_>>()));
        let ts = cast(&ts, schema.field(1).data_type()).unwrap();
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(sensors)), ts]).unwrap()
    };
    table.append(vec![batch(vec![1, 2], vec![50, 0]), batch(vec![1, 2], vec![10, 20])]).await.unwrap();
    let cov = table.coverage(None, None).await.unwrap();
    let covered: Vec<(String, u64)> = cov.iter().map(|c| (c.entity.to_string(), c.covered_buckets)).collect();
    // Sensor 1: minutes 50 and 10 -> buckets 3 and 0; sensor 2: minutes 0 and 20 -> buckets 0 and 1.
    assert_eq!(covered, vec![("1".to_string(), 2), ("2".to_string(), 2)]);
    let gaps = table.gaps(None, None).await.unwrap();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert_eq!((gaps[0].entity.to_string(), gaps[0].missing_buckets), ("1".to_string(), 2));
}

/// `minute_bars` with its columns re-typed as polars or DuckDB would write them: string
/// views or dictionary-encoded strings, and timestamps in seconds.
fn retyped_bars(symbols: &[&str], start: i64, minutes: i64, dictionary: bool) -> RecordBatch {
    let bars = minute_bars(symbols, start, minutes);
    let symbol_type = if dictionary {
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    } else {
        DataType::Utf8View
    };
    let ts_type = DataType::Timestamp(TimeUnit::Second, None);
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", ts_type.clone(), false),
        Field::new("symbol", symbol_type.clone(), false),
        bars.schema().field(2).clone(),
        bars.schema().field(3).clone(),
    ]));
    let columns = vec![
        cast(bars.column(0), &ts_type).unwrap(),
        cast(bars.column(1), &symbol_type).unwrap(),
        Arc::clone(bars.column(2)),
        Arc::clone(bars.column(3)),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

#[tokio::test]
async fn equivalent_arrow_types_are_converted_to_the_table_types() {
    // A first append in views adopts plain strings (and the input's unit).
    let location = memory_location();
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![retyped_bars(&["A"], T0, 5, false)]).await.unwrap();
    let schema = table.schema().unwrap();
    assert_eq!(schema.field_with_name("symbol").unwrap().data_type(), &DataType::Utf8);

    // A nanosecond table takes seconds, string views and dictionaries.
    let mut table = new_table(memory_location(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 5)]).await.unwrap();
    table.append(vec![retyped_bars(&["B"], T0, 5, false)]).await.unwrap();
    table.append(vec![retyped_bars(&["C"], T0, 5, true)]).await.unwrap();
    let coverage = table.coverage(None, None).await.unwrap();
    assert_eq!(coverage.iter().map(|c| c.covered_buckets).collect::<Vec<_>>(), vec![5, 5, 5]);
    let rows: Vec<RecordBatch> = table.scan(None).await.unwrap().try_collect().await.unwrap();
    assert_eq!(row_count(&rows), 15);
    assert!(rows.iter().all(|b| b.schema().field(1).data_type() == &DataType::Utf8));

    // The overlap rule sees through the conversion.
    let again = table.append(vec![retyped_bars(&["B"], T0 + 4 * MINUTE, 1, true)]).await.unwrap_err();
    assert!(matches!(again, Error::Overlap { .. }), "{again}");

    // A lossy conversion (nanoseconds into a second table) is still refused.
    let mut seconds = new_table(memory_location(), "1m").await;
    seconds.append(vec![retyped_bars(&["A"], T0, 5, false)]).await.unwrap();
    let err = seconds.append(vec![minute_bars(&["B"], T0, 5)]).await.unwrap_err();
    assert!(matches!(&err, Error::SchemaMismatch { detail, .. } if detail.contains("without loss")), "{err}");
}
