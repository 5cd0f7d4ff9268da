//! S3 proper, against the moto server `scripts/test` starts (the log contract, ingest and
//! log evolution suites also run there, through `on_every_backend`): SQL with explicit
//! storage options, one DataFusion store registration per table, and bad S3 input. Without
//! the server each test returns at once and one "skipped: no S3 endpoint" line is printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::memory::InMemory;
use timeseries_table_core::datafusion::session_context;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;

use crate::common::*;

/// `OPTIONS (...)` entries for the test server.
fn sql_options(endpoint: &str) -> String {
    s3_options(endpoint).iter().map(|(k, v)| format!("'{k}' '{v}'")).collect::<Vec<_>>().join(", ")
}

#[tokio::test]
async fn sql_on_s3_with_explicit_options_and_its_own_store() {
    let Some(endpoint) = s3_endpoint() else { return };
    let ctx = session_context();
    // A store the user registered for the bucket stays theirs.
    let bucket = url::Url::parse(&s3_url()).unwrap();
    let bucket = url::Url::parse(&format!("s3://{}", bucket.host_str().unwrap())).unwrap();
    let users: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
    ctx.runtime_env().register_object_store(&bucket, Arc::clone(&users));

    // Table b lives in another bucket and is reached with other credentials (moto takes
    // any): each table keeps its own store.
    let other_credentials = sql_options(&endpoint).replace("'aws.access_key_id' 'test'", "'aws.access_key_id' 'other'");
    assert_ne!(other_credentials, sql_options(&endpoint));
    for (name, url, options) in
        [("a", s3_url(), sql_options(&endpoint)), ("b", s3_url_in_new_bucket(), other_credentials)]
    {
        let create = format!(
            "CREATE EXTERNAL TABLE {name} (ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL, price DOUBLE NOT NULL) \
             STORED AS TIMESERIES LOCATION '{url}' OPTIONS ('time_column' 'ts', 'bucket' '1m', 'entity_columns' 'symbol', {options})"
        );
        sql_ok(&ctx, &create).await;
        sql_ok(&ctx, &format!("INSERT INTO {name} VALUES ('2024-01-02T14:30:00Z', 'AAPL', 1.0), ('2024-01-02T14:31:00Z', 'AAPL', 2.0)")).await;
    }
    sql_ok(&ctx, "INSERT INTO b VALUES ('2024-01-02T14:40:00Z', 'MSFT', 3.0)").await;
    let joined = sql_ok(&ctx, "SELECT (SELECT count(*) FROM a) AS a_rows, (SELECT count(*) FROM b) AS b_rows").await;
    assert!(joined.contains("| 2      | 3      |"), "{joined}");
    // The coverage sidecars are on S3 too: MSFT misses the table's first ten minutes.
    let gaps = sql_ok(&ctx, "SELECT gap_start, missing_buckets FROM gaps('b') WHERE symbol = 'MSFT'").await;
    assert!(gaps.contains("| 2024-01-02T14:30:00 | 10              |"), "{gaps}");
    let key = datafusion::execution::object_store::ObjectStoreUrl::parse(bucket.as_str()).unwrap();
    let registered = ctx.runtime_env().object_store(&key).unwrap();
    assert!(Arc::ptr_eq(&registered, &users), "the user's store for {bucket} was replaced");
}

