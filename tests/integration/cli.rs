//! The `tsq` binary, run as a user would: every subcommand, its output, and its failures
//! (exit code, one clear `error:` line on stderr, and an unchanged table).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use arrow::array::RecordBatch;
use timeseries_table_core::metadata::{parse_timestamp, EntityKey, EntityValue};
use timeseries_table_core::sample::MarketBars;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{TimeRange, TimeSeriesTable};

use crate::common::{minute_bars, tree_snapshot, HOUR, T0};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `tsq` in `cwd` (with HOME there, so the shell's history stays in the test dir).
fn tsq_in(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tsq"));
    command.args(args).current_dir(cwd).env("HOME", cwd).env_remove("RUST_BACKTRACE");
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("tsq runs");
    if let Some(text) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn tsq(cwd: &Path, args: &[&str]) -> Run {
    tsq_in(cwd, args, None)
}

fn assert_ok(run: &Run) {
    assert_eq!(run.code, Some(0), "tsq failed\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
}

/// A failure a user can act on: non-zero exit, stderr opens with `error:` and says
/// `needle`, and nothing looks like a crash or a Rust debug dump.
fn assert_clear_error(run: &Run, needle: &str) {
    assert!(run.code.is_some_and(|c| c != 0), "expected a failure, got {:?}\nstdout:\n{}", run.code, run.stdout);
    assert!(run.stderr.starts_with("error: "), "stderr does not open with 'error: ':\n{}", run.stderr);
    assert!(run.stderr.contains(needle), "stderr does not mention {needle:?}:\n{}", run.stderr);
    for bad in ["panicked", "Error {", "backtrace", "DataFusionError", "Os {", "Custom {", "ParserError("] {
        assert!(!run.stderr.contains(bad), "stderr contains {bad:?}:\n{}", run.stderr);
    }
    assert!(run.stderr.trim_end().lines().count() <= 6, "too long for a clear message:\n{}", run.stderr);
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

/// Parquet files of trading days 0..days of the 6-symbol sample, named `day<N>.parquet`.
fn day_files(dir: &Path, days: usize) -> Vec<PathBuf> {
    let bars = MarketBars::new(6, days);
    (0..days)
        .map(|d| {
            let path = dir.join(format!("day{d}.parquet"));
            write_parquet(&path, &bars.day_batch(d));
            path
        })
        .collect()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn open(dir: &Path) -> TimeSeriesTable {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(TimeSeriesTable::open(TableLocation::local(dir).unwrap())).unwrap()
}

/// A table of the first `days` sample days, built with `tsq create` and `tsq append`.
fn sample_table(root: &Path, days: usize) -> PathBuf {
    let table = root.join("bars");
    assert_ok(&tsq(root, &["create", s(&table), "--time-column", "ts", "--bucket", "1m", "--entity", "symbol"]));
    let files = day_files(root, days);
    let mut args = vec!["append", s(&table)];
    args.extend(files.iter().map(|f| s(f)));
    assert_ok(&tsq(root, &args));
    table
}

#[test]
fn demo_small_builds_the_table_runs_sql_and_draws_a_true_heatmap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let run = tsq(tmp.path(), &["demo", "--small", s(&dir)]);
    assert_ok(&run);
    // Independently: the rows MarketBars generates for 6 symbols over 5 days.
    let bars = MarketBars::new(6, 5);
    let rows: usize = (0..5).map(|d| bars.day_batch(d).num_rows()).sum();
    let overview = run.stdout.lines().find(|l| l.contains("2024-01-02T14:30:00Z")).unwrap_or_default();
    assert!(
        overview.starts_with(&format!("| {rows} ")),
        "row count {rows} not in overview: {overview}\n{}",
        run.stdout
    );
    assert!(overview.contains("| 6 "), "{overview}");
    assert!(run.stdout.contains("-> version 6"), "five appends after the create:\n{}", run.stdout);
    assert!(run.stdout.contains("heatmap written to"), "{}", run.stdout);
    assert!(dir.join("incoming").read_dir().unwrap().count() == 5);

    // The SVG is well-formed enough for a browser: balanced tags, one row per symbol.
    let svg = std::fs::read_to_string(dir.join("coverage.svg")).unwrap();
    assert_balanced(&svg);
    for symbol in &bars.symbols {
        assert!(svg.contains(&format!(">{symbol}</text>")), "no row label for {symbol}");
    }
    // Every cell's tooltip states a share that the library's own coverage confirms.
    let table = open(&dir.join("table"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut checked = 0;
    for title in svg.split("<title>").skip(1).map(|t| t.split("</title>").next().unwrap()) {
        let parts: Vec<&str> = title.split(" · ").collect();
        let (entity, span, pct) = (parts[0], parts[1], parts[2]);
        let (start, end) = span.split_once(" – ").unwrap();
        let at = |t: &str| parse_timestamp(&format!("{}:00Z", t.replace(' ', "T"))).unwrap();
        let key = EntityKey(vec![EntityValue::Str(entity.to_string())]);
        let window = TimeRange::from_nanos(at(start), at(end)).unwrap();
        let report = rt.block_on(table.coverage(Some(window), Some(std::slice::from_ref(&key)))).unwrap();
        let expected = report[0].coverage_ratio * 100.0;
        let shown: f64 = pct.trim_end_matches('%').parse().unwrap();
        assert!((shown - expected).abs() <= 0.1, "{title}: library says {expected:.2}%");
        checked += 1;
    }
    assert!(checked > 20, "only {checked} cells");
    // Concrete holes from MarketBars: MSFT misses 2024-01-05, AMZN lists on 2024-01-04.
    assert!(svg.contains("<title>MSFT · 2024-01-05 14:30 – 2024-01-05 21:00 · 0.0%</title>"), "MSFT outage not drawn");
    assert!(svg.contains("<title>AMZN · 2024-01-02 14:30 – 2024-01-02 21:00 · 0.0%</title>"), "AMZN listing not drawn");

    // The default folder is never overwritten.
    assert_clear_error(&tsq(tmp.path(), &["demo", "--small", s(&dir)]), "not empty");
}

/// Every opened tag is closed in order (enough to catch broken markup from a formatter).
fn assert_balanced(svg: &str) {
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("unterminated tag") + open;
        let tag = &rest[open + 1..close];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
        assert!(!rest[open + 1..close].contains('<'), "'<' inside a tag");
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn create_append_info_coverage_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("bars");
    let created = tsq(
        tmp.path(),
        &["create", s(&table), "--time-column", "ts", "--bucket", "1m", "--entity", "symbol", "--timezone", "UTC"],
    );
    assert_ok(&created);
    assert!(
        created.stdout.contains("created table at") && created.stdout.contains("bucket       1m"),
        "{}",
        created.stdout
    );
    assert_clear_error(
        &tsq(tmp.path(), &["create", s(&table), "--time-column", "ts", "--bucket", "1m"]),
        "already exists",
    );

    let files = day_files(tmp.path(), 4);
    let bars = MarketBars::new(6, 4);
    let appended = tsq(tmp.path(), &["append", s(&table), s(&files[0]), s(&files[1])]);
    assert_ok(&appended);
    let day0 = bars.day_batch(0).num_rows();
    assert!(appended.stdout.contains(&format!("day0.parquet: {} rows -> version 2", fmt(day0))), "{}", appended.stdout);
    assert!(appended.stdout.contains("-> version 3"), "{}", appended.stdout);

    let info = tsq(tmp.path(), &["info", s(&table)]);
    assert_ok(&info);
    let rows = day0 + bars.day_batch(1).num_rows();
    for expected in [
        "version      3",
        "segments     2",
        &format!("rows         {}", fmt(rows)),
        "entities     4",
        "symbol: utf8 not null",
        "coverage     ",
    ] {
        assert!(info.stdout.contains(expected), "{expected:?} missing from\n{}", info.stdout);
    }

    // Day 0 halts AAPL (symbol 0) for 45 minutes from 16:30 UTC.
    let gaps = tsq(tmp.path(), &["gaps", s(&table), "--from", "2024-01-02T14:30:00Z", "--to", "2024-01-02T21:00:00Z"]);
    assert_ok(&gaps);
    assert!(
        gaps.stdout.contains("AAPL    2024-01-02T16:30:00Z  2024-01-02T17:15:00Z               45"),
        "{}",
        gaps.stdout
    );
    assert!(gaps.stdout.contains("1 gap(s), 45 missing"), "{}", gaps.stdout);

    let svg = tmp.path().join("cov.svg");
    let coverage =
        tsq(tmp.path(), &["coverage", s(&table), "--from", "2024-01-02", "--to", "2024-01-04", "--plot", s(&svg)]);
    assert_ok(&coverage);
    let aapl = coverage.stdout.lines().find(|l| l.starts_with("AAPL")).unwrap_or_default();
    assert!(aapl.contains("735") && aapl.contains("2,880"), "AAPL: 780 - 45 buckets of 2 days: {aapl}");
    assert_balanced(&std::fs::read_to_string(&svg).unwrap());

    // Overlap: the second day again is rejected and changes nothing.
    let before = tree_snapshot(&table);
    let overlap = tsq(tmp.path(), &["append", s(&table), s(&files[1])]);
    assert_clear_error(&overlap, "overlap");
    assert!(overlap.stderr.contains("stays at version 3"), "{}", overlap.stderr);
    assert_eq!(tree_snapshot(&table), before, "a rejected append left files behind");

    // A run stops at the first rejected file; the files before it stay committed.
    let run = tsq(tmp.path(), &["append", s(&table), s(&files[2]), s(&files[0]), s(&files[3])]);
    assert_clear_error(&run, "1 of 3 file(s) appended");
    assert!(run.stdout.contains("day2.parquet") && !run.stdout.contains("day3.parquet"), "{}", run.stdout);
    assert_eq!(open(&table).version(), 4);

    // Schema mismatch: an extra column.
    let batch = bars.day_batch(3);
    let mut fields = batch.schema().fields().to_vec();
    fields.push(std::sync::Arc::new(arrow::datatypes::Field::new("vwap", arrow::datatypes::DataType::Float64, true)));
    let mut columns = batch.columns().to_vec();
    columns.push(std::sync::Arc::new(arrow::array::Float64Array::from(vec![1.0; batch.num_rows()])));
    let wider = RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), columns).unwrap();
    let wide_file = tmp.path().join("wide.parquet");
    write_parquet(&wide_file, &wider);
    let before = tree_snapshot(&table);
    assert_clear_error(&tsq(tmp.path(), &["append", s(&table), s(&wide_file)]), "schema mismatch");
    assert_eq!(tree_snapshot(&table), before);
    assert_clear_error(&tsq(tmp.path(), &["append", s(&table), "no-such.parquet"]), "nothing was appended");
}

fn fmt(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn sql_formats_table_functions_scripts_and_insert() {
    let tmp = tempfile::tempdir().unwrap();
    let table = sample_table(tmp.path(), 2);
    let t = format!("bars={}", s(&table));
    let bars = MarketBars::new(6, 2);
    let rows = bars.day_batch(0).num_rows() + bars.day_batch(1).num_rows();

    let plain = tsq(tmp.path(), &["sql", "-t", &t, "SELECT count(*) AS n FROM bars"]);
    assert_ok(&plain);
    assert!(plain.stdout.contains(&format!("| {rows} |")) && plain.stdout.contains("(1 row)"), "{}", plain.stdout);

    let csv = tsq(
        tmp.path(),
        &["sql", "-t", &t, "--format", "csv", "SELECT symbol, count(*) AS n FROM bars GROUP BY symbol ORDER BY symbol"],
    );
    assert_ok(&csv);
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(lines[0], "symbol,n");
    assert_eq!(lines.len(), 5, "4 listed symbols on days 0-1:\n{}", csv.stdout);

    // A bare -t DIR registers the table under its folder name.
    let json = tsq(
        tmp.path(),
        &[
            "sql",
            "-t",
            s(&table),
            "--format",
            "json",
            "SELECT symbol, covered_buckets FROM coverage('bars') ORDER BY symbol",
        ],
    );
    assert_ok(&json);
    let value: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("valid JSON");
    assert_eq!(value.as_array().map(|a| a.len()), Some(4), "{}", json.stdout);
    assert_eq!(value[0]["symbol"], "AAPL");

    let script = tmp.path().join("report.sql");
    std::fs::write(
        &script,
        "-- a report\nSELECT count(*) AS segments FROM segments('bars');\n\
         INSERT INTO bars VALUES (TIMESTAMP '2024-01-10 14:30:00', 'IBM', 1.0, 1.0, 1.0, 1.0, 10);\n\
         SELECT operation, rows_added FROM history('bars') ORDER BY version DESC LIMIT 1;\n\
         SELECT count(*) AS gaps FROM gaps('bars', '2024-01-02T14:30:00Z', '2024-01-02T21:00:00Z');\n\
         SELECT symbol, window_start FROM last_covered_window('bars', '2h') WHERE symbol = 'IBM';",
    )
    .unwrap();
    let report = tsq(tmp.path(), &["sql", "-t", &t, "-f", s(&script)]);
    // Two segments; gaps on day 0: AAPL's halt, and all of it for IBM (inserted later).
    assert_ok(&report);
    for expected in ["| 2        |", "| 2    |", "| insert    | 1          |", "(0 rows)", "> SELECT count(*) AS gaps"]
    {
        assert!(report.stdout.contains(expected), "{expected:?} missing from\n{}", report.stdout);
    }
    assert_eq!(open(&table).version(), 4, "the INSERT committed one version");
}

#[test]
fn sql_errors_are_one_clear_line_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let table = sample_table(tmp.path(), 1);
    let t = format!("bars={}", s(&table));
    let before = tree_snapshot(&table);
    let cases = [
        ("SELEC 1", "SQL syntax error"),
        ("SELECT * FROM nope", "not found"),
        ("SELECT * FROM coverage('nope')", "unknown table 'nope'"),
        ("SELECT * FROM coverage('bars', 'yesterday', 'today')", "start argument of coverage"),
        ("SELECT * FROM last_covered_window('bars', '7x')", "bad window length '7x'"),
        ("SELECT * FROM gaps('bars', '2024-01-03', '2024-01-02')", "invalid time range"),
        ("INSERT INTO bars VALUES (TIMESTAMP '2024-01-02 14:30:00', 'AAPL', 1.0, 1.0, 1.0, 1.0, 1)", "overlap"),
    ];
    for (sql, needle) in cases {
        assert_clear_error(&tsq(tmp.path(), &["sql", "-t", &t, sql]), needle);
    }
    assert_eq!(tree_snapshot(&table), before, "failed statements changed the table");
    let script = tmp.path().join("two.sql");
    std::fs::write(&script, "SELECT 1 AS one;\nSELECT * FROM nope;\nSELECT 3;").unwrap();
    let run = tsq(tmp.path(), &["sql", "-t", &t, "-f", s(&script)]);
    assert_clear_error(&run, "statement 2 of 3 failed");
    assert!(run.stdout.contains("| 1   |") && !run.stdout.contains("| 3 "), "runs up to the failure:\n{}", run.stdout);
    // A file named where the SQL goes: the error says to use -f.
    assert_clear_error(&tsq(tmp.path(), &["sql", "-t", &t, s(&script)]), "use -f");
}

#[test]
fn missing_tables_and_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    assert_clear_error(&tsq(root, &["info", "no-such-dir"]), "does not exist");
    assert_clear_error(&tsq(root, &["coverage", "no-such-dir"]), "does not exist");
    assert_clear_error(&tsq(root, &["sql", "-t", "x=no-such-dir", "SELECT 1"]), "does not exist");
    std::fs::create_dir(root.join("plain")).unwrap();
    assert_clear_error(&tsq(root, &["gaps", "plain"]), "no table at plain");
    assert_clear_error(&tsq(root, &["append", "plain", "x.parquet"]), "no table at plain");

    let bad_bucket = tsq(root, &["create", "t", "--time-column", "ts", "--bucket", "7x"]);
    assert_clear_error(&bad_bucket, "invalid bucket '7x'");
    assert_eq!(bad_bucket.code, Some(2), "usage errors exit with 2");
    assert!(!root.join("t").exists(), "a rejected create made the folder");
    assert_clear_error(
        &tsq(root, &["create", "t", "--time-column", "ts", "--bucket", "1m", "--timezone", "Mars/Base"]),
        "unknown time zone",
    );

    let table = sample_table(root, 1);
    assert_clear_error(
        &tsq(root, &["gaps", s(&table), "--from", "soon", "--to", "2024-01-03"]),
        "cannot parse timestamp 'soon'",
    );
    assert_clear_error(
        &tsq(root, &["coverage", s(&table), "--from", "2024-01-03", "--to", "2024-01-02"]),
        "invalid time range",
    );
}

#[test]
fn shell_runs_multi_line_statements_and_survives_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let table = sample_table(tmp.path(), 1);
    let input = "SELECT count(*)\n  AS n FROM bars;\n\\timing\nSELECT * FROM nope;\n\\d\nSELECT 40 + 2 AS answer; \\q\nSELECT 'never' AS x;\n";
    // `\q` only counts on a line of its own; the line above runs then the input goes on.
    let input = input.replace("; \\q", ";\n\\q");
    let run = tsq_in(tmp.path(), &["shell", "-t", &format!("bars={}", s(&table))], Some(&input));
    assert_ok(&run);
    let rows = MarketBars::new(6, 1).day_batch(0).num_rows();
    assert!(run.stdout.contains(&format!("| {rows} |")), "{}", run.stdout);
    assert!(run.stdout.contains("timing is on") && run.stdout.contains("time: "), "{}", run.stdout);
    assert!(run.stdout.contains("| 42     |") && !run.stdout.contains("never"), "{}", run.stdout);
    assert!(run.stdout.contains("time series (time column ts, bucket 1m, entities symbol)"), "\\d:\n{}", run.stdout);
    assert!(
        run.stderr.contains("error: Error during planning: table 'datafusion.public.nope' not found"),
        "{}",
        run.stderr
    );
}

#[test]
fn append_takes_csv_json_and_unsorted_parquet_with_writer_options() {
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("t");
    assert_ok(&tsq(tmp.path(), &["create", s(&table), "--time-column", "ts", "--bucket", "1m", "--entity", "symbol"]));

    // CSV: 3 symbols x 100 minutes, split into segments of 120 rows.
    let csv = tmp.path().join("bars.csv");
    let mut text = String::from("ts,symbol,price,volume\n");
    for m in 0..100 {
        for sym in ["A", "B", "C"] {
            text.push_str(&format!("2024-01-01T{:02}:{:02}:00Z,{sym},{m}.5,{m}\n", m / 60, m % 60));
        }
    }
    std::fs::write(&csv, text).unwrap();
    let run = tsq(tmp.path(), &["append", s(&table), s(&csv), "--segment-rows", "120", "--memory-limit", "64MiB"]);
    assert_ok(&run);
    assert!(run.stdout.contains("300 rows in 3 segments -> version 2"), "{}", run.stdout);

    // JSON lines.
    let json = tmp.path().join("more.jsonl");
    std::fs::write(&json, "{\"ts\":\"2024-01-01T02:00:00Z\",\"symbol\":\"A\",\"price\":1.0,\"volume\":1}\n").unwrap();
    let run = tsq(tmp.path(), &["append", s(&table), s(&json)]);
    assert_ok(&run);
    assert!(run.stdout.contains("1 rows -> version 3"), "{}", run.stdout);

    // Parquet sorted by symbol, then time: re-encoded, and said so in one line.
    let by_symbol = tmp.path().join("by-symbol.parquet");
    let batches: Vec<RecordBatch> = ["A", "B"].iter().map(|sym| minute_bars(&[sym], T0 + 3 * HOUR, 30)).collect();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    // Columns as the CSV fixed them, so only the order differs.
    let schema = open(&table).schema().unwrap();
    let columns =
        batch.columns().iter().zip(schema.fields()).map(|(c, f)| arrow::compute::cast(c, f.data_type()).unwrap());
    let batch = RecordBatch::try_new(schema.clone(), columns.collect()).unwrap();
    write_parquet(&by_symbol, &batch);
    let run = tsq(tmp.path(), &["append", s(&table), s(&by_symbol)]);
    assert_ok(&run);
    let notes: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("re-encoding")).collect();
    assert_eq!(notes, [format!("re-encoding {} sorted by time: its rows are not in time order", s(&by_symbol))]);
    assert!(open(&table).segments().iter().all(|seg| seg.sorted));

    assert_clear_error(&tsq(tmp.path(), &["append", s(&table), s(&json), "--memory-limit", "lots"]), "--memory-limit");
    let txt = tmp.path().join("bars.txt");
    std::fs::write(&txt, "x").unwrap();
    assert_clear_error(&tsq(tmp.path(), &["append", s(&table), s(&txt)]), "cannot tell the format");
}

#[test]
fn maintenance_commands_compact_delete_replace_alter_vacuum_and_time_travel() {
    let root = tempfile::tempdir().unwrap();
    let table = sample_table(root.path(), 3);
    let dir = s(&table);
    let count = |args: &[&str]| -> u64 {
        let run = tsq(root.path(), args);
        assert_ok(&run);
        run.stdout.lines().nth(1).unwrap().trim().parse().unwrap()
    };
    let rows_before = open(&table).snapshot().row_count();

    let dry = tsq(root.path(), &["compact", dir, "--dry-run"]);
    assert_ok(&dry);
    assert!(
        dry.stdout.contains("would merge 3 segment(s)") && dry.stdout.contains("nothing was written"),
        "{}",
        dry.stdout
    );
    assert_eq!(open(&table).version(), 4);
    let run = tsq(root.path(), &["compact", dir]);
    assert_ok(&run);
    assert!(run.stdout.contains("merged 3 segment(s)") && run.stdout.contains("-> version 5"), "{}", run.stdout);
    assert_eq!((open(&table).segments().len(), open(&table).snapshot().row_count()), (1, rows_before));
    let again = tsq(root.path(), &["compact", dir]);
    assert_ok(&again);
    assert!(again.stdout.starts_with("nothing to compact"), "{}", again.stdout);

    let bars = MarketBars::new(6, 3);
    let day1 = bars.day_batch(1);
    let of_symbol = |symbol: &str| {
        let mask = arrow::compute::kernels::cmp::eq(
            day1.column(1),
            &arrow::array::Scalar::new(arrow::array::StringArray::from(vec![symbol])),
        )
        .unwrap();
        arrow::compute::filter_record_batch(&day1, &mask).unwrap()
    };
    let deleted = count(&[
        "sql",
        "-t",
        &format!("bars={dir}"),
        "--format",
        "csv",
        "DELETE FROM bars WHERE symbol = 'AAPL' AND ts >= '2024-01-03' AND ts < '2024-01-04'",
    ]);
    assert_eq!(deleted, of_symbol("AAPL").num_rows() as u64);
    assert_eq!(open(&table).snapshot().row_count(), rows_before - deleted);

    // Restate MSFT on day 1 with its first 30 bars only.
    let msft = of_symbol("MSFT");
    let msft_day = msft.num_rows() as u64;
    let fixed = root.path().join("msft.parquet");
    write_parquet(&fixed, &msft.slice(0, 30));
    let before = tree_snapshot(&table);
    let misaligned =
        tsq(root.path(), &["replace", dir, "--from", "2024-01-03T00:00:30Z", "--to", "2024-01-04", s(&fixed)]);
    assert_clear_error(&misaligned, "bucket boundary");
    let wrong_entity = tsq(
        root.path(),
        &["replace", dir, "--from", "2024-01-03", "--to", "2024-01-04", "--entity", "symbol=AAPL", s(&fixed)],
    );
    assert_clear_error(&wrong_entity, "not among the replaced entities");
    let unknown_column = tsq(
        root.path(),
        &["replace", dir, "--from", "2024-01-03", "--to", "2024-01-04", "--entity", "sym=MSFT", s(&fixed)],
    );
    assert_clear_error(&unknown_column, "not an entity column");
    assert_eq!(tree_snapshot(&table), before, "failed replaces change nothing");
    let run = tsq(
        root.path(),
        &["replace", dir, "--from", "2024-01-03", "--to", "2024-01-04", "--entity", "symbol=MSFT", s(&fixed)],
    );
    assert_ok(&run);
    assert!(run.stdout.contains(&format!("{msft_day} rows removed, 30 rows added")), "{}", run.stdout);
    assert_eq!(open(&table).snapshot().row_count(), rows_before - deleted - msft_day + 30);

    let run = tsq(root.path(), &["alter", dir, "add-column", "vwap", "double"]);
    assert_ok(&run);
    assert_clear_error(&tsq(root.path(), &["alter", dir, "add-column", "vwap", "int64"]), "already has a column");
    assert_clear_error(&tsq(root.path(), &["alter", dir, "add-column", "x", "list"]), "unknown column type");
    assert_eq!(count(&["sql", "-t", &format!("bars={dir}"), "--format", "csv", "SELECT count(vwap) FROM bars"]), 0);

    // A CSV with one more column needs --evolve-schema, then adds it.
    let csv = root.path().join("extra.csv");
    std::fs::write(
        &csv,
        "ts,symbol,open,high,low,close,volume,vwap,venue\n2024-01-09T14:30:00Z,AAPL,1,2,0.5,1.5,10,1.2,XNAS\n",
    )
    .unwrap();
    assert_clear_error(&tsq(root.path(), &["append", dir, s(&csv)]), "venue");
    let run = tsq(root.path(), &["append", dir, "--evolve-schema", s(&csv)]);
    assert_ok(&run);
    let venue = open(&table).schema().unwrap();
    assert_eq!((venue.fields().len(), venue.field(8).name().as_str()), (9, "venue"));
    assert_eq!(count(&["sql", "-t", &format!("bars={dir}"), "--format", "csv", "SELECT count(venue) FROM bars"]), 1);

    // Time travel: version 2 holds day 0 only, and is read-only.
    let at2 = format!("bars={dir}@2");
    assert_eq!(
        count(&["sql", "-t", &at2, "--format", "csv", "SELECT count(*) FROM bars"]),
        bars.day_batch(0).num_rows() as u64
    );
    assert_clear_error(&tsq(root.path(), &["sql", "-t", &at2, "DELETE FROM bars"]), "read-only");

    let info = tsq(root.path(), &["info", dir]);
    assert_ok(&info);
    for op in ["add_columns", "replace", "delete", "compact", "append"] {
        assert!(info.stdout.contains(op), "info lists {op}:\n{}", info.stdout);
    }

    // The files the rewrites removed go once past the retention; the answers stay.
    let dry = tsq(root.path(), &["vacuum", dir, "--retention", "0", "--dry-run"]);
    assert_ok(&dry);
    assert!(dry.stdout.contains("would delete") && dry.stdout.contains("data/"), "{}", dry.stdout);
    let kept = tsq(root.path(), &["vacuum", dir]);
    assert_ok(&kept);
    assert!(kept.stdout.contains("0 deleted"), "{}", kept.stdout);
    let run = tsq(root.path(), &["vacuum", dir, "--retention", "0"]);
    assert_ok(&run);
    assert!(!run.stdout.contains(" 0 deleted"), "{}", run.stdout);
    assert_eq!(
        count(&["sql", "-t", &format!("bars={dir}"), "--format", "csv", "SELECT count(*) FROM bars"]),
        rows_before - deleted - msft_day + 30 + 1
    );
}

#[test]
fn schedules_coverage_changes_and_local_times_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("bars");
    let schedule = "America/New_York; Mon-Fri 09:30-16:00";
    // A bad schedule is one clear sentence naming the bad part, and creates nothing.
    for (bad, needle) in [
        ("Mon-Fry 09:30-16:00", "Mon-Fry"),
        ("Mars/Olympus; Mon-Fri 09:30-16:00", "unknown time zone 'Mars/Olympus'"),
        ("Mon-Fri 09:30-16:00; closed 2024-01-06", "Saturday"),
    ] {
        let args = ["create", s(&table), "--time-column", "ts", "--bucket", "1m", "--schedule", bad];
        assert_clear_error(&tsq(tmp.path(), &args), needle);
        assert!(!table.exists(), "a refused create leaves nothing");
    }
    let args =
        ["create", s(&table), "--time-column", "ts", "--bucket", "1m", "--entity", "symbol", "--schedule", schedule];
    let created = tsq(tmp.path(), &args);
    assert_ok(&created);
    assert!(created.stdout.contains(&format!("schedule     {schedule}")), "{}", created.stdout);
    let files = day_files(tmp.path(), 5);
    let mut append = vec!["append", s(&table)];
    append.extend(files.iter().map(|f| s(f)));
    assert_ok(&tsq(tmp.path(), &append));

    // Against the schedule: 5 sessions of 390 minutes per symbol.
    let coverage = tsq(tmp.path(), &["coverage", s(&table)]);
    assert_ok(&coverage);
    assert!(coverage.stdout.contains("expected: the buckets of the schedule"), "{}", coverage.stdout);
    assert!(coverage.stdout.contains("1,905     1,950"), "AAPL: {}", coverage.stdout);
    let always = tsq(tmp.path(), &["coverage", s(&table), "--schedule", "always"]);
    assert!(always.stdout.contains("1,905     9,030"), "{}", always.stdout);
    let gaps = tsq(tmp.path(), &["gaps", s(&table)]);
    assert!(gaps.stdout.contains("MSFT    2024-01-05T14:30:00Z  2024-01-05T21:00:00Z"), "{}", gaps.stdout);
    assert!(!gaps.stdout.contains("1,050"), "no night is a gap: {}", gaps.stdout);

    // The schedule changes in one commit; nothing else does.
    assert_clear_error(&tsq(tmp.path(), &["alter", s(&table), "set-schedule", "Mon-Fri 16:00-09:30"]), "overnight");
    assert_eq!(open(&table).version(), 6);
    let removed = tsq(tmp.path(), &["alter", s(&table), "set-schedule", "none"]);
    assert_ok(&removed);
    assert!(removed.stdout.contains("-> version 7"), "{}", removed.stdout);
    let info = tsq(tmp.path(), &["info", s(&table)]);
    assert!(info.stdout.contains("schedule     (none"), "{}", info.stdout);

    // What the last load filled, and what a delete removed.
    let changes = tsq(tmp.path(), &["coverage", s(&table), "--since-version", "5"]);
    assert_ok(&changes);
    assert!(
        changes.stdout.contains("from version 5 to version 7: 2,295 1m bucket(s) added, 0 removed"),
        "{}",
        changes.stdout
    );
    let delete = "DELETE FROM bars WHERE symbol = 'AAPL' AND ts < '2024-01-02T15:00:00Z'";
    assert_ok(&tsq(tmp.path(), &["sql", "-t", &format!("bars={}", s(&table)), delete]));
    let changes = tsq(tmp.path(), &["coverage", s(&table), "--since-version", "7"]);
    assert!(
        changes.stdout.contains("AAPL    removed  2024-01-02T14:30:00Z  2024-01-02T15:00:00Z"),
        "{}",
        changes.stdout
    );
    assert_clear_error(
        &tsq(tmp.path(), &["coverage", s(&table), "--since-version", "99"]),
        "version 99 does not exist",
    );

    // A New York table: day buckets are local days, and `--from 2024-03-10` is New York's
    // midnight (05:00 UTC), not UTC's. Rows: the 10th at 23:30 (03:30 UTC on the 11th) and
    // the 12th at 10:00; so the 11th is the one missing day.
    let zoned = tmp.path().join("zoned");
    let args = ["create", s(&zoned), "--time-column", "ts", "--bucket", "1d", "--timezone", "America/New_York"];
    assert_ok(&tsq(tmp.path(), &args));
    let batch = {
        use arrow::array::TimestampSecondArray;
        use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        let zone = "America/New_York";
        let schema =
            Schema::new(vec![Field::new("ts", DataType::Timestamp(TimeUnit::Second, Some(zone.into())), false)]);
        let ts = TimestampSecondArray::from(vec![1_710_127_800, 1_710_252_000]).with_timezone(zone);
        RecordBatch::try_new(std::sync::Arc::new(schema), vec![std::sync::Arc::new(ts)]).unwrap()
    };
    let file = tmp.path().join("zoned.parquet");
    write_parquet(&file, &batch);
    assert_ok(&tsq(tmp.path(), &["append", s(&zoned), s(&file)]));
    let gaps = tsq(tmp.path(), &["gaps", s(&zoned), "--from", "2024-03-10", "--to", "2024-03-13"]);
    assert_ok(&gaps);
    assert!(gaps.stdout.contains("2024-03-11T04:00:00Z  2024-03-12T04:00:00Z"), "{}", gaps.stdout);
    assert!(
        gaps.stdout.contains("1 gap(s), 1 missing 1d bucket(s), from 2024-03-10T05:00:00Z to 2024-03-13T04:00:00Z"),
        "{}",
        gaps.stdout
    );
    // With an offset the string means what it says: UTC midnight is the 9th in New York.
    let utc = tsq(tmp.path(), &["gaps", s(&zoned), "--from", "2024-03-10T00:00:00Z", "--to", "2024-03-13T00:00:00Z"]);
    assert!(utc.stdout.contains("2 missing 1d bucket(s)"), "{}", utc.stdout);
    // A replace of the 10th runs from New York midnight to New York midnight (23 hours);
    // UTC midnight is inside a bucket there.
    let noon = RecordBatch::try_new(
        batch.schema(),
        vec![std::sync::Arc::new(
            arrow::array::TimestampSecondArray::from(vec![1_710_086_400]).with_timezone("America/New_York"),
        )],
    )
    .unwrap();
    let restated = tmp.path().join("restated.parquet");
    write_parquet(&restated, &noon);
    let args = ["replace", s(&zoned), "--from", "2024-03-10", "--to", "2024-03-11", s(&restated)];
    assert_ok(&tsq(tmp.path(), &args));
    let args = ["replace", s(&zoned), "--from", "2024-03-10T00:00:00Z", "--to", "2024-03-11", s(&restated)];
    assert_clear_error(&tsq(tmp.path(), &args), "is inside a bucket");
}

