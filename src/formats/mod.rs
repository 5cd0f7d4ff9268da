//! Storage formats of the table files.
pub mod parquet;
