//! The bad-input matrix across the Rust API, SQL and the `tsq` CLI: every case is a
//! specific error a user can act on (asserted on its message) and leaves the table
//! byte-for-byte unchanged. Extends `tests/integration/bad_input.rs` (empty input,
//! missing/mistyped/null time column, null entity, overlap, junk/truncated/missing
//! Parquet files, bad buckets and ranges), `sql.rs` (table-function arguments, CREATE
//! options) and `cli.rs` without repeating their cases.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampSecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use datafusion::prelude::SessionContext;
use timeseries_table_core::metadata::EntityValue;
use timeseries_table_core::metadata::{TableMeta, TimeIndexSpec};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{EntityFilter, TimeRange, TimeSeriesTable};
use timeseries_table_core::Error;

use crate::common::*;

/// Counts the cases and checks each one's message and the table's bytes.
struct Matrix {
    table_dir: PathBuf,
    before: BTreeMap<String, Vec<u8>>,
    by_surface: BTreeMap<&'static str, usize>,
}

impl Matrix {
    fn new(table_dir: &Path) -> Self {
        Matrix { table_dir: table_dir.to_path_buf(), before: tree_snapshot(table_dir), by_surface: BTreeMap::new() }
    }

    /// `message` is the error text the user sees; every needle must be in it.
    fn check(&mut self, surface: &'static str, what: &str, message: &str, needles: &[&str]) {
        for needle in needles {
            assert!(message.contains(needle), "{surface}: {what}: expected {needle:?} in the error:\n{message}");
        }
        assert_eq!(tree_snapshot(&self.table_dir), self.before, "{surface}: {what}: the table changed");
        *self.by_surface.entry(surface).or_default() += 1;
    }

    fn total(&self) -> usize {
        self.by_surface.values().sum()
    }
}

fn err_text<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) -> String {
    result.expect_err(what).to_string()
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    bytes
}

/// Makes every folder of the table read-only. Returns `false` (permissions restored)
/// when they do not bite, e.g. because the tests run as root.
fn make_read_only(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fn walk(dir: &Path, mode: u32) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), mode);
            }
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    walk(dir, 0o555);
    let probe = dir.join("data").join("permission-probe");
    if std::fs::write(&probe, b"x").is_ok() {
        std::fs::remove_file(&probe).unwrap();
        walk(dir, 0o755);
        return false;
    }
    true
}

fn restore_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            restore_writable(&entry.path());
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

