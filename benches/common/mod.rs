//! What the SQL benchmarks share: the table spec of the sample bars, timing and medians.

use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use timeseries_table_core::metadata::{BucketUnit, TimeBucket, TimeIndexSpec};
use timeseries_table_core::sample::MarketBars;
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;

/// One-minute buckets per symbol, as the sample bars are queried.
pub fn spec() -> TimeIndexSpec {
    let bucket = TimeBucket::try_new(1, BucketUnit::Minute).expect("1m is valid");
    TimeIndexSpec::new("ts", bucket).with_entity_columns(["symbol"])
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// Runs `sql` to completion and returns the elapsed time (planning included) and row count.
pub async fn run(ctx: &SessionContext, sql: &str) -> (Duration, usize) {
    let start = Instant::now();
    let batches = ctx.sql(sql).await.expect("plans").collect().await.expect("runs");
    (start.elapsed(), batches.iter().map(|b| b.num_rows()).sum())
}

/// Builds layout A (daily segments) or B (one segment per symbol and day).
pub async fn build(dir: &Path, symbols: usize, days: usize, per_symbol: bool) -> TimeSeriesTable {
    let bars = MarketBars::new(symbols, days);
    let mut table =
        TimeSeriesTable::create_with_spec(TableLocation::local(dir).expect("dir"), spec()).await.expect("create");
    for day in 0..days {
        let batch = bars.day_batch(day);
        if per_symbol {
            for name in &bars.symbols {
                let mask = arrow::compute::kernels::cmp::eq(
                    batch.column(1),
                    &arrow::array::Scalar::new(arrow::array::StringArray::from(vec![name.as_str()])),
                )
                .expect("compare");
                let part = arrow::compute::filter_record_batch(&batch, &mask).expect("filter");
                if part.num_rows() > 0 {
                    table.append(vec![part]).await.expect("append");
                }
            }
        } else {
            table.append(vec![batch]).await.expect("append");
        }
    }
    table
}
