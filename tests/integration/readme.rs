//! The README's SQL tour runs as written (bar the table location, which becomes an
//! in-memory one) against the sample table, so the README cannot drift from the code.

use timeseries_table_core::datafusion::{register_opened, script::run_script, session_context};
use timeseries_table_core::sample::{create_sample_table, MarketBars};
use timeseries_table_core::storage::TableLocation;

use crate::common::*;

#[tokio::test]
async fn readme_sql_tour_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```sql\n").expect("README has a SQL block") + "```sql\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let scratch = format!("memory://{}/trades", uuid_like());
    let script = block.replace("'data/trades'", &format!("'{scratch}'"));

    let table =
        create_sample_table(TableLocation::memory(&uuid_like(), "bars").unwrap(), &MarketBars::new(6, 5), |_, _| {})
            .await
            .unwrap();
    let ctx = session_context();
    register_opened(&ctx, "bars", table).unwrap();
    let results = run_script(&ctx, &script).await.unwrap();
    assert_eq!(results.len(), 13, "every statement of the tour ran");
    assert_eq!(pretty(&results[1].batches).matches("| 1     |").count(), 1, "the INSERT reports one row");
    // On 2024-01-03 only AAPL, MSFT, GOOG and META are listed (AMZN and NVDA list a day later).
    assert_eq!(row_count(&results[2].batches), 4);
    // The whole day through CAST(ts AS DATE): four symbols' sessions less MSFT's halt.
    assert!(pretty(&results[3].batches).contains(&format!("| {} ", 4 * 390 - 45)), "{}", pretty(&results[3].batches));
    // AAPL and the three others listed on 2024-01-02, eight 15-minute bins each.
    assert_eq!(row_count(&results[4].batches), 4 * 8, "{}", pretty(&results[4].batches));
    assert_eq!(row_count(&results[5].batches), 6, "coverage: one row per symbol");
    assert!(row_count(&results[6].batches) > 0, "MSFT has gaps");
    // Against every bucket, MSFT's nights and weekend are gaps too.
    assert!(row_count(&results[7].batches) > row_count(&results[6].batches));
    // The loads after version 5 filled the last session: one run per symbol (META's halt
    // splits its run in two).
    assert_eq!(row_count(&results[9].batches), 7, "{}", pretty(&results[9].batches));
    // MSFT's bars of 2024-01-03 are deleted: a 390-minute session less its 45-minute halt.
    assert!(pretty(&results[12].batches).contains("| 345   |"), "{}", pretty(&results[12].batches));
}
