//! What the SQL benchmarks share: the table spec of the sample bars, timing and medians.

use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use timeseries_table_core::metadata::{BucketUnit, TimeBucket, TimeIndexSpec};

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
