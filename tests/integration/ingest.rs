//! Appends of any size and order: segments split to the target size and committed
//! together, input sorted (spilling beyond the memory limit), failures that leave nothing,
//! CSV and JSON files, and INSERT streaming through the same path.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampNanosecondType;
use datafusion::physical_plan::displayable;
use futures::{StreamExt, TryStreamExt};
use timeseries_table_core::datafusion::session_context;
use timeseries_table_core::{Error, TimeSeriesTable, WriterOptions};

use crate::common::*;

/// `symbols` x `minutes` bars from T0, in time order (ties by symbol).
fn time_sorted(symbols: usize, minutes: i64) -> Vec<RecordBatch> {
    let names: Vec<String> = (0..symbols).map(|s| format!("S{s:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    (0..minutes).step_by(100).map(|m| minute_bars(&names, T0 + m * MINUTE, 100.min(minutes - m))).collect()
}

/// The same rows ordered by symbol, then time: the usual order of market data exports.
fn symbol_sorted(symbols: usize, minutes: i64) -> Vec<RecordBatch> {
    (0..symbols).map(|s| minute_bars(&[&format!("S{s:03}")], T0, minutes)).collect()
}

fn times_and_symbols(batches: &[RecordBatch]) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for batch in batches {
        let column = |name| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let ts = arrow::compute::cast(&column("ts"), &ts_type(arrow::datatypes::TimeUnit::Nanosecond, None)).unwrap();
        let ts = ts.as_primitive::<TimestampNanosecondType>();
        let symbols = column("symbol");
        let symbols = symbols.as_string::<i32>();
        out.extend((0..batch.num_rows()).map(|i| (ts.value(i), symbols.value(i).to_string())));
    }
    out
}

/// Every segment is sorted by time (ties by symbol), and the whole scan holds `expected`.
async fn assert_sorted_segments(table: &TimeSeriesTable, expected_rows: usize) {
    let location = table.location();
    let mut total = 0;
    for segment in table.segments() {
        assert!(segment.sorted, "segment {} is recorded as sorted", segment.id);
        let bytes = location.get(&segment.path).await.unwrap().unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes, 8192).unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let rows = times_and_symbols(&batches);
        assert!(rows.windows(2).all(|w| w[0] <= w[1]), "segment {} is in (time, symbol) order", segment.id);
        assert_eq!(rows.first().map(|r| r.0), Some(segment.ts_min));
        assert_eq!(rows.last().map(|r| r.0), Some(segment.ts_max));
        total += rows.len();
    }
    assert_eq!(total, expected_rows);
}

#[tokio::test]
async fn a_large_input_becomes_several_segments_in_one_commit() {
    let (_dir, location) = temp_location();
    let mut table =
        new_table(location, "1m").await.with_writer_options(WriterOptions::default().with_segment_rows(1000));
    // 7 symbols, so 1000 rows is not a whole number of minutes: the cut waits for the
    // next timestamp and no minute is split.
    let batches = time_sorted(7, 600);
    let result = table.append_stream(futures::stream::iter(batches.into_iter().map(Ok::<_, Error>))).await.unwrap();
    assert_eq!((result.version, result.rows), (2, 4200));
    assert_eq!(result.segments.len(), 5, "4200 rows in segments of >= 1000, cut at a new minute");
    assert_eq!(table.history().await.unwrap().len(), 2, "one commit");
    let mut segments = table.segments();
    segments.sort_by_key(|s| s.ts_min);
    for pair in segments.windows(2) {
        assert!(pair[0].ts_max < pair[1].ts_min, "segments of a sorted input do not overlap in time");
    }
    for segment in &segments[..segments.len() - 1] {
        assert_eq!(segment.row_count, 1001, "1000 rows, then the rest of that minute");
    }
    assert_sorted_segments(&table, 4200).await;
    let coverage = table.coverage(None, None).await.unwrap();
    assert!(coverage.iter().all(|c| c.covered_buckets == 600), "{coverage:?}");
}

