//! Gap filling in SQL (`date_bin_gapfill`, `date_bin_gapfill_scheduled`, `locf`,
//! `interpolate`) on the sample bars.

use arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::sample::{create_sample_table, MarketBars};
use timeseries_table_core::storage::TableLocation;

use crate::common::uuid_like;

/// The sample table (6 symbols x 5 trading days) as `bars`.
async fn bars() -> SessionContext {
    let location = TableLocation::memory(&uuid_like(), "bars").unwrap();
    let table = create_sample_table(location, &MarketBars::new(6, 5), |_, _| {}).await.unwrap();
    let ctx = session_context();
    register_opened(&ctx, "bars", table).unwrap();
    ctx
}

async fn show(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&batches).unwrap().to_string()
}

#[tokio::test]
async fn probe() {
    let ctx = bars().await;
    println!("{}", show(&ctx, "SELECT * FROM gaps('bars')").await);
    println!("{}", show(&ctx, "SELECT symbol, date_bin_gapfill(INTERVAL '1 day', ts) AS day, count(*) AS n, locf(avg(close)) AS c FROM bars WHERE ts >= '2024-01-04T00:00:00Z' AND ts < '2024-01-09T00:00:00Z' AND symbol IN ('MSFT', 'AAPL') GROUP BY symbol, day ORDER BY symbol, day").await);
    println!("{}", show(&ctx, "EXPLAIN SELECT symbol, date_bin_gapfill(INTERVAL '1 day', ts) AS day, count(*) AS n, locf(avg(close)) AS c FROM bars WHERE ts >= '2024-01-04T00:00:00Z' AND ts < '2024-01-09T00:00:00Z' AND symbol IN ('MSFT', 'AAPL') GROUP BY symbol, day ORDER BY symbol, day").await);
}
