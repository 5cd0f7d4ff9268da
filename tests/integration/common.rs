//! Shared fixtures: deterministic batches, table builders, result helpers.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use timeseries_table_core::metadata::{TableMeta, TimeIndexSpec};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;

pub const MINUTE: i64 = 60_000_000_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;
/// 2024-01-01T00:00:00Z in nanoseconds.
pub const T0: i64 = 1_704_067_200_000_000_000;

/// Nanoseconds of a typed timestamp, for arithmetic against the constants above.
pub fn ns(t: timeseries_table_core::metadata::Timestamp) -> i64 {
    t.as_nanos()
}

/// A window length of `n` minutes.
pub fn minutes(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(60 * n)
}

pub fn ts_type(unit: TimeUnit, tz: Option<&str>) -> DataType {
    DataType::Timestamp(unit, tz.map(Arc::from))
}

pub fn bars_schema(unit: TimeUnit, tz: Option<&str>) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", ts_type(unit, tz), false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("price", DataType::Float64, true),
        Field::new("volume", DataType::Int64, true),
    ]))
}

/// One row per (symbol, timestamp in nanoseconds); price and volume derive from both.
pub fn bars(unit: TimeUnit, tz: Option<&str>, rows: &[(&str, i64)]) -> RecordBatch {
    let schema = bars_schema(unit, tz);
    // Build in the target zone first: a cast from no zone to a zone would shift the instants.
    let ts: ArrayRef =
        Arc::new(TimestampNanosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()).with_timezone_opt(tz));
    let ts = cast(&ts, schema.field(0).data_type()).unwrap();
    let symbols: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()));
    let price: ArrayRef =
        Arc::new(Float64Array::from(rows.iter().map(|r| 100.0 + (r.1 / MINUTE % 97) as f64).collect::<Vec<_>>()));
    let volume: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| (r.1 / MINUTE) % 1000).collect::<Vec<_>>()));
    RecordBatch::try_new(schema, vec![ts, symbols, price, volume]).unwrap()
}

/// Minute bars for each symbol over `[start, start + minutes)`.
pub fn minute_bars(symbols: &[&str], start: i64, minutes: i64) -> RecordBatch {
    let mut rows = Vec::new();
    for m in 0..minutes {
        for s in symbols {
            rows.push((*s, start + m * MINUTE));
        }
    }
    bars(TimeUnit::Nanosecond, None, &rows)
}

/// `rows` bars of `symbol`, one per second from T0, with random prices and volumes: a
/// Parquet file of about 16 bytes per row, since random numbers do not compress. In
/// batches of 100,000 rows.
pub fn random_bars(symbol: &str, rows: i64) -> Vec<RecordBatch> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let schema = bars_schema(TimeUnit::Nanosecond, None);
    (0..rows)
        .step_by(100_000)
        .map(|start| {
            let n = 100_000.min(rows - start);
            let columns: Vec<ArrayRef> = vec![
                Arc::new(TimestampNanosecondArray::from_iter_values(
                    (start..start + n).map(|i| T0 + i * 1_000_000_000),
                )),
                Arc::new(StringArray::from(vec![symbol; n as usize])),
                Arc::new(Float64Array::from_iter_values((0..n).map(|_| next() as f64))),
                Arc::new(Int64Array::from_iter_values((0..n).map(|_| next() as i64))),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        })
        .collect()
}

pub fn spec(bucket: &str) -> TimeIndexSpec {
    TimeIndexSpec::new("ts", bucket.parse().unwrap()).with_entity_columns(["symbol"])
}

pub fn temp_location() -> (tempfile::TempDir, TableLocation) {
    let dir = tempfile::tempdir().unwrap();
    let location = TableLocation::local(dir.path().join("table")).unwrap();
    (dir, location)
}

/// A unique in-memory location.
pub fn memory_location() -> TableLocation {
    TableLocation::memory(&uuid_like(), "t").unwrap()
}

pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("mem{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Runs `check` on a fresh in-memory location, a fresh local directory and, when the
/// test script started an S3 server ([`s3_location`]), a fresh prefix on it.
pub async fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(TableLocation) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    check(memory_location()).await;
    let (_dir, local) = temp_location();
    check(local).await;
    if let Some(s3) = s3_location() {
        check(s3).await;
    }
}

/// The S3 endpoint the test script exports (a local moto server), if any.
pub fn s3_endpoint() -> Option<String> {
    let endpoint = std::env::var("TSQ_TEST_S3_ENDPOINT").ok().filter(|e| !e.is_empty());
    if endpoint.is_none() {
        // Written past the test harness's capture, once, so a run without the server says so.
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: no S3 endpoint (run scripts/test to test on S3)");
        });
    }
    endpoint
}

