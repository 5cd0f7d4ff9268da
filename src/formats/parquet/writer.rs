//! Encoding a new segment: rows sorted by time, written as Parquet in memory, with its
//! statistics and coverage computed from the same batches (nothing is read back).
//!
//! CPU work, no I/O: callers run it on a blocking thread and store the bytes.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch, SortOptions};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;

use super::stats::{timestamps_as_nanos, SegmentStats, StatsCollector};
use crate::error::{Error, Result};
use crate::metadata::TimeIndexSpec;

/// Rows per row group by default: small enough that a one-hour query inside a large
/// segment skips most of it by row-group statistics.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// How new segments are written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterOptions {
    /// Rows per Parquet row group (the unit that row-group pruning skips).
    pub row_group_rows: usize,
    /// Compression of the data pages.
    pub compression: SegmentCompression,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { row_group_rows: ROW_GROUP_ROWS, compression: SegmentCompression::Snappy }
    }
}

impl WriterOptions {
    /// Sets the rows per row group (at least 1).
    pub fn with_row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows.max(1);
        self
    }

    /// Sets the compression.
    pub fn with_compression(mut self, compression: SegmentCompression) -> Self {
        self.compression = compression;
        self
    }
}

/// Compression codecs for segment data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentCompression {
    /// No compression.
    Uncompressed,
    /// Snappy: fast, the default.
    Snappy,
    /// Zstandard at the given level (1-22): smaller files, slower writes.
    Zstd(i32),
}

impl SegmentCompression {
    fn to_parquet(self) -> Result<Compression> {
        Ok(match self {
            SegmentCompression::Uncompressed => Compression::UNCOMPRESSED,
            SegmentCompression::Snappy => Compression::SNAPPY,
            SegmentCompression::Zstd(level) => Compression::ZSTD(
                ZstdLevel::try_new(level)
                    .map_err(|e| Error::invalid_input(format!("zstd level {level}: {e} (use 1 to 22)")))?,
            ),
        })
    }
}

/// A segment ready to be stored.
#[derive(Debug)]
pub struct EncodedSegment {
    /// The complete Parquet file, rows sorted by time.
    pub bytes: Bytes,
    /// Statistics and coverage of its rows.
    pub stats: SegmentStats,
}

/// The writer settings of every segment this crate writes.
pub fn writer_properties(time_index: usize, sorted: bool, options: &WriterOptions) -> Result<WriterProperties> {
    let builder = WriterProperties::builder()
        .set_compression(options.compression.to_parquet()?)
        .set_max_row_group_row_count(Some(options.row_group_rows));
    let builder = if sorted {
        builder.set_sorting_columns(Some(vec![SortingColumn {
            column_idx: time_index as i32,
            descending: false,
            nulls_first: false,
        }]))
    } else {
        builder
    };
    Ok(builder.build())
}

/// Encodes `batches` (already in the table schema) as one segment sorted by time.
///
/// Statistics and coverage are computed on a second thread while the Parquet encoder
/// runs, so they add little to the wall time of an append.
pub fn encode_segment(
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    spec: &TimeIndexSpec,
    options: &WriterOptions,
) -> Result<EncodedSegment> {
    let time_index = schema.index_of(&spec.time_column).map_err(|e| Error::invalid_input(e.to_string()))?;
    let batches = if is_sorted(&batches, time_index, &spec.time_column)? {
        batches
    } else {
        vec![sort_by_time(&batches, schema, time_index)?]
    };
    let collect = || -> Result<SegmentStats> {
        let mut collector = StatsCollector::try_new(spec, schema)?;
        for batch in &batches {
            collector.observe(batch)?;
        }
        Ok(collector.finish())
    };
    let (stats, bytes) = std::thread::scope(|scope| {
        let stats = scope.spawn(collect);
        let bytes = write_parquet(&batches, schema, time_index, options);
        (stats.join(), bytes)
    });
    let stats = stats.map_err(|_| Error::Task("computing segment statistics panicked".into()))??;
    if stats.row_count == 0 {
        return Err(Error::invalid_input("the input has no rows; nothing to append"));
    }
    Ok(EncodedSegment { bytes: bytes?, stats })
}

fn write_parquet(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    time_index: usize,
    options: &WriterOptions,
) -> Result<Bytes> {
    let mut buffer = Vec::new();
    let parquet_error = |source| Error::Parquet { path: "new segment".into(), source };
    let properties = writer_properties(time_index, true, options)?;
    let mut writer = ArrowWriter::try_new(&mut buffer, Arc::clone(schema), Some(properties)).map_err(parquet_error)?;
    for batch in batches {
        writer.write(batch).map_err(parquet_error)?;
    }
    writer.close().map_err(parquet_error)?;
    Ok(Bytes::from(buffer))
}

/// Whether the rows are in non-decreasing time order across all batches.
fn is_sorted(batches: &[RecordBatch], time_index: usize, column: &str) -> Result<bool> {
    let mut last = i64::MIN;
    for batch in batches {
        for ts in timestamps_as_nanos(batch.column(time_index), column)? {
            if ts < last {
                return Ok(false);
            }
            last = ts;
        }
    }
    Ok(true)
}

fn sort_by_time(batches: &[RecordBatch], schema: &SchemaRef, time_index: usize) -> Result<RecordBatch> {
    let all = concat_batches(schema, batches)?;
    let order =
        sort_to_indices(all.column(time_index), Some(SortOptions { descending: false, nulls_first: false }), None)?;
    Ok(take_record_batch(&all, &order)?)
}