#[tokio::test]
async fn a_segment_of_known_size_keeps_its_newest_rows_in_a_small_row_group_in_small_pages() {
    // Input held whole (in time order) and input sorted whole (ordered by symbol): the
    // size of each is known before its segment is written.
    for (input, random) in [(random_bars("A", 200_000), true), (symbol_sorted(40, 5_000), false)] {
        let (dir, location) = temp_location();
        let mut table = new_table(location, "1m").await;
        table.append(input).await.unwrap();
        let segment = &table.segments()[0];
        let file = std::fs::File::open(dir.path().join("table").join(&segment.path)).unwrap();
        let options = parquet::file::serialized_reader::ReadOptionsBuilder::new().with_page_index().build();
        let reader = parquet::file::reader::SerializedFileReader::new_with_options(file, options).unwrap();
        let metadata = parquet::file::reader::FileReader::metadata(&reader);
        let groups: Vec<i64> = metadata.row_groups().iter().map(|group| group.num_rows()).collect();
        // Two equal groups (195,904 rows do not fit one of 131,072), then the tail.
        assert_eq!(groups, [97_952, 97_952, 4_096]);
        // Pages of at most 8,192 rows, so the page index narrows a read within a group.
        let pages: Vec<usize> =
            metadata.offset_index().unwrap().iter().map(|group| group[0].page_locations().len()).collect();
        assert_eq!(pages, [12, 12, 1]);

        if !random {
            continue; // a file under 1 MiB, read whole by `SmallSegmentsExec`
        }
        // The newest rows are read from that small group alone.
        let ctx = session_context();
        timeseries_table_core::datafusion::register_opened(&ctx, "t", table.clone()).unwrap();
        let sql = "EXPLAIN ANALYZE SELECT * FROM t ORDER BY ts DESC LIMIT 100";
        let plan = pretty(&ctx.sql(sql).await.unwrap().collect().await.unwrap());
        let scan = plan.lines().find(|line| line.contains("DataSourceExec")).unwrap_or_else(|| panic!("{plan}"));
        assert!(scan.contains("reverse_row_groups=true, ") && scan.contains("output_rows=4.10 K,"), "{plan}");
    }
}

#[tokio::test]
async fn input_out_of_time_order_is_sorted_with_ties_by_entity() {
    on_every_backend(|location| async move {
        let mut table = new_table(location, "1m").await;
        let batches = symbol_sorted(5, 300);
        let result = table.append(batches).await.unwrap();
        assert_eq!((result.rows, result.segments.len()), (1500, 1));
        assert_sorted_segments(&table, 1500).await;
        let all: Vec<RecordBatch> = table.scan(None).await.unwrap().try_collect().await.unwrap();
        let rows = times_and_symbols(&all);
        assert_eq!(&rows[..3], &[(T0, "S000".into()), (T0, "S001".into()), (T0, "S002".into())]);
    })
    .await;
}

#[tokio::test]
async fn unsorted_input_beyond_the_memory_limit_is_sorted_on_disk() {
    let (_dir, location) = temp_location();
    // About 17 MiB of rows against a 4 MiB limit: the sort must spill, since holding them
    // would exceed the pool and fail.
    let options = WriterOptions::default().with_memory_limit(4 << 20).with_segment_rows(200_000);
    let mut table = new_table(location, "1h").await.with_writer_options(options);
    let batches = symbol_sorted(200, 2500);
    let held: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    assert!(held > 4 * (4 << 20), "the input ({held} bytes) is well beyond the limit");
    let result = table.append(batches).await.unwrap();
    assert_eq!(result.rows, 500_000);
    assert!(result.segments.len() >= 2, "{:?}", result.segments);
    assert_sorted_segments(&table, 500_000).await;
}

#[tokio::test]
async fn one_unsorted_batch_larger_than_the_limit_is_sorted() {
    // A program's single batch (polars, a query result): its slices keep the whole batch
    // alive, which the sort must not count once per slice.
    let (_dir, location) = temp_location();
    let options = WriterOptions::default().with_memory_limit(4 << 20);
    let mut table = new_table(location, "1h").await.with_writer_options(options);
    let batches = symbol_sorted(200, 2500);
    let one = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert!(one.get_array_memory_size() > 3 * (4 << 20), "{}", one.get_array_memory_size());
    let result = table.append(vec![one]).await.unwrap();
    assert_eq!(result.rows, 500_000);
    assert_sorted_segments(&table, 500_000).await;
}