#[tokio::test]
async fn bad_s3_input_gets_one_sentence_and_no_table() {
    let Some(endpoint) = s3_endpoint() else { return };
    let spec = || timeseries_table_core::metadata::TableMeta::try_new(spec("1m")).unwrap();

    // A bucket that does not exist.
    let missing = TableLocation::parse_with_options("s3://no-such-bucket/t", &s3_options(&endpoint)).unwrap();
    let err = TimeSeriesTable::create(missing, spec()).await.unwrap_err().to_string();
    assert!(err.contains("no-such-bucket"), "{err}");

    // An endpoint nobody listens on: a bounded wait, then one error.
    let started = Instant::now();
    let nowhere = TableLocation::parse_with_options(&s3_url(), &s3_options("http://127.0.0.1:9")).unwrap();
    let err = TimeSeriesTable::create(nowhere, spec()).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}: {err}", started.elapsed());
    assert!(err.contains("127.0.0.1:9") || err.to_lowercase().contains("connect"), "{err}");

    // Wrong credentials, against the server that checks them (it knows no key).
    let checking = std::env::var("TSQ_TEST_S3_AUTH_ENDPOINT");
    if checking.is_err() {
        println!("skipped: wrong credentials (no credential-checking S3 endpoint; scripts/test starts one)");
    }
    if let Ok(checking) = checking {
        let location = TableLocation::parse_with_options("s3://tsq-test/t", &s3_options(&checking)).unwrap();
        for err in [
            TimeSeriesTable::create(location.clone(), spec()).await.unwrap_err(),
            TimeSeriesTable::open(location).await.unwrap_err(),
        ] {
            let message = err.to_string();
            assert!(matches!(err, timeseries_table_core::Error::AccessDenied { .. }), "{err:?}");
            assert!(message.contains("InvalidAccessKeyId") && message.contains("check the credentials"), "{message}");
            assert!(!message.contains('\n') && !message.contains("<?xml"), "one sentence: {message}");
        }
    }

    // An unknown option key is named.
    let mut options = s3_options(&endpoint);
    options.push(("aws.regoin".into(), "us-east-1".into()));
    let err = TableLocation::parse_with_options(&s3_url(), &options).unwrap_err().to_string();
    assert!(err.contains("regoin") && err.contains("aws.region"), "{err}");

    // A malformed URL.
    let err = TableLocation::parse_with_options("s3://", &s3_options(&endpoint)).unwrap_err().to_string();
    assert!(err.contains("s3://"), "{err}");

    // Secrets stay out of messages and debug output.
    let mut secret = s3_options(&endpoint);
    secret.retain(|(k, _)| k != "aws.secret_access_key");
    secret.push(("aws.secret_access_key".into(), "sekrit-value".into()));
    let location = TableLocation::parse_with_options("s3://no-such-bucket/t", &secret).unwrap();
    assert!(!format!("{location:?} {location}").contains("sekrit"));
    let err = TimeSeriesTable::create(location, spec()).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("sekrit"), "{err:?}");
}

