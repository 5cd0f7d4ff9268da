use arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::table::TimeRange;

use crate::common::*;

#[tokio::test]
async fn create_append_query_coverage() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location.clone(), "1m").await;
    let r1 = table.append(vec![minute_bars(&["AAPL", "MSFT"], T0, 60)]).await.unwrap();
    assert_eq!((r1.version, r1.rows), (2, 120));
    let r2 = table.append(vec![minute_bars(&["AAPL"], T0 + 2 * HOUR, 30)]).await.unwrap();
    assert_eq!(r2.version, 3);
    let err = table.append(vec![minute_bars(&["AAPL"], T0 + 10 * MINUTE, 1)]).await.unwrap_err();
    assert!(err.to_string().contains("overlap"), "{err}");

    let rows: Vec<_> = table.scan(Some(TimeRange::try_new(T0, T0 + 5 * MINUTE).unwrap())).await.unwrap().try_collect().await.unwrap();
    assert_eq!(row_count(&rows), 10);

    let cov = table.coverage(None, None).await.unwrap();
    assert_eq!(cov.len(), 2);
    let gaps = table.gaps(None, None).await.unwrap();
    println!("{cov:?}\n{gaps:?}");

    let ctx = session_context();
    register_opened(&ctx, "prices", table.clone()).unwrap();
    for sql in [
        "SELECT symbol, count(*) AS n FROM prices GROUP BY symbol ORDER BY symbol",
        "SELECT * FROM coverage('prices')",
        "SELECT * FROM gaps('prices')",
        "SELECT * FROM segments('prices')",
        "SELECT * FROM history('prices')",
        "SELECT * FROM last_covered_window('prices', '30m')",
        "EXPLAIN ANALYZE SELECT * FROM prices WHERE ts >= '2024-01-01T02:00:00Z' AND symbol = 'AAPL'",
        "EXPLAIN SELECT * FROM prices ORDER BY ts LIMIT 10",
        "EXPLAIN SELECT count(*), min(ts), max(ts) FROM prices",
    ] {
        let df = ctx.sql(sql).await.unwrap();
        let batches = df.collect().await.unwrap();
        println!("{sql}\n{}", pretty_format_batches(&batches).unwrap());
    }
    ctx.sql("INSERT INTO prices VALUES (TIMESTAMP '2024-01-05 00:00:00', 'IBM', 1.0, 5)").await.unwrap().collect().await.unwrap();
    let n = ctx.sql("SELECT count(*) FROM prices").await.unwrap().collect().await.unwrap();
    println!("{}", pretty_format_batches(&n).unwrap());
}