/// The storage options of the test S3 server (`aws.` keys, as in SQL and the CLI).
pub fn s3_options(endpoint: &str) -> Vec<(String, String)> {
    [
        ("aws.endpoint", endpoint),
        ("aws.access_key_id", "test"),
        ("aws.secret_access_key", "test"),
        ("aws.region", "us-east-1"),
        ("aws.allow_http", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The test bucket and a fresh prefix in it, as an `s3://` URL.
pub fn s3_url() -> String {
    let bucket = std::env::var("TSQ_TEST_S3_BUCKET").unwrap_or_else(|_| "tsq-test".into());
    format!("s3://{bucket}/{}/t", uuid_like())
}

/// A table in a bucket of its own on the test S3 server, as an `s3://` URL. moto lists a
/// prefix by scanning its whole bucket, so suites that copy many tables (the crash suite)
/// keep each in its own bucket, created here with one plain HTTP request.
pub fn s3_url_in_new_bucket() -> String {
    use std::io::{Read, Write};
    let endpoint = s3_endpoint().expect("a bucket needs the test server");
    let bucket = format!("tsq-{}", uuid_like());
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let request =
        format!("PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {response}");
    format!("s3://{bucket}/t")
}

/// A fresh table location on the test S3 server; `None` (and one "skipped" line) without it.
pub fn s3_location() -> Option<TableLocation> {
    s3_endpoint()?;
    Some(test_location(&s3_url()))
}

/// A table location as a child process gets it: an `s3://` URL on the test server, or a
/// local folder.
pub fn test_location(location: &str) -> TableLocation {
    if location.starts_with("s3://") {
        let endpoint = s3_endpoint().expect("an s3:// location needs the test server");
        TableLocation::parse_with_options(location, &s3_options(&endpoint)).unwrap()
    } else {
        TableLocation::local(location).unwrap()
    }
}

pub async fn new_table(location: TableLocation, bucket: &str) -> TimeSeriesTable {
    TimeSeriesTable::create(location, TableMeta::try_new(spec(bucket)).unwrap()).await.unwrap()
}

/// Pretty-printed batches, for comparisons and readable failures.
pub fn pretty(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches).unwrap().to_string()
}

/// Total rows.
pub fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

/// Every file under a directory with its bytes, for byte-for-byte "unchanged" checks.
pub fn tree_snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// Commits `batch`, in its own row order, as one segment recorded as unsorted: the kind
/// of segment that tables written before every segment was sorted may hold. The public
/// API sorts, so this goes through the log directly.
pub async fn commit_unsorted_segment(table: &mut TimeSeriesTable, batch: &RecordBatch) {
    use timeseries_table_core::coverage::encode_sidecar;
    use timeseries_table_core::formats::parquet::parquet_stats;
    use timeseries_table_core::metadata::{SegmentId, SegmentMeta};
    use timeseries_table_core::transaction_log::{Commit, CommitOutcome, LogAction, LogStore};

    let mut buffer = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buffer, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    let bytes = bytes::Bytes::from(buffer);
    let stats =
        parquet_stats(std::io::Cursor::new(bytes.clone()), table.spec(), "unsorted", false).await.unwrap().unwrap();
    let id = SegmentId::random();
    let (path, coverage_path) = (format!("data/{id}.parquet"), format!("_coverage/segments/{id}.roar"));
    let location = table.location().clone();
    location.put(&path, bytes.clone()).await.unwrap();
    location.put(&coverage_path, bytes::Bytes::from(encode_sidecar(&stats.coverage))).await.unwrap();
    let (ts_min, ts_max) = stats.ts_range.unwrap();
    let keys: Vec<_> = stats.coverage.entities().map(|(k, _)| k.clone()).collect();
    let segment = SegmentMeta {
        id,
        path,
        coverage_path,
        ts_min,
        ts_max,
        row_count: stats.row_count,
        size_bytes: bytes.len() as u64,
        sorted: stats.sorted,
        entity_count: keys.len() as u64,
        entities: Some(keys),
        added_in_version: 0,
    };
    let mut actions = Vec::new();
    if table.schema().is_none() {
        actions.push(LogAction::UpdateTableMeta(TableMeta { schema: Some(batch.schema()), ..table.meta().clone() }));
    }
    actions.push(LogAction::AddSegment(segment));
    let commit = Commit::new(table.version() + 1, "append", actions);
    assert_eq!(LogStore::new(location).try_commit(&commit).await.unwrap(), CommitOutcome::Committed);
    table.refresh().await.unwrap();
}

/// Runs `sql` and prints its result; panics with the statement on an error.
pub async fn sql_ok(ctx: &datafusion::prelude::SessionContext, sql: &str) -> String {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty(&batches)
}

/// The error `sql` fails with, in planning or execution; panics if it succeeds.
pub async fn sql_err(ctx: &datafusion::prelude::SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Ok(frame) => match frame.collect().await {
            Ok(batches) => panic!("{sql} should fail, got:\n{}", pretty(&batches)),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}
