//! The table on S3 against the same table on local disk: open latency, a selective query,
//! `coverage()`, and append throughput, against moto's S3 server on this machine.
//!
//! ```sh
//! scripts/test --test integration s3::      # once: installs moto into .venv-test/
//! cargo bench --bench s3                    # starts moto from .venv-test/ on a free port
//! TSQ_BENCH_S3_ENDPOINT=http://host:port cargo bench --bench s3   # another server (bucket tsq-bench)
//! ```
//!
//! moto is a Python server handling one request at a time, so every figure here is
//! dominated by its few milliseconds per request: what carries over to real S3 is the
//! number of requests (counted by `s3::requests_per_append_open_and_selective_query`),
//! not the milliseconds. The results are recorded in BENCHMARKS.md.

#[allow(dead_code)]
mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::sample::MarketBars;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;

use common::{median, ms, run, spec};

const BUCKET: &str = "tsq-bench";
const SYMBOLS: usize = 200;
const DAYS: usize = 20;
const RUNS: usize = 21;

/// A moto server this benchmark started, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The endpoint to use: `TSQ_BENCH_S3_ENDPOINT`, or a moto server started from the test
/// virtualenv on a free port.
fn endpoint() -> (String, Option<Server>) {
    if let Ok(endpoint) = std::env::var("TSQ_BENCH_S3_ENDPOINT") {
        return (endpoint, None);
    }
    let moto = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-test/bin/moto_server");
    assert!(std::path::Path::new(moto).exists(), "{moto} is missing: run scripts/test once to install moto");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    let server = Server(child);
    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (format!("http://{address}"), Some(server))
}

/// Creates `bucket` with one plain HTTP request (moto takes any credentials).
fn create_bucket(endpoint: &str, bucket: &str) {
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let request =
        format!("PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200") || response.contains("BucketAlreadyOwnedByYou"), "{response}");
}

fn s3(endpoint: &str, prefix: &str) -> TableLocation {
    let options: Vec<(String, String)> = [
        ("aws.endpoint", endpoint),
        ("aws.access_key_id", "bench"),
        ("aws.secret_access_key", "bench"),
        ("aws.region", "us-east-1"),
        ("aws.allow_http", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    TableLocation::parse_with_options(&format!("s3://{BUCKET}/{prefix}"), &options).unwrap()
}

struct Figures {
    append: Duration,
    open: Duration,
    query: Duration,
    coverage: Duration,
}

/// Appends `DAYS` daily batches one append each (timed), then times open, a selective
/// query and `coverage()` (medians of `RUNS`, after one warm-up).
async fn measure(location: TableLocation, bars: &MarketBars) -> Figures {
    let mut table = TimeSeriesTable::create_with_spec(location.clone(), spec()).await.unwrap();
    let batches: Vec<_> = (0..DAYS).map(|d| bars.day_batch(d)).collect();
    let started = Instant::now();
    for batch in batches {
        table.append(vec![batch]).await.unwrap();
    }
    let append = started.elapsed();

    let mut opens = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let opened = TimeSeriesTable::open(location.clone()).await.unwrap();
        opens.push(started.elapsed());
        assert_eq!(opened.version(), DAYS as u64 + 1);
    }

    let ctx = session_context();
    register_opened(&ctx, "bars", TimeSeriesTable::open(location.clone()).await.unwrap()).unwrap();
    let selective = "SELECT avg(close) FROM bars WHERE symbol = 'MSFT' \
                     AND ts >= '2024-01-10T15:00:00Z' AND ts < '2024-01-10T16:00:00Z'";
    let coverage = "SELECT count(*) FROM coverage('bars')";
    let mut timings = [Vec::new(), Vec::new()];
    for (sql, samples) in [selective, coverage].into_iter().zip(timings.iter_mut()) {
        run(&ctx, sql).await;
        for _ in 0..RUNS {
            samples.push(run(&ctx, sql).await.0);
        }
    }
    let [query, coverage] = timings.map(median);
    Figures { append, open: median(opens), query, coverage }
}

#[tokio::main]
async fn main() {
    let (endpoint, _server) = endpoint();
    create_bucket(&endpoint, BUCKET);
    let bars = MarketBars::new(SYMBOLS, DAYS);
    let rows: usize = (0..DAYS).map(|d| bars.day_batch(d).num_rows()).sum();
    let dir = tempfile::tempdir().unwrap();
    let local = measure(TableLocation::local(dir.path().join("t")).unwrap(), &bars).await;
    let bytes: u64 = TimeSeriesTable::open(TableLocation::local(dir.path().join("t")).unwrap())
        .await
        .unwrap()
        .segments()
        .iter()
        .map(|s| s.size_bytes)
        .sum();
    let prefix = format!("run-{}", std::process::id());
    let remote = measure(s3(&endpoint, &prefix), &bars).await;

    println!(
        "{SYMBOLS} symbols x {DAYS} days: {rows} rows, {DAYS} appends of one day each, {:.1} MB of Parquet; \
         medians of {RUNS} runs",
        bytes as f64 / 1e6
    );
    println!("| | local disk | S3 (moto on this machine) |");
    println!("|---|---:|---:|");
    let per_append = |f: &Figures| f.append / DAYS as u32;
    let throughput = |f: &Figures| rows as f64 / f.append.as_secs_f64() / 1e6;
    let megabytes = |f: &Figures| bytes as f64 / f.append.as_secs_f64() / 1e6;
    println!(
        "| append of one day ({} rows), ms | {} | {} |",
        rows / DAYS,
        ms(per_append(&local)),
        ms(per_append(&remote))
    );
    println!("| append throughput, M rows/s | {:.2} | {:.2} |", throughput(&local), throughput(&remote));
    println!("| append throughput, MB/s of Parquet | {:.1} | {:.1} |", megabytes(&local), megabytes(&remote));
    println!("| open (version {}, no checkpoint), ms | {} | {} |", DAYS + 1, ms(local.open), ms(remote.open));
    println!("| selective query (one symbol, one hour), ms | {} | {} |", ms(local.query), ms(remote.query));
    println!("| `coverage()` of {SYMBOLS} symbols, ms | {} | {} |", ms(local.coverage), ms(remote.coverage));
}
