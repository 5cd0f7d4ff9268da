//! A log-structured time-series table format: immutable Parquet segments, an append-only
//! JSON transaction log with optimistic concurrency, and RoaringBitmap coverage of time
//! buckets per entity, served to SQL as a DataFusion table provider.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> timeseries_table_core::Result<()> {
//! use timeseries_table_core::datafusion::{register_opened, session_context};
//! use timeseries_table_core::metadata::TimeIndexSpec;
//! use timeseries_table_core::sample::MarketBars;
//! use timeseries_table_core::storage::TableLocation;
//! use timeseries_table_core::table::TimeSeriesTable;
//!
//! // One-minute buckets per symbol; the first append fixes the schema.
//! let location = TableLocation::memory("doc", "bars")?;
//! let spec = TimeIndexSpec::new("ts", "1m".parse()?).with_entity_columns(["symbol"]);
//! let mut table = TimeSeriesTable::create_with_spec(location, spec).await?;
//! table.append(vec![MarketBars::new(3, 1).day_batch(0)]).await?;
//!
//! // Which minutes are missing, per symbol?
//! let gaps = table.gaps(None, None).await?;
//! assert!(!gaps.is_empty());
//!
//! // The same table in SQL, with `coverage()` and `gaps()` as table functions.
//! let ctx = session_context();
//! register_opened(&ctx, "bars", table)?;
//! let rows = ctx.sql("SELECT * FROM coverage('bars')").await?.collect().await?;
//! assert_eq!(rows[0].num_rows(), 2); // the third symbol lists on day 2
//! # Ok(())
//! # }
//! ```
//!
//! Modules, from the bottom up:
//! - [`storage`]: the only module that does I/O, over `object_store` (local, `memory://`, cloud).
//! - [`metadata`]: the table model (time index, buckets, entities, schema, segments); pure.
//! - [`coverage`]: bucket math, per-entity bucket sets, gap metrics, the `.roar` codec; pure.
//! - [`transaction_log`]: commit actions, replay into a state, checkpoints, the commit protocol.
//! - [`formats`]: Parquet segment encoding and inspection; pure.
//! - [`table`]: [`table::TimeSeriesTable`], where every rule lives (validation, overlap, commits).
//! - [`datafusion`]: the SQL surface (provider, `INSERT`, `CREATE EXTERNAL TABLE`, table functions).
//! - [`sample`]: deterministic market bars for the demo, examples and benchmarks.

pub mod coverage;
pub mod datafusion;
pub mod error;
pub mod formats;
pub mod metadata;
pub mod sample;
pub mod storage;
pub mod table;
pub mod transaction_log;

pub use error::{Error, Result};