/// A store that cannot create a file only if it is absent is refused before anything is
/// written: at create by a probe (a server that ignores `If-None-Match` overwrites the
/// probe), and at create and append when conditional puts are switched off.
#[tokio::test]
async fn a_store_without_conditional_create_is_refused() {
    use crate::reliability::faulty_store::FaultyStore;
    use object_store::ObjectStore;
    use timeseries_table_core::Error;

    // A pretend S3 whose create-if-absent overwrites (no server needed).
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let overwriting = FaultyStore::new(Arc::clone(&inner));
    overwriting.ignore_create_if_absent();
    let pretend = url::Url::parse("s3://pretend").unwrap();
    let location = TableLocation::from_store(Arc::new(overwriting.clone()), pretend, "t").unwrap();
    let err = TimeSeriesTable::create_with_spec(location, spec("1m")).await.unwrap_err();
    assert!(matches!(err, Error::NoConditionalCreate { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("s3://pretend") && message.contains("replaced it"), "{message}");
    let left: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(inner.list(None)).await.unwrap();
    assert!(left.is_empty(), "the refused create left {left:?}");
    // The same store under a memory:// name is the caller's word, and is not probed.
    let trusted = overwriting.location("t");
    TimeSeriesTable::create_with_spec(trusted, spec("1m")).await.unwrap();

    let Some(endpoint) = s3_endpoint() else { return };
    let disabled = |url: &str| {
        let mut options = s3_options(&endpoint);
        options.push(("aws.conditional_put".into(), "disabled".into()));
        TableLocation::parse_with_options(url, &options).unwrap()
    };
    let url = s3_url();
    let err = TimeSeriesTable::create_with_spec(disabled(&url), spec("1m")).await.unwrap_err();
    assert!(matches!(err, Error::NoConditionalCreate { .. }), "{err:?}");
    assert!(err.to_string().contains("aws.conditional_put"), "{err}");
    let location = TableLocation::parse_with_options(&url, &s3_options(&endpoint)).unwrap();
    assert!(location.list("").await.unwrap().is_empty(), "the refused create wrote files");

    // An existing table, appended to through a store with conditional puts off.
    let mut table = TimeSeriesTable::create_with_spec(location.clone(), spec("1m")).await.unwrap();
    table.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
    let files = location.list("").await.unwrap().into_iter().map(|f| f.path).collect::<Vec<_>>();
    let mut refused = TimeSeriesTable::open(disabled(&url)).await.unwrap();
    let err = refused.append(vec![minute_bars(&["A"], T0 + HOUR, 10)]).await.unwrap_err();
    assert!(matches!(err, Error::NoConditionalCreate { .. }), "{err:?}");
    let after = location.list("").await.unwrap().into_iter().map(|f| f.path).collect::<Vec<_>>();
    assert_eq!(after, files, "the refused append left files");
    assert_eq!(TimeSeriesTable::open(location).await.unwrap().version(), 2);
}

/// The requests an append, an open and a selective query send to S3, counted by kind
/// through the counting store wrapper (no faults armed). On S3 every request is billed,
/// so the counts are bounded here; `-- --nocapture` prints them (BENCHMARKS.md).
#[tokio::test]
async fn requests_per_append_open_and_selective_query() {
    use crate::reliability::faulty_store::FaultyStore;
    use timeseries_table_core::datafusion::register_opened;
    use timeseries_table_core::sample::MarketBars;

    let Some(_) = s3_endpoint() else { return };
    let s3 = s3_location().unwrap();
    let url = url::Url::parse(&s3.to_string()).unwrap();
    let counted = FaultyStore::new(Arc::clone(s3.store()));
    let location = counted.location(url.path().trim_start_matches('/'));
    let summary = |store: &FaultyStore| {
        let calls = store.calls();
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for call in &calls {
            let name = format!("{:?}", call.kind);
            match kinds.iter_mut().find(|(k, _)| *k == name) {
                Some((_, n)) => *n += 1,
                None => kinds.push((name, 1)),
            }
        }
        (calls.len(), kinds.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", "))
    };

    let bars = MarketBars::new(20, 2);
    let mut table = TimeSeriesTable::create_with_spec(location.clone(), spec("1m")).await.unwrap();
    table.append(vec![bars.day_batch(0)]).await.unwrap();
    counted.reset();
    table.append(vec![bars.day_batch(1)]).await.unwrap();
    let (append, append_kinds) = summary(&counted);

    counted.reset();
    let table = TimeSeriesTable::open(location.clone()).await.unwrap();
    let (open, open_kinds) = summary(&counted);

    let ctx = session_context();
    register_opened(&ctx, "bars", table).unwrap();
    let query = "SELECT avg(close) FROM bars WHERE symbol = 'MSFT' \
                 AND ts >= '2024-01-03T15:00:00Z' AND ts < '2024-01-03T16:00:00Z'";
    sql_ok(&ctx, query).await; // the first query also reads the coverage of the version
    counted.reset();
    let answer = sql_ok(&ctx, query).await;
    let (selective, query_kinds) = summary(&counted);
    for call in counted.calls() {
        println!("  {:?} {}", call.kind, call.path.rsplit('/').take(2).collect::<Vec<_>>().join(" in "));
    }
    let coverage = "SELECT count(*) FROM coverage('bars')";
    sql_ok(&ctx, coverage).await;
    counted.reset();
    sql_ok(&ctx, coverage).await;
    let (coverage_requests, coverage_kinds) = summary(&counted);
    println!("requests per coverage() (a second run): {coverage_requests} ({coverage_kinds})");
    assert!(coverage_requests <= 4, "coverage(): {coverage_requests} ({coverage_kinds})");
    assert!(answer.lines().count() == 5, "{answer}");
    println!("requests per append of one segment (7,800 rows): {append} ({append_kinds})");
    println!("requests per open (version 3, no checkpoint): {open} ({open_kinds})");
    println!("requests per selective query, one symbol-hour: {selective} ({query_kinds})");
    // A commit needs its data file, sidecar, commit and CURRENT, plus the listing probe.
    assert!(append <= 12, "append: {append} ({append_kinds})");
    assert!(open <= 10, "open: {open} ({open_kinds})");
    assert!(selective <= 8, "query: {selective} ({query_kinds})");
}

/// A segment larger than a part goes up as a multipart upload. S3 refuses parts under
/// 5 MiB (all but the last) when the upload completes, and so does moto; the 1 KiB part
/// size asked for here is raised to that minimum, so the upload completes.
#[tokio::test]
async fn segments_larger_than_a_part_are_uploaded_in_parts() {
    use timeseries_table_core::WriterOptions;

    use crate::reliability::faulty_store::{CallKind, FaultyStore};

    if s3_endpoint().is_none() {
        return;
    }
    // Counted through the wrapper, named s3:// so it is treated as S3.
    let (counted, location) = FaultyStore::around_s3(&s3_url());
    // Random prices and volumes, so the Parquet file stays larger than two parts.
    let batches = random_bars("A", 800_000);
    let options = WriterOptions::default().with_upload_part_bytes(1024);
    let mut table =
        TimeSeriesTable::create_with_spec(location.clone(), spec("1m")).await.unwrap().with_writer_options(options);
    counted.reset();
    let appended = table.append(batches).await.unwrap();
    assert_eq!(appended.rows, 800_000);
    let largest = table.segments().iter().map(|s| s.size_bytes).max().unwrap();
    assert!(largest > 10 * 1024 * 1024, "the segment ({largest} bytes) must span more than two parts");
    let parts = counted.calls().iter().filter(|c| c.kind == CallKind::UploadPart).count() as u64;
    let expected = largest.div_ceil(5 * 1024 * 1024);
    assert_eq!(parts, expected, "{largest} bytes in parts of 5 MiB");
    let reopened = TimeSeriesTable::open(location).await.unwrap();
    let batches: Vec<_> = futures::TryStreamExt::try_collect(reopened.scan(None).await.unwrap()).await.unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 800_000);
}
