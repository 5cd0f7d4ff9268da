//! A log-structured time-series table format: immutable Parquet segments, an append-only
//! JSON transaction log with optimistic concurrency, and RoaringBitmap coverage of time
//! buckets per entity, served to SQL as a DataFusion table provider.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> timeseries_table_core::Result<()> {
//! use timeseries_table_core::datafusion::{register_opened, session_context};
//! use timeseries_table_core::sample::MarketBars;
//! use timeseries_table_core::TimeIndexSpec;
//!
//! // One-minute buckets per symbol; the first append fixes the schema.
//! let spec = TimeIndexSpec::new("ts", "1m".parse()?).with_entity_columns(["symbol"]);
//! let mut table = timeseries_table_core::create("memory://doc/bars", spec).await?;
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
//! The crate root holds what a program needs: [`open`], [`create`], [`TableBuilder`] for
//! storage and writer options, [`TimeSeriesTable`] and the types its answers come in.
//! Modules, from the bottom up:
//! - [`storage`]: the only module that does I/O, over `object_store` (local, `memory://`, cloud).
//! - [`metadata`]: the table model (time index, buckets, entities, schema, segments, the
//!   expected schedule); pure.
//! - [`coverage`]: bucket math (epoch-aligned, or local days), per-entity bucket sets, gap
//!   metrics over the expected buckets, the `.roar` codec; pure.
//! - `transaction_log` (feature `internal-api`): commit actions, replay, checkpoints, the
//!   commit protocol. Crate-private by default, because a commit written around the table
//!   layer skips its overlap and schema checks.
//! - `formats` (feature `internal-api`): Parquet segment encoding and inspection; pure.
//! - [`table`]: [`TimeSeriesTable`], where every rule lives (validation, overlap, commits).
//! - [`datafusion`] (feature `sql`, on by default): the SQL surface (provider, `INSERT`,
//!   `CREATE EXTERNAL TABLE`, table functions, pruning through date functions, gap
//!   filling).
//! - [`sample`]: deterministic market bars for the demo, examples and benchmarks.
//! - `environment` (feature `internal-api`): the clock, random ids and compute threads,
//!   seedable per thread so a simulated run replays exactly.

#![warn(missing_docs)]

/// Declares an item that is public with the `internal-api` feature and crate-private
/// without it: the log, the Parquet codec and raw file access are for tests, fuzzing and
/// tools, not for programs, which go through [`TimeSeriesTable`].
macro_rules! internal_api {
    ($(#[$meta:meta])* pub $($item:tt)*) => {
        #[cfg(feature = "internal-api")]
        $(#[$meta])* pub $($item)*
        #[cfg(not(feature = "internal-api"))]
        #[allow(dead_code, unused_imports)]
        $(#[$meta])* pub(crate) $($item)*
    };
}

mod builder;
pub mod coverage;
#[cfg(feature = "sql")]
pub mod datafusion;
pub mod error;
internal_api! {
    pub mod environment;
}
internal_api! {
    pub mod formats;
}
pub mod metadata;
pub mod sample;
pub mod storage;
pub mod table;
internal_api! {
    pub mod transaction_log;
}

/// The README's Rust examples compile as doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use builder::{create, open, TableBuilder};
pub use error::{Error, Result};
pub use formats::parquet::{parse_byte_size, SegmentCompression, WriterOptions};
pub use metadata::{EntityKey, EntityValue, Schedule, TableMeta, TimeBucket, TimeIndexSpec, Timestamp};
pub use storage::TableLocation;
pub use table::{AppendResult, EntityCoverage, Expected, Gap, InputFormat, Reencoded, TimeRange, TimeSeriesTable};
