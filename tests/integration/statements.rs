//! One statement, one version: every scan and table function of a statement reads the
//! same snapshot while appends land; a scan never waits for an INSERT in flight; errors
//! keep their kind through SQL; both ends of the timestamp range are readable.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimeUnit};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::metadata::Timestamp;
use timeseries_table_core::table::{TimeRange, TimeSeriesTable};
use timeseries_table_core::Error;

use crate::common::*;
use crate::reliability::faulty_store::{CallKind, FaultyStore, When};

async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

/// The two BIGINT columns of a one-row answer.
fn pair(batches: &[RecordBatch]) -> (i64, i64) {
    let b = &batches[0];
    (b.column(0).as_primitive::<Int64Type>().value(0), b.column(1).as_primitive::<Int64Type>().value(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scan_of_a_statement_reads_one_version_while_appends_land() {
    let (_dir, location) = temp_location();
    let mut writer = new_table(location.clone(), "1m").await;
    writer.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
    let ctx = session_context();
    register_opened(&ctx, "t", TimeSeriesTable::open(location.clone()).await.unwrap()).unwrap();

    // One row per minute for one symbol: the row count equals the covered buckets.
    let appends = 40;
    let writing = tokio::spawn(async move {
        for i in 0..appends {
            writer.append(vec![minute_bars(&["A"], T0 + (10 + i) * MINUTE, 1)]).await.unwrap();
        }
    });
    let statements = [
        // Self-join through two scalar subqueries: two scans of `t`.
        "SELECT (SELECT count(*) FROM t) AS a, (SELECT count(*) FROM t WHERE price >= 0) AS b",
        // A self-join proper.
        "SELECT count(*) AS a, count(y.ts) AS b FROM t x LEFT JOIN t y ON x.ts = y.ts",
        // The data against its own coverage.
        "SELECT (SELECT count(*) FROM t) AS a, (SELECT sum(covered_buckets) FROM coverage('t')) AS b",
        // And against its own segment list.
        "SELECT (SELECT count(*) FROM t) AS a, (SELECT sum(row_count) FROM segments('t')) AS b",
    ];
    let mut seen = std::collections::BTreeSet::new();
    let mut rounds = 0;
    while !writing.is_finished() || rounds < 4 {
        for sql in statements {
            let (a, b) = pair(&query(&ctx, sql).await);
            assert_eq!(a, b, "{sql}: two parts of one statement read different versions");
            seen.insert(a);
        }
        rounds += 1;
    }
    writing.await.unwrap();
    // The test only means something if commits landed while statements ran.
    assert!(seen.len() >= 3, "statements saw only {seen:?}; the appends did not overlap the queries");
    // A later statement sees everything.
    let (a, _) = pair(&query(&ctx, statements[0]).await);
    assert_eq!(a, 10 + appends);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_does_not_wait_for_an_insert_in_flight() {
    let store = FaultyStore::new(Arc::new(InMemory::new()));
    let location = store.location("slow");
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
    let ctx = session_context();
    register_opened(&ctx, "t", table).unwrap();
    assert_eq!(pair(&query(&ctx, "SELECT count(*) AS a, count(*) AS b FROM t").await).0, 10);

    // Every write of the INSERT takes a second; its first write says when it has begun.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Mutex::new(Some(started_tx));
    store.reset();
    store.delay(Some(CallKind::Put), Duration::from_secs(1));
    store.hook_on(
        CallKind::Put,
        1,
        When::Before,
        Arc::new(move |_| {
            if let Some(tx) = started_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
        }),
    );
    let insert_ctx = ctx.clone();
    let insert = tokio::spawn(async move {
        let sql = "INSERT INTO t VALUES ('2024-01-01T01:00:00Z', 'A', 1.0, 1)";
        insert_ctx.sql(sql).await?.collect().await
    });
    started_rx.await.expect("the INSERT writes");

    let during = pair(&query(&ctx, "SELECT count(*) AS a, count(*) AS b FROM t").await).0;
    assert!(!insert.is_finished(), "the SELECT returned only after the INSERT finished");
    assert_eq!(during, 10, "the SELECT read the committed version, not the INSERT in flight");

    insert.await.unwrap().unwrap();
    assert_eq!(pair(&query(&ctx, "SELECT count(*) AS a, count(*) AS b FROM t").await).0, 11);
}

#[tokio::test]
async fn an_insert_overlap_downcasts_to_the_crate_error() {
    let location = memory_location();
    let mut table = new_table(location, "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
    let ctx = session_context();
    register_opened(&ctx, "t", table).unwrap();
    let sql = "INSERT INTO t VALUES ('2024-01-01T00:05:30Z', 'A', 1.0, 1)";
    let err = match ctx.sql(sql).await {
        Ok(frame) => frame.collect().await.unwrap_err(),
        Err(e) => e,
    };
    let crate_error = match err.find_root() {
        DataFusionError::External(e) => e.downcast_ref::<Error>(),
        _ => None,
    };
    match crate_error {
        Some(Error::Overlap { buckets: 1, first_bucket, .. }) => {
            assert_eq!(first_bucket.start.to_string(), "2024-01-01T00:05:00Z");
        }
        _ => panic!("expected Error::Overlap inside the DataFusion error, got {err:?}"),
    }
}

#[tokio::test]
async fn rows_at_both_ends_of_the_timestamp_range_are_read() {
    let location = memory_location();
    let mut table = new_table(location, "1m").await;
    let rows = [("A", i64::MIN), ("A", 0), ("A", i64::MAX)];
    table.append(vec![bars(TimeUnit::Nanosecond, None, &rows)]).await.unwrap();

    let all: Vec<RecordBatch> = table.scan(None).await.unwrap().try_collect().await.unwrap();
    assert_eq!(row_count(&all), 3, "an unfiltered Rust scan returns every row");
    let last = TimeRange::try_new(Timestamp::from_nanos(0), Timestamp::MAX).unwrap();
    let tail: Vec<RecordBatch> = table.scan(Some(last)).await.unwrap().try_collect().await.unwrap();
    assert_eq!(row_count(&tail), 1, "[0, MAX) holds 0 but not MAX");

    let ctx = session_context();
    register_opened(&ctx, "t", table.clone()).unwrap();
    let count = |sql: &'static str| {
        let ctx = ctx.clone();
        async move { row_count(&query(&ctx, sql).await) }
    };
    assert_eq!(count("SELECT * FROM t").await, 3);
    assert_eq!(
        count("SELECT * FROM t WHERE ts = arrow_cast(9223372036854775807, 'Timestamp(Nanosecond, None)')").await,
        1
    );
    assert_eq!(count("SELECT * FROM t WHERE ts >= arrow_cast(1, 'Timestamp(Nanosecond, None)')").await, 1);
    assert_eq!(
        count("SELECT * FROM t WHERE ts = arrow_cast(-9223372036854775808, 'Timestamp(Nanosecond, None)')").await,
        1
    );
    assert_eq!(count("SELECT * FROM t WHERE ts < arrow_cast(0, 'Timestamp(Nanosecond, None)')").await, 1);
    let ordered = query(&ctx, "SELECT ts FROM t ORDER BY ts DESC LIMIT 1").await;
    let ts = ordered[0].column(0).as_primitive::<arrow::datatypes::TimestampNanosecondType>().value(0);
    assert_eq!(ts, i64::MAX);

    // Coverage reaches the last bucket; its end is clamped to the last instant.
    let coverage = table.coverage(None, None).await.unwrap();
    assert_eq!(coverage[0].covered_buckets, 3);
    assert_eq!(coverage[0].window.end, Timestamp::MAX);
    assert_eq!(coverage[0].window.start, Timestamp::MIN);
    assert_eq!(count("SELECT * FROM gaps('t') LIMIT 5").await, 2, "the two runs between the three minutes");
    // The reported end of the top bucket, passed back in, still includes that bucket.
    let top = table.last_covered_window(minutes(1), Some(Timestamp::MAX), None).await.unwrap();
    assert_eq!(top[0].1.end, Timestamp::MAX);
}
