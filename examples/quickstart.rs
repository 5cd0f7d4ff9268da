//! Quick start: create a table, append two batches, see an overlap rejected, ask which
//! minutes are missing, and query it with SQL.
//!
//! Run with `cargo run --example quickstart`.

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::metadata::TimeIndexSpec;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{TimeRange, TimeSeriesTable};

/// One price per minute for `symbol`, for the given minutes after 2024-01-02T14:30Z.
fn prices(symbol: &str, minutes: impl Iterator<Item = i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("price", DataType::Float64, false),
    ]));
    let start = 1_704_205_800_000; // 2024-01-02T14:30:00Z in milliseconds
    let ts: Vec<i64> = minutes.map(|m| start + m * 60_000).collect();
    let price: Vec<f64> = ts.iter().map(|t| 100.0 + (t / 60_000 % 10) as f64).collect();
    let symbols = vec![symbol; ts.len()];
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
            Arc::new(StringArray::from(symbols)),
            Arc::new(Float64Array::from(price)),
        ],
    )
    .expect("columns match the schema")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("tsq-quickstart-{}", std::process::id()));
    let location = TableLocation::local(&dir)?;

    // A table of one-minute buckets per symbol.
    let spec = TimeIndexSpec::new("ts", "1m".parse()?).with_entity_columns(["symbol"]);
    let mut table = TimeSeriesTable::create_with_spec(location, spec).await?;

    // Two appends: AAPL minutes 0-29 and 45-59 (a 15-minute hole).
    table.append(vec![prices("AAPL", 0..30)]).await?;
    let result = table.append(vec![prices("AAPL", 45..60)]).await?;
    println!("appended {} rows as version {}", result.rows, result.version);

    // Appending minute 10 again is refused: it is already covered.
    let overlap = table.append(vec![prices("AAPL", 10..11)]).await.unwrap_err();
    println!("rejected: {overlap}");

    // Which minutes are missing in the first hour?
    let hour = TimeRange::parse("2024-01-02T14:30:00Z", "2024-01-02T15:30:00Z")?;
    for gap in table.gaps(Some(hour), None).await? {
        println!("gap for {}: [{}, {}) = {} minutes", gap.entity, gap.start, gap.end, gap.missing_buckets);
    }

    // The same table in SQL.
    let ctx = session_context();
    register_opened(&ctx, "prices", table)?;
    ctx.sql("SELECT symbol, count(*) AS bars, avg(price) AS avg_price FROM prices GROUP BY symbol")
        .await?
        .show()
        .await?;
    ctx.sql("SELECT * FROM coverage('prices')").await?.show().await?;

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
