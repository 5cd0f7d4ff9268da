//! timeseries-table-core
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