#[tokio::test]
async fn a_memory_limit_too_small_to_sort_fails_cleanly() {
    let (dir, location) = temp_location();
    let mut table =
        new_table(location, "1m").await.with_writer_options(WriterOptions::default().with_memory_limit(64 << 10));
    table.append(vec![minute_bars(&["Z"], T0 - DAY, 10)]).await.unwrap();
    let before = tree_snapshot(dir.path());
    let err = table.append(symbol_sorted(50, 400)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not in time order") && text.contains("memory limit"), "{text}");
    assert!(tree_snapshot(dir.path()) == before, "nothing committed, no file left");
    // The same rows in time order need no sort, and stream through the small limit.
    let result = table.append(time_sorted(50, 400)).await.unwrap();
    assert_eq!(result.rows, 20_000);
}

#[tokio::test]
async fn a_stream_that_fails_halfway_commits_nothing() {
    let (dir, location) = temp_location();
    let options = WriterOptions::default().with_segment_rows(500).with_memory_limit(64 << 10);
    let mut table = new_table(location, "1m").await.with_writer_options(options);
    table.append(vec![minute_bars(&["Z"], T0 - DAY, 10)]).await.unwrap();
    let before = tree_snapshot(dir.path());
    // In-order rows stream out as segments; the failure comes after some were written.
    let data_dir = dir.path().join("table").join("data");
    let files_at_failure = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&files_at_failure);
    let good = futures::stream::iter(time_sorted(10, 1000).into_iter().map(Ok));
    let broken = futures::stream::once(async move {
        seen.store(std::fs::read_dir(&data_dir).unwrap().count(), std::sync::atomic::Ordering::SeqCst);
        Err(arrow::error::ArrowError::ComputeError("the feed broke".into()))
    });
    let err = table.append_stream(good.chain(broken)).await.unwrap_err();
    assert!(err.to_string().contains("the feed broke"), "{err}");
    let staged = files_at_failure.load(std::sync::atomic::Ordering::SeqCst);
    assert!(staged >= 10, "segments were written before the failure ({staged} data files)");
    assert_eq!(table.version(), 2);
    assert!(tree_snapshot(dir.path()) == before, "staged segments and uploads are removed");
    let result = table.append(time_sorted(10, 1000)).await.unwrap();
    assert_eq!((result.version, result.rows, result.segments.len()), (3, 10_000, 20));
}

#[tokio::test]
async fn an_overlap_found_while_streaming_stops_the_append() {
    let (dir, location) = temp_location();
    let options = WriterOptions::default().with_segment_rows(500).with_memory_limit(1 << 20);
    let mut table = new_table(location, "1m").await.with_writer_options(options);
    table.append(vec![minute_bars(&["S003"], T0 + 100 * MINUTE, 1)]).await.unwrap();
    let before = tree_snapshot(dir.path());
    let err = table.append(time_sorted(10, 1000)).await.unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err}");
    assert!(tree_snapshot(dir.path()) == before, "nothing of the overlapping append is kept");
}

