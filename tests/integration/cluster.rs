//! Queries through a Ballista cluster (feature `ballista`) answer exactly as a local
//! session does: the SQL examples and a set of queries run both ways, on a cluster in
//! this process (its own scheduler and executors, talking gRPC on localhost) and on
//! real `tsq cluster` processes. Writes through a cluster are refused and change nothing;
//! a missing scheduler, a killed executor and unreadable segments each end in one error
//! within a bounded time.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use timeseries_table_core::datafusion::cluster::{remote_session_context, standalone_session_context};
use timeseries_table_core::datafusion::script::split_statements;
use timeseries_table_core::datafusion::{register_table, session_context};
use timeseries_table_core::sample::{create_sample_table, MarketBars};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;

use crate::common::{s3_url, test_location, uuid_like};

/// The sample table (6 symbols x 5 trading days) in a new folder.
async fn sample_table(dir: &Path) -> String {
    let path = dir.join("bars");
    create_sample_table(TableLocation::local(&path).unwrap(), &MarketBars::new(6, 5), |_, _| {}).await.unwrap();
    path.to_string_lossy().into_owned()
}

/// A statement that changes a table: a cluster refuses it, so the differential runs it
/// in a local session on the same tables.
fn is_write(sql: &str) -> bool {
    let first = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    matches!(first.as_str(), "INSERT" | "DELETE" | "UPDATE" | "TRUNCATE")
}

/// Each statement and its result as text (`OK` for none, `error: ...` for a failure).
async fn render(ctx: &SessionContext, sql: &str) -> String {
    let result = match ctx.sql(sql).await {
        Ok(frame) => frame.collect().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(batches)
            if batches.iter().all(|b| b.num_rows() == 0) && batches.first().is_none_or(|b| b.num_columns() <= 1) =>
        {
            format!("{sql};\nOK\n")
        }
        Ok(batches) => format!("{sql};\n{}\n", pretty_format_batches(&batches).unwrap()),
        Err(e) => format!("{sql};\nerror: {e}\n"),
    }
}

/// The table a `CREATE [EXTERNAL] TABLE name ...` statement creates.
fn created_table(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let table = words.iter().position(|w| w.eq_ignore_ascii_case("TABLE"))?;
    words.first().filter(|w| w.eq_ignore_ascii_case("CREATE"))?;
    Some(words.get(table + 1)?.trim_end_matches('(').to_string())
}

/// Runs `script` statement by statement: reads on `reader`; writes, and the statements
/// that create tables, on `writer`, whose new tables `reader` then registers too (the
/// same tables, as `CREATE EXTERNAL TABLE` would open them). Returns the rendered results.
async fn run(reader: &SessionContext, writer: &SessionContext, script: &str) -> String {
    let mut out = String::new();
    for sql in split_statements(script) {
        if is_write(&sql) {
            out.push_str(&render(writer, &sql).await);
            continue;
        }
        match created_table(&sql) {
            Some(name) if !std::ptr::eq(reader, writer) => {
                out.push_str(&render(writer, &sql).await);
                let table = writer.table_provider(name.as_str()).await.unwrap();
                reader.register_table(name.as_str(), table).unwrap();
            }
            _ => out.push_str(&render(reader, &sql).await),
        }
    }
    out
}

fn example_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
}

/// Queries beyond the examples: aggregates, `ORDER BY ts LIMIT` both ways, a join of two
/// tables, the table functions with arguments and filters, a past version, gap filling.
const QUERIES: &[&str] = &[
    "SELECT count(*), min(ts), max(ts), sum(volume), round(avg(close), 6) FROM bars",
    "SELECT symbol, count(*), max(high) - min(low) AS range FROM bars GROUP BY symbol ORDER BY symbol",
    "SELECT * FROM bars ORDER BY ts, symbol LIMIT 7",
    "SELECT ts, symbol, close FROM bars ORDER BY ts DESC, symbol LIMIT 5",
    "SELECT * FROM bars WHERE symbol = 'MSFT' AND ts >= '2024-01-03T15:00:00Z' AND ts < '2024-01-03T15:05:00Z' ORDER BY ts",
    "SELECT date_trunc('day', ts) AS day, count(*) FROM bars GROUP BY day ORDER BY day",
    "SELECT a.symbol, count(*) AS pairs, sum(a.volume + b.volume) AS volume FROM bars a JOIN other b \
     ON a.ts = b.ts AND a.symbol = b.symbol WHERE a.ts < '2024-01-03T00:00:00Z' GROUP BY a.symbol ORDER BY a.symbol",
    "SELECT * FROM coverage('bars') ORDER BY symbol",
    "SELECT * FROM coverage('bars', '2024-01-03T00:00:00Z', '2024-01-05T00:00:00Z', 'always') ORDER BY symbol",
    "SELECT * FROM gaps('bars') ORDER BY symbol, gap_start LIMIT 20",
    "SELECT * FROM gaps('bars') WHERE symbol = 'AAPL' ORDER BY gap_start",
    "SELECT * FROM last_covered_window('bars', INTERVAL '1 hour') ORDER BY symbol",
    "SELECT symbol, count(*) FROM snapshot('bars', 2) GROUP BY symbol ORDER BY symbol",
    "SELECT c.symbol, c.coverage_ratio, count(*) AS rows FROM coverage('bars') c JOIN bars b ON b.symbol = c.symbol \
     GROUP BY c.symbol, c.coverage_ratio ORDER BY c.symbol",
    "SELECT count(*) FROM segments('bars')",
    "SELECT version, operation FROM history('bars') ORDER BY version",
];