/// `tsq` against S3 with `--storage-option`s, as a user would: create, append, info, sql,
/// coverage and gaps on an `s3://` table (skipped without the test server).
#[test]
fn tsq_end_to_end_on_s3() {
    let Some(endpoint) = crate::common::s3_endpoint() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let files = day_files(tmp.path(), 2);
    let url = crate::common::s3_url();
    // moto takes any key; a distinctive one shows that it is never printed.
    let options: Vec<String> = crate::common::s3_options(&endpoint)
        .into_iter()
        .map(|(k, v)| if k == "aws.secret_access_key" { (k, "cli-secret-value".to_string()) } else { (k, v) })
        .map(|(k, v)| format!("--storage-option={k}={v}"))
        .collect();
    let run = |args: &[&str]| {
        let all: Vec<&str> = args.iter().copied().chain(options.iter().map(String::as_str)).collect();
        tsq(tmp.path(), &all)
    };
    let url = url.as_str();
    assert_ok(&run(&["create", url, "--time-column", "ts", "--bucket", "1m", "--entity", "symbol"]));
    assert_ok(&run(&["append", url, s(&files[0]), s(&files[1])]));
    let info = run(&["info", url]);
    assert_ok(&info);
    assert!(!format!("{}{}", info.stdout, info.stderr).contains("cli-secret-value"), "{}", info.stdout);
    let sql = run(&["sql", "-t", &format!("bars={url}"), "SELECT count(*) AS n FROM bars"]);
    assert_ok(&sql);
    let expected: usize = MarketBars::new(6, 2).day_batch(0).num_rows() + MarketBars::new(6, 2).day_batch(1).num_rows();
    assert!(sql.stdout.contains(&format!("| {expected} ")), "{}", sql.stdout);
    assert_ok(&run(&["coverage", url]));
    let gaps = run(&["gaps", url, "--from", "2024-01-02T14:30:00Z", "--to", "2024-01-02T21:00:00Z"]);
    assert_ok(&gaps);
    assert!(gaps.stdout.contains("AAPL"), "AAPL's halt on the first day:\n{}", gaps.stdout);
    // Without the options the endpoint is unknown: one clear error, nothing printed as data.
    let bare = tsq(tmp.path(), &["info", url]);
    assert!(bare.code.is_some_and(|c| c != 0), "{}", bare.stdout);
    // A storage option on a local folder would be ignored, so it is refused.
    let local = tsq(tmp.path(), &["info", s(tmp.path()), "--storage-option", "aws.region=us-east-1"]);
    assert_clear_error(&local, "storage options apply only to cloud URLs");
}