#[tokio::test]
async fn csv_and_json_files_append_by_column_name() {
    let (dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    let csv = dir.path().join("bars.csv");
    std::fs::write(
        &csv,
        "symbol,ts,price,volume\nB,2024-01-01T00:01:00Z,10.5,3\nA,2024-01-01T00:00:00Z,11,4\nA,2024-01-01T00:01:00Z,12,5\n",
    )
    .unwrap();
    let result = table.append_file(&csv).await.unwrap();
    assert_eq!(result.rows, 3);
    let schema = table.schema().unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["symbol", "ts", "price", "volume"], "the first file fixes the columns");

    // JSON in another column order, matched by name.
    let json = dir.path().join("more.ndjson");
    std::fs::write(&json, "{\"ts\":\"2024-01-01T00:02:00Z\",\"volume\":1,\"price\":9.5,\"symbol\":\"A\"}\n").unwrap();
    assert_eq!(table.append_file(&json).await.unwrap().rows, 1);
    // CSV in another column order.
    let reordered = dir.path().join("reordered.csv");
    std::fs::write(&reordered, "ts,volume,price,symbol\n2024-01-01T00:03:00Z,2,9.0,A\n").unwrap();
    assert_eq!(table.append_file(&reordered).await.unwrap().rows, 1);
    assert_sorted_segments(&table, 5).await;

    let table_dir = dir.path().join("table");
    let before = tree_snapshot(&table_dir);
    let bad_value = dir.path().join("bad.csv");
    std::fs::write(&bad_value, "symbol,ts,price,volume\nA,2024-01-01T00:05:00Z,cheap,1\n").unwrap();
    let text = table.append_file(&bad_value).await.unwrap_err().to_string();
    assert!(text.contains("bad.csv") && text.contains("cheap") && text.contains("line"), "{text}");
    let extra = dir.path().join("extra.csv");
    std::fs::write(&extra, "symbol,ts,price,volume,venue\nA,2024-01-01T00:05:00Z,1,1,X\n").unwrap();
    let text = table.append_file(&extra).await.unwrap_err().to_string();
    assert!(text.contains("'venue'") && text.contains("does not have"), "{text}");
    let unknown_field = dir.path().join("unknown.jsonl");
    std::fs::write(&unknown_field, "{\"ts\":\"2024-01-01T00:06:00Z\",\"symbol\":\"A\",\"venue\":\"X\"}\n").unwrap();
    let text = table.append_file(&unknown_field).await.unwrap_err().to_string();
    assert!(text.contains("unknown.jsonl") && text.contains("venue"), "{text}");
    let no_extension = dir.path().join("bars.txt");
    std::fs::write(&no_extension, "x").unwrap();
    let text = table.append_file(&no_extension).await.unwrap_err().to_string();
    assert!(text.contains("cannot tell the format"), "{text}");
    assert!(tree_snapshot(&table_dir) == before, "rejected files leave the table unchanged");
}

#[tokio::test]
async fn insert_streams_into_segments_and_ordered_reads_need_no_sort() {
    let (dir, location) = temp_location();
    let mut table = new_table(location.clone(), "1m").await;
    // Two out-of-order files, appended as Parquet: both re-encoded sorted.
    for (i, start) in [(0, T0 + 1000 * MINUTE), (1, T0)] {
        let file = dir.path().join(format!("by-symbol-{i}.parquet"));
        let batches: Vec<RecordBatch> = (0..4).map(|s| minute_bars(&[&format!("S{s}")], start, 500)).collect();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), batches[0].schema(), None)
                .unwrap();
        for batch in &batches {
            writer.write(batch).unwrap();
        }
        writer.close().unwrap();
        let result = table.append_parquet_file(&file).await.unwrap();
        assert!(result.reencoded.is_some());
    }

    let ctx = session_context();
    let table_dir = dir.path().join("table").display().to_string();
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE bars STORED AS TIMESERIES LOCATION '{table_dir}' OPTIONS ('segment_rows' '1500')"
    ))
    .await
    .unwrap();
    for sql in ["SELECT * FROM bars ORDER BY ts LIMIT 100", "SELECT * FROM bars ORDER BY ts DESC LIMIT 100"] {
        let plan = ctx.sql(&format!("EXPLAIN {sql}")).await.unwrap().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(true).to_string();
        let full_sorts = text.lines().filter(|l| l.contains("SortExec") && !l.contains("TopK")).count();
        assert_eq!(full_sorts, 0, "{sql} plans without a full sort:\n{text}");
        let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        assert_eq!(row_count(&rows), 100);
    }

    // INSERT ... SELECT of rows in reverse time order: streamed, sorted, split, one commit.
    let source = minute_bars(&["N1", "N2", "N3"], T0 + 3000 * MINUTE, 1000);
    let reversed = arrow::compute::take_record_batch(
        &source,
        &arrow::array::UInt32Array::from((0..source.num_rows() as u32).rev().collect::<Vec<_>>()),
    )
    .unwrap();
    ctx.register_batch("incoming", reversed).unwrap();
    let before = table.version();
    let inserted = ctx.sql("INSERT INTO bars SELECT * FROM incoming").await.unwrap().collect().await.unwrap();
    assert_eq!(inserted[0].column(0).as_primitive::<arrow::datatypes::UInt64Type>().value(0), 3000);
    table.refresh().await.unwrap();
    assert_eq!(table.version(), before + 1, "one commit");
    let added: Vec<_> = table.segments().into_iter().filter(|s| s.added_in_version == before + 1).collect();
    assert_eq!(added.len(), 2, "3000 rows in segments of 1500 (cut at a new minute)");
    assert_sorted_segments(&table, 4000 + 3000).await;
}
