//! Inspecting an existing Parquet file before it is adopted as a segment as-is: its
//! schema, and the statistics and coverage of its rows (only the time and entity columns
//! are decoded).
//!
//! Pure CPU work over bytes already in memory; no I/O.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatchReader;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;

use super::stats::{SegmentStats, StatsCollector};
use crate::error::{Error, Result};
use crate::metadata::TimeIndexSpec;

/// What inspection learned about a Parquet file.
#[derive(Debug)]
pub struct InspectedFile {
    /// The file's Arrow schema, already checked against the table's time index.
    pub schema: SchemaRef,
    /// Statistics and coverage of its rows.
    pub stats: SegmentStats,
    /// Per column, whether the file proves the column holds no nulls.
    pub null_free: Vec<bool>,
}

/// Reads the footer and the time/entity columns of a Parquet file. `name` is used in
/// messages.
pub fn inspect_parquet(bytes: Bytes, spec: &TimeIndexSpec, name: &str) -> Result<InspectedFile> {
    let parquet_error = |source| Error::Parquet { path: name.to_string(), source };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_error)?;
    let schema = builder.schema().clone();
    spec.validate_schema(&schema)?;
    let null_free = null_free_columns(builder.metadata(), schema.fields().len());

    let mut keys = vec![spec.time_column.as_str()];
    keys.extend(spec.entity_columns.iter().map(String::as_str));
    let indices: Vec<usize> = keys.iter().filter_map(|k| schema.index_of(k).ok()).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let reader = builder.with_projection(mask).with_batch_size(64 * 1024).build().map_err(parquet_error)?;
    let projected_schema = reader.schema();
    let mut collector = StatsCollector::try_new(spec, &projected_schema)?;
    for batch in reader {
        collector.observe(&batch?)?;
    }
    let stats = collector.finish();
    if stats.row_count == 0 {
        return Err(Error::invalid_input(format!("{name} has no rows; nothing to append")));
    }
    Ok(InspectedFile { schema, stats, null_free })
}

/// For flat schemas each Arrow column is one Parquet leaf; a column is provably null-free
/// when every row group's statistics say zero nulls.
fn null_free_columns(metadata: &ParquetMetaData, columns: usize) -> Vec<bool> {
    let leaves = metadata.file_metadata().schema_descr().num_columns();
    (0..columns)
        .map(|c| {
            leaves == columns
                && metadata
                    .row_groups()
                    .iter()
                    .all(|rg| rg.column(c).statistics().and_then(|s| s.null_count_opt()) == Some(0))
        })
        .collect()
}