/// A local session and a cluster session with `bars` and `other` registered in both.
async fn sessions(bars: &str, other: &str, cluster: SessionContext) -> (SessionContext, SessionContext) {
    let local = session_context();
    for ctx in [&local, &cluster] {
        register_table(ctx, "bars", bars).await.unwrap();
        register_table(ctx, "other", other).await.unwrap();
    }
    (local, cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_and_queries_answer_the_same_on_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let bars = sample_table(dir.path()).await;
    let other = sample_table(&dir.path().join("second")).await;
    let cluster = standalone_session_context(2, 2, &[]).await.unwrap();
    let (local, cluster) = sessions(&bars, &other, cluster).await;

    let mut failures = Vec::new();
    for (i, sql) in QUERIES.iter().enumerate() {
        let (want, got) = (render(&local, sql).await, render(&cluster, sql).await);
        assert!(!want.contains("error:"), "query {i} fails locally: {want}");
        if want != got {
            failures.push(format!("query {i}:\n--- local\n{want}--- cluster\n{got}"));
        }
    }
    // Each example twice, on tables of its own: once locally, once with its reads on the
    // cluster (and its writes in a local session beside it).
    for file in example_files() {
        let script = std::fs::read_to_string(&file).unwrap();
        let (mine, theirs) =
            (format!("memory://examples-{}/", uuid_like()), format!("memory://examples-{}/", uuid_like()));
        let want = run(&local, &local, &script.replace("memory://examples/", &mine))
            .await
            .replace(&mine, "memory://examples/");
        let writer = session_context();
        register_table(&writer, "bars", &bars).await.unwrap();
        let got = run(&cluster, &writer, &script.replace("memory://examples/", &theirs)).await;
        let got = got.replace(&theirs, "memory://examples/");
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!want.contains("error:"), "{name} fails locally:\n{want}");
        if want != got {
            failures.push(format!("{name}:\n--- local\n{want}--- cluster\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{} answers differ:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_statement_on_a_cluster_reads_the_latest_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let bars = sample_table(dir.path()).await;
    let cluster = standalone_session_context(1, 2, &[]).await.unwrap();
    register_table(&cluster, "bars", &bars).await.unwrap();
    let count = "SELECT (SELECT count(*) FROM bars) AS a, (SELECT sum(rows) FROM (SELECT count(*) AS rows FROM bars GROUP BY symbol)) AS b";
    let before = render(&cluster, count).await;

    // Another writer appends (the cluster's session never sees its handle).
    let writer = session_context();
    register_table(&writer, "bars", &bars).await.unwrap();
    let insert = render(&writer, "INSERT INTO bars VALUES ('2030-01-02T00:00:00Z', 'NEW', 1, 1, 1, 1, 1)").await;
    assert!(!insert.contains("error:"), "{insert}");

    let after = render(&cluster, count).await;
    assert_ne!(before, after, "the cluster reads the new version");
    let fresh = session_context();
    register_table(&fresh, "bars", &bars).await.unwrap();
    assert_eq!(after, render(&fresh, count).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_large_segment_cut_into_ranges_answers_the_same_on_a_cluster() {
    // One segment of 600,000 rows: the scheduler's scan cuts it into byte ranges, which
    // travel to the executor in the plan.
    let dir = tempfile::tempdir().unwrap();
    let location = TableLocation::local(dir.path().join("t")).unwrap();
    let mut table = crate::common::new_table(location, "1m").await;
    table.append(crate::common::random_bars("A", 600_000)).await.unwrap();
    let path = dir.path().join("t").to_str().unwrap().to_string();
    let cluster = standalone_session_context(1, 2, &[]).await.unwrap();
    register_table(&cluster, "t", &path).await.unwrap();
    let local = session_context();
    register_table(&local, "t", &path).await.unwrap();
    let sql = "SELECT count(price), sum(volume), min(ts), max(ts) FROM t WHERE price >= 0";
    let plan = render(&cluster, &format!("EXPLAIN {sql}")).await;
    assert!(plan.contains(".parquet:0.."), "{plan}");
    for sql in [sql, "SELECT date_bin(INTERVAL '1 day', ts) AS d, count(*), max(price) FROM t GROUP BY 1 ORDER BY 1"] {
        assert_eq!(render(&cluster, sql).await, render(&local, sql).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_cluster_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bars = sample_table(dir.path()).await;
    let before = TimeSeriesTable::open(TableLocation::parse(&bars).unwrap()).await.unwrap().version();
    let cluster = standalone_session_context(1, 1, &[]).await.unwrap();
    register_table(&cluster, "bars", &bars).await.unwrap();
    for sql in [
        "INSERT INTO bars VALUES ('2030-01-02T00:00:00Z', 'NEW', 1, 1, 1, 1, 1)",
        "INSERT INTO bars SELECT ts + INTERVAL '3650 days', symbol, open, high, low, close, volume FROM bars",
        "DELETE FROM bars WHERE symbol = 'AAPL'",
        "UPDATE bars SET volume = 0 WHERE symbol = 'AAPL'",
    ] {
        let out = render(&cluster, sql).await;
        assert!(out.contains("error:") && out.contains("not run through a cluster"), "{sql}: {out}");
        assert_eq!(out.trim_end().lines().count(), 2, "one line of error: {out}");
    }
    let after = TimeSeriesTable::open(TableLocation::parse(&bars).unwrap()).await.unwrap();
    assert_eq!(after.version(), before, "nothing was committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_on_s3_is_read_by_the_executors() {
    if crate::common::s3_endpoint().is_none() {
        println!("skipped: no S3 endpoint (scripts/test starts one)");
        return;
    }
    let url = s3_url();
    let location = test_location(&url);
    create_sample_table(location, &MarketBars::new(4, 3), |_, _| {}).await.unwrap();
    let options = crate::common::s3_options(&crate::common::s3_endpoint().unwrap());
    let cluster = standalone_session_context(2, 1, &options).await.unwrap();
    let local = session_context();
    for ctx in [&local, &cluster] {
        let table = TimeSeriesTable::open(TableLocation::parse_with_options(&url, &options).unwrap()).await.unwrap();
        timeseries_table_core::datafusion::register_opened(ctx, "bars", table).unwrap();
    }
    for sql in [
        "SELECT symbol, count(*), sum(volume) FROM bars GROUP BY symbol ORDER BY symbol",
        "SELECT * FROM bars ORDER BY ts, symbol LIMIT 3",
        "SELECT * FROM gaps('bars') ORDER BY symbol, gap_start LIMIT 5",
    ] {
        let (want, got) = (render(&local, sql).await, render(&cluster, sql).await);
        assert!(!want.contains("error:"), "{want}");
        assert_eq!(want, got);
    }
}

// ---- real processes ----

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Processes killed when dropped, also when a test fails.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn tsq() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tsq"));
    command.env_remove("RUST_BACKTRACE").stdin(Stdio::null());
    command
}

/// A scheduler and `executors` executors as separate `tsq cluster` processes on
/// 127.0.0.1; returns the processes and the scheduler's `df://` URL once it answers.
fn start_cluster(executors: usize) -> (Processes, String) {
    let port = free_port();
    let quiet = || (Stdio::null(), Stdio::null());
    let mut processes = Processes(Vec::new());
    let (out, err) = quiet();
    let scheduler = tsq()
        .args(["cluster", "scheduler", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    processes.0.push(scheduler);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the scheduler did not listen within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..executors {
        let (out, err) = quiet();
        let executor = tsq()
            .args(["cluster", "executor", "--scheduler", &format!("127.0.0.1:{port}"), "--concurrency", "2"])
            .args(["--port", &free_port().to_string(), "--grpc-port", &free_port().to_string()])
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        processes.0.push(executor);
    }
    (processes, format!("df://127.0.0.1:{port}"))
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `tsq sql` (on the cluster at `url` if given), killing it after `limit`.
fn tsq_sql(cluster: Option<&str>, table: &str, sql: &str, limit: Duration) -> Run {
    let mut command = tsq();
    command.args(["sql", "-t", &format!("bars={table}"), "--format", "csv", sql]);
    if let Some(url) = cluster {
        command.args(["--cluster", url]);
    }
    let started = Instant::now();
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("`tsq sql {sql}` did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// One line that opens with `error:`, with no panic or debug dump.
fn assert_clear_error(run: &Run, what: &str) {
    assert!(!run.ok, "{what}: expected a failure, got:\n{}", run.stdout);
    assert!(run.stderr.starts_with("error: "), "{what}: stderr does not open with 'error: ':\n{}", run.stderr);
    for bad in ["panicked", "Error {", "backtrace", "Status {"] {
        assert!(!run.stderr.contains(bad), "{what}: stderr contains {bad:?}:\n{}", run.stderr);
    }
    assert!(run.stderr.trim_end().lines().count() <= 3, "{what}: too long for a clear message:\n{}", run.stderr);
}

/// Waits until a query through the cluster works (executors register after the
/// scheduler starts).
fn wait_ready(url: &str, table: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = tsq_sql(Some(url), table, "SELECT count(*) FROM bars", Duration::from_secs(60));
        if run.ok {
            return;
        }
        assert!(Instant::now() < deadline, "the cluster did not answer within 60 s:\n{}", run.stderr);
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn tsq_cluster_processes_answer_as_tsq_sql_does() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let table = runtime.block_on(sample_table(dir.path()));
    let (_processes, url) = start_cluster(2);
    wait_ready(&url, &table);
    for sql in [
        "SELECT symbol, count(*), sum(volume), round(avg(close), 6) FROM bars GROUP BY symbol ORDER BY symbol",
        "SELECT * FROM bars ORDER BY ts DESC, symbol LIMIT 10",
        "SELECT * FROM coverage('bars') ORDER BY symbol",
        "SELECT * FROM gaps('bars') ORDER BY symbol, gap_start LIMIT 10",
    ] {
        let local = tsq_sql(None, &table, sql, Duration::from_secs(60));
        let remote = tsq_sql(Some(&url), &table, sql, Duration::from_secs(60));
        assert!(local.ok && remote.ok, "{sql}\nlocal: {}\ncluster: {}", local.stderr, remote.stderr);
        assert_eq!(local.stdout, remote.stdout, "{sql}");
    }
}

#[test]
fn a_cluster_that_fails_gives_one_error_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let table = runtime.block_on(sample_table(dir.path()));

    // No scheduler at that address.
    let nobody = format!("df://127.0.0.1:{}", free_port());
    let run = tsq_sql(Some(&nobody), &table, "SELECT count(*) FROM bars", Duration::from_secs(60));
    assert_clear_error(&run, "no scheduler");
    assert!(run.stderr.contains("scheduler"), "says what is missing: {}", run.stderr);
    println!("no scheduler: {:.1} s: {}", run.took.as_secs_f64(), run.stderr.trim_end());

    let (mut processes, url) = start_cluster(1);
    wait_ready(&url, &table);

    // Segments the executors cannot read: the log says they exist, the files are gone.
    let broken = dir.path().join("broken");
    runtime.block_on(async {
        let location = TableLocation::local(&broken).unwrap();
        create_sample_table(location, &MarketBars::new(2, 2), |_, _| {}).await.unwrap();
    });
    for entry in std::fs::read_dir(broken.join("data")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let run = tsq_sql(Some(&url), &broken.to_string_lossy(), "SELECT sum(volume) FROM bars", Duration::from_secs(120));
    assert_clear_error(&run, "unreadable segments");
    assert!(run.stderr.contains("the cluster failed the query") && run.stderr.contains("not found"), "{}", run.stderr);
    println!("unreadable segments: {:.1} s: {}", run.took.as_secs_f64(), run.stderr.trim_end());

    // The only executor is killed while a query runs.
    // A nested-loop join of 11,700 x 11,700 x 20 rows: long enough to be killed in.
    let slow = "SELECT count(*) FROM bars a, bars b, (SELECT close FROM bars LIMIT 20) c \
                WHERE a.close + b.close > c.close + 100.5";
    let query = {
        let (url, table) = (url.clone(), table.clone());
        std::thread::spawn(move || tsq_sql(Some(&url), &table, slow, Duration::from_secs(180)))
    };
    std::thread::sleep(Duration::from_millis(1500));
    let executor = processes.0.last_mut().unwrap();
    executor.kill().unwrap();
    executor.wait().unwrap();
    let run = query.join().unwrap();
    assert_clear_error(&run, "killed executor");
    println!("executor killed: {:.1} s: {}", run.took.as_secs_f64(), run.stderr.trim_end());
}

/// A session on a scheduler that is not there fails at once, in one sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_session_needs_a_running_scheduler() {
    let url = format!("df://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let error = remote_session_context(&url).await.err().expect("no scheduler there").to_string();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(error.contains(&url) && error.contains("tsq cluster scheduler"), "{error}");
    assert!(!error.contains('\n'), "one line: {error}");
}