async fn sql_error(ctx: &SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Ok(frame) => match frame.collect().await {
            Ok(batches) => panic!("{sql} should fail, got\n{}", pretty(&batches)),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

struct Cli {
    code: Option<i32>,
    stderr: String,
}

fn tsq(args: &[&str]) -> Cli {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tsq")).args(args).output().unwrap();
    Cli { code: output.status.code(), stderr: String::from_utf8_lossy(&output.stderr).into_owned() }
}

impl Cli {
    /// A CLI error: non-zero exit, one `error:` sentence on stderr, no Rust debug output.
    fn message(self, what: &str) -> String {
        assert!(matches!(self.code, Some(c) if c != 0), "{what}: tsq exit code {:?}\n{}", self.code, self.stderr);
        assert!(self.stderr.starts_with("error: "), "{what}: stderr does not open with 'error: ':\n{}", self.stderr);
        for bad in ["panicked", "RUST_BACKTRACE", "Os {", "Error {", "Some("] {
            assert!(!self.stderr.contains(bad), "{what}: stderr has {bad:?}:\n{}", self.stderr);
        }
        self.stderr
    }
}

#[tokio::test]
async fn bad_inputs_across_rust_sql_and_cli_are_specific_errors_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let table_dir = tmp.path().join("table");
    let inputs = tmp.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let location = TableLocation::local(&table_dir).unwrap();
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 5)]).await.unwrap();
    let mut m = Matrix::new(&table_dir);

    // ---- Rust API -----------------------------------------------------------------
    let ts = |unit: TimeUnit, tz: Option<&str>| Field::new("ts", ts_type(unit, tz), false);
    let good = minute_bars(&["B"], T0 + HOUR, 1);
    let col = |i: usize| Arc::clone(good.column(i));
    let sym = Field::new("symbol", DataType::Utf8, false);
    let price = Field::new("price", DataType::Float64, true);
    let volume = Field::new("volume", DataType::Int64, true);
    let extra = batch(
        vec![
            ts(TimeUnit::Nanosecond, None),
            sym.clone(),
            price.clone(),
            volume.clone(),
            Field::new("extra", DataType::Int64, true),
        ],
        vec![col(0), col(1), col(2), col(3), Arc::new(Int64Array::from(vec![1]))],
    );
    let price_as_text = batch(
        vec![ts(TimeUnit::Nanosecond, None), sym.clone(), Field::new("price", DataType::Utf8, true), volume.clone()],
        vec![col(0), col(1), Arc::new(StringArray::from(vec!["1.5"])), col(3)],
    );
    let reordered = batch(
        vec![sym.clone(), ts(TimeUnit::Nanosecond, None), price.clone(), volume.clone()],
        vec![col(1), col(0), col(2), col(3)],
    );
    let no_volume =
        batch(vec![ts(TimeUnit::Nanosecond, None), sym.clone(), price.clone()], vec![col(0), col(1), col(2)]);
    let no_symbol =
        batch(vec![ts(TimeUnit::Nanosecond, None), price.clone(), volume.clone()], vec![col(0), col(2), col(3)]);
    let too_late = batch(
        vec![ts(TimeUnit::Second, None), sym.clone(), price.clone(), volume.clone()],
        vec![Arc::new(TimestampSecondArray::from(vec![i64::MAX / 2])), col(1), col(2), col(3)],
    );
    let cases: Vec<(&str, RecordBatch, Vec<&str>)> = vec![
        (
            "an extra column",
            extra.clone(),
            vec!["schema mismatch", "the table has 4 columns, the input has 5", "extra"],
        ),
        (
            "a column of another type",
            price_as_text,
            vec!["column 'price' has type Float64 in the table but Utf8 in the input"],
        ),
        ("columns in another order", reordered, vec!["column 1 is 'ts' in the table but 'symbol' in the input"]),
        ("a missing value column", no_volume, vec!["the table has 4 columns, the input has 3"]),
        ("a missing entity column", no_symbol, vec!["the entity column 'symbol' is missing"]),
        (
            // A coarser unit converts without loss and is accepted (append_scan.rs); a value
            // that does not fit the table's nanoseconds is refused, naming the column.
            "a time beyond the range of the table's unit",
            too_late,
            vec!["column 'ts' cannot be converted from Timestamp(s) to the table's Timestamp(ns)"],
        ),
        (
            "the time column with a time zone",
            bars(TimeUnit::Nanosecond, Some("UTC"), &[("B", T0 + HOUR)]),
            vec!["column 'ts' has type Timestamp(ns) in the table but Timestamp(ns, \"UTC\") in the input"],
        ),
    ];
    for (what, input, needles) in cases {
        let text = err_text(what, table.append(vec![input]).await);
        m.check("rust", what, &text, &needles);
    }

    let text = err_text("empty bytes", table.append_parquet_bytes(Bytes::new(), "upload-0.parquet").await);
    m.check("rust", "zero bytes as Parquet", &text, &["upload-0.parquet"]);
    let text = err_text("a directory", table.append_parquet_file(&inputs).await);
    m.check("rust", "a directory given as the Parquet file", &text, &["cannot read", &inputs.display().to_string()]);
    let wide_batch = extra;
    let wide = inputs.join("wide.parquet");
    std::fs::write(&wide, parquet_bytes(&wide_batch)).unwrap();
    let text = err_text("wide file", table.append_parquet_file(&wide).await);
    m.check("rust", "a Parquet file with another schema", &text, &["schema mismatch", "extra"]);
    let overlapping = inputs.join("overlapping.parquet");
    std::fs::write(&overlapping, parquet_bytes(&minute_bars(&["A"], T0 + 2 * MINUTE, 3))).unwrap();
    let text = err_text("overlapping file", table.append_parquet_file(&overlapping).await);
    m.check(
        "rust",
        "a Parquet file overlapping the table",
        &text,
        &["overlap: entity symbol=A", "3 of the appended bucket(s)", "nothing was committed"],
    );

    let mut pinned = TimeSeriesTable::open_at(location.clone(), 1).await.unwrap();
    let text = err_text("pinned", pinned.append(vec![good.clone()]).await);
    m.check(
        "rust",
        "an append through a time-travel handle",
        &text,
        &["opened at version 1", "read-only", "open the latest version"],
    );
    let text = err_text("version 0", TimeSeriesTable::open_at(location.clone(), 0).await.map(|_| ()));
    m.check("rust", "time travel to version 0", &text, &["version 0 does not exist", "latest is 2"]);
    let text = err_text("empty window", table.last_covered_window(std::time::Duration::ZERO, None, None).await);
    m.check("rust", "an empty window length", &text, &["must be a positive multiple of the table's bucket 1m"]);
    let a_file = inputs.join("wide.parquet");
    let text = err_text("file as table", TableLocation::local(&a_file).map(|_| ()));
    m.check(
        "rust",
        "a file given as the table folder",
        &text,
        &["invalid table location", "it is a file, not a directory"],
    );
    let mars = TimeIndexSpec::new("ts", "1m".parse().unwrap()).with_timezone("Mars/Olympus_Mons");
    let text = err_text("bad zone", TableMeta::try_new(mars).map(|_| ()));
    m.check("rust", "a table spec with an unknown time zone", &text, &["unknown time zone 'Mars/Olympus_Mons'"]);
    let unnamed = TimeIndexSpec::new("", "1m".parse().unwrap());
    let text = err_text(
        "empty time column",
        TimeSeriesTable::create_with_spec(TableLocation::local(tmp.path().join("new")).unwrap(), unnamed)
            .await
            .map(|_| ()),
    );
    m.check("rust", "a table spec with an empty time column name", &text, &["the time column name is empty"]);
    assert!(!tmp.path().join("new").exists(), "a refused create made its folder");

    // Rewrites: a replace with rows outside its range or entities, or a range inside a
    // bucket; columns that cannot be added. Nothing is written.
    let hour = TimeRange::from_nanos(T0, T0 + HOUR).unwrap();
    let only_a = EntityFilter::from([(0, BTreeSet::from([EntityValue::Str("A".into())]))]);
    let rows = |batch: RecordBatch| futures::stream::iter([Ok(batch)]);
    let text = err_text(
        "outside",
        table.replace(hour, only_a.clone(), rows(minute_bars(&["A"], T0 + HOUR, 1))).await.map(|_| ()),
    );
    m.check(
        "rust",
        "a replace with a row after its range",
        &text,
        &["2024-01-01T01:00:00Z", "outside the replaced range"],
    );
    let text =
        err_text("entity", table.replace(hour, only_a.clone(), rows(minute_bars(&["B"], T0, 1))).await.map(|_| ()));
    m.check("rust", "a replace with another entity's rows", &text, &["symbol=B", "not among the replaced entities"]);
    let inside = TimeRange::from_nanos(T0 + 30_000_000_000, T0 + HOUR).unwrap();
    let text =
        err_text("bucket", table.replace(inside, only_a, rows(minute_bars(&["A"], T0 + MINUTE, 1))).await.map(|_| ()));
    m.check(
        "rust",
        "a replace of a range starting inside a bucket",
        &text,
        &["must start and end on a bucket boundary"],
    );
    for (what, field, needles) in [
        (
            "an added column with an existing name",
            Field::new("Price", DataType::Int64, true),
            vec!["already has a column named 'Price'"],
        ),
        (
            "an added column that is NOT NULL",
            Field::new("vwap", DataType::Float64, false),
            vec!["'vwap' must be nullable"],
        ),
        (
            "an added column of a type the format cannot store",
            Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
            vec!["'tags'", "cannot store"],
        ),
    ] {
        let text = err_text(what, table.add_columns(vec![field]).await);
        m.check("rust", what, &text, &needles);
    }

    // Timestamps beyond what nanoseconds can hold, in a table of second timestamps.
    let seconds_dir = tmp.path().join("seconds");
    let seconds_schema =
        Arc::new(Schema::new(vec![Field::new("ts", ts_type(TimeUnit::Second, None), false), sym.clone()]));
    let seconds = |t: i64| {
        RecordBatch::try_new(
            Arc::clone(&seconds_schema),
            vec![Arc::new(TimestampSecondArray::from(vec![t])), Arc::new(StringArray::from(vec!["A"]))],
        )
        .unwrap()
    };
    let mut seconds_table = new_table(TableLocation::local(&seconds_dir).unwrap(), "1m").await;
    seconds_table.append(vec![seconds(T0 / 1_000_000_000)]).await.unwrap();
    let seconds_before = tree_snapshot(&seconds_dir);
    let text = err_text("year 5000", seconds_table.append(vec![seconds(95_617_584_000)]).await);
    m.check("rust", "a timestamp beyond year 2262", &text, &["timestamp out of range"]);
    assert_eq!(tree_snapshot(&seconds_dir), seconds_before);

    // ---- SQL ----------------------------------------------------------------------
    let ctx = timeseries_table_core::datafusion::session_context();
    timeseries_table_core::datafusion::register_opened(
        &ctx,
        "t",
        TimeSeriesTable::open(location.clone()).await.unwrap(),
    )
    .unwrap();
    let new_dir = tmp.path().join("created-by-sql");
    let nd = new_dir.display();
    let td = table_dir.display();
    let sql_cases: Vec<(String, Vec<&str>)> = vec![
        ("INSERT INTO t VALUES (NULL, 'B', 1.0, 1)".into(), vec!["non-nullable", "null values"]),
        ("INSERT INTO t VALUES ('2024-01-01T05:00:00Z', NULL, 1.0, 1)".into(), vec!["non-nullable", "null values"]),
        ("INSERT INTO t VALUES ('not a time', 'B', 1.0, 1)".into(), vec!["Error parsing timestamp from 'not a time'"]),
        ("INSERT INTO t VALUES ('2024-01-01T05:00:00Z', 'B', 'abc', 1)".into(), vec!["Cannot cast string 'abc' to value of Float64 type"]),
        ("INSERT INTO t VALUES ('2024-01-01T05:00:00Z', 'B', 1.0)".into(), vec!["got 3 values in row 0 but expected 4"]),
        ("INSERT INTO t VALUES ('3000-01-01T00:00:00Z', 'B', 1.0, 1)".into(), vec!["Overflow converting 3000-01-01"]),
        ("INSERT INTO t SELECT ts, symbol, price, volume, 1 AS extra FROM t".into(), vec!["Column count doesn't match"]),
        (
            "INSERT INTO t VALUES ('2024-01-01T06:00:00Z', 'B', 1.0, 1), ('2024-01-01T00:03:30Z', 'A', 1.0, 1)".into(),
            vec!["overlap: entity symbol=A", "[2024-01-01T00:03:00Z, 2024-01-01T00:04:00Z)", "nothing was committed"],
        ),
        ("DELETE FROM t WHERE sector = 'tech'".into(), vec!["sector"]),
        ("DELETE FROM t WHERE price + 'x' > 1".into(), vec!["Cannot coerce arithmetic expression Float64 + Utf8"]),
        ("UPDATE t SET symbol = 'Z'".into(), vec!["column 'symbol' is the time column or an entity column"]),
        ("UPDATE t SET ts = ts + INTERVAL '1 minute'".into(), vec!["column 'ts' is the time column or an entity column"]),
        ("SELECT * FROM gaps('t', '2024-01-01T00:00:00Z')".into(), vec!["gaps needs both start and end, or neither"]),
        (
            format!("CREATE EXTERNAL TABLE n STORED AS TIMESERIES LOCATION '{td}' OPTIONS ('time_column' 'ts', 'bucket' '1h')"),
            vec!["different specification"],
        ),
        (
            format!("CREATE EXTERNAL TABLE n (ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL) STORED AS TIMESERIES LOCATION '{nd}' OPTIONS ('time_column' 'ts', 'bucket' '5w')"),
            vec!["invalid bucket '5w': unknown unit"],
        ),
        (
            format!("CREATE EXTERNAL TABLE n (ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL) STORED AS TIMESERIES LOCATION '{nd}' OPTIONS ('time_column' 'ts', 'bucket' '1m', 'entity_columns' 'sensor')"),
            vec!["the entity column 'sensor' is missing"],
        ),
    ];
    for (sql, needles) in sql_cases {
        let text = sql_error(&ctx, &sql).await;
        m.check("sql", &sql, &text, &needles);
        assert!(!new_dir.exists(), "{sql}: a refused CREATE made its folder");
    }
    // The registered table still answers as before.
    let batches = ctx.sql("SELECT count(*) FROM t WHERE price > 0").await.unwrap().collect().await.unwrap();
    assert!(pretty(&batches).contains("| 5 "), "{}", pretty(&batches));

    // ---- CLI ----------------------------------------------------------------------
    let junk = inputs.join("junk.parquet");
    std::fs::write(&junk, b"PAR1 but not really").unwrap();
    let truncated = inputs.join("truncated.parquet");
    let full = parquet_bytes(&minute_bars(&["B"], T0 + HOUR, 10));
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let t = td.to_string();
    let named = format!("t={t}");
    let cli_cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "append a file that is not Parquet",
            vec!["append".into(), t.clone(), junk.display().to_string()],
            vec!["junk.parquet".into()],
        ),
        (
            "append a truncated Parquet file",
            vec!["append".into(), t.clone(), truncated.display().to_string()],
            vec!["truncated.parquet".into()],
        ),
        (
            "append a folder as a file",
            vec!["append".into(), t.clone(), inputs.display().to_string()],
            vec![inputs.display().to_string()],
        ),
        (
            "create over an existing table",
            vec!["create".into(), t.clone(), "--time-column".into(), "ts".into(), "--bucket".into(), "1h".into()],
            vec!["already exists".into()],
        ),
        (
            "an unknown output format",
            vec!["sql".into(), "-t".into(), named.clone(), "--format".into(), "yaml".into(), "SELECT 1".into()],
            vec!["yaml".into()],
        ),
        (
            "--from without --to",
            vec!["gaps".into(), t.clone(), "--from".into(), "2024-01-01".into()],
            vec!["--to".into()],
        ),
        (
            "add a column that exists",
            vec!["alter".into(), t.clone(), "add-column".into(), "volume".into(), "int64".into()],
            vec!["already has a column named 'volume'".into()],
        ),
        (
            "replace with a file outside the range",
            vec![
                "replace".into(),
                t.clone(),
                "--from".into(),
                "2023-12-31".into(),
                "--to".into(),
                "2024-01-01".into(),
                overlapping.display().to_string(),
            ],
            vec!["outside the replaced range".into()],
        ),
        (
            "INSERT of a NULL timestamp",
            vec!["sql".into(), "-t".into(), named.clone(), "INSERT INTO t VALUES (NULL, 'B', 1.0, 1)".into()],
            vec!["non-nullable".into()],
        ),
    ];
    for (what, args, needles) in cli_cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = tsq(&args).message(what);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        m.check("cli", what, &text, &needles);
    }

    // ---- A read-only table folder ---------------------------------------------------
    if make_read_only(&table_dir) {
        let text = err_text("read-only", table.append(vec![good.clone()]).await);
        m.check(
            "rust",
            "an append into a read-only folder",
            &text,
            &["storage error at", &table_dir.display().to_string(), "ermission denied"],
        );
        let text = sql_error(&ctx, "INSERT INTO t VALUES ('2024-01-01T07:00:00Z', 'B', 1.0, 1)").await;
        m.check("sql", "an INSERT into a read-only folder", &text, &["ermission denied"]);
        let file = inputs.join("good.parquet");
        std::fs::write(&file, parquet_bytes(&good)).unwrap();
        let text = tsq(&["append", &t, &file.display().to_string()]).message("read-only append");
        m.check("cli", "tsq append into a read-only folder", &text, &["ermission denied"]);
        restore_writable(&table_dir);
    } else {
        println!("NOTE: the read-only folder cases were skipped: permissions do not bite here (running as root?)");
    }

    println!("bad inputs: {} ({:?})", m.total(), m.by_surface);
    assert!(m.total() >= 25);
    // And after all of it the table still takes a good append.
    assert_eq!(table.append(vec![good]).await.unwrap().version, 3);
}
